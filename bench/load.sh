#!/usr/bin/env bash
# Load benchmark for the foundation: the gateway pinned to core 0, the mock
# upstream and the load generator (oha) on core 1. Compares the gateway with
# calling the mock upstream directly, in the same run:
#   - saturation throughput (requests/s), small non-streaming chat
#   - added latency p50/p99 at a fixed 1,000 requests/s
#   - resident memory idle and after load
#   - saturation throughput under JWT auth (RS256 token, keys cached from a
#     local JWKS, policy by group) next to API-key auth
# Key auth and the SQLite usage ledger are on. Prints a Markdown section;
# `bench/load.sh >> bench/history/RESULTS.md` records it (and
# bench/README.md's table takes the new figure).
#
# Env: DURATION (default 10s), CONNS (default 64), RATE (default 1000),
#      LEDGER (default on; `off` disables the usage ledger for comparison),
#      ROUNDS (default 0): after the main table, this many interleaved
#      saturation rounds of a plain model against a virtual model with three
#      targets (priority), in the same gateway process.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
RATE=${RATE:-1000}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
LEDGER=${LEDGER:-on}
LEDGER_ENABLED=$([ "$LEDGER" = off ] && echo false || echo true)

# shellcheck source=bench/lib.sh
source bench/lib.sh

KEY=tg-bench-key
HASH=$(printf %s "$KEY" | "$BIN" keys hash)

# JWT auth: the test fixture's public keys served as a JWKS, a token signed
# with its RSA key (tests/fixtures/jwt, test-only keys).
bench_jwt
cat >"$WORK/bench.yaml" <<YAML
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  watch_config: false
storage:
  url: sqlite://$WORK/bench.db
ledger:
  enabled: $LEDGER_ENABLED
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
  - { name: bench-t2, provider: up, upstream_model: mock-chat }
  - { name: bench-t3, provider: up, upstream_model: mock-chat }
virtual_models:
  - name: bench-vm
    targets: [{ model: bench-chat }, { model: bench-t2, priority: 1 }, { model: bench-t3, priority: 2 }]
keys:
  - id: bench
    hash: $HASH
    principal: bench
    models: ["*"]
auth:
  oidc:
    - issuer: https://idp.bench.example
      audiences: [tollgate]
      discovery: false
      jwks_url: http://127.0.0.1:$IDP_PORT/jwks.json
policy:
  rules:
    - name: bench
      groups: [bench]
      models: ["*"]
YAML
RUST_LOG=warn,tollgate::server=info taskset -c "$GW_CORE" "$BIN" serve --config "$WORK/bench.yaml" 2>"$WORK/gw.log" &
GW_PID=$!
GW=$(wait_addr "$WORK/gw.log" " addr")
ADMIN=$(wait_addr "$WORK/gw.log" admin_addr)
sleep 0.5
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
IDLE_RSS=$(rss $GW_PID)

BODY='{"model":"MODEL","messages":[{"role":"user","content":"Say hello to the benchmark in a few words."}],"max_tokens":16}'
printf %s "${BODY/MODEL/mock-chat}" >"$WORK/direct.json"
printf %s "${BODY/MODEL/bench-chat}" >"$WORK/gw.json"

load() { # url bodyfile extra-args... -> json file on stdout path
  local out=$WORK/$RANDOM.json
  taskset -c "$LOAD_CORE" oha --no-tui --output-format json -m POST -H "content-type: application/json" \
    -H "authorization: Bearer $3" -D "$2" "${@:4}" "$1" >"$out"
  echo "$out"
}
num() { jq -r "$2" "$1"; }
ms() { jq -r "$2 * 1000 | . * 1000 | round / 1000" "$1"; }

# Warm up both paths (connection pools, page cache).
load "http://$MOCK/v1/chat/completions" "$WORK/direct.json" upstream-key -z 2s -c "$CONNS" >/dev/null
load "http://$GW/v1/chat/completions" "$WORK/gw.json" "$KEY" -z 2s -c "$CONNS" >/dev/null
load "http://$GW/v1/chat/completions" "$WORK/gw.json" "$JWT" -z 2s -c "$CONNS" >/dev/null

