#!/usr/bin/env bash
# Limits in Redis mode: what five active limits (requests/s, requests/min,
# tokens/min, in flight, cost/day; all `store: redis`, one Lua script per
# admission, one pipelined settlement) add over no limit, in ONE gateway
# process: key `plain` matches no rule, key `limited` matches all five.
# Interleaved rounds of each, so drift hits both alike:
#   - saturation throughput (requests/s), small non-streaming chat
#   - latency p50/p99 at a fixed RATE (default 500 req/s)
# Gateway on core 0; mock upstream, redis-server and oha on core 1
# (REDIS_CORE=0: redis-server on the gateway's core).
# `bench/limits.sh >> bench/history/LIMITS.md` records a run (and
# bench/README.md's table takes the new figure).
# Env: DURATION (default 5s), CONNS (default 64), RATE (default 500), ROUNDS (default 3);
# LEDGER=false runs without the usage ledger (what recording the limits'
# decisions costs, apart from the decisions themselves).
# PERF=1: perf (cpu-clock) samples of the gateway at saturation for each
# key, top symbols, instead of timed rounds (KEEP_PERF=dir keeps them).
# STRACE=1: system calls per request of each key (strace -c), instead of
# timed rounds (REQUESTS per key, default 20000).
# CALLGRIND=1: the gateway under callgrind, instructions per request of each
# key instead of timed rounds (REQUESTS per key, default 3000; KEEP_CG=dir
# keeps the outputs; CG_OPTS=--cache-sim=yes adds simulated cache misses).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
CONNS=${CONNS:-64}
RATE=${RATE:-500}
ROUNDS=${ROUNDS:-3}
STORE=${STORE:-redis}  # redis | local: where the five limits count
# Core of redis-server: 1 (default) shares it with the mock and oha; 0 puts
# it beside the gateway, as a local sidecar would be.
REDIS_CORE=${REDIS_CORE:-1}
command -v oha >/dev/null || cargo install oha --locked
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
# TOLLGATE_BIN=path: that binary instead of a fresh release build (an A/B
# against a saved binary in the same session).
if [ -n "${TOLLGATE_BIN:-}" ]; then BIN=$TOLLGATE_BIN; else
  cargo build --release -q -p tollgate-cli
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/tollgate
fi

