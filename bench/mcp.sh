#!/usr/bin/env bash
# MCP gateway benchmark (issue 26): the gateway pinned to core 0, the mock
# upstream's MCP face (`POST /mcp`, tollgate-mock) and oha on core 1. In the
# same run, against calling the mock directly:
#   - tool-call latency p50/p99 at a fixed RATE (open loop, latency-corrected),
#     through a virtual server with key auth, the tool-level ACL and a
#     guardrail policy on tool arguments (GUARD=off leaves it out)
#   - tools/list of a 200-tool server: latency p50/p99 at a fixed 200 req/s
#   - SESSIONS concurrent sessions (initialize each, then every session calls
#     a tool at once): resident memory before and after
# Prints a Markdown section for bench/README.md.
#
# Env: DURATION (default 10s), RATE (default 1000), LIST_RATE (default 200),
#      SESSIONS (default 1000), GUARD (default on), TOLLGATE_BIN.
# CALLGRIND=1: instead of the timed runs, the gateway runs under callgrind
# and, after 50 warm-up requests of each, REQUESTS (default 300) tools/call
# and then REQUESTS tools/list of the 200-tool server are counted apart;
# prints instructions of the whole process per request and the inclusive
# top TOP (default 25) functions of each (callgrind_annotate), in k
# instructions per request. KEEP_PROFILE=DIR keeps the annotate outputs.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
RATE=${RATE:-1000}
LIST_RATE=${LIST_RATE:-200}
SESSIONS=${SESSIONS:-1000}
GUARD=${GUARD:-on}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

# shellcheck source=bench/lib.sh
source bench/lib.sh

