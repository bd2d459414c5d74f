#!/usr/bin/env bash
# Start time and memory over a large ledger: ROWS usage rows (default
# 2,000,000), each charging a daily budget, generated with SQL in a fresh
# PostgreSQL; then the gateway (one `store: local` cost_per_day rule) is
# started and timed until /readyz answers, and its resident memory read
# (VmRSS, and the peak VmHWM) once ready. Each binary in BINS (default: a
# fresh release build) is started RUNS times (default 2: the first start of
# a build with the `budget_spend` table also runs its migration, which sums
# the ledger once).
#   BINS="/tmp/tollgate-before target/release/tollgate" bench/restore.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-2000000}
RUNS=${RUNS:-2}
if [ -z "${BINS:-}" ]; then
  cargo build --release -q -p tollgate-cli
  BINS=${CARGO_TARGET_DIR:-$PWD/target}/release/tollgate
fi
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)}
WORK=$(mktemp -d)
chmod 755 "$WORK"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
cleanup() {
  kill "${GW_PID:-}" 2>/dev/null || true
  as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PG_PORT=$(free_port)
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust --no-sync >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" \
  -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $WORK -c fsync=off" -w start >/dev/null
URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"

FIRST=${BINS%% *}
HASH=$(printf %s tg-bench-key | "$FIRST" keys hash)
ADMIN=$(free_port)
cat >"$WORK/gw.yaml" <<YAML
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:$ADMIN", watch_config: false }
storage: { url: "$URL" }
ledger: { spool_path: "$WORK/spool.jsonl" }
providers:
  - { name: local, kind: mock }
models:
  - { name: chat, provider: local, price: { input_per_mtok: 1.0, output_per_mtok: 2.0 } }
keys:
  - { id: alice, hash: "$HASH", principal: alice, models: ["*"] }
limits:
  rules:
    - { name: day-budget, per: [principal], cost_per_day: 1000 }
YAML

start() { # binary -> "seconds_to_ready rss_kb hwm_kb"
  local t0 t1
  t0=$(date +%s.%N)
  "$1" serve --config "$WORK/gw.yaml" 2>>"$WORK/gw.log" &
  GW_PID=$!
  until curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1; do sleep 0.01; done
  t1=$(date +%s.%N)
  local rss hwm
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$GW_PID/status")
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$GW_PID/status")
  kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
  GW_PID=
  echo "$(echo "$t1 - $t0" | bc) $rss $hwm"
}

# The schema, as the first binary makes it; then the rows.
start "$FIRST" >/dev/null
DAY=$(( $(date +%s) / 86400 ))
NOW_MS=$(( $(date +%s) * 1000 ))
psql -q "$URL" <<SQL
ALTER TABLE usage SET UNLOGGED;
INSERT INTO usage (ts_ms, request_id, principal, key_id, endpoint, requested_model,
  provider, upstream_model, stream, prompt_tokens, completion_tokens, tokens_estimated,
  cost, status, error, latency_ms, record_id, limits)
SELECT $NOW_MS - (i % 60000), 'r' || i, 'alice', 'alice', 'chat', 'chat', 'local', 'chat',
  0, 10, 10, 0, 0.000001, 200, '', 1.0, 'g' || i,
  '[["day-budget","requests_per_minute","allowed",1],["day-budget","cost_per_day","allowed",0.000001,"principal=alice|",$DAY]]'
FROM generate_series(1, $ROWS) AS i;
SQL
# A build with the spend table sums these rows on its first start: drop
# what an earlier run left so every build starts from the same ledger.
reset_spend() {
  psql -q "$URL" -c "DROP TABLE IF EXISTS budget_spend; DELETE FROM schema_version WHERE version >= 3;" 2>/dev/null || true
}

echo "rows: $ROWS"
echo "binary | run | ready (s) | RSS (MB) | peak RSS (MB)"
for bin in $BINS; do
  reset_spend
  for run in $(seq 1 "$RUNS"); do
    read -r secs rss hwm < <(start "$bin")
    printf '%s | %s | %.2f | %.1f | %.1f\n' "$bin" "$run" "$secs" "$(echo "$rss/1024" | bc -l)" "$(echo "$hwm/1024" | bc -l)"
  done
done
