set terminal pngcairo size 900,560 font 'sans,10'
set output 'runs/vanishing-seeds/figures/distribution_shift_depth20.png'
set title "Input distribution shift per layer (mean over training), depth 20"
set xlabel "Linear layer (2 = first hidden-to-hidden)"
set ylabel "shift / std"
set key outside right top
set grid
set datafile missing 'NaN'
set logscale y
set format y '10^{%L}'
plot for [i=2:10] 'runs/vanishing-seeds/figures/distribution_shift_depth20.tsv' using 1:i with linespoints title columnheader(i)
