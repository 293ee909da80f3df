#!/usr/bin/env bash
# bench/plot.sh draws a PNG from the table bench/run.sh writes, and says what
# to do when that table is missing.
set -euo pipefail
plot=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
printf "size\trecords_a\trecords_b\tfirst_dry_s\tfirst_dry_mib\tapply_s\tapply_mib\tnightly_s\tnightly_mib\tstored_apply_s\tstored_apply_mib\n" > "$work/scale.tsv"
printf "small\t80271\t80535\t0.15\t42\t0.26\t42\t0.09\t46\t0.14\t34\n" >> "$work/scale.tsv"
printf "medium\t802671\t805152\t0.90\t133\t2.08\t176\t0.45\t129\t1.24\t175\n" >> "$work/scale.tsv"
bash "$plot" "$work/scale.tsv" "$work/scale.png"
[[ $(head -c 8 "$work/scale.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || { echo "not a PNG: $work/scale.png" >&2; exit 1; }
(( $(stat -c %s "$work/scale.png") > 10000 )) || { echo "the PNG is too small to hold two plots" >&2; exit 1; }
if err=$(bash "$plot" "$work/missing.tsv" "$work/x.png" 2>&1); then echo "a missing table was accepted" >&2; exit 1; fi
[[ $err == *"missing.tsv is missing or empty; run bench/run.sh with two sizes or more"* ]] || { echo "unclear error: $err" >&2; exit 1; }
[[ ! -e $work/x.png ]] || { echo "a PNG was written from nothing" >&2; exit 1; }
echo "plot_test: ok"
