#!/usr/bin/env bash
# Time to first token through an output guardrail (issue 25): a mock
# upstream streams one word every 1000/TPS ms; the client measures, per
# streamed chat request, the time from sending the request to the first
# chunk with non-empty content, and to the end of the stream. Three configs
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
import http.client, json, statistics, sys, time
addr, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = addr.rsplit(":", 1)
body = json.dumps({"model": "bench-chat", "stream": True,
                   "messages": [{"role": "user", "content": "Tell me a story."}]})
ttft, total = [], []
for _ in range(n):
    c = http.client.HTTPConnection(host, int(port))
    t0 = time.perf_counter()
    c.request("POST", "/v1/chat/completions", body,
              {"authorization": "Bearer " + key, "content-type": "application/json"})
    r = c.getresponse()
    first = None
    for line in r:
        if first is None and line.startswith(b"data: {"):
            ch = json.loads(line[6:])["choices"]
            if ch and (ch[0].get("delta") or {}).get("content"):
                first = time.perf_counter() - t0
    total.append(time.perf_counter() - t0)
    ttft.append(first if first is not None else total[-1])
    c.close()
q = lambda v, p: sorted(v)[min(len(v) - 1, int(p * len(v)))] * 1000
print(f"{q(ttft, .5):.1f} {q(ttft, .9):.1f} {q(total, .5):.1f}")
PY

run() { # bin label policy
  local name="$2-$3"
  config "$3" >"$WORK/$name.yaml"
  RUST_LOG=warn,tollgate::server=info taskset -c "$GW_CORE" "$1" serve --config "$WORK/$name.yaml" 2>"$WORK/$name.log" >/dev/null &
  GW_PID=$!
  local addr
  addr=$(wait_addr "$WORK/$name.log" " addr")
  read -r p50 p90 whole < <(taskset -c "$LOAD_CORE" python3 "$WORK/client.py" "$addr" "$KEY" "$REQUESTS")
  kill "$GW_PID" 2>/dev/null || true
  wait "$GW_PID" 2>/dev/null || true
  echo "| $2 | $3 | $p50 | $p90 | $whole |"
}

echo "### $(date -u +%Y-%m-%d): time to first token with an output guardrail"
echo
echo "$REQUESTS streamed requests per row, $WORDS words at $TPS words/s from the mock; ms."
echo
echo "| build | output policy | TTFT p50 | TTFT p90 | whole stream p50 |"
echo "| --- | --- | --- | --- | --- |"
for policy in none mask audit; do
  [ -n "${BASE_BIN:-}" ] && run "$BASE_BIN" base "$policy"
  run "$BIN" new "$policy"
done
