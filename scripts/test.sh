#!/usr/bin/env bash
# The one test command: installs the test OIDC issuer (oauth2-mock-server,
# tests/oidc), builds the gateway, runs every Rust test, then drives the real
# binary with the official `openai`, `anthropic` and `databricks-sdk` Python SDKs (tests/python).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo build"
cargo build

echo "==> npm ci --prefix tests/oidc (the OIDC issuer the identity tests run against)"
command -v node >/dev/null || { echo "node (>= 20.19) is required for tests/oidc" >&2; exit 1; }
npm ci --prefix tests/oidc --no-audit --no-fund

echo "==> cargo test --workspace"
cargo test --workspace

echo "==> python venv (.venv)"
if ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
    rm -rf .venv
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt

echo "==> pytest tests/python"
TOLLGATE_BIN="$PWD/target/debug/tollgate" .venv/bin/python -m pytest -q -p no:cacheprovider tests/python