WORK=$(mktemp -d)
cleanup() { kill "${GW_PID:-}" "${MOCK_PID:-}" "${REDIS_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

wait_addr() { # file pattern -> addr
  for _ in $(seq 1 600); do
    addr=$(grep -o "$2=[0-9.:]*" "$1" | head -1 | cut -d= -f2 || true)
    [ -n "$addr" ] && { echo "$addr"; return; }
    sleep 0.1
  done
  echo "no $2 in $1" >&2; cat "$1" >&2; exit 1
}

REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c "$REDIS_CORE" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >/dev/null &
REDIS_PID=$!
RUST_LOG=warn,tollgate=info taskset -c 1 "$BIN" mock-upstream --listen 127.0.0.1:0 --require-key upstream-key 2>"$WORK/mock.log" &
MOCK_PID=$!
MOCK=$(wait_addr "$WORK/mock.log" addr)
PLAIN_HASH=$(printf %s tg-bench-plain | "$BIN" keys hash)
LIMITED_HASH=$(printf %s tg-bench-limited | "$BIN" keys hash)
cat >"$WORK/bench.yaml" <<YAML
server: { listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, watch_config: false }
storage: { url: "sqlite://$WORK/bench.db" }
ledger: { enabled: ${LEDGER:-true} }
providers:
  - { name: up, kind: openai, base_url: "http://$MOCK/v1", api_key: upstream-key }
models:
  - { name: bench-chat, provider: up, upstream_model: mock-chat, price: { input_per_mtok: 1.0, output_per_mtok: 2.0 } }
keys:
  - { id: plain, hash: "$PLAIN_HASH", principal: plain, models: ["*"] }
  - { id: limited, hash: "$LIMITED_HASH", principal: limited, groups: [bench], tenant: acme, models: ["*"] }
limits:
  redis: { url: "redis://127.0.0.1:$REDIS_PORT/", timeout: 100ms }
  rules:
    - { name: key-rps, match: { keys: [limited] }, per: [key], requests_per_second: 1000000, store: $STORE }
    - { name: user-rpm, match: { principals: [limited] }, per: [principal], requests_per_minute: 100000000, store: $STORE }
    - { name: team-tpm, match: { groups: [bench] }, per: [group], tokens_per_minute: 100000000000, store: $STORE }
    - { name: tenant-inflight, match: { tenants: [acme] }, per: [tenant], concurrent: 100000, store: $STORE }
    - { name: model-budget, match: { keys: [limited] }, per: [model], cost_per_day: 1000000000, store: $STORE }
YAML
VG=()
[ -n "${CALLGRIND:-}" ] && VG=(valgrind --tool=callgrind "--callgrind-out-file=$WORK/gw.cg" ${CG_OPTS:-})
RUST_LOG=warn,tollgate::server=info taskset -c 0 "${VG[@]}" "$BIN" serve --config "$WORK/bench.yaml" 2>"$WORK/gw.log" &
GW_PID=$!
GW=$(wait_addr "$WORK/gw.log" " addr")
ADMIN=$(wait_addr "$WORK/gw.log" admin_addr)
sleep 0.5
printf %s '{"model":"bench-chat","messages":[{"role":"user","content":"Say hello to the benchmark in a few words."}],"max_tokens":16}' >"$WORK/body.json"

load() { # key extra-args... -> json file path
  local out=$WORK/$RANDOM$RANDOM.json
  taskset -c 1 oha --no-tui --output-format json -m POST -H "content-type: application/json" \
    -H "authorization: Bearer $1" -D "$WORK/body.json" "${@:2}" "http://$GW/v1/chat/completions" >"$out"
  ok=$(jq -r '.statusCodeDistribution["200"] // 0' "$out"); total=$(jq -r '[.statusCodeDistribution[]] | add // 0' "$out")
  [ "$ok" = "$total" ] || { echo "non-200 responses: $(jq -c .statusCodeDistribution "$out")" >&2; tail -5 "$WORK/gw.log" >&2; exit 1; }
  echo "$out"
}
if [ -n "${CALLGRIND:-}" ]; then
  # Exact instructions per request of the whole gateway process (every
  # thread, ledger writer included; kernel not counted): the same REQUESTS
  # for each key, counters zeroed before and dumped after each.
  command -v callgrind_control >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
  N=${REQUESTS:-3000}
  instr() { # key -> k instructions per request
    load "$1" -n 300 -c 16 >/dev/null
    sleep 1
    callgrind_control -z "$GW_PID" >/dev/null
    load "$1" -n "$N" -c 16 >/dev/null
    sleep 1.5 # the ledger writer flushes what is queued
    callgrind_control -d "$GW_PID" >/dev/null
    sleep 0.5
    awk '/^(summary|totals):/ {t=$2} END {print t}' $(ls -t "$WORK"/gw.cg* | head -1) | awk -v n="$N" '{printf "%.1f", $1 / n / 1000}'
  }
  ip=$(instr tg-bench-plain); il=$(instr tg-bench-limited)
  [ -n "${KEEP_CG:-}" ] && mkdir -p "$KEEP_CG" && cp "$WORK"/gw.cg* "$KEEP_CG"/
  cat <<MD

## $(date -u +%Y-%m-%dT%H:%MZ) — five $STORE limits in instructions (callgrind)

Command: \`CALLGRIND=1 STORE=$STORE bench/limits.sh\` ($N requests per key, 16 connections, after 300 warm-up); instructions of the whole gateway process per request (kernel not counted).

| key | k instructions / request |
| --- | --- |
| \`plain\` (no limit) | $ip |
| \`limited\` (five $STORE limits) | $il |

Added: **$(awk "BEGIN {printf \"%.1f k (%.1f %%)\", $il - $ip, ($il - $ip) / $ip * 100}")**; instruction ratio **$(awk "BEGIN {printf \"%.3f\", $ip / $il}")** (throughput target ≥ 0.90).
MD
  exit 0
fi
load tg-bench-plain -z 2s -c "$CONNS" >/dev/null
load tg-bench-limited -z 2s -c "$CONNS" >/dev/null

if [ -n "${STRACE:-}" ]; then
  # System calls per request of each key (strace -c over every thread of the
  # gateway; a fixed number of requests at CONNS connections). strace slows
  # the gateway several times over: counts, not times, are the measure.
  command -v strace >/dev/null || { apt-get update -qq && apt-get install -y -qq strace >/dev/null; }
  N=${REQUESTS:-20000}
  for key in plain limited; do
    strace -f -c -o "$WORK/strace.$key" -p "$GW_PID" 2>/dev/null &
    ST_PID=$!
    sleep 1
    load "tg-bench-$key" -n "$N" -c "$CONNS" >/dev/null
    sleep 1.5 # the ledger writer flushes what is queued
    kill -INT "$ST_PID"; wait "$ST_PID" || true
    echo "## $key: calls per request (strace -c, $N requests)"
    awk -v n="$N" '$1 ~ /^[0-9.]+$/ && NF >= 5 {c = $4; name = $NF; printf "%-16s %.3f\n", name, c / n}' "$WORK/strace.$key" | sort -k2 -gr | head -20
  done
  exit 0
fi

if [ -n "${PERF:-}" ]; then
  # Where the gateway's time goes (cpu-clock samples, user and kernel) at
  # saturation for each key: what instruction counts miss (cache misses,
  # atomics, the kernel's side of writes). KEEP_PERF=dir keeps the reports.
  for key in plain limited; do
    perf record -q -F ${PERF_FREQ:-2999} -e cpu-clock ${PERF_CG:--g} -p "$GW_PID" -o "$WORK/perf.$key" -- sleep "${DURATION%s}" 2>/dev/null &
    PERF_PID=$!
    f=$(load "tg-bench-$key" -z "$DURATION" -c "$CONNS")
    wait "$PERF_PID" || true
    echo "$key $(jq .summary.requestsPerSec "$f")" >>"$WORK/perf.rps"
    perf report -i "$WORK/perf.$key" --no-children --sort dso,symbol --stdio -g none 2>"$WORK/perf.err" >"$WORK/perf.$key.full" || cat "$WORK/perf.err" >&2
    grep '%' "$WORK/perf.$key.full" | grep -v '^#' | head -"${PERF_TOP:-60}" >"$WORK/perf.$key.txt" || true
  done
  [ -n "${KEEP_PERF:-}" ] && mkdir -p "$KEEP_PERF" && cp "$WORK"/perf.* "$KEEP_PERF"/
  echo "## requests/s while sampled"; cat "$WORK/perf.rps"
  echo "## plain"; cat "$WORK/perf.plain.txt"; echo "## limited"; cat "$WORK/perf.limited.txt"
  exit 0
fi

# The gateway's own CPU per request (user + system ticks of its process over
# a saturation run): in Redis mode redis-server shares core 1 with the mock
# and oha, so saturation can be bound by core 1 while the gateway's core has
# room; CPU per request is the gateway's capacity whatever bounds the run.
TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14, $15}' "/proc/$GW_PID/stat"; }
# redis-server's CPU (user + system ticks): what the limits cost the shared
# Redis per request, the capacity of one Redis for a fleet of gateways.
rticks() { awk '{print $14 + $15}' "/proc/$REDIS_PID/stat"; }
sat() { # key -> "rps cpu_us_per_request user_us system_us redis_us_per_request"
  local u0 s0 u1 s1 r0 r1 f
  r0=$(rticks); read -r u0 s0 < <(ticks); f=$(load "$1" -z "$DURATION" -c "$CONNS"); read -r u1 s1 < <(ticks); r1=$(rticks)
  local n; n=$(jq '[.statusCodeDistribution[]] | add' "$f")
  echo "$(jq .summary.requestsPerSec "$f") $(awk "BEGIN {k = $TCK * $n / 1e6; print ($u1 - $u0 + $s1 - $s0) / k, ($u1 - $u0) / k, ($s1 - $s0) / k, ($r1 - $r0) / k}")"
}
# Requests per admission script call (sum and count of the batch histogram).
batch() { curl -s "http://$ADMIN/metrics" | awk '/^tollgate_limit_store_admit_batch_(sum|count)/ {print $2}' | paste -sd' '; }
# The admission round-trip histogram (`le count` lines), for the fixed-rate runs.
hist() { curl -s "http://$ADMIN/metrics" | awk '/^tollgate_limit_store_admit_seconds_bucket/ {
  match($0, /le="[^"]*"/); print substr($0, RSTART + 4, RLENGTH - 5), $2 }'; }
hist | awk '{print $1, 0}' >"$WORK/hsum"
p_rps=(); l_rps=(); p99p=(); p99l=(); p50p=(); p50l=(); p_cpu=(); l_cpu=(); p_usr=(); l_usr=(); p_sys=(); l_sys=(); l_red=(); l_bat=()
for _ in $(seq 1 "$ROUNDS"); do
  read -r r c u y _ < <(sat tg-bench-plain); p_rps+=("$r"); p_cpu+=("$c"); p_usr+=("$u"); p_sys+=("$y")
  read -r b0s b0c < <(batch)
  read -r r c u y rd < <(sat tg-bench-limited); l_rps+=("$r"); l_cpu+=("$c"); l_usr+=("$u"); l_sys+=("$y"); l_red+=("$rd")
  read -r b1s b1c < <(batch)
  l_bat+=("$(awk "BEGIN {d = ${b1c:-0} - ${b0c:-0}; print (d > 0 ? (${b1s:-0} - ${b0s:-0}) / d : 0)}")")
  f=$(load tg-bench-plain -z "$DURATION" -c 32 -q "$RATE" --latency-correction)
  p50p+=("$(jq '.latencyPercentiles.p50 * 1000' "$f")"); p99p+=("$(jq '.latencyPercentiles.p99 * 1000' "$f")")
  hist >"$WORK/h0"
  f=$(load tg-bench-limited -z "$DURATION" -c 32 -q "$RATE" --latency-correction)
  hist >"$WORK/h1"
  # This run's admissions, added bucket by bucket to the fixed-rate total.
  awk 'FNR==NR {b[$1]=$2; next} {print $1, $2 - b[$1]}' "$WORK/h0" "$WORK/h1" >"$WORK/hd"
  awk 'FNR==NR {t[$1]=$2; next} {print $1, $2 + t[$1]}' "$WORK/hsum" "$WORK/hd" >"$WORK/hsum.new"
  mv "$WORK/hsum.new" "$WORK/hsum"
  p50l+=("$(jq '.latencyPercentiles.p50 * 1000' "$f")"); p99l+=("$(jq '.latencyPercentiles.p99 * 1000' "$f")")
done
# Quantile of the admission round trip from the cumulative buckets (ms; the
# bucket's upper bound, so an overestimate by at most one bucket).
hq() { awk -v q="$1" '{le[NR]=$1; c[NR]=$2} $1=="+Inf" {tot=$2} END {
  if (tot == 0) {print "n/a"; exit}
  for (i=1; i<=NR; i++) if (c[i] >= q*tot) {print (le[i]=="+Inf" ? "inf" : le[i]*1000); exit} }' "$WORK/hsum"; }
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mp=$(med "${p_rps[@]}"); ml=$(med "${l_rps[@]}"); cp=$(med "${p_cpu[@]}"); cl=$(med "${l_cpu[@]}")
a50=$(med "${p50p[@]}"); b50=$(med "${p50l[@]}"); a99=$(med "${p99p[@]}"); b99=$(med "${p99l[@]}")
ADMIT_LINE=""
if [ "$STORE" = redis ]; then
  # The machine's floor: a bare PING round trip from the gateway's core, same
  # session (redis-benchmark's own client, one connection).
  read -r PING50 PING99 < <(taskset -c 0 redis-benchmark -p "$REDIS_PORT" -t ping_mbulk -n 20000 -c 1 --precision 3 2>/dev/null |
    awk '/avg +min +p50/ {getline; print $3, $5}')
  ADMIT_LINE="Admission round trip to Redis during the $RATE req/s runs (\`tollgate_limit_store_admit_seconds\`, $(awk '$1 == "+Inf" {print $2}' "$WORK/hsum") admissions; bucket upper bounds): p50 ≤ $(hq 0.5) ms, p99 ≤ $(hq 0.99) ms (redis-server on core $REDIS_CORE). Bare \`PING\` round trip on this machine, same session (\`redis-benchmark -c 1\`): p50 $PING50 ms, p99 $PING99 ms."
fi
KEYS=$(redis-cli -p "$REDIS_PORT" --scan --pattern 'tollgate:*' | wc -l)
# Redis's own account of the scripts' time (calls, µs per call).
CMDSTATS=$(redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' | awk -F'[:,=]' '/^cmdstat_(evalsha|eval|get|incrbyfloat|pexpire):/ {printf "%s %s calls, %s µs/call; ", substr($1, 9), $3, $7}')
ERRS=$(curl -s "http://$ADMIN/metrics" | awk '/^tollgate_limit_store_errors_total/ {s+=$2} END {print s+0}')
cat <<MD

## $(date -u +%Y-%m-%dT%H:%MZ) — five limits, store: $STORE ($(nproc) cores, gateway on core 0; mock, oha on core 1; redis-server on core $REDIS_CORE)

Command: \`STORE=$STORE bench/limits.sh\` (DURATION=$DURATION, CONNS=$CONNS, RATE=$RATE, ROUNDS=$ROUNDS); one gateway process, key \`plain\` (no limit) against key \`limited\` (five limits in the $STORE store: requests/s, requests/min, tokens/min, in flight, cost/day), interleaved; medians of $ROUNDS rounds.

| measure | no limit | five $STORE limits | ratio / added |
| --- | --- | --- | --- |
| saturation, requests/s ($CONNS connections) | $(printf %.0f "$mp") | $(printf %.0f "$ml") | $(awk "BEGIN {printf \"%.3f\", $ml/$mp}") |
| gateway CPU per request at saturation (µs) | $(printf %.1f "$cp") | $(printf %.1f "$cl") | capacity ratio $(awk "BEGIN {printf \"%.3f\", $cp/$cl}") |
| of which user / system (µs, medians) | $(printf %.1f "$(med "${p_usr[@]}")") / $(printf %.1f "$(med "${p_sys[@]}")") | $(printf %.1f "$(med "${l_usr[@]}")") / $(printf %.1f "$(med "${l_sys[@]}")") | |
| latency p50 at $RATE req/s (ms) | $(printf %.3f "$a50") | $(printf %.3f "$b50") | added $(awk "BEGIN {printf \"%.3f\", $b50-$a50}") ms |
| latency p99 at $RATE req/s (ms) | $(printf %.3f "$a99") | $(printf %.3f "$b99") | added $(awk "BEGIN {printf \"%.3f\", $b99-$a99}") ms |

Rounds (requests/s): no limit ${p_rps[*]}; limited ${l_rps[*]}. p99 (ms): no limit ${p99p[*]}; limited ${p99l[*]}.
Redis counters at the end: $KEYS keys; limit store errors: $ERRS.
redis-server CPU per limited request at saturation (median): $(printf %.2f "$(med "${l_red[@]}")") µs; requests per admission script call at saturation (median): $(printf %.1f "$(med "${l_bat[@]}")"). Redis commandstats over the whole run: ${CMDSTATS:-none}.
$ADMIT_LINE
MD
