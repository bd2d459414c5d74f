#!/usr/bin/env bash
# Tollgate side by side with nginx (issue 28). nginx (Debian's package) is
# both the mock upstream (a fixed 444-byte chat answer; a 20-chunk SSE
# stream of about 5.2 KB with usage and [DONE]) and the plain reverse-proxy
# baseline. The proxy under test (nginx with one worker, or the gateway
# with one Tokio worker) is pinned to GW_CORE; the mock upstream and oha
# share LOAD_CORE. Two gateway configurations, run one after the other:
#   - plain:  API key, SQLite usage ledger, metrics;
#   - policy: every policy on: an RS256 JWT (keys from a local JWKS),
#             access rules by group, five limit rules (requests/s,
#             requests/min, tokens/min, concurrency, cost/day; none
#             reached), a PII input guardrail that masks, the SQLite
#             ledger and the audit log.
# Scenarios: 1 KB JSON chat, the SSE stream, a 100 KB prompt, a virtual
# model whose first target is down (fallback), cache hits (policy only).
# Each reports saturation requests/s (CONNS connections), CPU per request
# of the pinned process (user + system time / requests), added latency at
# RATE requests/s (open loop, latency-corrected) over the upstream called
# directly, and resident memory (idle, after the first request, peak).
#
# CALLGRIND=1: instructions per request by phase instead (see below;
# KEEP_PROFILE=DIR keeps the callgrind_annotate outputs and the raw
# callgrind files, for callgrind_annotate --tree=caller).
# Env: DURATION (per measurement, default 10s), CONNS (64), RATE (1000),
# TOLLGATE_BIN (default a fresh release build), GW_CORE (0), LOAD_CORE (1).
# SMOKE=1: 16 requests per measurement at 4 connections (100 req/s); checks
# that every scenario answers 200 (CI runs it with the debug binary so
# the suite cannot rot; its figures mean nothing).
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then CONNS=4; RATE=100; fi
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
RATE=${RATE:-1000}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# shellcheck source=bench/lib.sh
source bench/lib.sh
NGINX_PIDS=()
cleanup_nginx() { for p in "${NGINX_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; cleanup; }
trap cleanup_nginx EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The upstream's answers: the JSON answer padded to 444 bytes, and 20 chunks.
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
answer = {"id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000,
          "model": "bench-upstream", "choices": [{"index": 0, "message": {"role": "assistant",
          "content": "Hello, benchmark! Here is a short fixed answer."}, "logprobs": None,
          "finish_reason": "stop"}], "usage": {"prompt_tokens": 12, "completion_tokens": 10,
          "total_tokens": 22}, "system_fingerprint": ""}
text = json.dumps(answer, separators=(",", ":"))
answer["system_fingerprint"] = "fp_" + "x" * (444 - len(text) - 3)
text = json.dumps(answer, separators=(",", ":"))
assert len(text) == 444, len(text)
open(f"{work}/answer.json", "w").write(text)
events = []
for i in range(20):
    chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
             "model": "bench-upstream", "system_fingerprint": "fp_bench",
             "choices": [{"index": 0, "delta": {"content": f"word{i:02d} of the streamed answer, "},
                          "logprobs": None, "finish_reason": None}]}
    events.append("data: " + json.dumps(chunk, separators=(",", ":")) + "\n\n")
usage = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
         "model": "bench-upstream", "choices": [],
         "usage": {"prompt_tokens": 12, "completion_tokens": 100, "total_tokens": 112}}
events.append("data: " + json.dumps(usage, separators=(",", ":")) + "\n\n")
events.append("data: [DONE]\n\n")
open(f"{work}/answer.sse", "w").write("".join(events))
# nginx reads at most 4 KB per config token: the stream is returned as
# three variables joined, each a few whole events.
parts = ["".join(events[i:i + 8]) for i in range(0, len(events), 8)]
assert all(len(x) < 4000 for x in parts) and len(parts) == 3
for i, part in enumerate(parts):
    open(f"{work}/answer.sse.{i}", "w").write(part)
# The requests: about 1 KB, and a 100 KB prompt.
def body(model, words, stream=False):
    b = {"model": model, "messages": [{"role": "system", "content": "You are a helpful assistant."},
         {"role": "user", "content": " ".join(f"token{i}" for i in range(words))}], "max_tokens": 64}
    if stream:
        b["stream"] = True
    return json.dumps(b)
for model in ["chat", "vm", "cached"]:
    open(f"{work}/{model}.json", "w").write(body(model, 110))
