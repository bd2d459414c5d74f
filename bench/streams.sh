#!/usr/bin/env bash
# Resident memory with N concurrent open streams (issue 28: ≤ 200 MB with
# 10,000), every policy on (bench_policy_yaml in lib.sh: RS256 JWT, access
# rules, five limits with the in-flight cap above N, masking PII
# guardrails on input and output, SQLite ledger, audit log). The mock
# upstream streams WORDS words at TPS words/s (60 at 1/s: a minute per
# stream, an event a second), so all N stay open together; oha opens the
# N streamed chats at once (-c N -n N). Every second the gateway's VmRSS,
# VmHWM, open file descriptors, connections to the mock and the streams in
# flight are sampled; the streams in flight are the `concurrent` limit's
# gauge, read from `GET /v1/me/limits` (which charges nothing), so a
# stream counts from its admission until its last byte is sent.
# Reports resident memory idle, warm (one request of each kind), with all
# N open (median of the samples while all are open), peak and after the
# streams ended; bytes per stream ((open - warm) / N); and checks that
# every stream answered 200 and ran to its end: N ledger rows of the
# stream model with status 200, no error, and the upstream's usage of
# WORDS completion tokens (a cut stream has the gateway's estimate).
#
# File descriptors: over HTTP/1.1 the gateway holds two sockets per
# stream (caller and upstream), so it needs a limit of 2 N + 256; the
# script raises its soft limit (inherited by the mock, the gateway and
# oha), and the hard one too when it runs as root with CAP_SYS_RESOURCE
# (`ulimit -n`). If the limit stays below, it stops and says so: lower N,
# or CLIENT_HTTP=2 (the callers multiplex their streams over HTTP/2,
# STREAMS_PER_CONN per connection, and the gateway needs N + 256: one
# upstream HTTP/1.1 connection per stream). Ephemeral ports: 2 N of the
# local range (net.ipv4.ip_local_port_range) are used at once.
#
# Env: N (10000), WORDS (60), TPS (1), CLIENT_HTTP (1 or 2),
# STREAMS_PER_CONN (100), UP_HTTP (auto: HTTP/1.1 to the mock; http2: the gateway calls the
# mock over one HTTP/2 connection; see bench_policy_yaml),
# TOLLGATE_BIN (default a fresh release build),
# GW_CORE (0), LOAD_CORE (1). SMOKE=1: N=50 streams of 8 words at 2/s (a
# check that the script works; its figures mean nothing).
# Needs python3, node, sqlite3, oha, jq and ss.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then N=${N:-50}; WORDS=${WORDS:-8}; TPS=${TPS:-2}; fi
N=${N:-10000}
WORDS=${WORDS:-60}
TPS=${TPS:-1}
CLIENT_HTTP=${CLIENT_HTTP:-1}
STREAMS_PER_CONN=${STREAMS_PER_CONN:-100}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
MAX_CONCURRENT=$((N + 1000))
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null; }

if [ "$CLIENT_HTTP" = 2 ]; then NEED=$((N + 256)); else NEED=$((2 * N + 256)); fi
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$NEED" ]; then ulimit -Hn "$NEED" 2>/dev/null || true; fi
ulimit -Sn "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NEED" ]; then
  echo "open-file limit $(ulimit -n) (hard $(ulimit -Hn)), the gateway needs $NEED for $N streams over HTTP/$CLIENT_HTTP;" \
    "raise the hard limit (root with CAP_SYS_RESOURCE), lower N, or CLIENT_HTTP=2" >&2
  exit 1
fi

# shellcheck source=bench/lib.sh
source bench/lib.sh

KEY=tg-bench-key
HASH=$(printf %s "$KEY" | "$BIN" keys hash)
bench_jwt '{"tenant":"acme"}'
DB=$WORK/streams.db
bench_policy_yaml "$DB" "tokens=$WORDS&tokens_per_sec=$TPS" >"$WORK/streams.yaml"

RUST_LOG=warn,tollgate::server=info taskset -c "$GW_CORE" "$BIN" serve --config "$WORK/streams.yaml" 2>"$WORK/gw.log" &
GW_PID=$!
GW=http://$(wait_addr "$WORK/gw.log" " addr")
ADMIN=http://$(wait_addr "$WORK/gw.log" "admin_addr")
sleep 0.5
upstream_conns() { { ss -Htn state established "( dport = :${MOCK##*:} )" 2>/dev/null || true; } | wc -l; }
in_flight() {
  curl -s -m 5 -H "authorization: Bearer $JWT" "$GW/v1/me/limits" \
    | jq -r '[.data[] | select(.cap == "concurrent") | .used] | max // -1' 2>/dev/null || echo -1
}
IDLE=$(rss $GW_PID)

