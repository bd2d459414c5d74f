#!/usr/bin/env bash
# Latency a Redis-counted limit adds to a request: `redis-server` (Debian
# package) on core REDIS_CORE (default 1), the bench process on core
# BENCH_CORE (default 0); `Limits::admit` with five Redis caps timed call by
# call, interleaved with bare PINGs (crates/tollgate/benches/limits_latency.rs).
# Prints a Markdown section; `bench/limits_latency.sh >> bench/history/LIMITS.md`
# records it (and bench/README.md's table takes the new figure).
#
# Env: REQUESTS (default 20000), WORKERS (runtime threads; default one per
# core the bench may use, as `tollgate serve` does: 1 on BENCH_CORE),
# CONCURRENCY (default 1; e.g. 16 for the
# tail under load, one connection shared as in the gateway).
set -euo pipefail
cd "$(dirname "$0")/.."
REDIS_CORE=${REDIS_CORE:-1}
BENCH_CORE=${BENCH_CORE:-0}
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
cargo bench -p tollgate --bench limits_latency --no-run -q 2>/dev/null
WORK=$(mktemp -d)
cleanup() { kill "${REDIS_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c "$REDIS_CORE" redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >/dev/null &
REDIS_PID=$!
for _ in $(seq 1 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo
echo "## $(date -u +%Y-%m-%dT%H:%MZ) — Redis admission latency (2 cores: bench on core $BENCH_CORE, redis-server on core $REDIS_CORE)"
echo
echo "Command: \`bench/limits_latency.sh\` (REQUESTS=${REQUESTS:-20000}, CONCURRENCY=${CONCURRENCY:-1}, WORKERS=${WORKERS:-one per core}); \`cargo bench -p tollgate --bench limits_latency\` against a fresh \`redis-server\` on loopback."
echo
TOLLGATE_BENCH_REDIS="redis://127.0.0.1:$PORT/" taskset -c "$BENCH_CORE" cargo bench -q -p tollgate --bench limits_latency 2>/dev/null
