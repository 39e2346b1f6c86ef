//! Real Postfix topologies around a real avisd: a private Postfix instance (its own
//! `main.cf`, `master.cf`, queue, data directory and log file under a temporary path,
//! services on free loopback ports), started and stopped by the test, with the Rust
//! [`FakeMta`] as the final sink so every delivered message can be counted.
//!
//! The `master.cf`/`main.cf` snippets an operator needs are constants here, with
//! `{PLACEHOLDERS}`; the tests run them with free ports and `docs/postfix.md` quotes them
//! rendered with the production values ([`Ports::production`]). `postfix_docs.rs` checks
//! that the document contains every rendered snippet verbatim, so the two cannot drift.
//!
//! Nothing here touches `/etc/postfix` or the packaged Postfix service: every command
//! gets `-c <private config dir>`. Postfix needs root to start (CI runs the tests as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::avisd::Avisd;
use crate::mta::{Behaviour, FakeMta, Received};
use crate::{TempDir, free_tcp_port, require_tool, wait_for};

/// After-queue ("sandwich"), `master.cf`: the front smtpd hands every message it queued to
/// the `avis-filter` transport, which delivers it to avisd; `maxproc` of that transport is
/// avisd's `max_servers`.
pub const AFTER_QUEUE_MASTER_CF: &str = "\
{FRONT}  inet  n  -  n  -  -  smtpd
  -o content_filter=avis-filter:[127.0.0.1]:{AVISD_PORT}
  -o receive_override_options=no_address_mappings
avis-filter  unix  -  -  n  -  {MAX_SERVERS}  smtp
  -o smtp_data_done_timeout=1200s
  -o smtp_send_xforward_command=yes
  -o smtp_dns_support_level=disabled
  -o max_use=20
  -o syslog_name=postfix/avis-filter
";

/// After-queue, `main.cf`: never more deliveries to avisd at once than it has workers.
pub const AFTER_QUEUE_MAIN_CF: &str = "\
avis-filter_destination_concurrency_limit = {MAX_SERVERS}
avis-filter_destination_recipient_limit = 1000
";

/// Before-queue proxy, `master.cf`: the front smtpd receives the whole message
/// (`speed_adjust`), then replays it to avisd and gives the client avisd's answer; nothing
/// is queued unless avisd (and so the reinjection listener) accepted it. `maxproc` of the
/// front smtpd is avisd's `max_servers`.
pub const BEFORE_QUEUE_MASTER_CF: &str = "\
{FRONT}  inet  n  -  n  -  {MAX_SERVERS}  smtpd
  -o smtpd_proxy_filter=127.0.0.1:{AVISD_PORT}
  -o smtpd_proxy_options=speed_adjust
  -o smtpd_proxy_timeout=300s
";

/// Both topologies, `master.cf`: the reinjection listener avisd forwards to. No filter,
/// no second round of checks; XFORWARD from avisd is trusted so the log keeps the
/// original client.
pub const REINJECTION_MASTER_CF: &str = "\
127.0.0.1:{REINJECT_PORT}  inet  n  -  n  -  -  smtpd
  -o content_filter=
  -o smtpd_proxy_filter=
  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters
  -o smtpd_authorized_xforward_hosts=127.0.0.0/8
  -o mynetworks=127.0.0.0/8
  -o smtpd_client_restrictions=
  -o smtpd_helo_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_relay_restrictions=
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o smtpd_data_restrictions=
  -o smtpd_end_of_data_restrictions=
  -o smtpd_client_connection_count_limit=0
  -o smtpd_client_connection_rate_limit=0
  -o smtpd_error_sleep_time=0
  -o smtpd_soft_error_limit=1001
  -o smtpd_hard_error_limit=1000
  -o syslog_name=postfix/reinject
";

