set terminal pngcairo size 900,560 font 'sans,10'
set output 'Docs/study/residual-seeds-56/figures/grad_profile_init_depth56.png'
set title "Weight-gradient norm per weight layer at initialization, depth 56"
set xlabel "Conv2d/Linear layer (1 = input side; ResNet: projections included)"
set ylabel "||dL/dW||"
set key outside right top
set grid
set datafile missing 'NaN'
set logscale y
set format y '10^{%L}'
plot for [i=2:7] 'Docs/study/residual-seeds-56/figures/grad_profile_init_depth56.tsv' using 1:i with linespoints title columnheader(i)
