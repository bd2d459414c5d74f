#!/usr/bin/env bash
# Streamed chat through the gateway's per-event path (issue 23: each event
# parsed once and handed to usage accounting, the output guardrail and the
# cache fill): saturation requests/s of streamed chats (the mock streams
# WORDS words at full speed, each its own event) through two models on
# one gateway, interleaved rounds:
#   - plain: usage accounting only;
#   - guard: and an output guardrail policy that masks (every built-in).
# (The cache fill runs only on a miss; a fixed load body would hit.)
# With BASE_BIN, the same rounds run against that binary in the same
# sitting, interleaved, and the table gives new / base per model.
# Gateway on core 0, mock upstream and oha on core 1.
#
# Env: DURATION (per round, default 5s), ROUNDS (3), CONNS (32), WORDS (64),
# TOLLGATE_BIN (default a fresh release build), BASE_BIN (optional).
# SHAPE=anthropic: the callers speak Anthropic Messages (`/v1/messages`),
# so each event is also translated into Anthropic's events (the default,
# openai, calls `/v1/chat/completions`).
# CALLGRIND=1: instead of timed rounds, each binary's gateway runs under
# callgrind and the table gives instructions of the whole process per
# streamed request (REQUESTS, default 300, after 50 warm-up; exact and
# repeatable, unlike timed rounds on a busy machine).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
WORDS=${WORDS:-64}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

# shellcheck source=bench/lib.sh
source bench/lib.sh

KEY=tg-bench-key
HASH=$(printf %s "$KEY" | "$BIN" keys hash)

config() {
  cat <<YAML
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  watch_config: false
ledger:
  enabled: false
providers:
  - name: up
    kind: openai
    base_url: http://$MOCK/v1
    api_key: upstream-key
models:
  - { name: plain, provider: up, upstream_model: "mock-chat?tokens=$WORDS" }
  - { name: guard, provider: up, upstream_model: "mock-chat?tokens=$WORDS" }
keys:
  - { id: bench, hash: $HASH, principal: bench, models: ["*"] }
guardrails:
  policies:
    - name: out
      direction: output
      applies_to: { models: [guard] }
      action: mask
      detectors: { builtins: [email, phone, credit_card, ssn, iban, ip_address, secret] }
YAML
}

VG=()
TRIES=100
# A debug build under valgrind takes far longer than 10 s to listen.
[ -n "${CALLGRIND:-}" ] && TRIES=1200
# The gateways are stopped with the rest (lib.sh's cleanup waits for them).
trap 'kill "${PID_new:-}" "${PID_base:-}" 2>/dev/null || true; cleanup' EXIT
start() { # binary name -> sets addr var GW_<name>
  config >"$WORK/$2.yaml"
  [ -n "${CALLGRIND:-}" ] && VG=(valgrind --tool=callgrind "--callgrind-out-file=$WORK/$2.cg")
  RUST_LOG=warn,tollgate::server=info taskset -c "$GW_CORE" "${VG[@]}" "$1" serve --config "$WORK/$2.yaml" 2>"$WORK/$2.log" &
  eval "PID_$2=$!"
  local addr
  addr=$(wait_addr "$WORK/$2.log" " addr" "$TRIES")
  eval "GW_$2=$addr"
}

BODY='{"model":"MODEL","stream":true,"messages":[{"role":"user","content":"Say hello to the benchmark."}]}'
ROUTE=/v1/chat/completions
case ${SHAPE:-openai} in
  openai) ;;
  anthropic)
    BODY='{"model":"MODEL","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"Say hello to the benchmark."}]}'
    ROUTE=/v1/messages ;;
  *) echo "SHAPE must be openai or anthropic" >&2; exit 1 ;;
esac
for m in plain guard; do printf %s "${BODY/MODEL/$m}" >"$WORK/$m.json"; done