/// avisd's side of both topologies (`/etc/avis/avisd.toml`): `max_servers` matches the
/// Postfix process limit above, the timeouts stay below Postfix's.
pub const AVISD_TOML: &str = "\
[daemon]
state_dir = \"{STATE_DIR}\"
max_servers = {MAX_SERVERS}
events = \"{EVENTS}\"

[[listen]]
address = \"127.0.0.1:{AVISD_PORT}\"

[policy.default]
forward = \"smtp:[127.0.0.1]:{REINJECT_PORT}\"
idle_timeout = 240
data_timeout = 150
forward_timeout = 240
";

/// The standard Postfix services a private test instance needs (no chroot, no local
/// delivery), ahead of the topology's services in `master.cf`. Not for the documentation.
const BASE_MASTER_CF: &str = "\
pickup    unix  n  -  n  60    1  pickup
cleanup   unix  n  -  n  -     0  cleanup
qmgr      unix  n  -  n  300   1  qmgr
rewrite   unix  -  -  n  -     -  trivial-rewrite
bounce    unix  -  -  n  -     0  bounce
defer     unix  -  -  n  -     0  bounce
trace     unix  -  -  n  -     0  bounce
verify    unix  -  -  n  -     1  verify
flush     unix  n  -  n  1000? 0  flush
proxymap  unix  -  -  n  -     -  proxymap
smtp      unix  -  -  n  -     -  smtp
relay     unix  -  -  n  -     -  smtp
showq     unix  n  -  n  -     -  showq
error     unix  -  -  n  -     -  error
retry     unix  -  -  n  -     -  error
discard   unix  -  -  n  -     -  discard
anvil     unix  -  -  n  -     1  anvil
scache    unix  -  -  n  -     1  scache
postlog   unix-dgram n - n -   1  postlogd
";

/// Where things listen, and the values that fill the snippets' placeholders.
#[derive(Debug, Clone)]
pub struct Ports {
    /// The front smtpd's `master.cf` service name (`smtp`, or `127.0.0.1:PORT` in tests).
    pub front: String,
    /// avisd's port on 127.0.0.1.
    pub avisd: u16,
    /// The reinjection smtpd's port on 127.0.0.1.
    pub reinject: u16,
    /// avisd's `max_servers`, and Postfix's process limit towards it.
    pub max_servers: usize,
    /// avisd's `state_dir`.
    pub state_dir: String,
    /// avisd's `events` sink.
    pub events: String,
}

impl Ports {
    /// The values the documentation shows: Postfix on port 25, avisd on 10024, the
    /// reinjection listener on 10025, avisd's default `max_servers`.
    pub fn production() -> Ports {
        Ports {
            front: "smtp".to_string(),
            avisd: 10024,
            reinject: 10025,
            max_servers: 8,
            state_dir: "/var/lib/avis".to_string(),
            events: "syslog".to_string(),
        }
    }

    /// Fills a snippet's placeholders.
    pub fn render(&self, snippet: &str) -> String {
        snippet
            .replace("{FRONT}", &self.front)
            .replace("{AVISD_PORT}", &self.avisd.to_string())
            .replace("{REINJECT_PORT}", &self.reinject.to_string())
            .replace("{MAX_SERVERS}", &self.max_servers.to_string())
            .replace("{STATE_DIR}", &self.state_dir)
            .replace("{EVENTS}", &self.events)
    }
}

/// The two topologies the documentation describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Postfix queues, then `content_filter` delivers to avisd, which reinjects.
    AfterQueue,
    /// Postfix's smtpd proxies the session to avisd before anything is queued.
    BeforeQueue,
}

impl Kind {
    /// The topology's `master.cf` services (front and reinjection) for `ports`.
    pub fn master_cf(self, ports: &Ports) -> String {
        let front = match self {
            Kind::AfterQueue => AFTER_QUEUE_MASTER_CF,
            Kind::BeforeQueue => BEFORE_QUEUE_MASTER_CF,
        };
        format!("{}{}", ports.render(front), ports.render(REINJECTION_MASTER_CF))
    }

