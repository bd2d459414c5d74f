#!/usr/bin/env bash
# Soak (issue 28): DURATION at RATE requests/s of mixed traffic, open loop,
# through one gateway with every policy on (bench_policy_yaml in lib.sh:
# RS256 JWT, access rules, five limits, masking PII guardrails on input
# and output, SQLite ledger, audit log) over the mock upstream. One oha
# process per kind of request, in parallel, each at its share of RATE:
#   55 % JSON chat, 25 % streamed chat (20 words at 40 words/s, about half
#   a second each), 15 % embeddings, 3 % a model the caller is not
#   granted (403), 2 % a bad bearer (401: unauthenticated, so no ledger row).
# oha waits for the requests in flight at the deadline (-w), so every
# request sent is answered and counted. The gateway's resident memory
# (VmRSS) is sampled every SAMPLE seconds; at the end the ledger's rows
# (sqlite3 on its file) are compared with the authenticated requests sent,
# and the audit log's lines with all requests sent.
# Verdict "flat": the samples of the last WINDOW seconds stay within
# FLAT_MB of each other. Gateway on GW_CORE, mock, oha and the JWKS server
# on LOAD_CORE. Exits non-zero when a request errs, a status is not the
# expected one, or a count differs.
#
# The ledger and the audit log grow by about a gigabyte in 30 minutes: the
# work directory goes to /dev/shm (RAM) when it exists and TMPDIR is unset.
# Needs python3, node, sqlite3, oha and jq.
#
# Env: DURATION (30m; oha syntax), RATE (1000), SAMPLE (30 s), WINDOW (600 s),
# FLAT_MB (5), KINDS (all; e.g. chat,stream), AUDIT=false (no audit log),
# TOLLGATE_BIN (default a fresh release build), GW_CORE (0),
# LOAD_CORE (1). SMOKE=1: 5 s at 20 requests/s (at least one a second of
# each kind), a sample a second, the last 3 s judged but not failed on (a
# check that the script works, also with a debug build; its figures mean
# nothing).
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  DURATION=${DURATION:-5s}; RATE=${RATE:-20}; SAMPLE=${SAMPLE:-1}; WINDOW=${WINDOW:-3}
fi
DURATION=${DURATION:-30m}
RATE=${RATE:-1000}
SAMPLE=${SAMPLE:-30}
WINDOW=${WINDOW:-600}
FLAT_MB=${FLAT_MB:-5}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
MAX_CONCURRENT=20000
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null; }
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

# shellcheck source=bench/lib.sh
source bench/lib.sh

secs() { # oha duration (30m, 90s, 1h) -> seconds
  case $1 in
    *h) echo $((${1%h} * 3600)) ;; *m) echo $((${1%m} * 60)) ;; *s) echo "${1%s}" ;; *) echo "$1" ;;
  esac
}
TOTAL_SECS=$(secs "$DURATION")

KEY=tg-bench-key
HASH=$(printf %s "$KEY" | "$BIN" keys hash)
bench_jwt "{\"tenant\":\"acme\",\"exp\":$(($(date +%s) + TOTAL_SECS + 3600))}"
DB=$WORK/soak.db
bench_policy_yaml "$DB" "tokens=20&tokens_per_sec=40" >"$WORK/soak.yaml"

RUST_LOG=warn,tollgate::server=info taskset -c "$GW_CORE" "$BIN" serve --config "$WORK/soak.yaml" 2>"$WORK/gw.log" &
GW_PID=$!
GW=http://$(wait_addr "$WORK/gw.log" " addr")
ADMIN=http://$(wait_addr "$WORK/gw.log" "admin_addr")

msg='"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write to jane.doe@example.com about the soak, briefly."}]'
printf '{"model":"chat",%s,"max_tokens":32}' "$msg" >"$WORK/chat.json"
printf '{"model":"stream","stream":true,"stream_options":{"include_usage":true},%s}' "$msg" >"$WORK/stream.json"
printf '{"model":"embed","input":["the soak measures memory over time","and the ledger count"]}' >"$WORK/embed.json"
printf '{"model":"secret",%s}' "$msg" >"$WORK/secret.json"

