#!/usr/bin/env bash
# The fuzzers (fuzz/): builds the libFuzzer harnesses with Debian's clang
# into build-fuzz/ (ASan and UBSan on), then runs each for SECONDS on a
# scratch copy of its seed corpus. A crash is kept in
# build-fuzz/crashes/NAME/ and fails the run: add it to
# fuzz/regressions/NAME/ (the test suite replays those) with its fix.
#
#   scripts/fuzz.sh [SECONDS] [NAME ...]      default: 20 seconds, every harness
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
names=("$@")
((${#names[@]})) || names=(csv semver cron config wire plan proof)
dir=build-fuzz
if ! command -v clang++-14 > /dev/null || ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a > /dev/null 2>&1; then
  echo "scripts/fuzz.sh needs Debian's clang 14 and its libFuzzer runtime: apt-get install clang-14 libclang-rt-14-dev" >&2
  exit 1
fi
if [[ ! -f $dir/build.ninja ]]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSYNCWARDEN_BUILD_TESTS=OFF -DSYNCWARDEN_FUZZ=ON > "$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; exit 1; }
fi
cmake --build "$dir" --target "${names[@]/#/fuzz-}"
fail=0
for n in "${names[@]}"; do
  work="$dir/corpus/$n" crashes="$dir/crashes/$n"
  mkdir -p "$work" "$crashes"
  log="$dir/fuzz-$n.log"
  echo "== fuzz-$n: $seconds s"
  if ! "$dir/fuzz/fuzz-$n" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=20 \
      -artifact_prefix="$crashes/" "$work" "fuzz/corpus/$n" > "$log" 2>&1; then
    echo "fuzz-$n found a crash (kept in $crashes/):" >&2
    grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -5 >&2
    fail=1
  fi
  # What the run did: executions, coverage, corpus size.
  grep -E "^#[0-9]+.*DONE" "$log" | tail -1 | sed "s/^/   /"
done
exit $fail