D_SAT=$(load "http://$MOCK/v1/chat/completions" "$WORK/direct.json" upstream-key -z "$DURATION" -c "$CONNS")
# JWT runs bracket the API-key run: throughput drifts down as the ledger's
# SQLite file grows, and the mean of before and after cancels that drift.
J_PRE=$(load "http://$GW/v1/chat/completions" "$WORK/gw.json" "$JWT" -z "$DURATION" -c "$CONNS")
G_SAT=$(load "http://$GW/v1/chat/completions" "$WORK/gw.json" "$KEY" -z "$DURATION" -c "$CONNS")
J_POST=$(load "http://$GW/v1/chat/completions" "$WORK/gw.json" "$JWT" -z "$DURATION" -c "$CONNS")
D_FIX=$(load "http://$MOCK/v1/chat/completions" "$WORK/direct.json" upstream-key -z "$DURATION" -c 32 -q "$RATE" --latency-correction)
G_FIX=$(load "http://$GW/v1/chat/completions" "$WORK/gw.json" "$KEY" -z "$DURATION" -c 32 -q "$RATE" --latency-correction)
LOAD_RSS=$(rss $GW_PID)

for f in "$G_SAT" "$G_FIX" "$J_PRE" "$J_POST"; do
  ok=$(jq -r '.statusCodeDistribution["200"] // 0' "$f")
  total=$(jq -r '[.statusCodeDistribution[]] | add // 0' "$f")
  [ "$ok" = "$total" ] || { echo "non-200 responses through the gateway: $(jq -c .statusCodeDistribution "$f")" >&2; exit 1; }
done
sleep 1
WRITTEN=$(curl -s "http://$ADMIN/metrics" | awk '/^tollgate_ledger_written_total/ {print $2}')
DROPPED=$(curl -s "http://$ADMIN/metrics" | awk '/^tollgate_ledger_dropped_total/ {s+=$2} END {print s+0}')

d_rps=$(num "$D_SAT" .summary.requestsPerSec); g_rps=$(num "$G_SAT" .summary.requestsPerSec)
j_rps=$(awk "BEGIN {print ($(num "$J_PRE" .summary.requestsPerSec) + $(num "$J_POST" .summary.requestsPerSec)) / 2}")
d50=$(ms "$D_FIX" '.latencyPercentiles.p50'); g50=$(ms "$G_FIX" '.latencyPercentiles.p50')
d99=$(ms "$D_FIX" '.latencyPercentiles.p99'); g99=$(ms "$G_FIX" '.latencyPercentiles.p99')

cat <<MD

## $(date -u +%Y-%m-%dT%H:%MZ) — foundation load benchmark ($(nproc) cores, gateway on core $GW_CORE, mock + oha on core $LOAD_CORE)

Command: \`bench/load.sh\` (DURATION=$DURATION, CONNS=$CONNS, RATE=$RATE); key auth on, SQLite ledger $LEDGER, small non-streaming chat (16 completion tokens).

| measure | mock upstream direct | through Tollgate | gateway / direct |
| --- | --- | --- | --- |
| saturation, requests/s ($CONNS connections) | $(printf %.0f "$d_rps") | $(printf %.0f "$g_rps") | $(awk "BEGIN {printf \"%.2f\", $g_rps/$d_rps}") |
| saturation under JWT auth (RS256; mean of runs before and after the key run), requests/s | — | $(printf %.0f "$j_rps") | JWT / API key $(awk "BEGIN {printf \"%.2f\", $j_rps/$g_rps}") |
| latency p50 at $RATE req/s (ms) | $d50 | $g50 | added $(awk "BEGIN {printf \"%.3f\", $g50-$d50}") ms |
| latency p99 at $RATE req/s (ms) | $d99 | $g99 | added $(awk "BEGIN {printf \"%.3f\", $g99-$d99}") ms |

Gateway resident memory: idle $IDLE_RSS MB, after load $LOAD_RSS MB. Ledger: $WRITTEN records written, $DROPPED dropped.
MD

ROUNDS=${ROUNDS:-0}
if [ "$ROUNDS" -gt 0 ]; then
  printf %s "${BODY/MODEL/bench-vm}" >"$WORK/vm.json"
  plain=(); virt=()
  for _ in $(seq 1 "$ROUNDS"); do
    f=$(load "http://$GW/v1/chat/completions" "$WORK/gw.json" "$KEY" -z 5s -c "$CONNS"); plain+=("$(num "$f" .summary.requestsPerSec)")
    f=$(load "http://$GW/v1/chat/completions" "$WORK/vm.json" "$KEY" -z 5s -c "$CONNS"); virt+=("$(num "$f" .summary.requestsPerSec)")
  done
  med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
  mp=$(med "${plain[@]}"); mv=$(med "${virt[@]}")
  cat <<MD

Virtual model with 3 targets vs plain model, $ROUNDS interleaved 5 s rounds each, same process (requests/s):
plain ${plain[*]} → median $(printf %.0f "$mp"); virtual ${virt[*]} → median $(printf %.0f "$mv"); virtual / plain = $(awk "BEGIN {printf \"%.3f\", $mv/$mp}").
MD
fi
