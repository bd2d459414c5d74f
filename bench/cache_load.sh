#!/usr/bin/env bash
# Load benchmark for the response cache: the same small non-streaming chat
# through the gateway to the mock upstream (uncached proxy) and answered from
# the in-process cache (100% hit workload: one request body, stored by the
# warm-up), interleaved in the same gateway process. The gateway is pinned to
# core 0, the mock upstream and the load generator (oha) to core 1, key auth
# and the SQLite usage ledger on (as bench/load.sh). Prints a Markdown section;
# `bench/cache_load.sh >> bench/history/CACHE.md` records it (and
# bench/README.md's table takes the new figure).
#
# Env: DURATION (default 8s per round), CONNS (default 64), ROUNDS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-8s}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

# shellcheck source=bench/lib.sh
source bench/lib.sh

KEY=tg-bench-key
HASH=$(printf %s "$KEY" | "$BIN" keys hash)
cat >"$WORK/bench.yaml" <<YAML
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  watch_config: false
storage:
  url: sqlite://$WORK/bench.db
providers:
  - name: up
    kind: openai
    base_url: http://$MOCK/v1
    api_key: upstream-key
models:
  - name: bench-chat
    provider: up
    upstream_model: mock-chat
    price: { input_per_mtok: 1.0, output_per_mtok: 2.0 }
  - name: bench-cached
    provider: up
    upstream_model: mock-chat
    price: { input_per_mtok: 1.0, output_per_mtok: 2.0 }
    cache: { ttl: 1h }
keys:
  - id: bench
    hash: $HASH
    principal: bench
    models: ["*"]
YAML
RUST_LOG=warn,tollgate::server=info taskset -c "$GW_CORE" "$BIN" serve --config "$WORK/bench.yaml" 2>"$WORK/gw.log" &
GW_PID=$!
GW=$(wait_addr "$WORK/gw.log" " addr")
ADMIN=$(wait_addr "$WORK/gw.log" admin_addr)
sleep 0.5

BODY='{"model":"MODEL","messages":[{"role":"user","content":"Say hello to the benchmark in a few words."}],"max_tokens":16}'
printf %s "${BODY/MODEL/bench-chat}" >"$WORK/plain.json"
printf %s "${BODY/MODEL/bench-cached}" >"$WORK/cached.json"

load() { # bodyfile extra-args... -> json file path
  local out=$WORK/$RANDOM.json
  taskset -c "$LOAD_CORE" oha --no-tui --output-format json -m POST -H "content-type: application/json" \
    -H "authorization: Bearer $KEY" -D "$1" "${@:2}" "http://$GW/v1/chat/completions" >"$out"
  echo "$out"
}
num() { jq -r "$2" "$1"; }
ok_all() {
  ok=$(jq -r '.statusCodeDistribution["200"] // 0' "$1")
  total=$(jq -r '[.statusCodeDistribution[]] | add // 0' "$1")
  [ "$ok" = "$total" ] || { echo "non-200 responses: $(jq -c .statusCodeDistribution "$1")" >&2; exit 1; }
}

# Warm-up: connection pools, and the one cached answer.
load "$WORK/plain.json" -z 2s -c "$CONNS" >/dev/null
load "$WORK/cached.json" -z 2s -c "$CONNS" >/dev/null
HDR=$(curl -s -o /dev/null -D - -H "authorization: Bearer $KEY" -H "content-type: application/json" \
  --data-binary @"$WORK/cached.json" "http://$GW/v1/chat/completions" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-tollgate-cache" {print $2}')
[ "$HDR" = hit ] || { echo "expected a cache hit, got '$HDR'" >&2; exit 1; }

plain=(); cached=(); p50p=(); p50c=()
for _ in $(seq 1 "$ROUNDS"); do
  f=$(load "$WORK/plain.json" -z "$DURATION" -c "$CONNS"); ok_all "$f"
  plain+=("$(num "$f" .summary.requestsPerSec)"); p50p+=("$(jq -r '.latencyPercentiles.p50 * 1000' "$f")")
  f=$(load "$WORK/cached.json" -z "$DURATION" -c "$CONNS"); ok_all "$f"
  cached+=("$(num "$f" .summary.requestsPerSec)"); p50c+=("$(jq -r '.latencyPercentiles.p50 * 1000' "$f")")
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mp=$(med "${plain[@]}"); mc=$(med "${cached[@]}")
lp=$(med "${p50p[@]}"); lc=$(med "${p50c[@]}")
sleep 1
METRICS=$(curl -s "http://$ADMIN/metrics")
HITS=$(echo "$METRICS" | awk '/^tollgate_cache_requests_total.*result="hit"/ {s+=$2} END {print s+0}')
MISSES=$(echo "$METRICS" | awk '/^tollgate_cache_requests_total.*result="miss"/ {s+=$2} END {print s+0}')
RATIO=$(echo "$METRICS" | awk '/^tollgate_cache_hit_ratio/ {print $2}')

cat <<MD

## $(date -u +%Y-%m-%dT%H:%MZ) — cache load benchmark ($(nproc) cores, gateway on core $GW_CORE, mock + oha on core $LOAD_CORE)

Command: \`bench/cache_load.sh\` (DURATION=$DURATION per round, CONNS=$CONNS, ROUNDS=$ROUNDS, interleaved); key auth on, SQLite ledger on, small non-streaming chat (16 completion tokens).

| workload | requests/s per round | median requests/s | median p50 latency (ms) |
| --- | --- | --- | --- |
| uncached proxy (\`bench-chat\`, every request goes upstream) | $(printf '%.0f ' "${plain[@]}") | $(printf %.0f "$mp") | $(printf %.3f "$lp") |
| 100% cache hits (\`bench-cached\`) | $(printf '%.0f ' "${cached[@]}") | $(printf %.0f "$mc") | $(printf %.3f "$lc") |

Hits / uncached throughput: **$(awk "BEGIN {printf \"%.2f\", $mc/$mp}")×** (target ≥ 1.5×). Cache counters after the run: $HITS hits, $MISSES misses, hit ratio $RATIO.
MD
