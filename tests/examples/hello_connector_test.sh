#!/usr/bin/env bash
# Builds examples/hello-connector out of tree against an installed SDK, then
# installs it into a fresh kernel data dir and runs a job with it.
set -euo pipefail
src=$1 build=$2 kernel=$3 cxx=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/lib/cmake/syncwarden_sdk/syncwarden_sdkConfig.cmake" || test -f "$work/prefix/lib/x86_64-linux-gnu/cmake/syncwarden_sdk/syncwarden_sdkConfig.cmake"
cmake -S "$src/examples/hello-connector" -B "$work/hello" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_CXX_COMPILER="$cxx" > "$work/configure.log"
cmake --build "$work/hello" > "$work/build.log"

data="$work/data"
"$kernel" --data-dir "$data" connectors install "$work/hello/libhello-connector.so"
"$kernel" --data-dir "$data" connectors install "$build/plugins/libvendor-csv.so"
"$kernel" --data-dir "$data" connectors list | grep -q '^hello-connector *1.0.0 *1.4 *source'
"$kernel" --data-dir "$data" run "$src/examples/hello-connector/hello-job.json"

out="$data/drops/hello/greetings.csv"
printf 'id,name,text\r\nhello-1,Ada,"Hello, Ada!"\r\nhello-2,Grace,"Hello, Grace!"\r\n' > "$work/expected"
if ! cmp -s "$out" "$work/expected"; then
  echo "unexpected $out:"; cat -A "$out"; exit 1
fi
echo "hello-connector built out of tree, installed and run: OK"
