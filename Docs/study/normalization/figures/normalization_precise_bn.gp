set terminal pngcairo size 900,560 font 'sans,10'
set output 'Docs/study/normalization/figures/normalization_precise_bn.png'
set title "Test error with BN's running averages (EMA) and precise statistics"
set xlabel "per-rank batch"
set ylabel "test error"
set key outside right top
set grid
set datafile missing 'NaN'
set logscale x 2
plot for [i=2:9] 'Docs/study/normalization/figures/normalization_precise_bn.tsv' using 1:i with linespoints title columnheader(i)
