//! Real Postfix topologies around a real avisd: a private Postfix instance (its own
//! `main.cf`, `master.cf`, queue, data directory and log file under a temporary path,
//! services on free loopback ports), started and stopped by the test, with the Rust
//! [`FakeMta`] as the final sink so every delivered message can be counted.
//!
//! The `master.cf`/`main.cf`/`avisd.toml` snippets an operator needs are templates in
//! `tests/postfix/` with `{PLACEHOLDERS}`, included here as constants; the tests run them
//! with free ports and `docs/postfix.md` quotes them rendered with the production values
//! ([`Ports::production`]). `postfix_docs.rs` checks that the document contains every
//! rendered snippet verbatim, so the two cannot drift.
//!
//! Nothing here touches `/etc/postfix` or the packaged Postfix service: every command
//! gets `-c <private config dir>`. Postfix needs root to start (CI runs the tests as root).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::avisd::Avisd;
use crate::mta::{Behaviour, FakeMta};
use crate::{PATIENCE, TempDir, free_tcp_port, require_tool, wait_for};

mod count;
mod instance;

pub use count::{SinkCount, Tally, count_sink, message_id};
pub use instance::Postfix;

/// After-queue ("sandwich"), `master.cf`: the front smtpd hands every message it queued to
/// the `avis-filter` transport, which delivers it to avisd; `maxproc` of that transport is
/// avisd's `max_servers`.
pub const AFTER_QUEUE_MASTER_CF: &str = include_str!("../postfix/after-queue.master.cf");

/// After-queue, `main.cf`: never more deliveries to avisd at once than it has workers.
pub const AFTER_QUEUE_MAIN_CF: &str = include_str!("../postfix/after-queue.main.cf");

/// Before-queue proxy, `master.cf`: the front smtpd receives the whole message
/// (`speed_adjust`), then replays it to avisd and gives the client avisd's answer; nothing
/// is queued unless avisd (and so the reinjection listener) accepted it. `maxproc` of the
/// front smtpd is avisd's `max_servers`.
pub const BEFORE_QUEUE_MASTER_CF: &str = include_str!("../postfix/before-queue.master.cf");

/// Both topologies, `master.cf`: the reinjection listener avisd forwards to. No filter,
/// no second round of checks; XFORWARD from avisd is trusted so the log keeps the
/// original client.
pub const REINJECTION_MASTER_CF: &str = include_str!("../postfix/reinjection.master.cf");