    /// The topology's `main.cf` lines for `ports`.
    pub fn main_cf(self, ports: &Ports) -> String {
        match self {
            Kind::AfterQueue => ports.render(AFTER_QUEUE_MAIN_CF),
            Kind::BeforeQueue => String::new(),
        }
    }
}

/// A private Postfix instance: config, queue, data and log under one directory.
#[derive(Debug)]
pub struct Postfix {
    /// Its config directory (`postfix -c`).
    pub config_dir: PathBuf,
    /// Its own log file (`maillog_file`).
    pub log: PathBuf,
    queue_dir: PathBuf,
    running: bool,
}

fn run(what: &str, cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Postfix {
    /// Writes a private instance into `root` (a fresh directory): `main.cf` with the
    /// test's base settings, `relayhost` pointing at `sink_port`, then `main_extra`;
    /// `master.cf` with the standard services, then `services`. Runs `postfix check`.
    pub fn create(root: &Path, sink_port: u16, main_extra: &str, services: &str) -> Postfix {
        require_tool("postfix");
        let config_dir = root.join("conf");
        let queue_dir = root.join("queue");
        let data_dir = root.join("data");
        for d in [&config_dir, &queue_dir, &data_dir] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        run(
            "chown postfix data_directory",
            Command::new("chown").arg("postfix").arg(&data_dir),
        );
        let log = root.join("maillog");
        let main = format!(
            "compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.avis.test
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink_port}
smtp_dns_support_level = disabled
maillog_file = {log}
maillog_file_prefixes = {root}
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 4s
smtp_connect_timeout = 5s
smtpd_error_sleep_time = 0
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
{main_extra}",
            queue = queue_dir.display(),
            data = data_dir.display(),
            log = log.display(),
            root = root.display(),
        );
        std::fs::write(config_dir.join("main.cf"), main).expect("write main.cf");
        let pf = Postfix {
            config_dir,
            log,
            queue_dir,
            running: false,
        };
        pf.set_services(services);
        run("postfix check", pf.cmd("postfix").arg("check"));
        pf
    }

    fn cmd(&self, tool: &str) -> Command {
        let mut c = Command::new(require_tool(tool));
        c.arg("-c").arg(&self.config_dir);
        c
    }

    /// Rewrites `master.cf`: the standard services, then `services` (takes effect at the
    /// next start or [`Postfix::reload`]).
    pub fn set_services(&self, services: &str) {
        std::fs::write(self.config_dir.join("master.cf"), format!("{BASE_MASTER_CF}{services}"))
            .expect("write master.cf");
    }

    /// `postfix start`; returns when the master runs.
    pub fn start(&mut self) {
        run("postfix start", self.cmd("postfix").arg("start"));
        self.running = true;
        wait_for("the Postfix master", Duration::from_secs(20), || self.master_pid());
    }

    /// `postfix reload` (re-reads `master.cf`: services added or removed).
    pub fn reload(&self) {
        run("postfix reload", self.cmd("postfix").arg("reload"));
    }

    /// `postfix stop`, waiting until the master has gone.
    pub fn stop(&mut self) {
        if self.running {
            let _ = self.cmd("postfix").arg("stop").stdin(Stdio::null()).output();
            self.running = false;
            let deadline = Instant::now() + Duration::from_secs(20);
            while self.master_pid().is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn master_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.queue_dir.join("pid").join("master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// `postqueue -f`: retry every deferred message now.
    pub fn flush(&self) {
        let _ = self.cmd("postqueue").arg("-f").stdin(Stdio::null()).output();
    }

    /// The messages in the queue (`postqueue -j`), one JSON object each. A message the
    /// queue manager moves while showq walks the queue directories can be listed twice;
    /// it is kept once (by queue id).
    pub fn queue(&self) -> Vec<serde_json::Value> {
        let out = run("postqueue -j", self.cmd("postqueue").arg("-j"));
        let mut seen = std::collections::HashSet::new();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| seen.insert(m["queue_id"].as_str().unwrap_or_default().to_string()))
            .collect()
    }

    /// Flushes every second until the queue is empty; panics after `timeout`.
    pub fn drain_queue(&self, timeout: Duration) {
        let start = Instant::now();
        loop {
            let q = self.queue();
            if q.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "the queue still holds {} messages after {timeout:?}: {q:?}",
                q.len()
            );
            self.flush();
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Postfix's own tally of its log.
    pub fn tally(&self) -> Tally {
        Tally::of(&self.log_text())
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What Postfix's log says happened: delivery attempts by status and by the port of
/// the next hop, and the before-queue proxy's answers.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// (next-hop port, status) of every `status=` line.
    pub deliveries: Vec<(u16, String)>,
    /// `proxy-accept` lines (before-queue: avisd answered 2xx at the end of DATA).
    pub proxy_accept: usize,
    /// `proxy-reject` lines (before-queue: avisd refused; the client got its reply).
    pub proxy_reject: usize,
    /// Lines of Postfix's own bounce notices (`sender non-delivery notification`).
    pub notices: usize,
    /// (original queue id, new queue id) of each message received with XFORWARD IDENT:
    /// the reinjection listener's `QID: client=..., orig_queue_id=ORIG` lines.
    pub reinjected: Vec<(String, String)>,
}

impl Tally {
    /// Parses a Postfix log.
    pub fn of(log: &str) -> Tally {
        let mut t = Tally::default();
        for line in log.lines() {
            if line.contains("proxy-accept:") {
                t.proxy_accept += 1;
            }
            if line.contains("proxy-reject:") {
                t.proxy_reject += 1;
            }
            if line.contains("sender non-delivery notification") {
                t.notices += 1;
            }
            if let Some((head, orig)) = line.split_once(", orig_queue_id=") {
                let orig = orig.split(',').next().unwrap_or_default().to_string();
                let qid = head
                    .rsplit_once("]: ")
                    .and_then(|(_, rest)| rest.split(':').next())
                    .unwrap_or_default()
                    .to_string();
                t.reinjected.push((orig, qid));
            }
            let status = line
                .split(", status=")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .map(str::to_string);
            let port = line
                .split(", relay=")
                .nth(1)
                .and_then(|s| s.split(',').next())
                .and_then(|r| r.rsplit_once("]:"))
                .and_then(|(_, p)| p.parse::<u16>().ok());
            if let Some(status) = status {
                t.deliveries.push((port.unwrap_or(0), status));
            }
        }
        t
    }

    /// How many `status=<status>` lines name `port` as the next hop (0: no relay, as for
    /// a message bounced without a connection).
    pub fn count(&self, port: u16, status: &str) -> usize {
        self.deliveries
            .iter()
            .filter(|(p, s)| *p == port && s == status)
            .count()
    }

    /// How many `status=<status>` lines, whatever the next hop.
    pub fn total(&self, status: &str) -> usize {
        self.deliveries.iter().filter(|(_, s)| s == status).count()
    }
}

/// What arrived at the sink, sorted out.
#[derive(Debug, Clone, Default)]
pub struct SinkCount {
    /// Messages that are neither DSNs nor postmaster notices, by distinct Message-ID.
    pub distinct: usize,
    /// Copies beyond the first of the same Message-ID.
    pub duplicates: usize,
    /// Delivery status notifications (null sender).
    pub dsns: usize,
    /// Postfix's notices to the postmaster (`notify_classes`; sender `double-bounce@`).
    pub postmaster_notices: usize,
}

/// The Message-ID field of a message, if any.
pub fn message_id(data: &str) -> Option<String> {
    data.split("\r\n\r\n").next().and_then(|head| {
        head.lines()
            .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
            .map(|l| l[11..].trim().to_string())
    })
}

/// Sorts the sink's messages into distinct originals, duplicates, DSNs and postmaster
/// notices.
pub fn count_sink(received: &[Received]) -> SinkCount {
    let mut ids = std::collections::HashSet::new();
    let mut c = SinkCount::default();
    for m in received {
        if m.from.is_empty() {
            c.dsns += 1;
        } else if m.from.starts_with("double-bounce@") {
            c.postmaster_notices += 1;
        } else if ids.insert(message_id(&m.data).unwrap_or_else(|| m.data.clone())) {
            c.distinct += 1;
        } else {
            c.duplicates += 1;
        }
    }
    c
}

/// A whole topology: a Postfix instance (front and reinjection listeners), avisd between
/// them, and the sink behind.
#[derive(Debug)]
pub struct Topology {
    /// Which one.
    pub kind: Kind,
    /// Ports and values.
    pub ports: Ports,
    /// The front smtpd's port.
    pub front_port: u16,
    /// The final sink (rejects `reject-*` recipients with 550).
    pub sink: FakeMta,
    /// avisd; `None` while a test has it stopped.
    pub avisd: Option<Avisd>,
    /// The Postfix instance.
    pub postfix: Postfix,
    /// avisd's config file.
    pub avisd_config: PathBuf,
    /// The temporary directory holding everything.
    pub dir: TempDir,
}

impl Topology {
    /// Starts the sink, avisd (its config is [`AVISD_TOML`] plus `extra_policy` lines in
    /// `[policy.default]`) and a Postfix instance running `kind`'s snippets plus
    /// `extra_services` (test-only `master.cf` lines).
    pub fn start(kind: Kind, tag: &str, max_servers: usize, extra_policy: &str) -> Topology {
        let dir = TempDir::new(tag);
        let sink = FakeMta::start(Behaviour::default());
        let front_port = free_tcp_port();
        let ports = Ports {
            front: format!("127.0.0.1:{front_port}"),
            avisd: free_tcp_port(),
            reinject: free_tcp_port(),
            max_servers,
            state_dir: dir.join("state").display().to_string(),
            events: format!("file:{}", dir.join("events.jsonl").display()),
        };
        let avisd_text = format!("{}{extra_policy}\n", ports.render(AVISD_TOML));
        let avisd = Avisd::start(dir.path(), &avisd_text, ports.avisd);
        let avisd_config = avisd.config.clone();
        let mut postfix = Postfix::create(
            &dir.join("postfix"),
            sink.port,
            &kind.main_cf(&ports),
            &kind.master_cf(&ports),
        );
        postfix.start();
        for port in [front_port, ports.reinject] {
            wait_for("Postfix's listeners", Duration::from_secs(20), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).ok()
            });
        }
        Topology {
            kind,
            ports,
            front_port,
            sink,
            avisd: Some(avisd),
            postfix,
            avisd_config,
            dir,
        }
    }

    /// The running avisd.
    pub fn avisd(&self) -> &Avisd {
        self.avisd.as_ref().expect("avisd is running")
    }

    /// Kills avisd with SIGKILL (sent directly, not through a `kill` process, so the
    /// transactions a test saw in flight are still in flight) and waits for it to be gone.
    pub fn kill_avisd(&mut self) {
        if let Some(mut a) = self.avisd.take() {
            let _ = a.proc.child.kill();
            let _ = a.proc.child.wait();
        }
    }

    /// Stops avisd with SIGTERM (graceful drain) and waits for it to exit.
    pub fn stop_avisd(&mut self) {
        if let Some(mut a) = self.avisd.take() {
            a.proc.signal("TERM");
            let _ = a.proc.child.wait();
        }
    }

    /// Starts avisd again with the same config and state (the scoreboard carries on).
    pub fn restart_avisd(&mut self) {
        assert!(self.avisd.is_none(), "avisd is still running");
        self.avisd = Some(Avisd::start_with(self.dir.path(), &self.avisd_config, self.ports.avisd));
    }

    /// Replaces the test-only services in `master.cf` and reloads Postfix; with
    /// `reinjection` false the reinjection listener is removed (it stops listening).
    pub fn reconfigure(&self, reinjection: bool, extra_services: &str) {
        let front = match self.kind {
            Kind::AfterQueue => AFTER_QUEUE_MASTER_CF,
            Kind::BeforeQueue => BEFORE_QUEUE_MASTER_CF,
        };
        let reinject = if reinjection {
            self.ports.render(REINJECTION_MASTER_CF)
        } else {
            String::new()
        };
        self.postfix
            .set_services(&format!("{}{reinject}{extra_services}", self.ports.render(front)));
        self.postfix.reload();
    }

    /// Runs `smtp-source` against the front smtpd: `sessions` parallel sessions,
    /// `messages` messages of about `size` bytes from `from` to `to`. Returns its output.
    pub fn smtp_source(&self, sessions: usize, messages: usize, size: usize, from: &str, to: &str) -> Output {
        self.smtp_source_command(sessions, messages, size, from, to)
            .output()
            .expect("run smtp-source")
    }

    /// The `smtp-source` command of [`Topology::smtp_source`], to run in the background.
    pub fn smtp_source_command(&self, sessions: usize, messages: usize, size: usize, from: &str, to: &str) -> Command {
        let mut c = Command::new(require_tool("smtp-source"));
        c.args(["-s", &sessions.to_string(), "-m", &messages.to_string()])
            .args(["-l", &size.to_string(), "-f", from, "-t", to])
            .arg(format!("127.0.0.1:{}", self.front_port))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs `swaks` against the front smtpd with `args` (`--from`, `--to`, `--body`...);
    /// returns its output, the client's transcript of the session.
    pub fn swaks(&self, args: &[&str]) -> Output {
        Command::new(require_tool("swaks"))
            .args([
                "--server",
                &format!("127.0.0.1:{}", self.front_port),
                "--helo",
                "client.test",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run swaks")
    }

    /// Waits until the queue is empty (flushing) and avisd has nothing in flight.
    pub fn settle(&self, timeout: Duration) {
        self.postfix.drain_queue(timeout);
        if let Some(a) = &self.avisd {
            wait_for("avisd to finish its transactions", timeout, || {
                (a.snapshot().ledger(agent_mib::LedgerKey::InFlight) == 0).then_some(())
            });
        }
    }

    /// Waits until the sink has stopped receiving for a second and returns its count.
    pub fn sink_count(&self) -> SinkCount {
        let mut last = usize::MAX;
        loop {
            let n = self.sink.received().len();
            if n == last {
                return count_sink(&self.sink.received());
            }
            last = n;
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Every snippet `docs/postfix.md` quotes: its marker name, its fence language, and its
/// text rendered with [`Ports::production`].
pub fn doc_snippets() -> Vec<(&'static str, &'static str, String)> {
    let p = Ports::production();
    vec![
        ("after-queue master.cf", "text", p.render(AFTER_QUEUE_MASTER_CF)),
        ("after-queue main.cf", "text", p.render(AFTER_QUEUE_MAIN_CF)),
        ("before-queue master.cf", "text", p.render(BEFORE_QUEUE_MASTER_CF)),
        ("reinjection master.cf", "text", p.render(REINJECTION_MASTER_CF)),
        ("avisd.toml", "toml", p.render(AVISD_TOML)),
    ]
}

/// The fenced block that follows `<!-- snippet: NAME -->` in `doc`, if any, as the byte
/// range of its body (from after the opening fence line to the closing fence).
pub fn snippet_block(doc: &str, name: &str, lang: &str) -> Option<std::ops::Range<usize>> {
    let open = format!("<!-- snippet: {name} -->\n```{lang}\n");
    let start = doc.find(&open)? + open.len();
    let len = doc[start..].find("```\n")?;
    Some(start..start + len)
}
