set terminal pngcairo size 900,560 font 'sans,10'
set output 'Docs/study/normalization/figures/normalization_noise.png'
set title "Noise of the statistics BN normalizes with (vs the global batch)"
set xlabel "per-rank batch"
set ylabel "RMS (mu_used - mu)/sigma"
set key outside right top
set grid
set datafile missing 'NaN'
set logscale y
set format y '10^{%L}'
set logscale x 2
plot for [i=2:5] 'Docs/study/normalization/figures/normalization_noise.tsv' using 1:i with linespoints title columnheader(i)
