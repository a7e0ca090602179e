set terminal pngcairo size 900,560 font 'sans,10'
set output 'Docs/study/normalization/figures/normalization_loss_spread.png'
set title "Training-loss spread (std over the last 20% of steps)"
set xlabel "per-rank batch"
set ylabel "loss std"
set key outside right top
set grid
set datafile missing 'NaN'
set logscale x 2
plot for [i=2:6] 'Docs/study/normalization/figures/normalization_loss_spread.tsv' using 1:i with linespoints title columnheader(i)
