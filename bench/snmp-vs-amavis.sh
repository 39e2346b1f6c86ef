#!/usr/bin/env bash
# The same SNMP walk through one private net-snmp snmpd master, answered by amavisd-new's
# own AgentX subagent (amavisd-snmp-subagent, reading a live amavisd's BerkeleyDB) and
# then by avis-snmp-agent (reading a live scoreboard): what a poller sees, side by side.
#
#   bench/snmp-vs-amavis.sh [runs]
#
# Needs: Debian's amavisd-new (its service stopped) and libsnmp-perl (NetSNMP::agent for
# amavisd-snmp-subagent), net-snmp (snmp, snmpd), postfix (smtp-source/smtp-sink),
# hyperfine; and a build of avis-snmp-agent and its hold_scoreboard example
# (cargo build --release -p snmp-agent --bins --examples). Root (amavisd drops to amavis).
# Every process it starts is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-30}
target=${CARGO_TARGET_DIR:-target}
profile=release; [ -x "$target/release/avis-snmp-agent" ] || profile=debug
agent=$target/$profile/avis-snmp-agent; holder=$target/$profile/examples/hold_scoreboard
for x in /usr/sbin/amavisd /usr/sbin/amavisd-snmp-subagent /usr/sbin/snmpd "$agent" "$holder"; do
  [ -x "$x" ] || { echo "missing: $x" >&2; exit 1; }
done
perl -MNetSNMP::agent -e1 2>/dev/null || { echo "missing: libsnmp-perl" >&2; exit 1; }

work=$(mktemp -d /tmp/avis-snmp-vs.XXXXXX); chmod 755 "$work"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, getattr(socket, sys.argv[1])); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"; }
master=$(port SOCK_DGRAM); ax=$(port SOCK_STREAM); sink=$(port SOCK_STREAM); amavis=$(port SOCK_STREAM)
root=1.3.6.1.4.1.15312.2.1
export MIBS=   # numeric output: time the agents, not the tools' MIB parsing

printf 'agentaddress udp:127.0.0.1:%s\nmaster agentx\nagentXSocket tcp:127.0.0.1:%s\nagentXTimeout 5\nrocommunity public 127.0.0.1\n' "$master" "$ax" >"$work/snmpd.conf"
SNMP_PERSISTENT_DIR=$work /usr/sbin/snmpd -f -Lo -C -c "$work/snmpd.conf" >/dev/null 2>&1 & pids+=($!)
until snmpget -v2c -c public -t 0.3 -r 0 "127.0.0.1:$master" 1.3.6.1.2.1.1.3.0 >/dev/null 2>&1; do sleep 0.1; done

# amavisd-new with its BerkeleyDB counters, and some mail through it.
/usr/sbin/smtp-sink -u nobody -c "127.0.0.1:$sink" 64 >/dev/null 2>&1 & pids+=($!)
home="$work/amavis"; mkdir -p "$home/tmp" "$home/db" "$home/var"; chown -R amavis:amavis "$home"
cat > "$work/amavisd.conf" <<PERL
use strict;
\$MYHOME = '$home'; \$TEMPBASE = "$home/tmp"; \$db_home = "$home/db";
\$daemon_user = 'amavis'; \$daemon_group = 'amavis';
\$pid_file = "$home/var/amavisd.pid"; \$lock_file = "$home/var/amavisd.lock";
\$max_servers = 2; \$inet_socket_port = $amavis; \$inet_socket_bind = '127.0.0.1'; @inet_acl = qw(127.0.0.1);
\$forward_method = 'smtp:[127.0.0.1]:$sink'; \$notify_method = \$forward_method;
@bypass_virus_checks_maps = (1); @bypass_spam_checks_maps = (1); @av_scanners = (); @av_scanners_backup = ();
\$enable_db = 1; \$DO_SYSLOG = 0; \$LOGFILE = "$home/var/amavis.log"; \$log_level = 0;
\$myhostname = 'bench.test'; \$mydomain = 'bench.test'; @local_domains_maps = (1);
1;
PERL
/usr/sbin/amavisd -c "$work/amavisd.conf" foreground >/dev/null 2>&1 & pids+=($!)
for _ in $(seq 150); do [ -s "$home/var/amavisd.pid" ] && break; sleep 0.2; done; sleep 2
/usr/sbin/smtp-source -M client.bench.test -s 2 -m 50 -f a@example.org -t b@example.com "127.0.0.1:$amavis"

# amavisd-snmp-subagent, told the master's socket through net-snmp's app config.
mkdir -p "$work/agentxconf"; echo "agentXSocket tcp:127.0.0.1:$ax" > "$work/agentxconf/amavis-agentx.conf"
SNMPCONFPATH="$work/agentxconf" /usr/sbin/amavisd-snmp-subagent -f -D "$home/db" >"$work/amavis-agentx.log" 2>&1 & pids+=($!)
sub=$!
until snmpget -v2c -c public -t 1 -r 0 "127.0.0.1:$master" "$root.1.2.1.0" 2>/dev/null | grep -q Counter32; do sleep 0.2; done
walk="snmpbulkwalk -v2c -c public -On -t 5 -r 0 127.0.0.1:$master $root"
rows=$($walk | grep -vc 'No more variables' || true)
echo "amavisd-snmp-subagent (amavisd-new $(dpkg-query -W -f='${Version}' amavisd-new)): $rows rows under $root through snmpd"
hyperfine -N -w 3 -r "$RUNS" --style basic "$walk" 2>&1 | grep -E 'Time|Range'
kill "$sub"; wait "$sub" 2>/dev/null || true
until ! snmpget -v2c -c public -t 0.5 -r 0 "127.0.0.1:$master" "$root.1.2.1.0" 2>/dev/null | grep -q Counter32; do sleep 0.2; done

# avis-snmp-agent on the same master, over a live scoreboard.
"$holder" "$work/scoreboard" >"$work/holder.out" & pids+=($!)
until grep -q ready "$work/holder.out" 2>/dev/null; do sleep 0.05; done
RUST_LOG=warn "$agent" --scoreboard "$work/scoreboard" --agentx "tcp:127.0.0.1:$ax" --queue-directory off \
  --engine-state "$work/engine" & pids+=($!)
until snmpget -v2c -c public -t 1 -r 0 "127.0.0.1:$master" "$root.1.2.1.0" 2>/dev/null | grep -q Counter32; do sleep 0.2; done
rows=$($walk | grep -vc 'No more variables' || true)
echo "avis-snmp-agent ($profile): $rows rows under $root through snmpd"
hyperfine -N -w 3 -r "$RUNS" --style basic "$walk" 2>&1 | grep -E 'Time|Range'
