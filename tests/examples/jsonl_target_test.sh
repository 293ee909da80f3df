#!/usr/bin/env bash
# Builds examples/jsonl-target out of tree against an installed SDK, installs
# it into a fresh kernel data dir and runs its job: the demo district's people
# land in people.jsonl; a second run plans nothing; a line removed by hand is
# written again (read_state reads the file back). Its unit test, built on the
# installed test kit, passes.
set -euo pipefail
src=$1 build=$2 kernel=$3 cxx=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
cmake -S "$src/examples/jsonl-target" -B "$work/jsonl" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_CXX_COMPILER="$cxx" > "$work/configure.log"
cmake --build "$work/jsonl" > "$work/build.log"
# Its own unit test, on the installed SDK's test kit.
[[ -x "$work/jsonl/jsonl_target_test" ]] || { echo "the example's unit test was not built"; cat "$work/configure.log"; exit 1; }
ctest --test-dir "$work/jsonl" --output-on-failure > "$work/unit.log" 2>&1 || { cat "$work/unit.log"; exit 1; }
grep -q "100% tests passed, 0 tests failed out of 4" "$work/unit.log" || { cat "$work/unit.log"; exit 1; }

data="$work/data"
"$kernel" --data-dir "$data" connectors install "$work/jsonl/libjsonl-target.so" > /dev/null
"$kernel" --data-dir "$data" connectors install "$build/plugins/liboneroster-csv.so" > /dev/null
"$kernel" --data-dir "$data" connectors list | grep -q '^jsonl-target *1.0.0 *1.4 *target,transactional'
job="$src/examples/jsonl-target/people-job.json"
"$kernel" --data-dir "$data" run "$job" > "$work/run1.log"
out="$data/drops/people/people.jsonl"
fail() { echo "$1"; cat "$work"/run*.log; exit 1; }
[[ $(wc -l < "$out") -eq 29 ]] || fail "expected 29 people in $out, found $(wc -l < "$out")"
grep -qx '{"email":"zo.garca0@students.lakeside.example.org","id":"s-1001","name":"Zoë García","role":"student"}' "$out" \
  || fail "s-1001 is not in $out as expected"
"$kernel" --data-dir "$data" run "$job" > "$work/run2.log"
grep -q "applied 0 changes, 0 failed" "$work/run2.log" || fail "a second run changed something"
grep -v '"id":"s-1001"' "$out" > "$work/edited" && cp "$work/edited" "$out"
"$kernel" --data-dir "$data" run "$job" > "$work/run3.log"
grep -q "applied 1 changes, 0 failed" "$work/run3.log" || fail "the removed line was not written again"
grep -q '"id":"s-1001"' "$out" || fail "s-1001 is still missing"
echo "jsonl-target built out of tree, installed and run: OK"
