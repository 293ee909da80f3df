#!/usr/bin/env bash
# The README's two commands:
#   scripts/setup.sh demo   install what is missing, build, run the demo sync
#   scripts/setup.sh test   install what is missing, build, run every test
#                           (normal build, then an ASan+UBSan build)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
[[ "$mode" == demo || "$mode" == test ]] || { echo "usage: scripts/setup.sh demo|test" >&2; exit 2; }

scripts/install-deps.sh
jobs=$(nproc)

build() {  # build DIR [cmake args...]
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja "$@" > "$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
  cmake --build "$dir" -j "$jobs"
}

if [[ "$mode" == demo ]]; then
  build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --install build --prefix build/sdk-prefix > /dev/null
  sw="build/kernel/syncwarden --data-dir build/demo-data"
  rm -rf build/demo-data
  echo; echo "== installing the shipped connectors"
  $sw connectors install build/plugins/liboneroster-csv.so
  $sw connectors install build/plugins/libvendor-csv.so
  $sw connectors list
  echo; echo "== dry run: the plan, nothing changes"
  $sw run config/jobs/demo-roster.json --dry-run
  echo; echo "== apply"
  $sw run config/jobs/demo-roster.json
  echo; echo "== run again: the source did not change, so nothing is planned"
  $sw run config/jobs/demo-roster.json --dry-run
  echo; echo "== run history"
  $sw runs list
  echo; echo "The vendor drop is in build/demo-data/drops/examplelearn:"
  ls -l build/demo-data/drops/examplelearn
  exit 0
fi

# The SCIM test server's packages, exactly as package-lock.json pins them.
echo "== npm ci (tests/peers/scim)"
(cd tests/peers/scim && npm ci --no-audit --no-fund --loglevel=error)
build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSYNCWARDEN_BUILD_TESTS=ON
(cd build && ctest -j "$jobs" --output-on-failure)
echo; echo "== the same suite under AddressSanitizer + UBSan (without the 10k-user end to end tests, label slow)"
build build-asan -DCMAKE_BUILD_TYPE=Debug -DSYNCWARDEN_BUILD_TESTS=ON -DSYNCWARDEN_SANITIZE=ON
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest -j "$jobs" --output-on-failure -LE slow)
