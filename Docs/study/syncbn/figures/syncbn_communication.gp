set terminal pngcairo size 900,560 font 'sans,10'
set output 'runs/syncbn-seeds/figures/syncbn_communication.png'
set title "Time per step: SyncBN collectives and gradient all-reduce"
set xlabel "per-rank batch"
set ylabel "milliseconds per step"
set key outside right top
set grid
set datafile missing 'NaN'
set logscale x 2
plot for [i=2:9] 'runs/syncbn-seeds/figures/syncbn_communication.tsv' using 1:i with linespoints title columnheader(i)
