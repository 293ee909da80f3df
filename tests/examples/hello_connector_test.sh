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

# The build id covers every input: a header the source includes changes it;
# the same inputs built again in a fresh build folder give the same id.
id_of() { "$kernel" --data-dir "$work/ids" connectors install "$1" --replace 2>&1 | sed -n 's/.*(build \([0-9a-f]*\),.*/\1/p' | tail -1; }
cp -r "$src/examples/hello-connector" "$work/src"
printf '#pragma once\ninline const char* k_greeting = "Hello, ";\n' > "$work/src/greeting.hpp"
sed -i 's|#include <string>|#include <string>\n#include "greeting.hpp"|; s|"Hello, " + \*name|k_greeting + *name|' "$work/src/hello.cpp"
sed -i 's|"1.0.0"|"1.0.0-dev"|' "$work/src/hello.cpp"
build_copy() {
  cmake -S "$work/src" -B "$1" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_CXX_COMPILER="$cxx" > "$1.configure.log"
  cmake --build "$1" > "$1.build.log"
}
build_copy "$work/b1"; first=$(id_of "$work/b1/libhello-connector.so")
build_copy "$work/b2"; again=$(id_of "$work/b2/libhello-connector.so")
printf '#pragma once\ninline const char* k_greeting = "Hi, ";\n' > "$work/src/greeting.hpp"
cmake --build "$work/b1" > "$work/b1.rebuild.log"; changed=$(id_of "$work/b1/libhello-connector.so")
[[ -n $first && $first == "$again" ]] || { echo "the same inputs gave build ids '$first' and '$again'"; exit 1; }
[[ -n $changed && $changed != "$first" ]] || { echo "a changed header kept build id '$first' ('$changed')"; exit 1; }
echo "hello-connector built out of tree, installed and run: OK"
