set terminal pngcairo size 900,560 font 'sans,10'
set output 'runs/vanishing-seeds/figures/loss_depth20.png'
set title "Training loss, depth 20, init default"
set xlabel "step"
set ylabel "loss"
set key outside right top
set grid
set datafile missing 'NaN'
plot for [i=2:10] 'runs/vanishing-seeds/figures/loss_depth20.tsv' using 1:i with lines title columnheader(i)
