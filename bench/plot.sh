#!/usr/bin/env bash
# Plots how time and memory grow with the records, from the table bench/run.sh
# writes (WORK/scale.tsv), into a PNG with gnuplot (Debian: gnuplot-nox).
#
#   bench/plot.sh WORK/scale.tsv OUT.png
#
# Left: wall time of the nightly dry run (1% changed), the first full dry run,
# the first apply and the apply of a stored plan. Right: their peak RSS. Both
# axes are logarithmic, so a straight line of slope 1 is cost linear in the
# records; the dotted line is that slope through the nightly at the smallest
# size.
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: bench/plot.sh SCALE.tsv OUT.png" >&2; exit 2; }
in=$1 out=$2
[[ -s $in ]] || { echo "bench/plot.sh: $in is missing or empty; run bench/run.sh with two sizes or more" >&2; exit 1; }
command -v gnuplot > /dev/null || { echo "bench/plot.sh: gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }
# The first data row anchors the linear reference line.
read -r r0 t0 < <(awk -F'\t' 'NR == 2 { print $3, $8 }' "$in")
gnuplot <<GP
set terminal pngcairo size 1400,560 font "DejaVu Sans,11"
set output "$out"
set datafile separator "\t"
set key top left
set logscale xy
set grid
set xlabel "records in the export"
set multiplot layout 1,2 title "Syncwarden: cost against district size (bench/run.sh)"
set ylabel "wall time (s)"
set title "time"
plot "$in" using 3:8 skip 1 with linespoints lw 2 pt 7 title "nightly dry run (1% changed)", \
     "$in" using 2:4 skip 1 with linespoints lw 2 pt 5 title "first full dry run", \
     "$in" using 2:6 skip 1 with linespoints lw 2 pt 9 title "first apply (plan + apply)", \
     "$in" using 2:10 skip 1 with linespoints lw 2 pt 11 title "apply of a stored plan", \
     $t0 * x / $r0 with lines dt 3 lc rgb "gray40" title "linear in the records"
set ylabel "peak RSS (MiB)"
set title "memory"
plot "$in" using 3:9 skip 1 with linespoints lw 2 pt 7 title "nightly dry run (1% changed)", \
     "$in" using 2:5 skip 1 with linespoints lw 2 pt 5 title "first full dry run", \
     "$in" using 2:7 skip 1 with linespoints lw 2 pt 9 title "first apply (plan + apply)", \
     "$in" using 2:11 skip 1 with linespoints lw 2 pt 11 title "apply of a stored plan"
unset multiplot
GP
