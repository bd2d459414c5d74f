#!/usr/bin/env bash
# Instructions per request of the whole gateway process under callgrind for
# bodies full of floats (what serde_json's `float_roundtrip` costs): an
# embeddings call whose input is 1,536 floats of 16-17 significant digits
# (~31 KB), and a 1 KB chat for comparison, each through the gateway (API
# key, SQLite ledger) to the mock upstream. REQUESTS of each are counted
# after 50 warm-up requests, one connection at a time over keep-alive.
# Env: REQUESTS (200), TOLLGATE_BIN (default a fresh release build),
# GW_CORE (0), LOAD_CORE (1), KEEP_PROFILE=DIR (keeps the callgrind files).
set -euo pipefail
cd "$(dirname "$0")/.."

NREQ=${REQUESTS:-200}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

source bench/lib.sh

KEY=tg-bench-key
HASH=$(printf %s "$KEY" | "$BIN" keys hash)
cat >"$WORK/bench.yaml" <<YAML
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  watch_config: false
storage:
  url: sqlite://$WORK/bench.db
providers:
  - name: up
    kind: openai
    base_url: http://$MOCK/v1
    api_key: upstream-key
models:
  - { name: bench-chat, provider: up, upstream_model: mock-chat }
  - { name: bench-embed, provider: up, upstream_model: mock-embed, endpoints: [embeddings] }
keys:
  - id: bench
    hash: $HASH
    principal: bench
    models: ["*"]
YAML
python3 - "$WORK" <<'PY'
import json, struct, sys
x = 0x9E3779B97F4A7C15
floats = []
for _ in range(1536):
    x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF; x ^= x >> 7; x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
    floats.append((x >> 11) / float(1 << 53) * 2.0 - 1.0)
json.dump({"model": "bench-embed", "input": floats, "dimensions": 1}, open(sys.argv[1] + "/emb.json", "w"))
words = ("the gateway sits between every client and every model provider " * 16)[:900]
json.dump({"model": "bench-chat", "temperature": 0.7, "top_p": 0.95, "max_tokens": 64,
           "messages": [{"role": "user", "content": words}]}, open(sys.argv[1] + "/chat.json", "w"))
PY

RUST_LOG=warn,tollgate::server=info taskset -c "$GW_CORE" valgrind --tool=callgrind \
  "--callgrind-out-file=$WORK/gw.cg" "$BIN" serve --config "$WORK/bench.yaml" 2>"$WORK/gw.log" &
GW_PID=$!
G=http://$(wait_addr "$WORK/gw.log" " addr")
run() { # path body count
  taskset -c "$LOAD_CORE" oha --no-tui -c 1 -n "$3" -m POST -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' -D "$WORK/$2" "$G$1" --output-format json |
    jq -r '.statusCodeDistribution | to_entries | map("\(.key)=\(.value)") | join(" ")'
}
for b in chat emb; do
  p=/v1/chat/completions; [ "$b" = emb ] && p=/v1/embeddings
  echo "$b warm-up: $(run "$p" "$b.json" 50)"
  sleep 1
  callgrind_control -z "$GW_PID" >/dev/null 2>&1
  echo "$b counted: $(run "$p" "$b.json" "$NREQ")"
  sleep 1
  callgrind_control -d "$GW_PID" >/dev/null 2>&1
  sleep 0.5
done
kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
[ -n "${KEEP_PROFILE:-}" ] && cp "$WORK"/gw.cg.* "$KEEP_PROFILE/"
k() { awk '/^(summary|totals):/ {t=$2} END {printf "%.1f", t / '"$NREQ"' / 1000}' "$1"; }
echo
echo "| request | k instructions per request (whole process, $NREQ after 50) |"
echo "| --- | --- |"
echo "| 1 KB chat | $(k "$WORK/gw.cg.1") |"
echo "| embeddings, 1,536 floats | $(k "$WORK/gw.cg.2") |"
