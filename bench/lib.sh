# Sourced by the bench/*.sh load scripts (from the repository root, with
# LOAD_CORE set): the tools, the release build or TOLLGATE_BIN ($BIN), a work directory
# ($WORK, removed on exit with the processes in GW_PID, MOCK_PID, IDP_PID),
# `wait_addr`, and the mock upstream on LOAD_CORE ($MOCK, key upstream-key);
# further down, helpers some scripts call: bench_jwt, bench_policy_yaml,
# rss/hwm, ledger_rows.

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

# WAIT_SECS (default 10): how long a process may take to log its address
# (a debug build under callgrind on a busy core needs ~30); a third
# argument overrides it for one call, in tries of 0.1 s.
wait_addr() { # file pattern [tries] -> addr
  for _ in $(seq 1 "${3:-$((${WAIT_SECS:-10} * 10))}"); do
    addr=$(grep -o "$2=[0-9.:]*" "$1" | head -1 | cut -d= -f2 || true)
    [ -n "$addr" ] && { echo "$addr"; return; }
    sleep 0.1
  done
  echo "no $2 in $1" >&2; cat "$1" >&2; exit 1
}

# MOCK_BIN: another build's mock upstream (default the measured binary).
RUST_LOG=warn,tollgate=info taskset -c "$LOAD_CORE" "${MOCK_BIN:-$BIN}" mock-upstream --listen 127.0.0.1:0 --require-key upstream-key 2>"$WORK/mock.log" &
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

# Every policy on, for the memory benches (streams.sh, soak.sh): an RS256
# JWT from bench_jwt's JWKS (call it first), access rules by group, five
# limit rules high enough never to refuse (the in-flight cap at 100,000),
# masking PII guardrails on input and output, the SQLite ledger and the
# audit log, over the mock upstream. Models: chat (JSON), stream
# (upstream_model mock-chat?$2: the mock's pacing knobs), embed
# (embeddings), secret (granted to nobody: 403). $1: ledger file; the
# audit log goes next to it. Ten thousand connects at once on a busy
# machine: the upstream connect timeout is 30 s (they overflow the mock's
# accept backlog, and a dropped SYN is retried after 1, 3 and 7 s), and
# the callers' header_read 60 s (the gateway reads an accepted
# connection's headers late while it accepts thousands). AUDIT=false
# turns the audit log off (to find what a growth comes with). UP_HTTP=http2
# calls the mock over HTTP/2 (h2c, one connection for every stream; the
# default auto opens one HTTP/1.1 connection per stream in flight; the mock's
# HTTP/2 server runs 200 streams per connection at once, and the client
# opens no second connection, so more wait). Needs HASH (an API key's hash) and
# MAX_CONCURRENT (server.max_concurrent_requests).
bench_policy_yaml() {
  cat <<YAML
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  watch_config: false
  max_concurrent_requests: $MAX_CONCURRENT
  timeouts: { header_read: 60s }
storage:
  url: sqlite://$1
providers:
  - { name: up, kind: openai, base_url: "http://$MOCK/v1", api_key: upstream-key, http_version: ${UP_HTTP:-auto}, timeouts: { connect: 30s } }
models:
  - { name: chat, provider: up, upstream_model: mock-chat, price: { input_per_mtok: 1.0, output_per_mtok: 2.0 } }
  - { name: stream, provider: up, upstream_model: "mock-chat?$2", price: { input_per_mtok: 1.0, output_per_mtok: 2.0 } }
  - { name: embed, provider: up, upstream_model: mock-embed, endpoints: [embeddings], price: { input_per_mtok: 0.1, output_per_mtok: 0.0 } }
  - { name: secret, provider: up, upstream_model: mock-chat }
keys:
  - { id: bench, hash: $HASH, principal: bench, models: ["*"] }
auth:
  oidc:
    - issuer: https://idp.bench.example
      audiences: [tollgate]
      discovery: false
      jwks_url: http://127.0.0.1:$IDP_PORT/jwks.json
policy:
  rules:
    - { name: bench, groups: [bench], models: [chat, stream, embed] }
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
    - name: pii-out
      direction: output
      action: mask
      detectors: { builtins: [email, phone, credit_card, ssn, iban, ip_address, secret] }
audit:
  enabled: ${AUDIT:-true}
  sink: $1.audit.jsonl
YAML
}

# Resident memory of process $1 in MB: now (VmRSS) and the peak (VmHWM).
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# Rows in the usage table of the SQLite ledger $1 once the writer has
# flushed (it writes every 200 ms): counted until the count stops moving.
ledger_rows() {
  local rows prev=-1
  for _ in $(seq 1 50); do
    rows=$(sqlite3 "$1" 'SELECT count(*) FROM usage')
    [ "$rows" = "$prev" ] && break
    prev=$rows; sleep 0.5
  done
  echo "$rows"
}
