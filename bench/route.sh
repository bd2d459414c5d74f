#!/usr/bin/env bash
# Identity-aware routes benchmark (issue 27): the gateway pinned to core 0,
# the mock upstream, a 100 MB streaming upstream and oha on core 1. In the
# same run:
#   - a pass-through route (key auth, a `routes:` grant, a per-tenant limit
#     counting rows, ledger on) against calling the mock directly: latency
#     p50/p99 at a fixed RATE (open loop, latency-corrected), same body
#     (a Databricks `dataframe_records` payload) to the same upstream path
#   - the same gateway's model call to the same mock (a baseline of what
#     the machine allows in this sitting)
#   - a SIZE_MB response streamed through a route: wall time and the
#     gateway's resident memory sampled every 50 ms during the transfer
# Prints a Markdown section for bench/README.md.
#
# CALLGRIND=1: instead, the gateway runs under callgrind; after WARMUP (200)
# route calls, REQUESTS (default 400) route calls are counted, and the
# output gives instructions per route call for the whole process and the
# largest inclusive costs below the route handler (KEEP_PROFILE=DIR keeps
# the callgrind_annotate output).
#
# Env: DURATION (default 10s), RATE (default 1000), SIZE_MB (default 100),
#      TOLLGATE_BIN, CALLGRIND, REQUESTS, WARMUP, KEEP_PROFILE.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
RATE=${RATE:-1000}
SIZE_MB=${SIZE_MB:-100}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

# shellcheck source=bench/lib.sh
source bench/lib.sh

