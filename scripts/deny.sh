#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (deny.toml): licenses, bans (duplicate
# versions warn), sources (crates.io only), then security advisories when
# the RustSec database can be fetched; where it cannot (no route to GitHub),
# the advisories are reported as skipped, not passed. Installs cargo-deny
# from crates.io when it is missing (minutes: see SECURITY.md).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deny >/dev/null || cargo install --locked cargo-deny

echo "==> cargo deny check licenses bans sources"
cargo deny --log-level error check licenses bans sources

echo "==> cargo deny check advisories"
if cargo deny fetch db >/dev/null 2>&1; then
    cargo deny --log-level error check advisories
else
    echo "    skipped: the RustSec advisory database could not be fetched here"
fi
