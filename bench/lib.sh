# Sourced by the bench/*.sh load scripts (from the repository root, with
# LOAD_CORE set): the tools, the release build or TOLLGATE_BIN ($BIN), a work directory
# ($WORK, removed on exit with the processes in GW_PID, MOCK_PID, IDP_PID),
# `wait_addr`, and the mock upstream on LOAD_CORE ($MOCK, key upstream-key).

command -v oha >/dev/null || cargo install oha --locked
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
# TOLLGATE_BIN=path: that binary instead of a fresh release build (an A/B
# against a saved binary in the same session).
if [ -n "${TOLLGATE_BIN:-}" ]; then BIN=$TOLLGATE_BIN; else
  cargo build --release -q
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/tollgate
fi

WORK=$(mktemp -d)
cleanup() { kill "${GW_PID:-}" "${MOCK_PID:-}" "${IDP_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

wait_addr() { # file pattern -> addr
  for _ in $(seq 1 100); do
    addr=$(grep -o "$2=[0-9.:]*" "$1" | head -1 | cut -d= -f2 || true)
    [ -n "$addr" ] && { echo "$addr"; return; }
    sleep 0.1
  done
  echo "no $2 in $1" >&2; cat "$1" >&2; exit 1
}

RUST_LOG=warn,tollgate=info taskset -c "$LOAD_CORE" "$BIN" mock-upstream --listen 127.0.0.1:0 --require-key upstream-key 2>"$WORK/mock.log" &
MOCK_PID=$!
MOCK=$(wait_addr "$WORK/mock.log" addr)

