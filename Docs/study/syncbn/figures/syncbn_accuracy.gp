set terminal pngcairo size 900,560 font 'sans,10'
set output 'runs/syncbn-seeds/figures/syncbn_accuracy.png'
set title "Test accuracy vs per-rank batch (4 ranks)"
set xlabel "per-rank batch (1 process: batch × 4)"
set ylabel "test accuracy"
set key outside right top
set grid
set datafile missing 'NaN'
set logscale x 2
plot for [i=2:5] 'runs/syncbn-seeds/figures/syncbn_accuracy.tsv' using 1:i with linespoints title columnheader(i)
