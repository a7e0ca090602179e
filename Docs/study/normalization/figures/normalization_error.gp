set terminal pngcairo size 900,560 font 'sans,10'
set output 'Docs/study/normalization/figures/normalization_error.png'
set title "Test error vs per-rank batch (4 ranks; BN: precise statistics)"
set xlabel "per-rank batch (1 process: batch × 4)"
set ylabel "test error"
set key outside right top
set grid
set datafile missing 'NaN'
set logscale x 2
plot for [i=2:6] 'Docs/study/normalization/figures/normalization_error.tsv' using 1:i with linespoints title columnheader(i)
