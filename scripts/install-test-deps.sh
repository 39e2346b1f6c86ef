#!/usr/bin/env bash
# Installs, from Debian, the real programs the end-to-end tests talk to.
# Idempotent and quiet; .ci/run calls it, and so can a developer on a fresh machine.
set -euo pipefail

packages=(
  snmp snmpd                 # net-snmp: snmpget/snmpbulkwalk/snmptranslate, and snmpd as AgentX master
  monitoring-plugins-basic   # Nagios check_snmp
  monitoring-plugins-standard  # Debian 12 ships check_snmp here, not in -basic
  tmux                       # a real terminal for the TUI test
  postfix swaks              # Postfix topologies, smtp-source/smtp-sink; swaks as an SMTP client
  python3
  clamav-daemon spamd rspamd # real scanners for the scanner clients' tests (no freshclam: the test writes its own signatures)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Postfix asks how to configure itself; the tests run private instances, so: none.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packaged daemons are not ours to run; tests start private instances on loopback.
  for svc in snmpd postfix clamav-daemon.socket clamav-daemon clamav-freshclam clamav-freshclam-once.timer spamd rspamd; do
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
    service "$svc" stop >/dev/null 2>&1 || true
  done
fi

# Every tool the end-to-end tests start must be here now (the tests load our MIB with
# minimal SNMPv2-SMI/TC stand-ins from agent-mib/mib/ietf: Debian's IETF modules are in
# non-free snmp-mibs-downloader, which downloads them).
for tool in snmpget snmpbulkwalk snmptranslate snmpd tmux swaks smtp-source smtp-sink postconf clamd spamd rspamd; do
  command -v "$tool" >/dev/null 2>&1 || { [ -x "/usr/sbin/$tool" ] || { echo "missing after install: $tool" >&2; exit 1; }; }
done
# A strict OpenMetrics parser for the avis-agent --prometheus test.
pip install --quiet prometheus-client==0.26.0
echo "test dependencies present"
