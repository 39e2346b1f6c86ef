#!/usr/bin/env bash
# Relay throughput: Postfix's smtp-source → avisd → Postfix's smtp-sink, against the
# same load straight into smtp-sink (the ceiling of this machine's loopback and tools).
# When Debian's amavisd-new is installed (apt-get install amavisd-new; its service
# stopped), the same load goes through it too, configured alike: no external scanner,
# its own decoding and banned/header checks, BerkeleyDB counters on, as many children.
# Usage: bench/relay.sh [messages] [sessions] [size-bytes]    (needs a release avisd:
# cargo build --release --bin avisd; and postfix installed: scripts/install-test-deps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
MSGS=${1:-5000}; SESSIONS=${2:-16}; SIZE=${3:-4096}
AVISD=${AVISD:-target/release/avisd}
[ -x "$AVISD" ] || { echo "build it first: cargo build --release --bin avisd" >&2; exit 1; }
SINK=/usr/sbin/smtp-sink; SOURCE=/usr/sbin/smtp-source
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SINK_PORT=$(port); AVISD_PORT=$(port)
"$SINK" -u nobody -c "127.0.0.1:$SINK_PORT" 256 >/dev/null 2>&1 & pids+=($!)
cat > "$work/avisd.toml" <<TOML
[daemon]
hostname = "bench.test"
state_dir = "$work/state"
max_servers = $SESSIONS
events = "file:$work/events.jsonl"
[[listen]]
address = "127.0.0.1:$AVISD_PORT"
[policy.default]
forward = "smtp:[127.0.0.1]:$SINK_PORT"
[policy.default.checks]
bad_header_checks = true
TOML
RUST_LOG=warn "$AVISD" --config "$work/avisd.toml" 2>"$work/avisd.log" & pids+=($!)
for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$AVISD_PORT") 2>/dev/null && break; sleep 0.1; done

run() { # $1 = port
  local t0 t1; t0=$(date +%s%N)
  "$SOURCE" -M client.bench.test -s "$SESSIONS" -m "$MSGS" -l "$SIZE" -f bench@example.org -t sink@example.com "127.0.0.1:$1"
  t1=$(date +%s%N)
  python3 -c "import sys; ms=($t1-$t0)/1e6; print(f'{$MSGS} messages of {$SIZE} B, {$SESSIONS} sessions: {ms/1000:.2f} s, {$MSGS/(ms/1000):.0f} msg/s')"
}
echo "straight into smtp-sink (ceiling):"; run "$SINK_PORT"
echo "through avisd (decode + header and banned checks, no external scanner):"; run "$AVISD_PORT"
events=$(wc -l < "$work/events.jsonl")
echo "avisd wrote $events events; RSS $(ps -o rss= -p "${pids[1]}") KiB"

if [ -x /usr/sbin/amavisd ] && id amavis >/dev/null 2>&1; then
  AMAVIS_PORT=$(port)
  home="$work/amavis"; mkdir -p "$home/tmp" "$home/db" "$home/var"; chown -R amavis:amavis "$home"
  chmod 755 "$work"
  # amavisd refuses a config file in a directory its user can write: keep it in $work.
  cat > "$work/amavisd.conf" <<PERL
use strict;
\$MYHOME = '$home'; \$TEMPBASE = "$home/tmp"; \$db_home = "$home/db";
\$daemon_user = 'amavis'; \$daemon_group = 'amavis';
\$pid_file = "$home/var/amavisd.pid"; \$lock_file = "$home/var/amavisd.lock";
\$max_servers = $SESSIONS; \$max_requests = 1000;
\$inet_socket_port = $AMAVIS_PORT; \$inet_socket_bind = '127.0.0.1'; @inet_acl = qw(127.0.0.1);
\$forward_method = 'smtp:[127.0.0.1]:$SINK_PORT'; \$notify_method = \$forward_method;
@bypass_virus_checks_maps = (1); @bypass_spam_checks_maps = (1);
\$enable_db = 1; \$enable_dkim_verification = 0; \$enable_dkim_signing = 0;
\$DO_SYSLOG = 0; \$LOGFILE = "$home/var/amavis.log"; \$log_level = 0;
\$myhostname = 'bench.test'; \$mydomain = 'bench.test'; @local_domains_maps = (1);
@av_scanners = (); @av_scanners_backup = ();
1;
PERL
  /usr/sbin/amavisd -c "$work/amavisd.conf" foreground >"$home/var/stdout.log" 2>&1 & pids+=($!)
  # Wait for the pid file: probing the port early hands a child a half-open session.
  for _ in $(seq 150); do [ -s "$home/var/amavisd.pid" ] && break; sleep 0.2; done; sleep 2
  echo "through amavisd-new $(dpkg-query -W -f='${Version}' amavisd-new) (same checks, no external scanner):"; run "$AMAVIS_PORT" || { tail -5 "$home/var/amavis.log"; exit 1; }
  kill "${pids[-1]}" 2>/dev/null || true
else
  echo "amavisd-new not installed: no peer figure (apt-get install amavisd-new, then stop its service)"
fi
