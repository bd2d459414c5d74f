#!/usr/bin/env bash
# Job trigger benchmark (issue 29): the gateway pinned to GW_CORE, the mock
# upstream (its Databricks Jobs API) and oha on LOAD_CORE. In the same run,
# two interleaved rounds each of:
#   - POST /v1/jobs/train/runs through the gateway (key auth, a `jobs:`
#     grant, a PAT injected, an idempotency key hashed into the token,
#     ledger on): a retried trigger, answered with the existing run
#   - POST /api/2.2/jobs/run-now on the mock directly, with a token
#   - the same gateway's model call to the same mock (a baseline of what
#     the machine and the binary allow in this sitting)
# latency p50/p99 at a fixed RATE (open loop, latency-corrected).
# Prints a Markdown section for bench/README.md.
#
# Env: DURATION (default 10s), RATE (default 500), TOLLGATE_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
RATE=${RATE:-500}
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
keys:
  - { id: bench, hash: $HASH, principal: bench, groups: [ml], models: [m] }
policy:
  rules:
    - { name: ml, groups: [ml], jobs: [train] }
providers:
  - { name: mock, kind: openai, base_url: "http://$MOCK/v1", api_key: upstream-key }
models:
  - { name: m, provider: mock, upstream_model: mock-chat }
jobs:
  - name: train
    workspace: http://$MOCK
    job_id: 42
    credential: { type: bearer, value: upstream-key }
YAML
RUST_LOG=warn,tollgate::server=info taskset -c "$GW_CORE" "$BIN" serve --config "$WORK/bench.yaml" 2>"$WORK/gw.log" &
GW_PID=$!
GW=$(wait_addr "$WORK/gw.log" " addr")
sleep 0.5

printf '{"job_id":42,"idempotency_token":"bench-token"}' >"$WORK/direct.json"
printf '{}' >"$WORK/gw.json"
printf '{"model":"m","messages":[{"role":"user","content":"x"}]}' >"$WORK/chat.json"
load() { # url key body extra-args... -> json file path
  local out=$WORK/$RANDOM.json
  taskset -c "$LOAD_CORE" oha --no-tui --output-format json -m POST -H "content-type: application/json" \
    -H "authorization: Bearer $2" -D "$3" "${@:4}" "$1" >"$out"
  echo "$out"
}
ms() { jq -r "$2 * 1000 | . * 1000 | round / 1000" "$1"; }
check() {
  local ok total
  ok=$(jq -r '.statusCodeDistribution["200"] // 0' "$1"); total=$(jq -r '[.statusCodeDistribution[]] | add // 0' "$1")
  [ "$ok" = "$total" ] || { echo "non-200 answers: $(jq -c .statusCodeDistribution "$1")" >&2; exit 1; }
}
direct() { load "http://$MOCK/api/2.2/jobs/run-now" upstream-key "$WORK/direct.json" "$@"; }
gateway() { load "http://$GW/v1/jobs/train/runs" "$KEY" "$WORK/gw.json" -H "idempotency-key: bench-1" "$@"; }
model() { load "http://$GW/v1/chat/completions" "$KEY" "$WORK/chat.json" "$@"; }

direct -z 2s -c 16 >/dev/null
gateway -z 2s -c 16 >/dev/null
D1=$(direct -z "$DURATION" -c 16 -q "$RATE" --latency-correction)
G1=$(gateway -z "$DURATION" -c 16 -q "$RATE" --latency-correction)
M1=$(model -z "$DURATION" -c 16 -q "$RATE" --latency-correction)
D2=$(direct -z "$DURATION" -c 16 -q "$RATE" --latency-correction)
G2=$(gateway -z "$DURATION" -c 16 -q "$RATE" --latency-correction)
M2=$(model -z "$DURATION" -c 16 -q "$RATE" --latency-correction)
for f in "$D1" "$G1" "$M1" "$D2" "$G2" "$M2"; do check "$f"; done
RUNS=$(curl -s "http://$MOCK/_mock/jobs" | jq '.runs | length')

echo "### Job triggers ($(date -u +%Y-%m-%dT%H:%MZ), $RATE req/s, $DURATION per round, load $(cut -d' ' -f1 /proc/loadavg))"
echo
echo "| round | direct p50 | trigger p50 | model call p50 | direct p99 | trigger p99 | model call p99 |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for r in 1 2; do
  d=D$r; g=G$r; m=M$r
  echo "| $r | $(ms "${!d}" .latencyPercentiles.p50) | $(ms "${!g}" .latencyPercentiles.p50) | $(ms "${!m}" .latencyPercentiles.p50) |" \
    "$(ms "${!d}" .latencyPercentiles.p99) | $(ms "${!g}" .latencyPercentiles.p99) | $(ms "${!m}" .latencyPercentiles.p99) |"
done
echo
echo "Runs on the mock after every trigger: $RUNS (one per idempotency token)."
