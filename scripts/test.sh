#!/usr/bin/env bash
# The test command of the README: installs what the end-to-end tests talk to (net-snmp,
# Postfix, tmux...) and runs every test of the workspace, unit and end-to-end.
#
# AVIS_TEST_CPU_HOG=1 keeps every core busy while the tests run (one busy shell loop per
# core, stopped by PID when the script ends, however it ends): CI shares its two cores
# with other work, and a test that only passes on an idle machine is a flaky test (issue 22).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh

hogs=()
stop_hogs() {
    if ((${#hogs[@]})); then
        kill "${hogs[@]}" 2>/dev/null || true
        wait "${hogs[@]}" 2>/dev/null || true
        hogs=()
    fi
}
trap stop_hogs EXIT
if [[ "${AVIS_TEST_CPU_HOG:-0}" == 1 ]]; then
    for _ in $(seq "$(nproc)"); do
        bash -c 'while :; do :; done' &
        hogs+=("$!")
    done
    echo "test.sh: CPU hog on: ${#hogs[@]} busy loops (PIDs ${hogs[*]})"
fi

# The end-to-end tests run the programs themselves; cargo test builds a package's binaries
# only for that package's own integration tests, so build them all first.
cargo build --workspace --bins
cargo test --workspace --all-targets --no-fail-fast "$@"