# kind path body token expected-status share% conns
MIX=(
  "chat /v1/chat/completions chat.json jwt 200 55 64"
  "stream /v1/chat/completions stream.json jwt 200 25 256"
  "embed /v1/embeddings embed.json jwt 200 15 32"
  "forbidden /v1/chat/completions secret.json jwt 403 3 8"
  "unauth /v1/chat/completions chat.json bad 401 2 8"
)
# KINDS=chat,stream: only those kinds, each still at its share of RATE (to
# find which kind of request a growth comes with).
if [ -n "${KINDS:-}" ]; then
  KEPT=()
  for m in "${MIX[@]}"; do [[ ",$KINDS," == *",${m%% *},"* ]] && KEPT+=("$m"); done
  MIX=("${KEPT[@]}")
fi
for m in "${MIX[@]}"; do
  read -r kind path body tok status share conns <<<"$m"
  code=$(curl -s -o "$WORK/first-$kind" -w '%{http_code}' -H 'content-type: application/json' \
    -H "authorization: Bearer $([ "$tok" = jwt ] && echo "$JWT" || echo tg-not-a-key)" -d @"$WORK/$body" "$GW$path")
  [ "$code" = "$status" ] || { echo "$kind: first request answered $code, expected $status" >&2; cat "$WORK/first-$kind" "$WORK/gw.log" >&2; exit 1; }
done
sleep 1
ROWS0=$(ledger_rows "$DB")
LINES0=$({ cat "$DB.audit.jsonl" 2>/dev/null || true; } | wc -l)
IDLE=$(rss $GW_PID)

# The samples: seconds since the load began, VmRSS in MB.
(
  t0=$SECONDS
  while kill -0 "$GW_PID" 2>/dev/null; do
    echo "$((SECONDS - t0)) $(rss $GW_PID)"
    sleep "$SAMPLE"
  done
) >"$WORK/samples" 2>/dev/null &
SAMPLER=$!

START=$(date -u +%Y-%m-%dT%H:%MZ)
OHA_PIDS=()
for m in "${MIX[@]}"; do
  read -r kind path body tok status share conns <<<"$m"
  q=$((RATE * share / 100)); [ "$q" -ge 1 ] || q=1
  taskset -c "$LOAD_CORE" oha --no-tui --output-format json -m POST -H "content-type: application/json" \
    -H "authorization: Bearer $([ "$tok" = jwt ] && echo "$JWT" || echo tg-not-a-key)" -D "$WORK/$body" \
    -q "$q" -z "$DURATION" -w -c "$conns" "$GW$path" >"$WORK/oha-$kind.json" 2>"$WORK/oha-$kind.err" &
  OHA_PIDS+=($!)
done
for p in "${OHA_PIDS[@]}"; do wait "$p" || echo "oha (pid $p) exited with $?" >&2; done
sleep $((SAMPLE < 5 ? SAMPLE : 5))
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
PEAK=$(hwm $GW_PID)
LAST_RSS=$(rss $GW_PID)

# The writers flush every 100-200 ms; wait until the counts stop moving.
ROWS=$(($(ledger_rows "$DB") - ROWS0))
LINES=$(($({ cat "$DB.audit.jsonl" 2>/dev/null || true; } | wc -l) - LINES0))
DROPPED=$(curl -s "$ADMIN/metrics" | awk '/^tollgate_(ledger|audit)_dropped_total/ {s += $2} END {print s + 0}')

FAIL=0
SENT=0; AUTHED=0; ROWS_TABLE=""
for m in "${MIX[@]}"; do
  read -r kind path body tok status share conns <<<"$m"
  f=$WORK/oha-$kind.json
  n=$(jq -r '[.statusCodeDistribution[]] | add // 0' "$f")
  ok=$(jq -r ".statusCodeDistribution[\"$status\"] // 0" "$f")
  errs=$(jq -r '[.errorDistribution[]?] | add // 0' "$f")
  SENT=$((SENT + n + errs))
  [ "$tok" = jwt ] && AUTHED=$((AUTHED + n + errs))
  [ "$ok" = "$n" ] && [ "$errs" = 0 ] && [ "$n" -gt 0 ] || {
    FAIL=1
    echo "$kind: $(jq -c '.statusCodeDistribution' "$f") errors $(jq -c '.errorDistribution' "$f")" >&2
  }
  ROWS_TABLE+="| $kind | $(jq -r '.summary.requestsPerSec | round' "$f") | $n | $status: $ok | $errs | $(jq -r '.latencyPercentiles.p50 * 1000000 | round / 1000' "$f") | $(jq -r '.latencyPercentiles.p99 * 1000000 | round / 1000' "$f") |"$'\n'