KEY=tg-bench-key
HASH=$(printf %s "$KEY" | "$BIN" keys hash)
GUARD_YAML=""
if [ "$GUARD" = on ]; then
  GUARD_YAML="guardrails:
  policies:
    - name: tool-args
      applies_to: { tools: [\"*\"] }
      direction: input
      detectors: { builtins: [email, credit_card, ssn] }
      action: block"
fi
cat >"$WORK/bench.yaml" <<YAML
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  watch_config: false
storage:
  url: sqlite://$WORK/bench.db
keys:
  - id: bench
    hash: $HASH
    principal: bench
    groups: [bench]
policy:
  rules:
    - name: bench
      groups: [bench]
      tools: ["agent/mock__echo", "agent/mock__add", "wide/*"]
mcp:
  servers:
    - name: mock
      transport: streamable_http
      url: http://$MOCK/mcp
      auth: { type: bearer, token: upstream-key }
      expose: false
    - name: wide
      transport: streamable_http
      url: http://$MOCK/mcp?tools=200
      auth: { type: bearer, token: upstream-key }
  virtual_servers:
    - name: agent
      servers: [{ server: mock }]
$GUARD_YAML
YAML
VG=()
[ -n "${CALLGRIND:-}" ] && VG=(valgrind --tool=callgrind "--callgrind-out-file=$WORK/gw.cg")
RUST_LOG=warn,tollgate::server=info taskset -c "$GW_CORE" "${VG[@]}" "$BIN" serve --config "$WORK/bench.yaml" 2>"$WORK/gw.log" &
GW_PID=$!
# Under valgrind the gateway takes a while to start.
[ -n "${CALLGRIND:-}" ] && for _ in $(seq 1 300); do grep -q " addr=" "$WORK/gw.log" && break; sleep 0.2; done
GW=$(wait_addr "$WORK/gw.log" " addr")
sleep 0.5
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
IDLE_RSS=$(rss $GW_PID)

INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}'
session() { # url key -> session id
  curl -s -D - -o /dev/null -X POST "$1" -H "authorization: Bearer $2" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' -d "$INIT" | awk 'tolower($1)=="mcp-session-id:" {print $2}' | tr -d '\r'
}
D_SID=$(session "http://$MOCK/mcp" upstream-key)
G_SID=$(session "http://$GW/mcp/agent" "$KEY")
W_SID=$(session "http://$GW/mcp/wide" "$KEY")
DW_SID=$(session "http://$MOCK/mcp?tools=200" upstream-key)
[ -n "$G_SID" ] && [ -n "$W_SID" ] || { echo "no gateway session" >&2; cat "$WORK/gw.log" >&2; exit 1; }

call() { printf '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"%s","arguments":{"text":"a benchmark argument of a few words"}}}' "$1"; }
call echo >"$WORK/direct.json"
call mock__echo >"$WORK/gw.json"
printf '{"jsonrpc":"2.0","id":8,"method":"tools/list"}' >"$WORK/list.json"

load() { # url bodyfile key session extra-args... -> json file path
  local out=$WORK/$RANDOM.json
  taskset -c "$LOAD_CORE" oha --no-tui --output-format json -m POST -H "content-type: application/json" \
    -H "accept: application/json, text/event-stream" -H "authorization: Bearer $3" -H "mcp-session-id: $4" \
    -D "$2" "${@:5}" "$1" >"$out"
  echo "$out"
}
ms() { jq -r "$2 * 1000 | . * 1000 | round / 1000" "$1"; }
check() { # all 200 and no JSON-RPC error in a sample
  local ok total
  ok=$(jq -r '.statusCodeDistribution["200"] // 0' "$1"); total=$(jq -r '[.statusCodeDistribution[]] | add // 0' "$1")
  [ "$ok" = "$total" ] || { echo "non-200 answers: $(jq -c .statusCodeDistribution "$1")" >&2; exit 1; }
}
out=$(curl -s -X POST "http://$GW/mcp/agent" -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
  -H "mcp-session-id: $G_SID" -d @"$WORK/gw.json")
echo "$out" | grep -q '"result"' || { echo "tool call through the gateway failed: $out" >&2; exit 1; }

if [ -n "${CALLGRIND:-}" ]; then
  NREQ=${REQUESTS:-300}
  TOP=${TOP:-25}
  DUMPS=0
  # counted NAME URL BODY SID: k instructions per request of the whole
  # process (sets K_NAME) and the annotate output in $WORK/NAME.annotate.
  counted() {
    local name=$1 out cg total
    load "$2" "$3" "$KEY" "$4" -n 50 -c 8 >/dev/null
    sleep 1
    callgrind_control -z "$GW_PID" >/dev/null
    out=$(load "$2" "$3" "$KEY" "$4" -n "$NREQ" -c 8)
    check "$out"
    sleep 1
    callgrind_control -d "$GW_PID" >/dev/null
    sleep 0.5
    DUMPS=$((DUMPS + 1))
    cg=$WORK/gw.cg.$DUMPS
    callgrind_annotate --inclusive=yes --threshold=100 "$cg" >"$WORK/$name.annotate" 2>/dev/null || true
    [ -n "${KEEP_PROFILE:-}" ] && cp "$WORK/$name.annotate" "$KEEP_PROFILE/mcp-$name.annotate"
    total=$(awk '/^(summary|totals):/ {t=$2} END {print t}' "$cg")
    printf -v "K_$name" %.1f "$(awk "BEGIN {print $total / $NREQ / 1000}")"
  }
  # top NAME: the TOP largest inclusive entries, k instructions per request.
  top() {
    grep -E '^ *[0-9,]+ .*\) +[^ ]' "$WORK/$1.annotate" | head -"$TOP" |
      awk -v n="$NREQ" '{c=$1; gsub(",", "", c); $1=""; $2=""; sub(/^ +/, ""); sub(/^[^:]*:/, "");
        if (length($0) > 110) $0 = substr($0, 1, 110) "…"; gsub(/\|/, "\\|"); printf "| %.1f | `%s` |\n", c / n / 1000, $0}'
  }
  counted call "http://$GW/mcp/agent" "$WORK/gw.json" "$G_SID"
  counted list "http://$GW/mcp/wide" "$WORK/list.json" "$W_SID"
  echo
  echo "## $(date -u +%Y-%m-%dT%H:%MZ) — MCP requests in instructions (callgrind, $NREQ requests after 50, GUARD=$GUARD, binary ${TOLLGATE_BIN:-release})"
  echo
  echo "Whole process per request: tools/call **$K_call k**, tools/list of 200 tools **$K_list k**."
  for m in call list; do
    echo
    echo "tools/$m, inclusive top $TOP (k instructions per request):"
    echo
    echo "| k | function |"
    echo "| --- | --- |"
    top "$m"
  done
  exit 0
fi

