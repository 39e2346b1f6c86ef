#!/usr/bin/env bash
# Throughput with the real scanners, one machine, one run, one corpus: avisd with ClamAV's
# clamd and SpamAssassin's spamd, side by side with Debian's amavisd-new using the SAME
# clamd (its 'ClamAV-clamd' entry: ask_daemon, CONTSCAN over clamd's Unix socket; clamd
# runs as root so it reads amavisd's temp files) and SpamAssassin in-process
# (Mail::SpamAssassin) with the same site config as spamd: the packaged rules and .pre
# files, use_bayes 0, bayes_auto_learn 0, local tests only (spamd --local,
# $sa_local_tests_only). Both deliver into Postfix's smtp-sink. Then avisd's own time per
# message outside the scanners, from its JSON events (elapsed.*).
#
# Concurrency, the same on both sides: CONC=4 (default) client sessions at once, each a
# loop of Postfix's smtp-source -s 1 over the corpus; avisd max_servers 4 and spamd
# --max-children/--min-children/--max-spare 4; amavisd-new $max_servers 4. clamd keeps its
# default thread pool (it serves one system at a time). Messages go one per connection.
#
# Corpus: tests/corpus rendered by `cargo run -q -p tests --example corpus -- DIR`, less the
# file named *oversized* (bounced by design, and bigger than amavisd's own limits), with LF
# line ends (smtp-source -F adds the CRs and the dot-stuffing); CORPUS=DIR takes DIR/*.eml
# instead. EICAR and GTUBE are assembled at run time from pieces.
#
# Each system first gets one warm-up pass of the corpus per session (not timed: spamd's
# and amavisd's SpamAssassin children compile their rules on first use), then a timed run
# of PASSES passes (default: enough for ~MIN_SECONDS=30 s on the faster system, from its
# warm-up rate); both systems get the same number of messages.
#
#   bench/scanners.sh                  (as root: amavisd and clamd need it; release avisd,
#                                       built only if missing)
#   CONC=4 PASSES=2 bench/scanners.sh  (short development run)
# Every process it starts is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
CONC=${CONC:-4}
MIN_SECONDS=${MIN_SECONDS:-30}
PASSES=${PASSES:-}
AVISD=${AVISD:-${CARGO_TARGET_DIR:-target}/release/avisd}
SINK=/usr/sbin/smtp-sink; SOURCE=/usr/sbin/smtp-source
for t in clamd spamd /usr/sbin/amavisd "$SINK" "$SOURCE" python3; do
  command -v "$t" >/dev/null || { echo "missing: $t (Debian: clamav-daemon spamd amavisd-new postfix)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root (amavisd switches to its user; clamd must read its files)" >&2; exit 1; }
[ -x "$AVISD" ] || cargo build --release --bin avisd

work=$(mktemp -d /tmp/avis-scanners.XXXXXX); chmod 755 "$work"; pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port seconds what logfile
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$3 did not listen on 127.0.0.1:$1 within $2 s; its log:" >&2; tail -n 30 "$4" >&2; exit 1
}
SINK_PORT=$(port); AVISD_PORT=$(port); AMAVIS_PORT=$(port); CLAMD_PORT=$(port); SPAMD_PORT=$(port)

# --- the test strings, from pieces (no file of the repository carries either whole) ---
# shellcheck disable=SC2016 # the $ are the string's own
EICAR_HEX=$(python3 -c 'print(("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS" + "-TEST-FILE!$H+H*").encode().hex())')

