#!/usr/bin/env bash
# Time to first token and chunk lag through an output guardrail (issues 25,
# 28): a mock upstream streams one word every 1000/TPS ms; the client measures, per
# streamed chat request, the time from sending the request to the first
# chunk with non-empty content, and to the end of the stream, and the lag
# of each content chunk behind the same text called directly. Three configs
# per binary: no guardrail, an output policy that masks (every built-in),
# and the same policy in `mode: audit`. With BASE_BIN set, that binary runs
# the same three configs in the same sitting (an A/B against a saved build).
# Gateway on core 0, mock upstream and client on core 1. Prints a Markdown
# table; `bench/ttft.sh >> bench/history/GUARDRAILS.md` records it.
#
# Env: REQUESTS (default 20 per config), TPS (default 50 words/s), WORDS
# (default 60), TOLLGATE_BIN (the binary to measure; default a fresh
# release build), BASE_BIN (optional baseline binary).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-20}
TPS=${TPS:-50}
WORDS=${WORDS:-60}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

# shellcheck source=bench/lib.sh
source bench/lib.sh

KEY=tg-bench-key
HASH=$(printf %s "$KEY" | "$BIN" keys hash)

config() { # policy: none | mask | audit
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
  - { name: bench-chat, provider: up, upstream_model: "mock-chat?tokens_per_sec=$TPS&tokens=$WORDS" }
keys:
  - { id: bench, hash: $HASH, principal: bench, models: ["*"] }
YAML
  case $1 in
    mask | audit)
      cat <<YAML
guardrails:
  policies:
    - name: out
      direction: output
      mode: $([ "$1" = audit ] && echo audit || echo enforce)
      action: mask
      detectors: { builtins: [email, phone, credit_card, ssn, iban, ip_address, secret] }
YAML
      ;;
  esac
}

cat >"$WORK/client.py" <<'PY'
# Prints TTFT p50 and p90, whole-stream p50 (ms), and writes each content
# chunk's arrival as (cumulative text length, seconds since the request)
# to the file named by argv[4], one request per line, for lag.py.
import http.client, json, sys, time
addr, key, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
prefix = sys.argv[5] if len(sys.argv) > 5 else ""
host, port = addr.rsplit(":", 1)
body = json.dumps({"model": "bench-chat" if not prefix else "mock-chat?tokens_per_sec=%s&tokens=%s" % tuple(prefix.split(",")),
                   "stream": True,
                   "messages": [{"role": "user", "content": "Tell me a story."}]})
ttft, total, arrivals = [], [], []
for _ in range(n):
    c = http.client.HTTPConnection(host, int(port))
    t0 = time.perf_counter()
    c.request("POST", "/v1/chat/completions", body,
              {"authorization": "Bearer " + key, "content-type": "application/json"})
    r = c.getresponse()
    first, seen, marks = None, 0, []
    for line in r:
        if line.startswith(b"data: {"):
            ch = json.loads(line[6:]).get("choices") or []
            text = (ch[0].get("delta") or {}).get("content") if ch else None
            if text:
                now = time.perf_counter() - t0
                if first is None:
                    first = now
                seen += len(text)
                marks.append((seen, now))
    total.append(time.perf_counter() - t0)
    ttft.append(first if first is not None else total[-1])
    arrivals.append(marks)
    c.close()
with open(out, "w") as f:
    for marks in arrivals:
        f.write(json.dumps(marks) + "\n")
q = lambda v, p: sorted(v)[min(len(v) - 1, int(p * len(v)))] * 1000
print(f"{q(ttft, .5):.1f} {q(ttft, .9):.1f} {q(total, .5):.1f}")
PY

# Chunk lag: for each piece of text the caller receives through the
# gateway, how much later it arrives than the same text position arrives
# at a client calling the mock directly (the mean over the direct run's
# requests). Prints p50, p99 and max over every content chunk of every
# request, first chunks included (ms).
cat >"$WORK/lag.py" <<'PY'
import bisect, json, sys
def load(path):
    return [json.loads(l) for l in open(path) if l.strip()]
direct, through = load(sys.argv[1]), load(sys.argv[2])
# Mean direct arrival time of the chunk that completes each text position.
ends = sorted({e for marks in direct for e, _ in marks})
def arrival(marks, pos):
    i = bisect.bisect_left([e for e, _ in marks], pos)
    return marks[min(i, len(marks) - 1)][1]
base = {e: sum(arrival(m, e) for m in direct) / len(direct) for e in ends}
lags = []
for marks in through:
    for e, t in marks:
        j = bisect.bisect_left(ends, e)
        ref = base[ends[min(j, len(ends) - 1)]]
        lags.append((t - ref) * 1000)
lags.sort()
q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))]
print(f"{q(.5):.2f} {q(.99):.2f} {lags[-1]:.2f}")
PY
run() { # bin label policy
  local name="$2-$3"
  config "$3" >"$WORK/$name.yaml"
  RUST_LOG=warn,tollgate::server=info taskset -c "$GW_CORE" "$1" serve --config "$WORK/$name.yaml" 2>"$WORK/$name.log" >/dev/null &
  GW_PID=$!
  local addr
  addr=$(wait_addr "$WORK/$name.log" " addr")
  read -r p50 p90 whole < <(taskset -c "$LOAD_CORE" python3 "$WORK/client.py" "$addr" "$KEY" "$REQUESTS" "$WORK/$name.arrivals")
  kill "$GW_PID" 2>/dev/null || true
  wait "$GW_PID" 2>/dev/null || true
  read -r l50 l99 lmax < <(python3 "$WORK/lag.py" "$WORK/direct.arrivals" "$WORK/$name.arrivals")
  echo "| $2 | $3 | $p50 | $p90 | $whole | $l50 | $l99 | $lmax |"
}

# The same streams from the mock directly: the reference for the lag.
read -r d50 d90 dwhole < <(taskset -c "$LOAD_CORE" python3 "$WORK/client.py" "$MOCK" upstream-key "$REQUESTS" "$WORK/direct.arrivals" "$TPS,$WORDS")

echo "### $(date -u +%Y-%m-%d): time to first token and chunk lag with an output guardrail"
echo
echo "$REQUESTS streamed requests per row, $WORDS words at $TPS words/s from the mock; ms."
echo "Chunk lag: how much later each piece of text arrives through the gateway than"
echo "the same text position arrives when the mock is called directly (mean of the direct run)."
echo
echo "| build | output policy | TTFT p50 | TTFT p90 | whole stream p50 | chunk lag p50 | p99 | max |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
echo "| direct | (mock) | $d50 | $d90 | $dwhole | — | — | — |"
for policy in none mask audit; do
  [ -n "${BASE_BIN:-}" ] && run "$BASE_BIN" base "$policy"
  run "$BIN" new "$policy"
done
