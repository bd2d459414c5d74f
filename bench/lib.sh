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


# JWT auth for load scripts: serves the test fixture's public keys as a
# JWKS on LOAD_CORE (sets IDP_PORT, IDP_PID) and prints an RS256 token
# (issuer https://idp.bench.example, audience tollgate, subject
# bench-user, group bench) signed with the fixture's test-only RSA key;
# $1: extra claims as a JSON object (optional).
bench_jwt() {
  local fix=$PWD/crates/tollgate/tests/fixtures/jwt claims=${1:-}
  [ -n "$claims" ] || claims='{}'
  mkdir -p "$WORK/idp" && cp "$fix/jwks.json" "$WORK/idp/jwks.json"
  (cd "$WORK/idp" && exec taskset -c "$LOAD_CORE" python3 -u -m http.server --bind 127.0.0.1 0 >"$WORK/idp.log" 2>&1) &
  IDP_PID=$!
  for _ in $(seq 1 100); do
    IDP_PORT=$(grep -o 'port [0-9]*' "$WORK/idp.log" | head -1 | cut -d' ' -f2 || true)
    [ -n "$IDP_PORT" ] && break
    sleep 0.1
  done
  [ -n "$IDP_PORT" ] || { echo "JWKS server did not start" >&2; cat "$WORK/idp.log" >&2; exit 1; }
  JWT=$(node -e '
const c = require("crypto"), fs = require("fs");
const b = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
const now = Math.floor(Date.now() / 1000);
const h = b({ alg: "RS256", typ: "JWT", kid: "test-rsa" });
const p = b(Object.assign({ iss: "https://idp.bench.example", aud: "tollgate", sub: "bench-user",
  exp: now + 3600, groups: ["bench"] }, JSON.parse(process.argv[2])));
const s = c.sign("sha256", Buffer.from(h + "." + p), fs.readFileSync(process.argv[1])).toString("base64url");
console.log(h + "." + p + "." + s);' "$fix/rsa.pem" "$claims")
}
