#!/usr/bin/env bash
# Times a whole-subtree walk of the AMAVIS-MIB against avis-snmp-agent: standalone v2c
# (snmpbulkwalk with net-snmp's default -Cr10 and with -Cr50), v3 authPriv, snmpwalk
# (one GETNEXT per object), one snmpget, and the same bulk walk through a private snmpd
# master with avis-snmp-agent registered over AgentX. The scoreboard is held by
# snmp-agent's `hold_scoreboard` example (8 busy workers, counters rising). The
# `walk_rtt` example first times the agent alone (no tool start-up in the figure).
#
#   bench/snmp-walk.sh            # uses target/release if built, else target/debug
#   PROFILE=debug bench/snmp-walk.sh
#   CARGO_TARGET_DIR=/tmp/t PROFILE=release bench/snmp-walk.sh   # a release build that does not lock target/
#
# Needs net-snmp (snmp, snmpd); uses hyperfine when installed, else a date +%s%N loop.
# Every process it starts is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
profile=${PROFILE:-}
if [[ -z $profile ]]; then
  if [[ -x $target/release/avis-snmp-agent && -x $target/release/examples/hold_scoreboard ]]; then profile=release; else profile=debug; fi
fi
if [[ $profile == release ]]; then cargo build -q --release -p snmp-agent --bins --examples; else cargo build -q -p snmp-agent --bins --examples; fi
agent=$target/$profile/avis-snmp-agent
holder=$target/$profile/examples/hold_scoreboard

work=$(mktemp -d /tmp/avis-snmp-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, getattr(socket, sys.argv[1])); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"; }
udp=$(port SOCK_DGRAM); master=$(port SOCK_DGRAM); ax=$(port SOCK_STREAM)

"$holder" "$work/scoreboard" >"$work/holder.out" & pids+=($!)
until grep -q ready "$work/holder.out" 2>/dev/null; do sleep 0.05; done

printf 'agentaddress udp:127.0.0.1:%s\nmaster agentx\nagentXSocket tcp:127.0.0.1:%s\nrocommunity public 127.0.0.1\n' "$master" "$ax" >"$work/snmpd.conf"
SNMP_PERSISTENT_DIR=$work MIBS= /usr/sbin/snmpd -f -Lo -C -c "$work/snmpd.conf" >/dev/null 2>&1 & pids+=($!)
until MIBS= snmpget -v2c -c public -t 0.3 -r 0 "127.0.0.1:$master" 1.3.6.1.2.1.1.3.0 >/dev/null 2>&1; do sleep 0.1; done

RUST_LOG=warn "$agent" --scoreboard "$work/scoreboard" --listen "127.0.0.1:$udp" --agentx "tcp:127.0.0.1:$ax" \
  --queue-directory off --engine-state "$work/engine" \
  --v3-user bench:sha256:benchauth123:aes128:benchpriv123 & pids+=($!)

root=1.3.6.1.4.1.15312.2.1
export MIBS=   # numeric output: time the agent, not the tools' MIB parsing
until snmpget -v2c -c public -t 0.3 -r 0 "127.0.0.1:$master" "$root.1.2.1.0" 2>/dev/null | grep -q Counter32; do sleep 0.1; done

rows=$(snmpbulkwalk -v2c -c public -On "127.0.0.1:$udp" "$root" | grep -vc 'No more variables')
echo "avis-snmp-agent ($profile build): $rows rows under $root"

declare -A cmds=(
  ["bulkwalk v2c -Cr10 (direct)"]="snmpbulkwalk -v2c -c public -On 127.0.0.1:$udp $root"
  ["bulkwalk v2c -Cr50 (direct)"]="snmpbulkwalk -v2c -c public -On -Cr50 127.0.0.1:$udp $root"
  ["walk v2c, one GETNEXT per row (direct)"]="snmpwalk -v2c -c public -On 127.0.0.1:$udp $root"
  ["bulkwalk v3 authPriv SHA-256/AES (direct)"]="snmpbulkwalk -v3 -l authPriv -u bench -a SHA-256 -A benchauth123 -x AES -X benchpriv123 -On 127.0.0.1:$udp $root"
  ["get inMsgs.0 (direct)"]="snmpget -v2c -c public -On 127.0.0.1:$udp $root.1.2.1.0"
  ["bulkwalk v2c -Cr10 (snmpd + AgentX)"]="snmpbulkwalk -v2c -c public -On 127.0.0.1:$master $root"
  ["get sysUpTime.0 of snmpd itself (tool start-up floor)"]="snmpget -v2c -c public -On 127.0.0.1:$master 1.3.6.1.2.1.1.3.0"
)
order=("bulkwalk v2c -Cr10 (direct)" "bulkwalk v2c -Cr50 (direct)" "walk v2c, one GETNEXT per row (direct)"
  "bulkwalk v3 authPriv SHA-256/AES (direct)" "get inMsgs.0 (direct)" "bulkwalk v2c -Cr10 (snmpd + AgentX)"
  "get sysUpTime.0 of snmpd itself (tool start-up floor)")

# The agent alone, without the tools' start-up: an in-process UDP client walking N times.
"$target/$profile/examples/walk_rtt" "127.0.0.1:$udp" "${WALKS:-300}"

if command -v hyperfine >/dev/null; then
  args=()
  for name in "${order[@]}"; do args+=(-n "$name" "${cmds[$name]}"); done
  hyperfine -N --warmup 3 --runs "${RUNS:-30}" --style basic "${args[@]}" 2>&1 | grep -E '^(Benchmark|  Time|  Range)'
else
  for name in "${order[@]}"; do
    n=${RUNS:-30}; start=$(date +%s%N)
    for ((i = 0; i < n; i++)); do eval "${cmds[$name]}" >/dev/null; done
    echo "$name: $(((($(date +%s%N) - start) / n) / 1000)) us mean over $n runs"
  done
fi