done
[ "$ROWS" = "$AUTHED" ] || { FAIL=1; echo "ledger rows $ROWS, authenticated requests sent $AUTHED" >&2; }
[ "${AUDIT:-true}" = false ] || [ "$LINES" = "$SENT" ] || { FAIL=1; echo "audit lines $LINES, requests sent $SENT" >&2; }
WARNS=$(grep -c -E ' (WARN|ERROR) ' "$WORK/gw.log" || true)

# The verdict over the last WINDOW seconds of samples.
# The first sample (t = 0) is the idle one, before the load: left out.
read -r FIRST LAST MAXS WMIN WMAX NS < <(awk -v w="$WINDOW" '
  NR > 1 { n++; t[n] = $1; r[n] = $2; if ($2 > max) max = $2 }
  END {
    if (n == 0) { print "- - - - - 0"; exit }
    wmin = 1e9; wmax = 0
    for (i = 1; i <= n; i++) if (t[i] >= t[n] - w) { if (r[i] < wmin) wmin = r[i]; if (r[i] > wmax) wmax = r[i] }
    print r[1], r[n], max, wmin, wmax, n
  }' "$WORK/samples")
# About ten points of the series, so a trend can be told from noise.
SERIES=$(awk 'NR > 1 { n++; t[n] = $1; r[n] = $2 }
  END { s = int(n / 10); if (s < 1) s = 1; out = ""
        for (i = 1; i <= n; i += s) out = out (out ? ", " : "") t[i] ":" r[i]
        if ((n - 1) % s) out = out ", " t[n] ":" r[n]; print out }' "$WORK/samples")
VERDICT=$(awk -v a="$WMIN" -v b="$WMAX" -v f="$FLAT_MB" 'BEGIN { print (b - a <= f) ? "flat" : "not flat" }')
[ "$VERDICT" = flat ] || [ "$SMOKE" = 1 ] || FAIL=1

cat <<MD

## $START — soak, every policy on ($(nproc) cores; gateway on core $GW_CORE, mock + oha on core $LOAD_CORE; load average at the end $(cut -d' ' -f1-3 /proc/loadavg))

Command: \`bench/soak.sh\` (DURATION=$DURATION, RATE=$RATE,$([ -n "${KINDS:-}" ] && echo " KINDS=$KINDS,") SAMPLE=$SAMPLE s, WINDOW=$WINDOW s, FLAT_MB=$FLAT_MB$([ "$SMOKE" = 1 ] && echo ", SMOKE")); Tollgate $("$BIN" --version 2>/dev/null | awk '{print $2}') ($BIN).

| kind | req/s | answered | expected status: count | errors | p50 ms | p99 ms |
| --- | --- | --- | --- | --- | --- | --- |
${ROWS_TABLE%$'\n'}

Requests sent $SENT ($AUTHED authenticated); ledger rows $ROWS, audit lines $LINES; records dropped (ledger + audit metrics) $DROPPED; WARN/ERROR lines in the gateway's log $WARNS.
Resident memory (MB): idle $IDLE (after one request of each kind); first sample under load $FIRST, last $LAST, max sampled $MAXS, peak (VmHWM) $PEAK, after the load $LAST_RSS; last ${WINDOW} s between $WMIN and $WMAX: **$VERDICT** ($NS samples, every $SAMPLE s).
RSS over time (s:MB, about ten points): $SERIES.
MD
if [ -n "${KEEP_SAMPLES:-}" ]; then cp "$WORK/samples" "$KEEP_SAMPLES"; fi
exit $FAIL