/// avisd's side of both topologies (`/etc/avis/avisd.toml`): `max_servers` matches the
/// Postfix process limit above, the timeouts stay below Postfix's.
pub const AVISD_TOML: &str = include_str!("../postfix/avisd.toml");

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
    /// Whom avisd runs as: a `user` to drop root to in production; the tests run as root.
    pub run_as: String,
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
            run_as: "user = \"avis\"                      # bind as root, then run as avis".to_string(),
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
            .replace("{RUN_AS}", &self.run_as)
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
    // One topology at a time per test binary: each runs a Postfix, an avisd and a load on
    // two cores, and parallel ones starved each other's timeouts. Declared last, so it is
    // released after everything above has stopped.
    _serial: std::sync::MutexGuard<'static, ()>,
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Topology {
    /// Starts the sink, avisd and a Postfix instance running `kind`'s snippets. avisd's
    /// config is [`AVISD_TOML`] followed by `extra_policy`: lines for `[policy.default]`
    /// (such as `message_size_limit = 65536`), then any further sections a test needs
    /// (scanners, for instance, when content checks are configured).
    pub fn start(kind: Kind, tag: &str, max_servers: usize, extra_policy: &str) -> Topology {
        // A test that failed holding the lock poisons it; the next one may still run.
        let serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = TempDir::new(tag);
        // A back end that takes 20 ms to commit each message keeps transactions in flight
        // long enough for the fault tests to kill avisd in the middle of some.
        let sink = FakeMta::start(Behaviour {
            commit_delay: Duration::from_millis(20),
            ..Behaviour::default()
        });
        let front_port = free_tcp_port();
        let ports = Ports {
            front: format!("127.0.0.1:{front_port}"),
            avisd: free_tcp_port(),
            reinject: free_tcp_port(),
            max_servers,
            state_dir: dir.join("state").display().to_string(),
            events: format!("file:{}", dir.join("events.jsonl").display()),
            run_as: "allow_root = true                  # the tests run as root".to_string(),
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
            wait_for("Postfix's listeners", PATIENCE, || {
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
            _serial: serial,
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

    /// Waits (polling every millisecond) until avisd has taken `messages` messages and
    /// holds `in_flight` transactions, then kills it with SIGKILL at once. Returns the
    /// transactions in flight in the last snapshot.
    pub fn kill_avisd_when_busy(&mut self, messages: u64, in_flight: i64) -> i64 {
        let deadline = std::time::Instant::now() + PATIENCE;
        let seen = loop {
            let snap = self.avisd().snapshot();
            let now = snap.ledger(agent_mib::LedgerKey::InFlight);
            if snap.counter(agent_mib::Counter::InMsgs) >= messages && now >= in_flight {
                break now;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "avisd never took {messages} messages with {in_flight} in flight"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        self.kill_avisd();
        seen
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

    /// Rewrites the topology's services in `master.cf` and reloads Postfix: with
    /// `reinjection` false the reinjection listener is left out (it stops listening);
    /// `extra` is appended right after it, so `  -o name=value` lines extend that service
    /// (test-only settings, never documented).
    pub fn reconfigure(&self, reinjection: bool, extra: &str) {
        let mut services = self.kind.master_cf(&self.ports);
        if !reinjection {
            services = services.replace(&self.ports.render(REINJECTION_MASTER_CF), "");
        }
        self.postfix.set_services(&format!("{services}{extra}"));
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

    /// Waits until avisd has nothing in flight and Postfix's queue is empty at the same
    /// time (flushing deferred mail meanwhile), then until Postfix's log has caught up
    /// ([`Postfix::sync_log`]). After it, the sink, the log and the scoreboard are final.
    pub fn settle(&self) {
        let start = std::time::Instant::now();
        let mut flushed = start;
        loop {
            // avisd first: a transaction it finishes after this check reinjects into a
            // queue the next check sees.
            let idle = self
                .avisd
                .as_ref()
                .is_none_or(|a| a.snapshot().ledger(agent_mib::LedgerKey::InFlight) == 0);
            let queue = self.postfix.queue();
            if idle && queue.is_empty() {
                break;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "not settled after {PATIENCE:?}: avisd idle {idle}, the queue holds {} messages: {queue:?}",
                queue.len()
            );
            if flushed.elapsed() >= Duration::from_secs(1) {
                self.postfix.flush();
                flushed = std::time::Instant::now();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.postfix.sync_log();
    }

    /// What arrived at the sink, sorted out. Final after [`Topology::settle`] (an empty
    /// queue means Postfix has handed everything on); a test that expects something
    /// Postfix sends on its own (a notice) waits for it first.
    pub fn sink_count(&self) -> SinkCount {
        count_sink(&self.sink.received())
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

/// Test messages for the content checks, as the fake scanners of [`crate::fakescan`] see
/// them: clean, a virus, spam, and a banned attachment (an executable named `.pdf.exe`).
pub mod samples {
    /// A message with `Subject: subject`, Message-ID `<id@client.test>` and `body`.
    pub fn message(id: &str, subject: &str, body: &str) -> String {
        format!(
            "From: sender@example.org\r\nDate: Sun, 29 Nov 2026 05:00:00 +0000\r\nSubject: {subject}\r\nMessage-ID: <{id}@client.test>\r\n\r\n{body}\r\n"
        )
    }

    /// What the fake clamd reports as `Fake.Virus`.
    pub fn virus(id: &str) -> String {
        message(id, "invoice", "VIRUS-MARKER")
    }

    /// What the fake spamd scores 15.
    pub fn spam(id: &str) -> String {
        message(id, "offer", "SPAM-MARKER")
    }

    /// A Windows executable attached as `invoice.pdf.exe` (banned by amavisd's default rules).
    pub fn banned(id: &str) -> String {
        format!(
            "From: sender@example.org\r\nDate: Sun, 29 Nov 2026 05:00:00 +0000\r\nSubject: invoice\r\nMessage-ID: <{id}@client.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--B\r\nContent-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\nContent-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAA=\r\n--B--\r\n"
        )
    }

    /// The `[policy.default.checks]` section for avisd with the fake clamd and spamd on
    /// these ports, then `destinies` lines (such as `final_virus_destiny = "reject"`).
    pub fn checks(clamd: u16, spamd: u16, destinies: &str) -> String {
        format!(
            "\n[policy.default.checks]\nvirus_scanners = [\"tcp:127.0.0.1:{clamd}\"]\nspamd = \"tcp:127.0.0.1:{spamd}\"\nscanner_timeout = 5\n{destinies}\n"
        )
    }
}
