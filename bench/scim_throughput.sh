#!/usr/bin/env bash
# SCIM apply throughput: 10,000 user creates into the tests' SCIM server
# (tests/peers/scim), against what autocannon reaches with POST /Users on the
# same server, in the same run. See bench/README.md.
#
#   bench/scim_throughput.sh [--work DIR] [--build DIR] [--connections N]
#
# Each side gets a fresh server and store, twice, alternating (A K A K); the
# best rate of each is compared. The job has no rate limit, and its "bulk"
# setting is off, so that both sides send one POST /Users per user: the
# budget compares request rates. A last run with bulk on (the connector's
# default, 100 operations per Bulk request) is reported beside it. The kernel's
# rate is 10,000 over the whole `syncwarden run` (extract, plan, gates and
# apply), so the ratio is a floor for the apply alone. Budget: at least 0.70.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
work="$root/build/bench-scim" build="$root/build" connections=10
while (($#)); do
  case $1 in
    --work) work=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
peer="$root/tests/peers/scim"
sw="$build/kernel/syncwarden"
[[ -x $sw && -x $build/bench/sw-generate-district ]] || { echo "build first (scripts/setup.sh test)" >&2; exit 1; }
[[ -d $peer/node_modules/scimmy ]] || (cd "$peer" && npm ci --no-audit --no-fund --loglevel=error)
rm -rf "$work" && mkdir -p "$work"
"$build/bench/sw-generate-district" --size small --out "$work/district" > /dev/null
n=$(($(wc -l < "$work/district/users.csv") - 1))

server_pid=""
start_server() {  # a fresh server; sets $port
  : > "$work/server.out"
  node "$peer/server.mjs" --store "$work/store-$1.jsonl" --token bench-token > "$work/server.out" 2>&1 &
  server_pid=$!
  # The server prints "listening PORT" once it answers.
  until grep -q '^listening ' "$work/server.out"; do
    kill -0 "$server_pid" 2> /dev/null || { cat "$work/server.out" >&2; exit 1; }
    sleep 0.05
  done
  port=$(awk '/^listening /{print $2}' "$work/server.out")
}
stop_server() { kill "$server_pid" 2> /dev/null || true; wait "$server_pid" 2> /dev/null || true; }
trap stop_server EXIT

autocannon_rate() {
  start_server "ac$1"
  "$peer/node_modules/.bin/autocannon" -j -c "$connections" -a "$n" -m POST \
    -H "Authorization=Bearer bench-token" -H "Content-Type=application/scim+json" --idReplacement \
    -b '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bench.[<id>]","externalId":"x-[<id>]","name":{"givenName":"Ada","familyName":"Lovelace"},"emails":[{"value":"[<id>]@bench.example.org"}],"active":true}' \
    "http://127.0.0.1:$port/scim/Users" > "$work/autocannon-$1.json" 2> /dev/null
  stop_server
  node -e 'const r = require(process.argv[1]); if (r["2xx"] !== Number(process.argv[2])) { console.error("autocannon: " + r["2xx"] + " of " + process.argv[2] + " answered 2xx"); process.exit(1); } console.log((r["2xx"] / r.duration).toFixed(1));' \
    "$work/autocannon-$1.json" "$n"
}

kernel_rate() {  # run number, bulk (true/false)
  start_server "k$1"
  local data="$work/data-$1"
  SYNCWARDEN_DATA_DIR="$data" "$sw" connectors install "$build/plugins/liboneroster-csv.so" > /dev/null
  SYNCWARDEN_DATA_DIR="$data" "$sw" connectors install "$build/plugins/libscim.so" > /dev/null
  cat > "$work/job.json" << JOB
{"name": "scim-throughput",
 "source": {"connector": "oneroster-csv", "settings": {"path": "$work/district"}},
 "target": {"connector": "scim", "settings": {"base_url": "http://127.0.0.1:$port/scim", "auth": {"bearer": "bench-token"}, "page_size": 1000, "bulk": $2}},
 "mapping": {"entities": [{"target": "users", "source": "users", "fields": {
   "sourcedId": "sourcedId", "userName": "username", "givenName": "givenName", "familyName": "familyName",
   "emails": "email", "active": {"const": "true"}}}]}}
JOB
  local t0 t1
  t0=$(date +%s.%N)
  SYNCWARDEN_DATA_DIR="$data" "$sw" run "$work/job.json" > "$work/run-$1.log" 2>&1 || { cat "$work/run-$1.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  stop_server
  grep -q "applied $n changes, 0 failed" "$work/run-$1.log" || { tail -3 "$work/run-$1.log" >&2; exit 1; }
  awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", n / (b - a) }'
}

best() { printf '%s\n' "$@" | sort -g | tail -1; }
a1=$(autocannon_rate 1); k1=$(kernel_rate 1 false)
a2=$(autocannon_rate 2); k2=$(kernel_rate 2 false)
kb=$(kernel_rate 3 true)
a=$(best "$a1" "$a2") k=$(best "$k1" "$k2")
echo "scim throughput: $n creates; autocannon ($connections connections) $a1, $a2 req/s; syncwarden run $k1, $k2 creates/s"
echo "scim throughput: with SCIM Bulk (100 operations a request): $kb creates/s"
awk -v a="$a" -v k="$k" 'BEGIN { r = k / a; printf "scim throughput: best %.1f vs %.1f, ratio %.2f (budget: at least 0.70) %s\n", k, a, r, (r >= 0.70 ? "met" : "MISSED"); exit (r >= 0.70 ? 0 : 1) }'
