#!/usr/bin/env bash
# Cost of observability: the same gateway binary and config twice, once with
# the usage ledger (SQLite), audit log (file), Prometheus metrics and 10%
# trace sampling (OTLP/HTTP to a local receiver) on, once with ledger, audit
# and tracing off (the metrics recorder is always installed). Gateway on core
# 0, mock upstream + oha + receiver on core 1; ROUNDS interleaved saturation
# runs of each, medians compared. Prints a Markdown section;
# `bench/observability.sh >> bench/history/LEDGER.md` records it (and
# bench/README.md's table takes the new figure).
#
# Env: DURATION (default 5s per run), CONNS (default 64), ROUNDS (default 3);
# LEDGER=false, AUDIT=false or TRACING=false leave one part off in the "on" run;
# SAMPLE sets the trace sampling ratio of the "on" run (default 0.1).
#
# CALLGRIND=1: instead of timed rounds, both gateways run under
# `valgrind --tool=callgrind` and serve the same REQUESTS (default 4000,
# over CONNS connections) after a warm-up; the instructions of the whole process (every
# thread: request path, ledger writer, SQLite worker, audit thread, trace
# exporter) per request are compared. Exact and repeatable where the timed
# rounds swing ±20 %; blind to the kernel's share (syscalls, write-back).
# KEEP_CG=dir keeps the callgrind outputs there (for callgrind_annotate).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

command -v oha >/dev/null || cargo install oha --locked
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
# TOLLGATE_BIN=path: that binary instead of a fresh release build (an A/B
# against a saved binary in the same session).
if [ -n "${TOLLGATE_BIN:-}" ]; then BIN=$TOLLGATE_BIN; else
  cargo build --release -q
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/tollgate
fi