msg='"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write to jane.doe@example.com about the streams, briefly."}]'
printf '{"model":"stream","stream":true,"stream_options":{"include_usage":true},%s}' "$msg" >"$WORK/stream.json"
printf '{"model":"chat",%s,"max_tokens":32}' "$msg" >"$WORK/chat.json"
# The warm-up stream goes to the unpaced chat model: the same stream path
# without the minute.
printf '{"model":"chat","stream":true,"stream_options":{"include_usage":true},%s}' "$msg" >"$WORK/warm.json"
for body in chat warm; do
  curl -sf -o "$WORK/first-$body" -H 'content-type: application/json' -H "authorization: Bearer $JWT" \
    -d @"$WORK/$body.json" "$GW/v1/chat/completions" || { echo "first $body request failed" >&2; cat "$WORK/gw.log" >&2; exit 1; }
done
grep -q '^data: \[DONE\]' "$WORK/first-warm" || { echo "the first stream has no [DONE]" >&2; exit 1; }
sleep 1
WARM=$(rss $GW_PID)
BASE_CONNS=$(upstream_conns)
ROWS0=$(ledger_rows "$DB")

# Samples: seconds since the streams began, VmRSS and VmHWM (MB), open
# fds, connections to the mock, streams in flight.
(
  t0=$SECONDS
  while kill -0 "$GW_PID" 2>/dev/null; do
    fds=$(find "/proc/$GW_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    echo "$((SECONDS - t0)) $(rss $GW_PID) $(hwm $GW_PID) $fds $(upstream_conns) $(in_flight)"
    sleep 1
  done
) >"$WORK/samples" 2>/dev/null &
SAMPLER=$!

if [ "$CLIENT_HTTP" = 2 ]; then
  CONNS=$(((N + STREAMS_PER_CONN - 1) / STREAMS_PER_CONN)); PAR=(--http2 -p "$STREAMS_PER_CONN")
else
  CONNS=$N; PAR=()
fi
START=$(date -u +%Y-%m-%dT%H:%MZ)
T0=$SECONDS
taskset -c "$LOAD_CORE" oha --no-tui --output-format json -m POST -H "content-type: application/json" \
  -H "authorization: Bearer $JWT" -D "$WORK/stream.json" -n "$N" -c "$CONNS" "${PAR[@]}" \
  --connect-timeout 60s -t "$((WORDS / TPS + 120))s" "$GW/v1/chat/completions" >"$WORK/oha.json" 2>"$WORK/oha.err" \
  || { echo "oha failed" >&2; cat "$WORK/oha.err" >&2; }
WALL=$((SECONDS - T0))
sleep 2
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
PEAK=$(hwm $GW_PID)
AFTER=$(rss $GW_PID)

ROWS=$(($(ledger_rows "$DB") - ROWS0))
COMPLETE=$(sqlite3 "$DB" "SELECT count(*) FROM usage WHERE seq > (SELECT max(seq) FROM usage) - $ROWS AND requested_model = 'stream'
  AND status = 200 AND error = '' AND tokens_estimated = 0 AND completion_tokens = $WORDS")
OK=$(jq -r '.statusCodeDistribution["200"] // 0' "$WORK/oha.json")
ANSWERED=$(jq -r '[.statusCodeDistribution[]] | add // 0' "$WORK/oha.json")
ERRS=$(jq -r '[.errorDistribution[]?] | add // 0' "$WORK/oha.json")
METRICS=$(curl -s "$ADMIN/metrics")
SHED=$(awk '/^tollgate_requests_shed_total/ {s += $2} END {print s + 0}' <<<"$METRICS")
FDX=$(awk '/^tollgate_fd_exhausted_total/ {s += $2} END {print s + 0}' <<<"$METRICS")
TIMEOUTS=$(awk '/^tollgate_connection_timeouts_total/ {s += $2} END {print s + 0}' <<<"$METRICS")
WARNS=$(grep -c -E ' (WARN|ERROR) ' "$WORK/gw.log" || true)

# While all N are open: the samples with N streams open (median RSS,
# the upper one of an even count); the most open and when all were.
MAXOPEN=$(awk 'BEGIN { m = 0 } $6 > m { m = $6 } END { print m }' "$WORK/samples")
CONNS_MAX=$(awk 'BEGIN { m = 0 } $5 > m { m = $5 } END { print m }' "$WORK/samples")
FDS_MAX=$(awk 'BEGIN { m = 0 } $4 > m { m = $4 } END { print m }' "$WORK/samples")
T_ALL=$(sort -n "$WORK/samples" | awk -v n="$N" '$6 >= n { print $1; exit }')
awk -v n="$N" '$6 >= n { print $2 }' "$WORK/samples" | sort -n >"$WORK/open-rss"
NOPEN=$(wc -l <"$WORK/open-rss")
if [ "$NOPEN" -gt 0 ]; then
  OPEN_MED=$(sed -n "$(((NOPEN + 1) / 2))p" "$WORK/open-rss"); OPEN_MAX=$(tail -1 "$WORK/open-rss")
else
  # Never all open at once (a slow ramp or failures): the sample with the most open.
  OPEN_MED=$(sort -k6,6n -k2,2n "$WORK/samples" | tail -1 | awk '{print $2}'); OPEN_MAX=$OPEN_MED; T_ALL=-
fi
PER=$(awk -v a="$OPEN_MED" -v b="$WARM" -v n="$MAXOPEN" 'BEGIN { printf "%.1f", (n > 0) ? (a - b) * 1024 / n : 0 }')
TARGET=$(awk -v p="$PEAK" 'BEGIN { print (p <= 200) ? "✓" : "✗" }')

cat <<MD

## $START — $N concurrent streams, every policy on ($(nproc) cores; gateway on core $GW_CORE, mock + oha on core $LOAD_CORE; load average at the end $(cut -d' ' -f1-3 /proc/loadavg))

Command: \`bench/streams.sh\` (N=$N, WORDS=$WORDS at TPS=$TPS, callers over HTTP/$CLIENT_HTTP$([ "$CLIENT_HTTP" = 2 ] && echo ", $STREAMS_PER_CONN streams per connection, $CONNS connections"), upstream ${UP_HTTP:-auto}$([ "$SMOKE" = 1 ] && echo ", SMOKE"); open-file limit $(ulimit -n)); Tollgate $("$BIN" --version 2>/dev/null | awk '{print $2}') ($BIN).

| | value |
| --- | --- |
| streams answered 200 / sent; connection errors | $OK / $N; $ERRS |
| ran to the end (ledger: status 200, no error, $WORDS upstream completion tokens) | $COMPLETE |
| most in flight at once; all $N in flight after | $MAXOPEN; ${T_ALL} s (all done in $WALL s) |
| gateway's connections to the mock at most ($BASE_CONNS idle before) | $CONNS_MAX |
| gateway's open files at most | $FDS_MAX |
| RSS idle / warm (one chat and one stream) | $IDLE / $WARM MB |
| RSS with all open: median of $NOPEN samples (max) | **$OPEN_MED MB** ($OPEN_MAX) |
| peak (VmHWM) / after the streams ended | **$PEAK MB** $TARGET ≤ 200 / $AFTER MB |
| per open stream ((median - warm) / most open) | $PER KB |
| shed (503), fd exhausted, connection timeouts, WARN/ERROR log lines | $SHED, $FDX, $TIMEOUTS, $WARNS |
MD
if [ -n "${KEEP_SAMPLES:-}" ]; then cp "$WORK/samples" "$KEEP_SAMPLES"; fi
grep -E ' (WARN|ERROR) ' "$WORK/gw.log" | head -5 >&2 || true
[ "$OK" = "$N" ] && [ "$ANSWERED" = "$N" ] && [ "$ERRS" = 0 ] && [ "$COMPLETE" = "$N" ] || {
  echo "streams: $(jq -c '.statusCodeDistribution' "$WORK/oha.json") errors $(jq -c '.errorDistribution' "$WORK/oha.json"); complete $COMPLETE of $N" >&2
  echo "the gateway's records of the others (status, error, completion tokens: count):" >&2
  sqlite3 "$DB" "SELECT status, error, completion_tokens, count(*) FROM usage WHERE seq > (SELECT max(seq) FROM usage) - $ROWS
    AND NOT (status = 200 AND error = '' AND tokens_estimated = 0 AND completion_tokens = $WORDS) GROUP BY 1, 2, 3" >&2
  exit 1
}