# --- corpus ---
corpus="$work/corpus"; mkdir -p "$corpus"
if [ -n "${CORPUS:-}" ]; then
  cp "$CORPUS"/*.eml "$corpus"/; corpus_from="$CORPUS"
else
  cargo run -q -p tests --example corpus -- "$corpus" >/dev/null
  corpus_from="tests/corpus (cargo run -p tests --example corpus)"
fi
rm -f "$corpus"/*oversized*
# smtp-source -F sends each line of the file followed by CRLF and keeps a CR that ends the
# line: give it LF line ends (bare CRs elsewhere in a line stay as they are).
python3 -c '
import pathlib, sys
for p in pathlib.Path(sys.argv[1]).glob("*.eml"):
    p.write_bytes(p.read_bytes().replace(b"\r\n", b"\n"))' "$corpus"
mapfile -t files < <(find "$corpus" -maxdepth 1 -name '*.eml' -type f | sort)
((${#files[@]})) || { echo "empty corpus in $corpus" >&2; exit 1; }
NFILES=${#files[@]}
chmod -R a+rX "$corpus"

# --- smtp-sink, the back end of both ---
"$SINK" -u nobody -c "127.0.0.1:$SINK_PORT" 256 >/dev/null 2>&1 & pids+=($!)

# --- clamd: foreground, private config, one test signature; root, so it reads amavisd's files ---
cdir="$work/clamd"; mkdir -p "$cdir/db"; chmod 755 "$cdir"
echo "Avis-Test-Eicar:0:*:$EICAR_HEX" > "$cdir/db/avis-test.ndb"
cat > "$cdir/clamd.conf" <<CONF
Foreground yes
DatabaseDirectory $cdir/db
TCPSocket $CLAMD_PORT
TCPAddr 127.0.0.1
LocalSocket $cdir/clamd.sock
LocalSocketMode 666
StreamMaxLength 25M
SelfCheck 0
LogFile $cdir/clamd.log
PidFile $cdir/clamd.pid
CONF
clamd -c "$cdir/clamd.conf" </dev/null >"$cdir/clamd.out" 2>&1 & pids+=($!)

# --- spamd: the packaged rules, our site config (the .pre files, bayes off), local tests only ---
sdir="$work/spamd"; site="$sdir/site"; mkdir -p "$site"; chmod 755 "$sdir"
cp /etc/spamassassin/*.pre "$site"/
printf 'use_bayes 0\nbayes_auto_learn 0\n' > "$site/local.cf"
chmod -R a+rX "$sdir"
spamd --local --nouser-config --syslog=stderr --max-children="$CONC" --min-children="$CONC" --max-spare="$CONC" \
  --allowed-ips=127.0.0.1 --listen="127.0.0.1:$SPAMD_PORT" --pidfile="$sdir/spamd.pid" \
  --siteconfigpath="$site" --helper-home-dir="$sdir" </dev/null >"$sdir/spamd.log" 2>&1 & pids+=($!)

# --- avisd ---
cat > "$work/avisd.toml" <<TOML
[daemon]
hostname = "bench.test"
state_dir = "$work/state"
max_servers = $CONC
events = "file:$work/events.jsonl"
[[listen]]
address = "127.0.0.1:$AVISD_PORT"
[policy.default]
forward = "smtp:[127.0.0.1]:$SINK_PORT"
[policy.default.checks]
virus_scanners = ["tcp:127.0.0.1:$CLAMD_PORT"]
spamd = "tcp:127.0.0.1:$SPAMD_PORT"
scanner_timeout = 120
TOML

# --- amavisd-new: clamd through ask_daemon, SpamAssassin in-process ---
home="$work/amavis"; mkdir -p "$home/tmp" "$home/db" "$home/var" "$home/quarantine"; chown -R amavis:amavis "$home"
# amavisd refuses a config file in a directory its user can write: keep it in $work.
# As Debian's conf.d: \$path (01-debian) so it finds file(1), xz, bzip2; Amavis::IO::Zlib,
# which Debian's stock config loads through its AM.PDP socket (25-amavis_helpers) and which
# the gzipped spam quarantine needs.
cat > "$work/amavisd.conf" <<PERL
use strict;
use Amavis::IO::Zlib;
\$ENV{PATH} = \$path = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/usr/bin:/bin';
\$MYHOME = '$home'; \$TEMPBASE = "$home/tmp"; \$db_home = "$home/db"; \$helpers_home = "$home/var";
\$daemon_user = 'amavis'; \$daemon_group = 'amavis';
\$pid_file = "$home/var/amavisd.pid"; \$lock_file = "$home/var/amavisd.lock";
\$max_servers = $CONC; \$max_requests = 1000;
\$inet_socket_port = $AMAVIS_PORT; \$inet_socket_bind = '127.0.0.1'; @inet_acl = qw(127.0.0.1);
\$forward_method = 'smtp:[127.0.0.1]:$SINK_PORT'; \$notify_method = \$forward_method;
@bypass_virus_checks_maps = (0); @bypass_spam_checks_maps = (0);
@av_scanners = (['ClamAV-clamd', \&ask_daemon, ["CONTSCAN {}\n", "$cdir/clamd.sock"],
  qr/\bOK\$/m, qr/\bFOUND\$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND\$/m ]);
@av_scanners_backup = ();
\$sa_siteconfigpath = '$site'; \$sa_local_tests_only = 1;
\$sa_tag_level_deflt = 2.0; \$sa_tag2_level_deflt = 6.31; \$sa_kill_level_deflt = 6.31;
\$sa_dsn_cutoff_level = 10; \$sa_mail_body_size_limit = 512000; \$sa_spam_subject_tag = undef;
\$QUARANTINEDIR = "$home/quarantine";
\$DO_SYSLOG = 0; \$LOGFILE = "$home/var/amavis.log"; \$log_level = 0;
PERL
# What avisd does by default: discard viruses and banned files, pass spam and bad headers,
# quarantine viruses, banned files and spam (not bad headers), ban what avisd's defaults ban,
# and decode within the same limits.
cat >> "$work/amavisd.conf" <<'PERL'
$final_virus_destiny = D_DISCARD; $final_banned_destiny = D_DISCARD;
$final_spam_destiny = D_PASS; $final_bad_header_destiny = D_PASS;
$bad_header_quarantine_to = undef;
$banned_filename_re = new_RE(
  qr'.\.(pif|scr)$'i,
  qr'\.[^./]*[A-Za-z][^./]*\.\s*(exe|vbs|pif|scr|bat|cmd|com|cpl|dll)[.\s]*$'i,
  qr'^\.(exe-ms)$',
  qr'^application/x-msdownload$'i, qr'^application/x-msdos-program$'i, qr'^application/hta$'i,
);
# Debian's decoding limits (20-debian_defaults), which avisd's defaults follow.
$MAXLEVELS = 14; $MAXFILES = 1500; $MIN_EXPANSION_QUOTA = 100*1024; $MAX_EXPANSION_QUOTA = 300*1024*1024;
$enable_db = 1; $enable_dkim_verification = 0; $enable_dkim_signing = 0;
$myhostname = 'bench.test'; $mydomain = 'bench.test'; @local_domains_maps = (1);
1;
PERL

wait_port "$CLAMD_PORT" 120 clamd "$cdir/clamd.out"
for _ in $(seq 100); do [ -S "$cdir/clamd.sock" ] && break; sleep 0.1; done
wait_port "$SPAMD_PORT" 180 spamd "$sdir/spamd.log"
RUST_LOG=warn "$AVISD" --config "$work/avisd.toml" 2>"$work/avisd.log" & pids+=($!)
wait_port "$AVISD_PORT" 10 avisd "$work/avisd.log"
/usr/sbin/amavisd -c "$work/amavisd.conf" foreground >"$home/var/stdout.log" 2>&1 & pids+=($!)
# Wait for the pid file: probing the port early hands a child a half-open session.
for _ in $(seq 300); do [ -s "$home/var/amavisd.pid" ] && break; sleep 0.2; done
[ -s "$home/var/amavisd.pid" ] || { echo "amavisd did not start:" >&2; tail -n 30 "$home/var/stdout.log" "$home/var/amavis.log" >&2; exit 1; }
sleep 3

# send PORT PASSES REPEAT: CONC loops at once, each of smtp-source -s 1 over every corpus
# file (loop w starting at a different file), REPEAT messages of a file per smtp-source,
# the corpus PASSES times. Prints the messages sent and the seconds taken.
send() {
  local port=$1 passes=$2 rep=$3 w t0 t1 fails=0 loops=()
  t0=$(date +%s%N)
  for ((w = 0; w < CONC; w++)); do
    (
      for ((p = 0; p < passes; p++)); do
        for ((i = 0; i < NFILES; i++)); do
          f=${files[$(((i + w * NFILES / CONC) % NFILES))]}
          "$SOURCE" -M client.bench.test -f bench@example.org -t sink@example.com -s 1 -m "$rep" -F "$f" "127.0.0.1:$port" ||
            { echo "smtp-source failed on $f" >&2; exit 1; }
        done
      done
    ) & loops+=($!)
  done
  for w in "${loops[@]}"; do wait "$w" || fails=$((fails + 1)); done
  t1=$(date +%s%N)
  ((fails == 0)) || { echo "$fails of $CONC client loops failed (port $port)" >&2; exit 1; }
  python3 -c "print($CONC * $passes * $rep * $NFILES, ($t1 - $t0) / 1e9)"
}
amavis_log="$home/var/amavis.log"
REPEAT=${REPEAT:-2}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# Warm-up (not timed): one pass per session.
r=$(send "$AVISD_PORT" 1 1); read -r _ warm_avis_s <<< "$r"
r=$(send "$AMAVIS_PORT" 1 1); read -r _ warm_amavis_s <<< "$r"
per_pass=$((CONC * NFILES * REPEAT))
if [ -z "$PASSES" ]; then
  PASSES=$(python3 -c "
import math
fast = min($warm_avis_s, $warm_amavis_s) / ($CONC * $NFILES)  # seconds per message, faster system
print(max(1, math.ceil($MIN_SECONDS / (fast * $per_pass))))")
fi
events_before=$(wc -l < "$work/events.jsonl")
sleep 1; amavis_before=$(wc -l < "$amavis_log")

r=$(send "$AVISD_PORT" "$PASSES" "$REPEAT"); read -r n avis_s <<< "$r"
r=$(send "$AMAVIS_PORT" "$PASSES" "$REPEAT"); read -r _ amavis_s <<< "$r"
sleep 2

echo "corpus: $corpus_from, $NFILES messages ($(du -cb "${files[@]}" | tail -1 | cut -f1) bytes):"
for f in "${files[@]}"; do printf '  %s (%s B)' "$(basename "$f" .eml)" "$(stat -c %s "$f")"; done; echo
echo "concurrency $CONC (sessions, avisd max_servers, spamd children, amavisd \$max_servers); $PASSES passes x $REPEAT per file per session"
echo "load average before: $load_before; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
python3 - "$work/events.jsonl" "$events_before" "$amavis_log" "$amavis_before" "$n" "$avis_s" "$amavis_s" "${files[@]}" <<'PY'
import json, os, re, sys
from collections import Counter, defaultdict
events, ev_skip, alog, al_skip = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
n, avis_s, amavis_s = int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7])
files = sys.argv[8:]
ev = [json.loads(l) for l in open(events).read().splitlines()[ev_skip:] if l.strip()]
lines = open(alog, errors="replace").read().splitlines()[al_skip:]

ra, rm = n / avis_s, n / amavis_s
print(f"{'messages':>9} {'avisd s':>9} {'amavisd s':>10} {'msgs/s avisd':>13} {'msgs/s amavisd-new':>19} {'avisd/amavisd-new':>18}")
print(f"{n:>9} {avis_s:>9.1f} {amavis_s:>10.1f} {ra:>13.1f} {rm:>19.1f} {ra / rm:>18.2f}")

# Which corpus file a message was: by its Message-ID.
by_id = {}
for f in files:
    head = open(f, "rb").read().split(b"\n\n", 1)[0].decode("latin-1")
    m = re.search(r"(?im)^message-id:\s*<([^>]*)>", head)
    if m:
        by_id.setdefault(m.group(1), os.path.basename(f)[:-4])
name_of = lambda mid: by_id.get((mid or "").strip("<>"), "(no Message-ID)")

# Verdicts: avisd's content categories, amavisd's words (its main log line per message, the
# one with {actions}), in the same names.
def avis_cat(ct):
    for pre, name in (("Virus", "INFECTED"), ("Banned", "BANNED"), ("Spammy", "SPAMMY"), ("Spam", "SPAM"),
                      ("BadHdr", "BAD-HEADER"), ("Unchecked", "UNCHECKED"), ("Oversized", "OVERSIZED"),
                      ("Clean", "CLEAN"), ("MtaBlocked", "MTA-BLOCKED")):
        if ct.startswith(pre):
            return name
    return ct or "?"
cats_a, cats_m = Counter(), Counter()
per_a, per_m = defaultdict(Counter), defaultdict(Counter)
el = lambda e, k: float(e.get("elapsed", {}).get(k, 0.0))
t_a = defaultdict(lambda: [0, 0.0, 0.0, 0.0])  # count, Total, scanners, own
for e in ev:
    c, f = avis_cat(e.get("content_type", "")), name_of(e.get("message_id"))
    cats_a[c] += 1; per_a[f][c] += 1
    t = t_a[f]; t[0] += 1; t[1] += el(e, "Total"); t[2] += el(e, "VirusCheck") + el(e, "SpamCheck")
    t[3] += el(e, "Total") - el(e, "VirusCheck") - el(e, "SpamCheck") - el(e, "Receiving") - el(e, "Sending")
main = re.compile(r"\) (?:Passed|Blocked) ([A-Z]+(?:-[A-Z]+)?)[-0-9]*(?: \(.*?\))? \{")
mid_re, ms_re = re.compile(r"Message-ID: <([^>]*)>"), re.compile(r", (\d+) ms$")
t_m = defaultdict(lambda: [0, 0.0])
trouble = Counter()
no_sa_m = 0
for l in lines:
    m = main.search(l)
    if m:
        c = m.group(1)
        mi = mid_re.search(l); f = name_of(mi.group(1) if mi else None)
        cats_m[c] += 1; per_m[f][c] += 1
        no_sa_m += ", Hits: -," in l
        ms = ms_re.search(l)
        if ms:
            t_m[f][0] += 1; t_m[f][1] += int(ms.group(1)) / 1000
    elif "TROUBLE" in l or "(!)" in l:
        trouble[re.sub(r"^.*?\) ", "", l)] += 1
tempfail_a = sum(1 for e in ev if e.get("outcome") == "TempFailed")
print()
print(f"verdicts in the timed run: {'category':<12} {'avisd':>7} {'amavisd-new':>12}")
for c in sorted(set(cats_a) | set(cats_m)):
    print(f"{'':27}{c:<12} {cats_a[c]:>7} {cats_m[c]:>12}")
print(f"{'':27}{'(total)':<12} {len(ev):>7} {sum(cats_m.values()):>12}")
print(f"avisd events with outcome TempFailed: {tempfail_a}; amavisd log lines with (!) or TROUBLE: {sum(trouble.values())}")
for t, k in trouble.most_common(5):
    print(f"  {k} x amavisd: {t[:150]}")
no_sa_a = sum(1 for e in ev if "S" not in e.get("checks_performed", ""))
print(f"messages not given to SpamAssassin: avisd {no_sa_a}, amavisd-new {no_sa_m} (both skip mail blocked for every"
      " recipient; avisd also mail over spam_max_size, of which amavisd scans a truncated copy; amavisd logs Hits: -)")
if cats_a["INFECTED"] and not cats_m["INFECTED"]:
    print("WARNING: amavisd-new found no virus: its clamd entry is not working (see its log)")
if len(ev) != n or sum(cats_m.values()) != n:
    print(f"NOTE: {n} messages sent, {len(ev)} avisd events, {sum(cats_m.values())} amavisd verdict lines")

def verdict(c):
    return " ".join(k if v == max(c.values()) and len(c) == 1 else f"{k}x{v}" for k, v in c.most_common()) or "-"
mean = lambda tot, cnt: tot / cnt * 1000 if cnt else float("nan")
print()
print("per corpus message (verdict; mean ms per message: avisd's Total, its scanners, its own work")
print("outside Receiving and Sending; amavisd-new's elapsed as it logs it):")
print(f"  {'message':<28} {'avisd':<12} {'amavisd-new':<12} {'Total':>7} {'scan':>7} {'own':>7} {'amavisd':>8}")
for f in sorted(set(per_a) | set(per_m)):
    a, m = t_a[f], t_m[f]
    flag = "" if per_a[f] == per_m[f] else "  <- differ"
    print(f"  {f:<28} {verdict(per_a[f]):<12} {verdict(per_m[f]):<12} {mean(a[1], a[0]):7.1f} {mean(a[2], a[0]):7.1f}"
          f" {mean(a[3], a[0]):7.1f} {mean(m[1], m[0]):8.1f}{flag}")

# avisd's time per message outside the scanners.
def avg(k):
    return sum(el(e, k) for e in ev) / len(ev)
tot, rec, snd, dec, amv = avg("Total"), avg("Receiving"), avg("Sending"), avg("Decoding"), avg("Amavis")
scan = avg("VirusCheck") + avg("SpamCheck")
own = tot - scan - rec - snd
fmt = lambda s: f"{s * 1000:8.2f} ms"
print()
print(f"avisd's time per message (mean of {len(ev)} events; each elapsed.* is rounded to 1 ms):")
print(f"  Total                                       {fmt(tot)}")
print(f"  VirusCheck + SpamCheck (clamd, spamd)       {fmt(scan)}   (VirusCheck {avg('VirusCheck') * 1000:.2f}, SpamCheck {avg('SpamCheck') * 1000:.2f})")
print(f"  Amavis = Total - scanners                   {fmt(amv)}   {100 * amv / tot:6.2f} % of Total (target < 5 %)")
print(f"    of which Receiving (client's network)     {fmt(rec)}")
print(f"    of which Sending (back end's network)     {fmt(snd)}")
print(f"    Decoding                                  {fmt(dec)}   {100 * dec / tot:6.2f} % of Total")
print(f"  Total - scanners - Receiving - Sending      {fmt(own)}   {100 * own / tot:6.2f} % of Total")
held = [e for e in ev if e.get("content_type", "").startswith("Unchecked")]
rest = [e for e in ev if not e.get("content_type", "").startswith("Unchecked")]
if held and rest:
    rt, ra_ = sum(el(e, "Total") for e in rest), sum(el(e, "Amavis") for e in rest)
    rd = sum(el(e, "Decoding") for e in rest)
    print(f"  without the {len(held)} Unchecked messages (decoding limits reached): Amavis {100 * ra_ / rt:.2f} % of Total,"
          f" Decoding {100 * rd / rt:.2f} %")
PY
