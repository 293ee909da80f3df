#!/usr/bin/env bash
# Syncwarden benchmark runner. See bench/README.md.
#
#   bench/run.sh [--sizes small,medium,large,xlarge] [--work DIR] [--build DIR] [--no-peers]
#                [--miller-cap BYTES] [--keep]
#
# For each size: generate two exports (the second with 1% of users and
# enrollments added, changed or marked tobedeleted), then measure
#   1 first full dry run against an empty target
#   2 apply into vendor-csv
#   3 nightly: dry run of the changed export against the applied state
#   4 ABI throughput: 10M records of 6 fields through the ABI
# and the peers on the same keyed diff of users and enrollments: sqlite3
# (import, index, full outer join), Miller (unpaired join + comparison, under
# a memory cap), and cat as the floor. The kernel's planned counts must equal
# the peers' counts, or the run fails. With two sizes or more: how time and
# memory grow with the records (WORK/scale.tsv, and WORK/scale.png when gnuplot
# is installed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
sizes=small work="$root/build/bench-work" build="$root/build" peers=1 keep=0
miller_cap=$((12 * 1024 * 1024 * 1024))
while (($#)); do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --no-peers) peers=0; shift ;;
    --miller-cap) miller_cap=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
sw="$build/kernel/syncwarden"
gen="$build/bench/sw-generate-district"
abi="$build/bench/sw-bench-abi"
audit="$build/bench/sw-bench-audit"
for f in "$sw" "$gen" "$abi" "$audit"; do [[ -x $f ]] || { echo "missing $f: build first (scripts/setup.sh test)" >&2; exit 1; }; done
mkdir -p "$work"
results="$work/results.txt"
: > "$results"

# measure NAME RECORDS CMD... : runs CMD under /usr/bin/time; prints and records
# wall, CPU, peak RSS and records per second. Sets $wall. Each measurement
# starts with the write-back of what came before done (sync): the nightly
# follows an apply that wrote 1.3 GB at large, and the kernel's flush of it
# would otherwise run during the nightly's time, as it never would a day
# after the apply.
measure() {
  local name=$1 records=$2; shift 2
  local t="$work/.time" rc=0 log_before=-1
  # The kernel's runs log each process's own peak (the kernel's, each
  # worker's): their sum is the process tree's peak, or more (the peaks
  # need not coincide). /usr/bin/time sees the largest process only.
  if [[ -n ${data:-} && -d $data/logs ]]; then log_before=$(cat "$data"/logs/*.jsonl 2>/dev/null | wc -l); fi
  [[ -n ${data:-} && ! -d $data/logs ]] && log_before=0
  sync
  # Wall time to the millisecond from the shell's clock (time's %e has
  # centiseconds: a 0.065 s nightly would read 0.06 or 0.07).
  local t0=$EPOCHREALTIME
  /usr/bin/time -f "%e %U %S %M" -o "$t" "$@" > "$work/.out" 2> "$work/.err" || rc=$?
  local t1=$EPOCHREALTIME
  read -r wall user sys rss_kb < <(tail -1 "$t")
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  local cpu rps
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')
  rps=$(awk -v r="$records" -v w="$wall" 'BEGIN{ if (w > 0 && r > 0) printf "%.0f", r/w; else print "-" }')
  local line tree=""
  last_tree_mib=""
  if ((log_before >= 0)) && [[ -d $data/logs ]]; then
    last_tree_mib=$(cat "$data"/logs/*.jsonl | tail -n +$((log_before + 1)) | sed -n \
      -e 's/.*"event":"resources".*"msg":"kernel process: peak RSS \([0-9]*\) MiB.*/\1/p' \
      -e 's/.*"event":"worker_finished".*"msg":"peak RSS \([0-9]*\) MiB.*/\1/p' | awk '{ t += $1 } END { if (NR) print t }')
    [[ -n $last_tree_mib ]] && tree=$(printf " tree=%6dMiB" "$last_tree_mib")
  fi
  line=$(printf "%-8s %-28s wall=%8.3fs cpu=%8.2fs rss=%7.0fMiB%s records=%-9s rec/s=%s" \
    "$size" "$name" "$wall" "$cpu" "$(awk -v k="$rss_kb" 'BEGIN{print k/1024}')" "$tree" "$records" "$rps")
  ((rc == 0)) || line="$line  FAILED(exit $rc)"
  echo "$line" | tee -a "$results"
  last_rc=$rc
  last_rss_mib=$(awk -v k="$rss_kb" 'BEGIN{printf "%.0f", k/1024}')
  # The figure the budgets hold: the tree's, where the run logged it.
  if [[ -n $last_tree_mib ]] && ((last_tree_mib > last_rss_mib)); then last_rss_mib=$last_tree_mib; fi
  return 0
}

rows() { local n=0 f; for f in "$@"; do n=$((n + $(wc -l < "$f") - 1)); done; echo "$n"; }

planned_total() {  # ENTITY PLAN.json -> create+update+delete
  grep -o "\"$1\":{[^}]*}" "$2" | head -1 | grep -o '[0-9][0-9]*' | awk '{ t += $1 } END { print t + 0 }'
}

sqlite_diff() {  # DB A B -> "users_changed enrollments_changed"; DB: a file, or :memory:
  local db=$1; shift
  [[ $db == :memory: ]] || rm -f "$db"
  sqlite3 "$db" <<SQL
PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
PRAGMA temp_store=MEMORY;
PRAGMA cache_size=-4194304;
.mode csv
.import $1/users.csv a_users
.import $2/users.csv b_users
.import $1/enrollments.csv a_enr
.import $2/enrollments.csv b_enr
CREATE INDEX a_users_id ON a_users(sourcedId);
CREATE INDEX b_users_id ON b_users(sourcedId);
CREATE INDEX a_enr_id ON a_enr(sourcedId);
CREATE INDEX b_enr_id ON b_enr(sourcedId);
.mode list
SELECT count(*) FROM a_users a FULL OUTER JOIN b_users b ON a.sourcedId = b.sourcedId
 WHERE a.sourcedId IS NULL OR b.sourcedId IS NULL OR b.status = 'tobedeleted'
    OR a.username IS NOT b.username OR a.givenName IS NOT b.givenName OR a.familyName IS NOT b.familyName
    OR a.email IS NOT b.email OR a.role IS NOT b.role OR a.grades IS NOT b.grades
    OR a.orgSourcedIds IS NOT b.orgSourcedIds;
SELECT count(*) FROM a_enr a FULL OUTER JOIN b_enr b ON a.sourcedId = b.sourcedId
 WHERE a.sourcedId IS NULL OR b.sourcedId IS NULL OR b.status = 'tobedeleted'
    OR a.classSourcedId IS NOT b.classSourcedId OR a.schoolSourcedId IS NOT b.schoolSourcedId
    OR a.userSourcedId IS NOT b.userSourcedId OR a.role IS NOT b.role
    OR a.beginDate IS NOT b.beginDate OR a.endDate IS NOT b.endDate;
SQL
}

miller_diff() {  # A B : both counts, one per line
  local cmp_u='is_absent($R_status) || $R_status == "tobedeleted" || $L_username != $R_username || $L_givenName != $R_givenName || $L_familyName != $R_familyName || $L_email != $R_email || $L_role != $R_role || $L_grades != $R_grades || $L_orgSourcedIds != $R_orgSourcedIds'
  local cmp_e='is_absent($R_status) || $R_status == "tobedeleted" || $L_classSourcedId != $R_classSourcedId || $L_schoolSourcedId != $R_schoolSourcedId || $L_userSourcedId != $R_userSourcedId || $L_role != $R_role || $L_beginDate != $R_beginDate || $L_endDate != $R_endDate'
  prlimit --as="$miller_cap" -- mlr --icsv --onidx join --ul --ur -j sourcedId --lp L_ --rp R_ -f "$1/users.csv" \
    then filter "$cmp_u" then count "$2/users.csv"
  prlimit --as="$miller_cap" -- mlr --icsv --onidx join --ul --ur -j sourcedId --lp L_ --rp R_ -f "$1/enrollments.csv" \
    then filter "$cmp_e" then count "$2/enrollments.csv"
}

# The kernel's nightly plan and a peer must find the same changed records.
check() {  # PEER USERS ENROLLMENTS
  if [[ "$2" == "$people3" && "$3" == "$rosters3" ]]; then
    echo "         $1 agrees: users $2, enrollments $3" | tee -a "$results"
  else
    echo "         MISMATCH: $1 found users $2, enrollments $3; the kernel planned $people3, $rosters3" | tee -a "$results"
    fail=1
  fi
}

export work miller_cap
export -f sqlite_diff miller_diff
fail=0
scale="$work/scale.tsv"
printf "size\trecords_a\trecords_b\tfirst_dry_s\tfirst_dry_mib\tapply_s\tapply_mib\tnightly_s\tnightly_mib\tstored_apply_s\tstored_apply_mib\n" > "$scale"
IFS=, read -ra size_list <<< "$sizes"
for size in "${size_list[@]}"; do
  dir="$work/$size"
  a="$dir/export-a" b="$dir/export-b"
  if [[ ! -f "$dir/.generated" ]]; then
    rm -rf "$dir"; mkdir -p "$dir"
    "$gen" --size "$size" --out "$a" --change-rate 0.01 --changed-out "$b"
    touch "$dir/.generated"
  fi
  data="$dir/data" drop="$dir/drop"
  rm -rf "$data" "$drop"
  "$sw" --data-dir "$data" connectors install "$build/plugins/liboneroster-csv.so" > /dev/null
  "$sw" --data-dir "$data" connectors install "$build/plugins/libvendor-csv.so" > /dev/null
  for x in a b; do
    src=$dir/export-$x
    sed -e "s|@SOURCE@|$src|" -e "s|@DROP@|$drop|" "$here/roster-job.template.json" > "$dir/job-$x.json"
  done
  # The same nightly job with its connectors loaded into the kernel: the
  # baseline for what worker processes cost.
  sed -e 's|"name": "bench-roster",|"name": "bench-roster", "isolation": "in-process",|' "$dir/job-b.json" > "$dir/job-b-in-process.json"
  rows_a=$(rows "$a"/*.csv) rows_b=$(rows "$b"/*.csv)
  echo "== $size: export A $rows_a records, export B $rows_b records ($(du -sh "$a" | cut -f1) each)"

  # Export A in the page cache, as the peers have it (they run after the cat
  # floor, which reads both exports).
  cat "$a"/*.csv > /dev/null
  measure "1 first full dry run" "$rows_a" "$sw" --data-dir "$data" run "$dir/job-a.json" --dry-run --preview 0 \
    --plan-out "$dir/plan-1.json"
  ((last_rc == 0)) || fail=1
  first_wall=$wall first_rss=$last_rss_mib
  run1=$(sed -n 's/^dry run \(r[^ ]*\) of job .*/\1/p' "$work/.out" | head -1)
  planned1=$(( $(planned_total people "$dir/plan-1.json") + $(planned_total rosters "$dir/plan-1.json") ))
  # The stored plan of the dry run, applied as an approval applies a held
  # plan: read from its file a change at a time, never whole (its peak RSS
  # against the plan's size on disk says so).
  plan_mib=$(du -cm "$data"/plans/"$run1".plan | tail -1 | cut -f1)
  log_lines=$(cat "$data"/logs/*.jsonl | wc -l)
  measure "2s apply the stored plan" "$planned1" "$sw" --data-dir "$data" runs apply "$run1"
  ((last_rc == 0)) || fail=1
  grep -q "applied $planned1 changes, 0 failed" "$work/.out" || { echo "runs apply did not apply the $planned1 planned changes" >&2; fail=1; }
  # Whose peak it is: the kernel's (which reads the plan) and each worker's.
  used=$(cat "$data"/logs/*.jsonl | tail -n +$((log_lines + 1)) | sed -n \
    -e 's/.*"event":"resources".*"msg":"kernel process: \([^"]*\)".*/kernel \1/p' \
    -e 's/.*"connector":"\([^"]*\)","event":"worker_finished".*"msg":"\([^"]*\)".*/\1 worker \2/p' | paste -sd ';' | sed 's/;/; /g')
  echo "         the stored plan is $plan_mib MiB on disk; peak RSS: $used" | tee -a "$results"
  stored_wall=$wall stored_rss=$last_rss_mib
  # The same 8M creates again, planned and applied in one run: the target
  # starts empty again.
  rm -rf "$drop"
  ((keep)) || rm -f "$dir/plan-1.json" "$data"/plans/*
  measure "2 apply" "$planned1" "$sw" --data-dir "$data" run "$dir/job-a.json" --preview 0
  ((last_rc == 0)) || fail=1
  apply_wall=$wall apply_rss=$last_rss_mib
  grep -q "applied $planned1 changes, 0 failed" "$work/.out" || { echo "apply did not apply the $planned1 planned changes" >&2; fail=1; }
  # Export B in the page cache, as it is for the peers (they run after the
  # cat floor): the apply before pushed it out at large sizes.
  cat "$b"/*.csv > /dev/null
  measure "3 nightly dry run (1%)" "$rows_b" "$sw" --data-dir "$data" run "$dir/job-b.json" --dry-run --preview 0 \
    --plan-out "$dir/plan-3.json"
  ((last_rc == 0)) || fail=1
  nightly_wall=$wall nightly_rss=$last_rss_mib
  people3=$(planned_total people "$dir/plan-3.json") rosters3=$(planned_total rosters "$dir/plan-3.json")
  echo "         nightly plan: people $people3 changes, rosters $rosters3 changes" | tee -a "$results"
  # Workers against in-process, alternating so that drift in the machine's
  # speed hits both; the best of two each.
  measure "3i nightly, in-process" "$rows_b" "$sw" --data-dir "$data" run "$dir/job-b-in-process.json" --dry-run --preview 0
  ((last_rc == 0)) || fail=1
  inproc_wall=$wall
  measure "3w nightly, workers (again)" "$rows_b" "$sw" --data-dir "$data" run "$dir/job-b.json" --dry-run --preview 0
  ((last_rc == 0)) || fail=1
  worker_wall=$(awk -v a="$nightly_wall" -v b="$wall" 'BEGIN{print (a < b) ? a : b}')
  nightly_rss=$(( last_rss_mib > nightly_rss ? last_rss_mib : nightly_rss ))
  measure "3i nightly, in-process (again)" "$rows_b" "$sw" --data-dir "$data" run "$dir/job-b-in-process.json" --dry-run --preview 0
  ((last_rc == 0)) || fail=1
  inproc_wall=$(awk -v a="$inproc_wall" -v b="$wall" 'BEGIN{print (a < b) ? a : b}')
  awk -v w="$worker_wall" -v i="$inproc_wall" 'BEGIN { if (i > 0) printf "         workers vs in-process (nightly, best of 2 each): %.3fs vs %.3fs, ratio %.3f (budget: at most 1.15)\n", w, i, w / i }' | tee -a "$results"
  # Confined workers against the same workers with every layer of the
  # sandbox that can be switched off off (made to look missing, and accepted:
  # identity, files, network, system calls), alternating, best of two each.
  echo '{"sandbox": {"require": false}}' > "$dir/unconfined.json"
  measure "3u nightly, unconfined" "$rows_b" env SYNCWARDEN_SANDBOX_PRETEND_MISSING=identity,files,network,syscalls "$sw" --config "$dir/unconfined.json" --data-dir "$data" run "$dir/job-b.json" --dry-run --preview 0
  ((last_rc == 0)) || fail=1
  unconfined_wall=$wall
  measure "3c nightly, confined (again)" "$rows_b" "$sw" --data-dir "$data" run "$dir/job-b.json" --dry-run --preview 0
  ((last_rc == 0)) || fail=1
  confined_wall=$(awk -v a="$worker_wall" -v b="$wall" 'BEGIN{print (a < b) ? a : b}')
  measure "3u nightly, unconfined (again)" "$rows_b" env SYNCWARDEN_SANDBOX_PRETEND_MISSING=identity,files,network,syscalls "$sw" --config "$dir/unconfined.json" --data-dir "$data" run "$dir/job-b.json" --dry-run --preview 0
  ((last_rc == 0)) || fail=1
  unconfined_wall=$(awk -v a="$unconfined_wall" -v b="$wall" 'BEGIN{print (a < b) ? a : b}')
  awk -v c="$confined_wall" -v u="$unconfined_wall" 'BEGIN { if (u > 0) printf "         confined vs unconfined workers (nightly, best of 2 or 3 each): %.3fs vs %.3fs, ratio %.3f (budget: at most 1.03)\n", c, u, c / u }' | tee -a "$results"

  n_abi=10000000
  [[ $size == small ]] && n_abi=1000000
  measure "4 ABI throughput (2 passes)" "$((2 * n_abi))" "$abi" "$build/bench/libnull-source.so" --records "$n_abi"
  ((last_rc == 0)) || fail=1
  sed 's/^/         /' "$work/.out" | tee -a "$results"

  # The audit log: append run summaries, then verify all of them.
  n_audit=1000000
  [[ $size == small ]] && n_audit=10000
  [[ $size == medium ]] && n_audit=100000
  measure "5 audit log: append and verify" "$n_audit" "$audit" --entries "$n_audit" --work "$dir/audit"
  ((last_rc == 0)) || fail=1
  sed 's/^/         /' "$work/.out" | tee -a "$results"
  rm -rf "$dir/audit"

  if ((peers)); then
    measure "peer: cat (floor)" "$((rows_a + rows_b))" sh -c "cat '$a/users.csv' '$a/enrollments.csv' '$b/users.csv' '$b/enrollments.csv' > /dev/null"
    cat_wall=$wall
    measure "peer: sqlite3 in memory" "$((rows_a + rows_b))" bash -c 'sqlite_diff :memory: "$0" "$1"' "$a" "$b"
    sqlite_wall=$wall
    if ((last_rc == 0)); then
      read -r -d '' su se < <(grep -E '^[0-9]+$' "$work/.out") || true
      check "sqlite3 (in memory)" "$su" "$se"
    else
      fail=1
    fi
    measure "peer: sqlite3 on disk" "$((rows_a + rows_b))" bash -c 'sqlite_diff "$work/peer.db" "$0" "$1"' "$a" "$b"
    sqlite_disk_wall=$wall
    if ((last_rc == 0)); then
      read -r -d '' su se < <(grep -E '^[0-9]+$' "$work/.out") || true
      check "sqlite3 (on disk)" "$su" "$se"
    else
      fail=1
    fi
    rm -f "$work/peer.db"
    measure "peer: miller join (capped)" "$((rows_a + rows_b))" bash -c 'miller_diff "$0" "$1"' "$a" "$b"
    if ((last_rc == 0)); then
      read -r -d '' mu me < "$work/.out" || true
      check "miller" "$mu" "$me"
      miller_note=""
    else
      miller_note="miller: out of memory under the $((miller_cap >> 30)) GiB cap (exit $last_rc)"
      echo "         $miller_note" | tee -a "$results"
    fi
    awk -v n="$nightly_wall" -v q="$sqlite_wall" -v d="$sqlite_disk_wall" -v c="$cat_wall" -v s="$size" 'BEGIN {
      printf "%-8s ratios: sqlite3 in memory/nightly = %.2fx (budget: at least 10)   sqlite3 on disk/nightly = %.2fx   nightly/cat floor = %.2fx\n", s, q / n, d / n, n / (c > 0 ? c : 0.01) }' \
      | tee -a "$results"
  fi
  printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$size" "$rows_a" "$rows_b" "$first_wall" "$first_rss" \
    "$apply_wall" "$apply_rss" "$worker_wall" "$nightly_rss" "$stored_wall" "$stored_rss" >> "$scale"
  # What the next size needs of the disk: the exports are kept for the next run.
  ((keep)) || rm -rf "$data" "$drop" "$dir"/plan-*.json
done

# How cost grows with the records: each scenario's time and peak RSS at each
# size, and xlarge's nightly against large's (budget: at most 3.3x the time,
# at most 3 GiB).
if (($(wc -l < "$scale") > 2)); then
  echo "== scale (nightly: best of 2 with workers, peak of the two; peaks are the process tree's: kernel + workers)" | tee -a "$results"
  awk -F'\t' 'NR == 1 { next }
    { printf "%-8s records=%-9s nightly=%7.3fs %6d MiB   first dry run=%7.2fs %6d MiB   apply=%7.2fs %6d MiB   stored plan apply=%7.2fs %6d MiB\n",
        $1, $3, $8, $9, $4, $5, $6, $7, $10, $11
      w[$1] = $8; m[$1] = $9; r[$1] = $3 }
    END { if (("large" in w) && ("xlarge" in w) && w["large"] > 0)
      printf "xlarge/large: records %.2fx, nightly time %.2fx (budget: at most 3.3), nightly peak RSS %.2f GiB (budget: at most 3)\n",
        r["xlarge"] / r["large"], w["xlarge"] / w["large"], m["xlarge"] / 1024 }' "$scale" | tee -a "$results"
  if command -v gnuplot > /dev/null; then
    bash "$here/plot.sh" "$scale" "$work/scale.png" && echo "         plot: $work/scale.png" | tee -a "$results"
  else
    echo "         no plot: install gnuplot-nox (scripts/debian-packages.txt)" | tee -a "$results"
  fi
fi
exit $fail