rps() { # addr model -> requests/s
  local out=$WORK/$RANDOM.json
  taskset -c "$LOAD_CORE" oha --no-tui --output-format json -m POST -H "content-type: application/json" \
    -H "authorization: Bearer $KEY" -D "$WORK/$2.json" -z "$DURATION" -c "$CONNS" "http://$1$ROUTE" >"$out"
  local ok total
  ok=$(jq -r '.statusCodeDistribution["200"] // 0' "$out")
  total=$(jq -r '[.statusCodeDistribution[]] | add // 0' "$out")
  [ "$ok" = "$total" ] || { echo "non-200: $(jq -c .statusCodeDistribution "$out")" >&2; exit 1; }
  jq -r ".summary.requestsPerSec | round" "$out"
}

BINS=(new); start "$BIN" new
if [ -n "${BASE_BIN:-}" ]; then BINS+=(base); start "$BASE_BIN" base; fi

if [ -n "${CALLGRIND:-}" ]; then
  N=${REQUESTS:-300}
  instr() { # build model -> k instructions per request
    local addr pid
    eval "addr=\$GW_$1; pid=\$PID_$1"
    taskset -c "$LOAD_CORE" oha --no-tui -m POST -H "content-type: application/json" -H "authorization: Bearer $KEY" \
      -D "$WORK/$2.json" -n 50 -c 8 "http://$addr$ROUTE" >/dev/null
    sleep 1
    callgrind_control -z "$pid" >/dev/null
    taskset -c "$LOAD_CORE" oha --no-tui -m POST -H "content-type: application/json" -H "authorization: Bearer $KEY" \
      -D "$WORK/$2.json" -n "$N" -c 8 "http://$addr$ROUTE" >/dev/null
    sleep 1
    callgrind_control -d "$pid" >/dev/null
    sleep 0.5
    awk '/^(summary|totals):/ {t=$2} END {print t}' $(ls -t "$WORK/$1".cg* | head -1) | awk -v n="$N" '{printf "%.1f", $1 / n / 1000}'
  }
  echo
  echo "## $(date -u +%Y-%m-%dT%H:%MZ) — streamed chat in instructions (callgrind), $WORDS events per answer, ${SHAPE:-openai} callers"
  echo
  echo "| model | $(printf '%s (k instructions per request) | ' "${BINS[@]}")"
  echo "| --- | $(printf -- '--- | %.0s' "${BINS[@]}")"
  for m in plain guard; do
    row="| $m |"
    for b in "${BINS[@]}"; do row="$row $(instr "$b" "$m") |"; done
    echo "$row"
  done
  exit 0
fi
# shellcheck disable=SC2154
for b in "${BINS[@]}"; do eval "addr=\$GW_$b"; for m in plain guard; do rps "$addr" "$m" >/dev/null; done; done

declare -A runs
for _ in $(seq 1 "$ROUNDS"); do
  for m in plain guard; do
    for b in "${BINS[@]}"; do
      eval "addr=\$GW_$b"
      runs[$b.$m]="${runs[$b.$m]:-} $(rps "$addr" "$m")"
    done
  done
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo
echo "## $(date -u +%Y-%m-%dT%H:%MZ) — streamed chat, $WORDS events per answer, ${SHAPE:-openai} callers, $ROUNDS interleaved $DURATION rounds, $CONNS connections"
echo
echo "| model | build | requests/s per round | median | new / base |"
echo "| --- | --- | --- | --- | --- |"
for m in plain guard; do
  # shellcheck disable=SC2086
  n=$(med ${runs[new.$m]})
  ratio="—"
  if [ -n "${BASE_BIN:-}" ]; then
    # shellcheck disable=SC2086
    bm=$(med ${runs[base.$m]})
    ratio=$(awk "BEGIN {printf \"%.3f\", $n/$bm}")
    echo "| $m | base | ${runs[base.$m]} | $(printf %.0f "$bm") | |"
  fi
  echo "| $m | new | ${runs[new.$m]} | $(printf %.0f "$n") | $ratio |"
done
