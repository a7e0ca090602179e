set terminal pngcairo size 900,560 font 'sans,10'
set output 'Docs/study/residual-seeds/figures/test_error_depth20.png'
set title "Test error per epoch, depth 20"
set xlabel "epoch"
set ylabel "test error"
set key outside right top
set grid
set datafile missing 'NaN'
plot for [i=2:7] 'Docs/study/residual-seeds/figures/test_error_depth20.tsv' using 1:i with linespoints title columnheader(i)