load "http://$MOCK/mcp" "$WORK/direct.json" upstream-key "$D_SID" -z 2s -c 32 >/dev/null
load "http://$GW/mcp/agent" "$WORK/gw.json" "$KEY" "$G_SID" -z 2s -c 32 >/dev/null
D_FIX=$(load "http://$MOCK/mcp" "$WORK/direct.json" upstream-key "$D_SID" -z "$DURATION" -c 32 -q "$RATE" --latency-correction)
G_FIX=$(load "http://$GW/mcp/agent" "$WORK/gw.json" "$KEY" "$G_SID" -z "$DURATION" -c 32 -q "$RATE" --latency-correction)
D_LIST=$(load "http://$MOCK/mcp?tools=200" "$WORK/list.json" upstream-key "$DW_SID" -z "$DURATION" -c 8 -q "$LIST_RATE" --latency-correction)
G_LIST=$(load "http://$GW/mcp/wide" "$WORK/list.json" "$KEY" "$W_SID" -z "$DURATION" -c 8 -q "$LIST_RATE" --latency-correction)
for f in "$G_FIX" "$G_LIST"; do check "$f"; done
LOAD_RSS=$(rss $GW_PID)

# Many sessions: each initialized (the gateway keeps nothing per session),
# then one call per session, all at once.
BEFORE_SESSIONS=$(rss $GW_PID)
seq 1 "$SESSIONS" | xargs -P 64 -I{} sh -c "curl -s -D - -o /dev/null -X POST 'http://$GW/mcp/agent' -H 'authorization: Bearer $KEY' -H 'content-type: application/json' -d '$INIT' | awk 'tolower(\$1)==\"mcp-session-id:\" {print \$2}' | tr -d '\r'" >"$WORK/sids"
N_SIDS=$(grep -c . "$WORK/sids" || true)
python3 - "$GW" "$KEY" "$WORK/sids" "$WORK/gw.json" <<'PY'
import sys, threading, http.client
gw, key, sids, body = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().split(), open(sys.argv[4]).read()
host, port = gw.rsplit(":", 1)
conns, bad = [], []
for s in sids:
    c = http.client.HTTPConnection(host, int(port), timeout=60); c.connect(); conns.append((c, s))
def go(c, s):
    c.request("POST", "/mcp/agent", body, {"authorization": "Bearer " + key, "content-type": "application/json", "mcp-session-id": s})
    r = c.getresponse(); data = r.read()
    if r.status != 200 or b'"result"' not in data: bad.append(r.status)
ts = [threading.Thread(target=go, args=cs) for cs in conns]
[t.start() for t in ts]; [t.join() for t in ts]
assert not bad, f"{len(bad)} failed calls: {bad[:5]}"
PY
SESSIONS_RSS=$(rss $GW_PID)

d50=$(ms "$D_FIX" .latencyPercentiles.p50); g50=$(ms "$G_FIX" .latencyPercentiles.p50)
d99=$(ms "$D_FIX" .latencyPercentiles.p99); g99=$(ms "$G_FIX" .latencyPercentiles.p99)
l50=$(ms "$G_LIST" .latencyPercentiles.p50); l99=$(ms "$G_LIST" .latencyPercentiles.p99)
dl50=$(ms "$D_LIST" .latencyPercentiles.p50); dl99=$(ms "$D_LIST" .latencyPercentiles.p99)
cat <<MD

## $(date -u +%Y-%m-%dT%H:%MZ) — MCP gateway ($(nproc) cores, gateway on core $GW_CORE, mock + oha on core $LOAD_CORE)

Command: \`bench/mcp.sh\` (DURATION=$DURATION, RATE=$RATE, LIST_RATE=$LIST_RATE, SESSIONS=$SESSIONS, GUARD=$GUARD, binary ${TOLLGATE_BIN:-release}); key auth, tool ACL, ledger on.

| measure | mock direct | through Tollgate | added |
| --- | --- | --- | --- |
| tools/call p50 at $RATE req/s (ms) | $d50 | $g50 | $(awk "BEGIN {printf \"%.3f\", $g50-$d50}") |
| tools/call p99 at $RATE req/s (ms) | $d99 | $g99 | $(awk "BEGIN {printf \"%.3f\", $g99-$d99}") |
| tools/list, 200 tools, p50 at $LIST_RATE req/s (ms) | $dl50 | $l50 | $(awk "BEGIN {printf \"%.3f\", $l50-$dl50}") |
| tools/list, 200 tools, p99 at $LIST_RATE req/s (ms) | $dl99 | $l99 | $(awk "BEGIN {printf \"%.3f\", $l99-$dl99}") |

Gateway resident memory: idle $IDLE_RSS MB, after the load runs $LOAD_RSS MB; $N_SIDS sessions opened and one call each on $N_SIDS concurrent connections: $BEFORE_SESSIONS → $SESSIONS_RSS MB.
MD