# A plain HTTP upstream that answers GET /big with SIZE_MB MiB in 64 KiB
# chunks (chunked transfer encoding, so nothing tells the gateway the size).
cat >"$WORK/big.py" <<'PY'
import sys, http.server, socketserver
MB = int(sys.argv[1])
CHUNK = b"x" * 65536
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        head = b"%x\r\n" % len(CHUNK)
        for _ in range(MB * 16):
            self.wfile.write(head + CHUNK + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
s = S(("127.0.0.1", 0), H)
print("addr=127.0.0.1:%d" % s.server_address[1], flush=True)
s.serve_forever()
PY
taskset -c "$LOAD_CORE" python3 "$WORK/big.py" "$SIZE_MB" >"$WORK/big.log" 2>&1 &
IDP_PID=$!
BIG=$(wait_addr "$WORK/big.log" addr)

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
  - { id: bench, hash: $HASH, principal: bench, tenant: acme, models: [m] }
policy:
  rules:
    - { name: ml, tenants: [acme], routes: [model, big] }
limits:
  rules:
    - name: rows-per-tenant
      match: { routes: [model] }
      per: [tenant]
      tokens_per_minute: 1000000000
      token_kind: input
providers:
  - { name: mock, kind: openai, base_url: "http://$MOCK/v1", api_key: upstream-key }
models:
  - { name: m, provider: mock, upstream_model: mock-chat }
routes:
  - name: model
    path: /ml/model
    upstream: http://$MOCK/v1
    auth: { type: bearer, token: upstream-key }
    methods: [POST]
  - name: big
    path: /ml/big
    upstream: http://$BIG
YAML
VG=()
[ -n "${CALLGRIND:-}" ] && VG=(valgrind --tool=callgrind "--callgrind-out-file=$WORK/gw.cg")
RUST_LOG=warn,tollgate::server=info taskset -c "$GW_CORE" "${VG[@]}" "$BIN" serve --config "$WORK/bench.yaml" 2>"$WORK/gw.log" &
GW_PID=$!
# Under valgrind the start takes longer than wait_addr's 10 s.
[ -n "${CALLGRIND:-}" ] && for _ in $(seq 1 120); do grep -q " addr=" "$WORK/gw.log" && break; sleep 0.5; done
GW=$(wait_addr "$WORK/gw.log" " addr")
sleep 0.5
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
IDLE_RSS=$(rss $GW_PID)

# The mock answers any chat body; the payload is what an ML caller sends.
printf '{"model":"m","messages":[{"role":"user","content":"x"}],"dataframe_records":[{"a":1,"b":2},{"a":3,"b":4}]}' >"$WORK/body.json"
load() { # url key extra-args... -> json file path
  local out=$WORK/$RANDOM.json
  taskset -c "$LOAD_CORE" oha --no-tui --output-format json -m POST -H "content-type: application/json" \
    -H "authorization: Bearer $2" -D "$WORK/body.json" "${@:3}" "$1" >"$out"
  echo "$out"
}
ms() { jq -r "$2 * 1000 | . * 1000 | round / 1000" "$1"; }
check() {
  local ok total
  ok=$(jq -r '.statusCodeDistribution["200"] // 0' "$1"); total=$(jq -r '[.statusCodeDistribution[]] | add // 0' "$1")
  [ "$ok" = "$total" ] || { echo "non-200 answers: $(jq -c .statusCodeDistribution "$1")" >&2; exit 1; }
}
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$GW/ml/model/chat/completions" \
  -H "authorization: Bearer $KEY" -H 'content-type: application/json' -d @"$WORK/body.json")
[ "$code" = 200 ] || { echo "route call failed: $code" >&2; cat "$WORK/gw.log" >&2; exit 1; }

if [ -n "${CALLGRIND:-}" ]; then
  NREQ=${REQUESTS:-400}
  load "http://$GW/ml/model/chat/completions" "$KEY" -n "${WARMUP:-200}" -c 8 >/dev/null
  sleep 1
  callgrind_control -z "$GW_PID" >/dev/null
  OUT=$(load "http://$GW/ml/model/chat/completions" "$KEY" -n "$NREQ" -c 8)
  check "$OUT"
  sleep 1
  callgrind_control -d "$GW_PID" >/dev/null
  sleep 0.5
  kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
  CG=$WORK/gw.cg.1
  callgrind_annotate --inclusive=yes --threshold=100 "$CG" >"$WORK/route.annotate" 2>/dev/null || true
  [ -n "${KEEP_PROFILE:-}" ] && cp "$WORK/route.annotate" "$KEEP_PROFILE/"
  TOTAL=$(awk '/^(summary|totals):/ {t=$2} END {print t}' "$CG")
  k() { awk "BEGIN {printf \"%.1f\", ${1:-0} / $NREQ / 1000}"; }
  echo
  echo "## $(date -u +%Y-%m-%dT%H:%MZ) — instructions per route call (callgrind, $NREQ calls after 200)"
  echo
  echo "Command: \`CALLGRIND=1 bench/route.sh\` (binary ${TOLLGATE_BIN:-release}); whole process: $(k "$TOTAL") k instructions per call."
  echo
  echo "| k instructions per call (inclusive) | function |"
  echo "| --- | --- |"
  # The largest inclusive entries of the gateway's own code.
  grep -E '^ *[0-9,]+ \( *[0-9.]+%\) +[^ ]*:(tollgate|reqwest::|hyper::|url::|aho_corasick::|serde_json::)' "$WORK/route.annotate" | head -40 |
    while read -r n rest; do
      fn=$(echo "$rest" | sed -E 's/^\( *[0-9.]+%\) +[^:]*://; s/ \[[^]]*\]$//' | cut -c1-110)
      echo "| $(k "${n//,/}") | \`$fn\` |"
    done
  exit 0
fi

load "http://$MOCK/v1/chat/completions" upstream-key -z 2s -c 32 >/dev/null
load "http://$GW/ml/model/chat/completions" "$KEY" -z 2s -c 32 >/dev/null
D1=$(load "http://$MOCK/v1/chat/completions" upstream-key -z "$DURATION" -c 32 -q "$RATE" --latency-correction)
G1=$(load "http://$GW/ml/model/chat/completions" "$KEY" -z "$DURATION" -c 32 -q "$RATE" --latency-correction)
M1=$(load "http://$GW/v1/chat/completions" "$KEY" -z "$DURATION" -c 32 -q "$RATE" --latency-correction)
D2=$(load "http://$MOCK/v1/chat/completions" upstream-key -z "$DURATION" -c 32 -q "$RATE" --latency-correction)
G2=$(load "http://$GW/ml/model/chat/completions" "$KEY" -z "$DURATION" -c 32 -q "$RATE" --latency-correction)
M2=$(load "http://$GW/v1/chat/completions" "$KEY" -z "$DURATION" -c 32 -q "$RATE" --latency-correction)
for f in "$G1" "$G2" "$M1" "$M2"; do check "$f"; done
LOAD_RSS=$(rss $GW_PID)

# The big stream: RSS sampled while it flows.
( while kill -0 $GW_PID 2>/dev/null; do rss $GW_PID; echo; sleep 0.05; done ) >"$WORK/rss.txt" &
SAMPLER=$!
START=$(date +%s.%N)
BYTES=$(taskset -c "$LOAD_CORE" curl -s -o /dev/null -w '%{size_download}' "http://$GW/ml/big/data" -H "authorization: Bearer $KEY")
END=$(date +%s.%N)
kill $SAMPLER 2>/dev/null || true
DIRECT_START=$(date +%s.%N)
taskset -c "$LOAD_CORE" curl -s -o /dev/null "http://$BIG/data"
DIRECT_END=$(date +%s.%N)
[ "$BYTES" = $((SIZE_MB * 1048576)) ] || { echo "streamed $BYTES bytes, wanted $((SIZE_MB * 1048576))" >&2; exit 1; }
MIN_RSS=$(grep . "$WORK/rss.txt" | sort -n | head -1)
MAX_RSS=$(grep . "$WORK/rss.txt" | sort -n | tail -1)
SAMPLES=$(grep -c . "$WORK/rss.txt")

row() { # label direct route model
  echo "| $1 | $2 | $3 | $(awk "BEGIN {printf \"%.3f\", $3-$2}") | $4 | $(awk "BEGIN {printf \"%.3f\", $4-$2}") |"
}
pct() { # file percentile
  ms "$1" ".latencyPercentiles.$2"
}
cat <<MD

## $(date -u +%Y-%m-%dT%H:%MZ) — routes ($(nproc) cores, gateway on core $GW_CORE, upstreams + oha on core $LOAD_CORE)

Command: \`bench/route.sh\` (DURATION=$DURATION, RATE=$RATE, SIZE_MB=$SIZE_MB, binary ${TOLLGATE_BIN:-release}); key auth, route grant, a per-tenant limit counting rows, bearer injected, ledger on. Two interleaved rounds.

| measure at $RATE req/s (ms) | mock direct | through the route | added | model call (same gateway, same mock) | added |
| --- | --- | --- | --- | --- | --- |
$(row "p50, round 1" "$(pct "$D1" p50)" "$(pct "$G1" p50)" "$(pct "$M1" p50)")
$(row "p99, round 1" "$(pct "$D1" p99)" "$(pct "$G1" p99)" "$(pct "$M1" p99)")
$(row "p50, round 2" "$(pct "$D2" p50)" "$(pct "$G2" p50)" "$(pct "$M2" p50)")
$(row "p99, round 2" "$(pct "$D2" p99)" "$(pct "$G2" p99)" "$(pct "$M2" p99)")

$SIZE_MB MiB streamed through a route: $(awk "BEGIN {printf \"%.2f\", $END-$START}") s (direct $(awk "BEGIN {printf \"%.2f\", $DIRECT_END-$DIRECT_START}") s); gateway resident memory during the transfer $MIN_RSS–$MAX_RSS MB over $SAMPLES samples (idle $IDLE_RSS MB, after the latency rounds $LOAD_RSS MB).
MD