open(f"{work}/stream.json", "w").write(body("stream", 110, True))
open(f"{work}/big.json", "w").write(body("chat", 12000))
open(f"{work}/direct.json", "w").write(body("bench-upstream", 110))
open(f"{work}/direct-stream.json", "w").write(body("bench-upstream", 110, True))
open(f"{work}/direct-big.json", "w").write(body("bench-upstream", 12000))
PY

UP=$(free_port); PX=$(free_port)
nginx_head() { # name: one worker, no access log, bodies up to 10 MB
  cat <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx-$1.pid;
error_log $WORK/nginx-$1.err warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_max_body_size 10m;
  client_body_buffer_size 256k;
  keepalive_requests 10000000;
CONF
}
{ nginx_head up; cat <<CONF
  server {
    listen 127.0.0.1:$UP;
    location /json/ { default_type application/json; return 200 '$(cat "$WORK/answer.json")'; }
    location /sse/ {
      default_type text/event-stream;
      set \$a '$(cat "$WORK/answer.sse.0")';
      set \$b '$(cat "$WORK/answer.sse.1")';
      set \$c '$(cat "$WORK/answer.sse.2")';
      return 200 "\$a\$b\$c";
    }
  }
}
CONF
} >"$WORK/nginx-up.conf"
{ nginx_head px; cat <<CONF
  upstream up { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$PX;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
CONF
} >"$WORK/nginx-px.conf"
taskset -c "$LOAD_CORE" "$NGINX" -c "$WORK/nginx-up.conf" -e "$WORK/nginx-up.err" 2>>"$WORK/nginx-up.err" &
NGINX_PIDS+=($!)
taskset -c "$GW_CORE" "$NGINX" -c "$WORK/nginx-px.conf" -e "$WORK/nginx-px.err" 2>>"$WORK/nginx-px.err" &
NGINX_PIDS+=($!)
for _ in $(seq 1 50); do
  curl -sf -o /dev/null -X POST "http://127.0.0.1:$PX/json/chat/completions" && break
  sleep 0.1
done
curl -sf -o /dev/null -X POST "http://127.0.0.1:$PX/json/chat/completions" \
  || { echo "nginx did not start" >&2; cat "$WORK"/nginx-*.err >&2; exit 1; }

# JWT for the policy configuration (as bench/load.sh: the test fixture's keys).
KEY=tg-bench-key
HASH=$(printf %s "$KEY" | "$BIN" keys hash)
bench_jwt '{"tenant":"acme"}'
DEAD=$(free_port)

common_yaml() { # ledger file
  cat <<YAML
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  watch_config: false
storage:
  url: sqlite://$WORK/$1.db
providers:
  - { name: json, kind: openai, base_url: "http://127.0.0.1:$UP/json/v1", api_key: upstream-key }
  - { name: sse, kind: openai, base_url: "http://127.0.0.1:$UP/sse/v1", api_key: upstream-key }
  - { name: dead, kind: openai, base_url: "http://127.0.0.1:$DEAD/v1", api_key: upstream-key }
models:
  - { name: chat, provider: json, upstream_model: bench-upstream, price: { input_per_mtok: 1.0, output_per_mtok: 2.0 } }
  - { name: stream, provider: sse, upstream_model: bench-upstream, price: { input_per_mtok: 1.0, output_per_mtok: 2.0 } }
  - { name: down, provider: dead, upstream_model: bench-upstream }
  - { name: cached, provider: json, upstream_model: bench-upstream, cache: { ttl: 10m } }
virtual_models:
  - name: vm
    targets: [{ model: down }, { model: chat, priority: 1 }]
keys:
  - { id: bench, hash: $HASH, principal: bench, models: ["*"] }
YAML
}

{ common_yaml plain; } >"$WORK/plain.yaml"
{ common_yaml policy; cat <<YAML
auth:
  oidc:
    - issuer: https://idp.bench.example
      audiences: [tollgate]
      discovery: false
      jwks_url: http://127.0.0.1:$IDP_PORT/jwks.json
policy:
  rules:
    - { name: bench, groups: [bench], models: ["*"] }
limits:
  rules:
    - { name: rps, match: { groups: [bench] }, per: [principal], requests_per_second: 1000000 }
    - { name: rpm, match: { groups: [bench] }, per: [principal], requests_per_minute: 100000000 }
    - { name: tpm, match: { groups: [bench] }, per: [principal, model], tokens_per_minute: 100000000000 }
    - { name: conc, match: { groups: [bench] }, per: [principal], concurrent: 100000 }
    - { name: cost, match: { groups: [bench] }, per: [tenant], cost_per_day: 100000000.0 }
guardrails:
  policies:
    - name: pii-in
      direction: input
      action: mask
      detectors: { builtins: [email, phone, credit_card, ssn, iban, ip_address, secret] }
cache:
  backend: memory
audit:
  enabled: true
  sink: $WORK/audit.jsonl
YAML
} >"$WORK/policy.yaml"

load() { # url bodyfile token extra-args... -> json file path
  local out=$WORK/$RANDOM$RANDOM.json
  taskset -c "$LOAD_CORE" oha --no-tui --output-format json -m POST -H "content-type: application/json" \
    -H "authorization: Bearer $3" -D "$2" "${@:4}" "$1" >"$out"
  echo "$out"
}
rps() { jq -r '.summary.requestsPerSec' "$1"; }
count() { jq -r '[.statusCodeDistribution[]] | add // 0' "$1"; }
p() { jq -r "$2 * 1000000 | round / 1000" "$1"; } # ms, 3 decimals
check_ok() { # file label
  local ok total
  ok=$(jq -r '.statusCodeDistribution["200"] // 0' "$1"); total=$(count "$1")
  [ "$ok" = "$total" ] && [ "$total" -gt 0 ] || { echo "$2: non-200 answers $(jq -c .statusCodeDistribution "$1")" >&2; exit 1; }
}
ticks() { # pids... -> utime+stime clock ticks summed
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo $t
}
HZ=$(getconf CLK_TCK)
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# sat NAME URL BODY TOKEN PIDS...: saturation round; sets R_NAME (req/s) and C_NAME (µs CPU/request)
sat() {
  local name=$1 url=$2 body=$3 tok=$4; shift 4
  local t0 t1 f
  t0=$(ticks "$@")
  f=$(load "$url" "$body" "$tok" "${SPAN[@]}" -c "$CONNS")
  t1=$(ticks "$@")
  check_ok "$f" "$name"
  printf -v "R_$name" %.0f "$(rps "$f")"
  printf -v "C_$name" %.1f "$(awk "BEGIN {print ($t1 - $t0) / $HZ / $(count "$f") * 1e6}")"
}
# fixed NAME URL BODY TOKEN: latency at RATE; sets P50_NAME, P99_NAME (ms)
fixed() {
  local f
  f=$(load "$2" "$3" "$4" "${SPAN[@]}" -c 32 -q "$RATE" --latency-correction)
  check_ok "$f" "$1"
  printf -v "P50_$1" %s "$(p "$f" .latencyPercentiles.p50)"
  printf -v "P99_$1" %s "$(p "$f" .latencyPercentiles.p99)"
}
warm() { load "$1" "$2" "$3" "${WARM[@]}" -c "$CONNS" >/dev/null; }
if [ "$SMOKE" = 1 ]; then SPAN=(-n 16); WARM=(-n 4); else SPAN=(-z "$DURATION"); WARM=(-z 1s); fi


# CALLGRIND=1: where a request's instructions go, by phase. Each
# configuration's gateway runs under callgrind; after 50 warm-up requests,
# REQUESTS (default 300) 1 KB JSON chats are counted, and the table gives
# instructions per request for the whole process and inclusive per phase
# function (tokio's poll of each phase's future), or, where a release
# build inlined the phase into `pipeline::run`, per the function that does
# the phase's work (the fallback named in PHASES); the writer threads and
# the whole handler too.
if [ -n "${CALLGRIND:-}" ]; then
  NREQ=${REQUESTS:-300}
  # "pattern;fallback|label": the fallback names a function that survives
  # inlining in a release (LTO) build, where most phase functions are
  # inlined into `pipeline::run` and would show 0.
  PHASES=(
    "phase::authenticate::authenticate;auth::authenticate|1 authenticate (key or JWT)"
    "phase::ingress::ingress;ingress::read_body|2 ingress (body read, parse, checks; release: the body read)"
    "phase::resolve::resolve|3 resolve"
    "phase::authorize::authorize;auth::policy::Access::decide|4 authorize"
    "phase::route::route|4b route"
    "phase::admit::admit;Limits::admit_counters|5 admit (limits)"
    "phase::guard_input::check;tollgate_policy::guard::detect|6 input guardrails"
    "phase::lookup::lookup|7 cache lookup"
    "phase::attempt::attempt;OpenAiProvider::send|8 upstream call"
    "phase::respond::respond;respond::reply|9-10 output, respond"
    "finish::Finish::end;after::finish|end (settle, metrics, ledger, audit)"
    "audit::writer::run|audit writer thread"
    "ledger::writer::run|ledger writer thread"
    "pipeline::serve|the handler, all phases"
  )
  profile() { # config token -> rows on stdout
    local cfg=$1 tok=$2 g pid out
    RUST_LOG=warn,tollgate::server=info taskset -c "$GW_CORE" valgrind --tool=callgrind \
      "--callgrind-out-file=$WORK/$cfg.cg" "$BIN" serve --config "$WORK/$cfg.yaml" 2>"$WORK/gw-$cfg.log" &
    pid=$!
    g=http://$(wait_addr "$WORK/gw-$cfg.log" " addr")
    load "$g/v1/chat/completions" "$WORK/chat.json" "$tok" -n 50 -c 8 >/dev/null
    sleep 1
    callgrind_control -z "$pid" >/dev/null
    out=$(load "$g/v1/chat/completions" "$WORK/chat.json" "$tok" -n "$NREQ" -c 8)
    check_ok "$out" "$cfg"
    sleep 1
    callgrind_control -d "$pid" >/dev/null
    sleep 0.5
    kill "$pid"; wait "$pid" 2>/dev/null || true
    # The first dump holds the counted requests (the file without a
    # number is what ran between that dump and the exit).
    local cg=$WORK/$cfg.cg.1
    callgrind_annotate --inclusive=yes --threshold=100 "$cg" >"$WORK/$cfg.annotate" 2>/dev/null || true
    [ -n "${KEEP_PROFILE:-}" ] && cp "$WORK/$cfg.annotate" "$cg" "$KEEP_PROFILE/"
    local total
    total=$(awk '/^(summary|totals):/ {t=$2} END {print t}' "$cg")
    printf -v "TOTAL_$cfg" %s "$total"
    for ph in "${PHASES[@]}"; do
      local pats=${ph%%|*} rest=${ph#*|} pat n=0
      # The largest inclusive entry whose name holds the phase's path (or,
      # when that is inlined away, the fallback's).
      for pat in ${pats//;/ }; do
        # (drop_in_place entries of an inlined phase's future are not its cost)
        n=$({ grep -F "$pat" "$WORK/$cfg.annotate" | grep -v drop_in_place || echo 0; } | head -1 | awk '{gsub(",", "", $1); print $1 + 0}')
        [ "$n" != 0 ] && break
      done
      echo "$n" >"$WORK/$cfg.$(echo "$rest" | tr -c 'a-z0-9' _ | cut -c1-40)"
    done
  }
  profile plain "$KEY"
  profile policy "$JWT"
  k() { awk "BEGIN {printf \"%.1f\", ${1:-0} / $NREQ / 1000}"; }
  echo
  echo "## $(date -u +%Y-%m-%dT%H:%MZ) — instructions per 1 KB JSON chat by phase (callgrind, $NREQ requests after 50)"
  echo
  echo "| phase | plain (k instructions) | every policy on (k instructions) |"
  echo "| --- | --- | --- |"
  for ph in "${PHASES[@]}"; do
    rest=${ph#*|}; f=$(echo "$rest" | tr -c 'a-z0-9' _ | cut -c1-40)
    echo "| $rest | $(k "$(cat "$WORK/plain.$f")") | $(k "$(cat "$WORK/policy.$f")") |"
  done
  echo "| whole process | $(k "$TOTAL_plain") | $(k "$TOTAL_policy") |"
  exit 0
fi

U=http://127.0.0.1:$UP
N=http://127.0.0.1:$PX
NPIDS=$(pgrep -P "${NGINX_PIDS[1]}" || true)
NPIDS="${NGINX_PIDS[1]} $NPIDS"

# nginx: the upstream direct, and the plain proxy.
warm "$N/json/v1/chat/completions" "$WORK/direct.json" x
# shellcheck disable=SC2086
sat nginx_json "$N/json/v1/chat/completions" "$WORK/direct.json" x $NPIDS
# shellcheck disable=SC2086
sat nginx_sse "$N/sse/v1/chat/completions" "$WORK/direct-stream.json" x $NPIDS
# shellcheck disable=SC2086
sat nginx_big "$N/json/v1/chat/completions" "$WORK/direct-big.json" x $NPIDS
fixed direct "$U/json/v1/chat/completions" "$WORK/direct.json" x
fixed nginx "$N/json/v1/chat/completions" "$WORK/direct.json" x
NGINX_RSS=$(for p in $NPIDS; do rss "$p"; echo; done | awk '{s+=$1} END {printf "%.1f", s}')

# gateway CONFIG TOKEN: one gateway process through every scenario.
gateway() {
  local cfg=$1 tok=$2 g
  RUST_LOG=warn,tollgate::server=info taskset -c "$GW_CORE" "$BIN" serve --config "$WORK/$cfg.yaml" 2>"$WORK/gw-$cfg.log" &
  GW_PID=$!
  g=http://$(wait_addr "$WORK/gw-$cfg.log" " addr")
  sleep 0.5
  printf -v "IDLE_$cfg" %s "$(rss $GW_PID)"
  curl -sf -o /dev/null -H "authorization: Bearer $tok" -H 'content-type: application/json' \
    -d @"$WORK/chat.json" "$g/v1/chat/completions" || { echo "$cfg: first request failed" >&2; cat "$WORK/gw-$cfg.log" >&2; exit 1; }
  printf -v "FIRST_$cfg" %s "$(rss $GW_PID)"
  warm "$g/v1/chat/completions" "$WORK/chat.json" "$tok"
  sat "${cfg}_json" "$g/v1/chat/completions" "$WORK/chat.json" "$tok" $GW_PID
  sat "${cfg}_sse" "$g/v1/chat/completions" "$WORK/stream.json" "$tok" $GW_PID
  sat "${cfg}_big" "$g/v1/chat/completions" "$WORK/big.json" "$tok" $GW_PID
  sat "${cfg}_vm" "$g/v1/chat/completions" "$WORK/vm.json" "$tok" $GW_PID
  sat "${cfg}_cached" "$g/v1/chat/completions" "$WORK/cached.json" "$tok" $GW_PID
  fixed "$cfg" "$g/v1/chat/completions" "$WORK/chat.json" "$tok"
  printf -v "PEAK_$cfg" %s "$(hwm $GW_PID)"
  kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
  GW_PID=
}
gateway plain "$KEY"
gateway policy "$JWT"

ratio() { awk "BEGIN {printf \"%.2f\", $1 / $2}"; }
added() { awk "BEGIN {printf \"%+.3f\", $1 - $2}"; }
cat <<MD

## $(date -u +%Y-%m-%dT%H:%MZ) — side by side with nginx ($(nproc) cores; proxy on core $GW_CORE, nginx upstream + oha on core $LOAD_CORE)

Command: \`bench/nginx.sh\` (DURATION=$DURATION, CONNS=$CONNS, RATE=$RATE$([ "$SMOKE" = 1 ] && echo ", SMOKE"));
$("$NGINX" -v 2>&1 | sed 's/nginx version: //'), Tollgate $("$BIN" --version 2>/dev/null | awk '{print $2}') ($BIN).
Saturation in requests/s (ratio to nginx's plain proxy in the same run) and CPU of the pinned process per request.

| scenario | nginx proxy | Tollgate plain (key + ledger + metrics) | Tollgate every policy on |
| --- | --- | --- | --- |
| 1 KB JSON chat | $R_nginx_json ($C_nginx_json µs) | $R_plain_json ($(ratio "$R_plain_json" "$R_nginx_json"); $C_plain_json µs) | $R_policy_json ($(ratio "$R_policy_json" "$R_nginx_json"); $C_policy_json µs) |
| SSE, 20 chunks (5.2 KB) | $R_nginx_sse ($C_nginx_sse µs) | $R_plain_sse ($(ratio "$R_plain_sse" "$R_nginx_sse"); $C_plain_sse µs) | $R_policy_sse ($(ratio "$R_policy_sse" "$R_nginx_sse"); $C_policy_sse µs) |
| 100 KB prompt | $R_nginx_big ($C_nginx_big µs) | $R_plain_big ($(ratio "$R_plain_big" "$R_nginx_big"); $C_plain_big µs) | $R_policy_big ($(ratio "$R_policy_big" "$R_nginx_big"); $C_policy_big µs) |
| virtual model, first target down | — | $R_plain_vm ($C_plain_vm µs) | $R_policy_vm ($C_policy_vm µs) |
| cache hits | — | $R_plain_cached ($C_plain_cached µs) | $R_policy_cached ($C_policy_cached µs) |

Latency at $RATE requests/s (1 KB JSON chat; upstream direct p50 $P50_direct ms, p99 $P99_direct ms), added over the upstream called directly:

| | nginx proxy | Tollgate plain | Tollgate every policy on |
| --- | --- | --- | --- |
| p50 | $(added "$P50_nginx" "$P50_direct") ms | $(added "$P50_plain" "$P50_direct") ms | $(added "$P50_policy" "$P50_direct") ms |
| p99 | $(added "$P99_nginx" "$P99_direct") ms | $(added "$P99_plain" "$P99_direct") ms | $(added "$P99_policy" "$P99_direct") ms |

Resident memory (MB): nginx proxy $NGINX_RSS after load; Tollgate plain idle $IDLE_plain, after the first request $FIRST_plain, peak $PEAK_plain; every policy on idle $IDLE_policy, after the first request $FIRST_policy, peak $PEAK_policy.
MD
