set terminal pngcairo size 900,560 font 'sans,10'
set output 'runs/vanishing-seeds/figures/gradient_ics_depth20.png'
set title "Gradient ICS (Santurkar et al.) per layer, mean over training, depth 20"
set xlabel "Linear layer"
set ylabel "||G - G'|| / ||G||"
set key outside right top
set grid
set datafile missing 'NaN'
set logscale y
set format y '10^{%L}'
plot for [i=2:10] 'runs/vanishing-seeds/figures/gradient_ics_depth20.tsv' using 1:i with linespoints title columnheader(i)