WORK=$(mktemp -d)
PIDS=()
# Gateways start in a subshell (`start_gw`), so their pids go to files.
cleanup() { for p in "${PIDS[@]}" $(cat "$WORK"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

wait_addr() { # file pattern -> addr
  for _ in $(seq 1 600); do
    addr=$(grep -o "$2=[0-9.:]*" "$1" | head -1 | cut -d= -f2 || true)
    [ -n "$addr" ] && { echo "$addr"; return; }
    sleep 0.1
  done
  echo "no $2 in $1" >&2; cat "$1" >&2; exit 1
}

RUST_LOG=warn,tollgate=info taskset -c "$LOAD_CORE" "$BIN" mock-upstream --listen 127.0.0.1:0 --require-key upstream-key 2>"$WORK/mock.log" &
PIDS+=($!)
MOCK=$(wait_addr "$WORK/mock.log" addr)

# A minimal OTLP/HTTP receiver: accepts and counts export requests.
cat >"$WORK/otlp.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    n = 0
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        H.n += 1
        self.send_response(200); self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0"); self.end_headers()
    def do_GET(self):
        body = str(H.n).encode(); self.send_response(200)
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print("port", s.server_address[1], flush=True)
s.serve_forever()
PY
taskset -c "$LOAD_CORE" python3 -u "$WORK/otlp.py" >"$WORK/otlp.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do OTLP_PORT=$(grep -o 'port [0-9]*' "$WORK/otlp.log" | cut -d' ' -f2 || true); [ -n "$OTLP_PORT" ] && break; sleep 0.1; done

KEY=tg-bench-key
HASH=$(printf %s "$KEY" | "$BIN" keys hash)

config() { # name on|off
  local on=$([ "$2" = on ] && echo true || echo false)
  cat <<YAML
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  watch_config: false
storage:
  url: sqlite://$WORK/$1.db
ledger:
  enabled: $([ "$on" = true ] && echo "${LEDGER:-true}" || echo false)
audit:
  enabled: $([ "$on" = true ] && echo "${AUDIT:-true}" || echo false)
  sink: $WORK/$1.audit.jsonl
tracing:
  enabled: $([ "$on" = true ] && echo "${TRACING:-true}" || echo false)
  endpoint: http://127.0.0.1:$OTLP_PORT/v1/traces
  protocol: http_protobuf
  sample_ratio: ${SAMPLE:-0.1}
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
keys:
  - id: bench
    hash: $HASH
    principal: bench
    groups: [eng]
    models: ["*"]
YAML
}

start_gw() { # name on|off -> "addr admin"
  config "$1" "$2" >"$WORK/$1.yaml"
  local vg=()
  [ -n "${CALLGRIND:-}" ] && vg=(valgrind --tool=callgrind "--callgrind-out-file=$WORK/$1.cg")
  RUST_LOG=warn,tollgate::server=info taskset -c "$GW_CORE" "${vg[@]}" "$BIN" serve --config "$WORK/$1.yaml" 2>"$WORK/$1.log" >/dev/null &
  echo $! >"$WORK/$1.pid"
  echo "$(wait_addr "$WORK/$1.log" " addr") $(wait_addr "$WORK/$1.log" admin_addr)"
}
read -r OFF OFF_ADMIN < <(start_gw off off)
read -r ON ON_ADMIN < <(start_gw on on)

printf '{"model":"bench-chat","messages":[{"role":"user","content":"Say hello to the benchmark in a few words."}],"max_tokens":16}' >"$WORK/gw.json"
rps() { # addr duration
  local out=$WORK/$RANDOM.json
  taskset -c "$LOAD_CORE" oha --no-tui --output-format json -m POST -H "content-type: application/json" \
    -H "authorization: Bearer $KEY" -D "$WORK/gw.json" -z "$2" -c "$CONNS" "http://$1/v1/chat/completions" >"$out"
  ok=$(jq -r '.statusCodeDistribution["200"] // 0' "$out"); total=$(jq -r '[.statusCodeDistribution[]] | add // 0' "$out")
  [ "$ok" = "$total" ] || { echo "non-200 responses: $(jq -c .statusCodeDistribution "$out")" >&2; exit 1; }
  jq -r .summary.requestsPerSec "$out"
}
if [ -n "${CALLGRIND:-}" ]; then
  command -v callgrind_control >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
  N=${REQUESTS:-4000}
  instr() { # name addr -> instructions per request over N requests
    local pid out
    pid=$(cat "$WORK/$1.pid")
    taskset -c "$LOAD_CORE" oha --no-tui -m POST -H "content-type: application/json" -H "authorization: Bearer $KEY" \
      -D "$WORK/gw.json" -n 500 -c "$CONNS" "http://$2/v1/chat/completions" >/dev/null
    sleep 1
    callgrind_control -z "$pid" >/dev/null
    out=$WORK/$1.oha.json
    taskset -c "$LOAD_CORE" oha --no-tui --output-format json -m POST -H "content-type: application/json" -H "authorization: Bearer $KEY" \
      -D "$WORK/gw.json" -n "$N" -c "$CONNS" "http://$2/v1/chat/completions" >"$out"
    [ "$(jq -r '.statusCodeDistribution["200"] // 0' "$out")" = "$N" ] || { echo "non-200: $(jq -c .statusCodeDistribution "$out")" >&2; exit 1; }
    sleep 1.5 # the ledger (200 ms) and audit (100 ms) writers flush what is queued
    callgrind_control -d "$pid" >/dev/null
    sleep 0.5
    # The last dump's totals: summed over every thread of the process.
    awk '/^(summary|totals):/ {t=$2} END {print t}' $(ls -t "$WORK/$1.cg"* | head -1) | awk -v n="$N" '{printf "%.1f", $1 / n / 1000}'
  }
  io=$(instr off "$OFF"); in=$(instr on "$ON")
  cat <<MD

## $(date -u +%Y-%m-%dT%H:%MZ) — observability overhead in instructions (callgrind)

Command: \`CALLGRIND=1 bench/observability.sh\` ($N requests, $CONNS connections, after 500 warm-up); small non-streaming chat, API key auth; instructions of the whole gateway process per request (kernel not counted).

| gateway | k instructions / request |
| --- | --- |
| ledger, audit, tracing off (metrics on) | $io |
| ledger (SQLite) + audit log (file) + metrics + 10% trace sampling (OTLP/HTTP) | $in |

Added: **$(awk "BEGIN {printf \"%.1f k (%.1f %%)\", $in - $io, ($in - $io) / $io * 100}")**; instruction ratio off/on **$(awk "BEGIN {printf \"%.3f\", $io / $in}")** (target for throughput ≥ 0.90).
MD
  [ -n "${KEEP_CG:-}" ] && mkdir -p "$KEEP_CG" && cp "$WORK"/*.cg* "$KEEP_CG"/
  exit 0
fi
rps "$OFF" 2s >/dev/null; rps "$ON" 2s >/dev/null
off=(); on=()
# Rounds alternate which gateway goes first, so drift within a round does
# not favour one side; each round's on/off ratio is kept (paired).
# Each gateway's own CPU per request (user + system ticks over its runs) is
# kept too: the capacity ratio, less sensitive to what else shares the cores.
TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$(cat "$WORK/$1.pid")/stat"; }
ratios=(); cpu_off=0; cpu_on=0; req_off=0; req_on=0
run_one() { # off|on -> sets o or n
  local t0 t1 v
  t0=$(ticks "$1")
  if [ "$1" = off ]; then v=$(rps "$OFF" "$DURATION"); else v=$(rps "$ON" "$DURATION"); fi
  t1=$(ticks "$1")
  if [ "$1" = off ]; then o=$v; cpu_off=$((cpu_off + t1 - t0)); req_off=$(awk "BEGIN {print $req_off + $v * ${DURATION%s}}");
  else n=$v; cpu_on=$((cpu_on + t1 - t0)); req_on=$(awk "BEGIN {print $req_on + $v * ${DURATION%s}}"); fi
}
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then run_one off; run_one on; else run_one on; run_one off; fi
  off+=("$o"); on+=("$n"); ratios+=("$(awk "BEGIN {print $n/$o}")")
done
us_off=$(awk "BEGIN {printf \"%.1f\", $cpu_off / $TCK * 1e6 / $req_off}")
us_on=$(awk "BEGIN {printf \"%.1f\", $cpu_on / $TCK * 1e6 / $req_on}")
sleep 1.5
metric() { curl -s "http://$1/metrics" | awk -v m="$2" '$1 ~ "^"m {s+=$2} END {print s+0}'; }
WRITTEN=$(metric "$ON_ADMIN" tollgate_ledger_written_total)
DROPPED=$(metric "$ON_ADMIN" tollgate_ledger_dropped_total)
AUDIT_LINES=$(if [ -f "$WORK/on.audit.jsonl" ]; then wc -l <"$WORK/on.audit.jsonl"; else echo 0; fi)
EXPORTS=$(curl -s "http://127.0.0.1:$OTLP_PORT/")
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mo=$(med "${off[@]}"); mn=$(med "${on[@]}")
fmt() { for v in "$@"; do printf '%.0f ' "$v"; done; }
cat <<MD

## $(date -u +%Y-%m-%dT%H:%MZ) — observability overhead ($(nproc) cores, gateway on core $GW_CORE, mock + oha + OTLP receiver on core $LOAD_CORE)

Command: \`bench/observability.sh\` (DURATION=$DURATION, CONNS=$CONNS, ROUNDS=$ROUNDS interleaved); small non-streaming chat, API key auth.

| gateway | saturation requests/s per round | median |
| --- | --- | --- |
| ledger, audit, tracing off (metrics on) | $(fmt "${off[@]}")| $(printf %.0f "$mo") |
| ledger (SQLite) + audit log (file) + metrics + 10% trace sampling (OTLP/HTTP) | $(fmt "${on[@]}")| $(printf %.0f "$mn") |

All on / all off = **$(awk "BEGIN {printf \"%.3f\", $mn/$mo}")** (ratio of medians; target ≥ 0.90); median of the per-round ratios = **$(printf %.3f "$(med "${ratios[@]}")")** (per round: $(for v in "${ratios[@]}"; do printf '%.2f ' "$v"; done)). Gateway CPU per request: $us_off µs off, $us_on µs on; capacity ratio **$(awk "BEGIN {printf \"%.3f\", $us_off/$us_on}")**. All-on gateway: $WRITTEN ledger records written, $DROPPED dropped, $AUDIT_LINES audit lines, $EXPORTS OTLP export requests received.
MD
