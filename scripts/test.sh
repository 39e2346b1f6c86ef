#!/usr/bin/env bash
# The test command of the README: installs what the end-to-end tests talk to (net-snmp,
# Postfix, tmux...) and runs every test of the workspace, unit and end-to-end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
# The end-to-end tests run the programs themselves; cargo test builds a package's binaries
# only for that package's own integration tests, so build them all first.
cargo build --workspace --bins
cargo test --workspace --all-targets --no-fail-fast "$@"
