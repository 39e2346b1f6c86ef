#!/usr/bin/env bash
# Relay throughput, one machine, one run: 20 sessions of Postfix's smtp-source for 1 KB,
# 10 KB, 100 KB and 1 MB messages, (1) straight into Postfix's smtp-sink (one hop),
# (2) through avisd into smtp-sink, (3) through Debian's amavisd-new (a pass-through
# config: virus and spam checks bypassed, $max_servers 4) into smtp-sink. Prints msgs/s,
# avisd's ratio to the one hop and to amavisd-new, and avisd's peak RSS.
#
#   bench/relay.sh            (as root; installs postfix and amavisd-new if missing,
#                              builds the release avisd if missing)
# Every process it starts is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS=20
declare -A COUNT=([1024]=1000 [10240]=1000 [102400]=300 [1048576]=60)
AVISD=${AVISD:-${CARGO_TARGET_DIR:-target}/release/avisd}
missing=()
for p in postfix amavisd-new; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for svc in postfix amavis; do systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true; done
fi
[ -x "$AVISD" ] || cargo build --release --bin avisd
SINK=/usr/sbin/smtp-sink; SOURCE=/usr/sbin/smtp-source
work=$(mktemp -d); chmod 755 "$work"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SINK_PORT=$(port); AVISD_PORT=$(port); AMAVIS_PORT=$(port)
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
TOML
RUST_LOG=warn "$AVISD" --config "$work/avisd.toml" 2>"$work/avisd.log" & pids+=($!); avisd_pid=$!
for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$AVISD_PORT") 2>/dev/null && break; sleep 0.1; done

home="$work/amavis"; mkdir -p "$home/tmp" "$home/db" "$home/var"; chown -R amavis:amavis "$home"
# amavisd refuses a config file in a directory its user can write: keep it in $work.
cat > "$work/amavisd.conf" <<PERL
use strict;
\$MYHOME = '$home'; \$TEMPBASE = "$home/tmp"; \$db_home = "$home/db";
\$daemon_user = 'amavis'; \$daemon_group = 'amavis';
\$pid_file = "$home/var/amavisd.pid"; \$lock_file = "$home/var/amavisd.lock";
\$max_servers = 4; \$max_requests = 1000;
\$inet_socket_port = $AMAVIS_PORT; \$inet_socket_bind = '127.0.0.1'; @inet_acl = qw(127.0.0.1);
\$forward_method = 'smtp:[127.0.0.1]:$SINK_PORT'; \$notify_method = \$forward_method;
@bypass_virus_checks_maps = (1); @bypass_spam_checks_maps = (1); @av_scanners = (); @av_scanners_backup = ();
\$enable_db = 1; \$enable_dkim_verification = 0; \$enable_dkim_signing = 0;
\$DO_SYSLOG = 0; \$LOGFILE = "$home/var/amavis.log"; \$log_level = 0;
\$myhostname = 'bench.test'; \$mydomain = 'bench.test'; @local_domains_maps = (1);
1;
PERL
/usr/sbin/amavisd -c "$work/amavisd.conf" foreground >"$home/var/stdout.log" 2>&1 & pids+=($!)
# Wait for the pid file: probing the port early hands a child a half-open session.
for _ in $(seq 150); do [ -s "$home/var/amavisd.pid" ] && break; sleep 0.2; done; sleep 2

rate() { # port size count -> msgs/s
  local t0 t1; t0=$(date +%s%N)
  "$SOURCE" -M client.bench.test -s "$SESSIONS" -m "$3" -l "$2" -f bench@example.org -t sink@example.com "127.0.0.1:$1"
  t1=$(date +%s%N)
  python3 -c "print(f'{$3/(($t1-$t0)/1e9):.0f}')"
}
printf '%-8s %8s %10s %10s %12s %16s %18s\n' size msgs one-hop avisd amavisd-new avisd/one-hop avisd/amavisd-new
for size in 1024 10240 102400 1048576; do
  n=${COUNT[$size]}
  hop=$(rate "$SINK_PORT" "$size" "$n"); avis=$(rate "$AVISD_PORT" "$size" "$n"); amavis=$(rate "$AMAVIS_PORT" "$size" "$n")
  python3 -c "print(f'{$size:<8} {$n:>8} {$hop:>10} {$avis:>10} {$amavis:>12} {$avis/$hop:>16.2f} {$avis/$amavis:>18.1f}')"
done
echo "avisd peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$avisd_pid/status") (20 sessions, up to 1 MB messages); $(wc -l < "$work/events.jsonl") events"
