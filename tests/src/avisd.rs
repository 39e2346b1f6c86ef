//! Starting a real avisd for a test: its own config file, state directory and ports.
//!
//! A test may talk to avisd as soon as [`Avisd::start`] returns: it waits until avisd
//! logged `avisd ready`, which avisd writes after it bound every listener (TCP, IPv6 and
//! Unix sockets alike), never for a fixed time or for one listener standing in for all.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Proc, bin, log_count, wait_for_log};

/// What avisd logs once every listener is bound (filter/src/accept.rs).
pub const READY: &str = "avisd ready";

/// A running avisd.
#[derive(Debug)]
pub struct Avisd {
    /// The process.
    pub proc: Proc,
    /// Its listening port.
    pub port: u16,
    /// Its scoreboard.
    pub scoreboard: PathBuf,
    /// Its JSON event file.
    pub events: PathBuf,
    /// Its config file.
    pub config: PathBuf,
    /// Its log (stderr, `RUST_LOG=info`), appended to across restarts.
    pub log: PathBuf,
}

/// The config text for a test avisd in `dir` on `port`, forwarding to `forward`;
/// `extra_policy` lines go into `[policy.default]`.
pub fn config_text(dir: &Path, port: u16, forward: &str, max_servers: usize, extra_policy: &str) -> String {
    format!(
        "[daemon]\nhostname = \"avis.test\"\nstate_dir = \"{state}\"\nmax_servers = {max_servers}\nspool_memory_threshold = 65536\nevents = \"file:{events}\"\ndrain_timeout = 20\nallow_root = true\n\n[[listen]]\naddress = \"127.0.0.1:{port}\"\n\n[policy.default]\nforward = \"{forward}\"\nforward_timeout = 20\n{extra_policy}\n",
        state = dir.join("state").display(),
        events = dir.join("events.jsonl").display(),
    )
}

impl Avisd {
    /// Writes the config into `dir` and starts avisd; returns once it is ready (every
    /// listener bound).
    pub fn start(dir: &Path, config: &str, port: u16) -> Avisd {
        let path = dir.join("avisd.toml");
        std::fs::write(&path, config).expect("write config");
        Avisd::start_with(dir, &path, port)
    }

    /// Starts avisd with an existing config file; returns once it logged [`READY`] (a
    /// restarted avisd appends to the same log, so only a new line counts). An avisd that
    /// exits during start-up fails the test at once, with its log.
    pub fn start_with(dir: &Path, config: &Path, port: u16) -> Avisd {
        let log_path = dir.join("avisd.log");
        let ready_before = log_count(&log_path, READY);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log");
        let mut proc = Proc::spawn(
            "avisd",
            Command::new(bin("avisd"))
                .arg("--config")
                .arg(config)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .stdout(Stdio::null())
                .stderr(log),
        );
        wait_for_log("avisd to be ready", &log_path, READY, ready_before, Some(&mut proc));
        Avisd {
            proc,
            port,
            scoreboard: dir.join("state").join("scoreboard"),
            events: dir.join("events.jsonl"),
            config: config.to_path_buf(),
            log: log_path,
        }
    }

    /// How many lines of its log contain `needle` so far.
    pub fn logged(&self, needle: &str) -> usize {
        log_count(&self.log, needle)
    }

    /// Waits until its log has more than `before` lines containing `needle`.
    pub fn wait_logged(&mut self, needle: &str, before: usize) {
        let what = format!("avisd to log {needle:?}");
        wait_for_log(&what, &self.log, needle, before, Some(&mut self.proc));
    }

    /// The JSON events written so far. avisd writes an event off the message path, a moment
    /// after counting the message: this polls (up to PATIENCE, which bounds only a failure) until the file holds as many
    /// events as the scoreboard counted, less those it counted as dropped.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let read = || -> Vec<serde_json::Value> {
            std::fs::read_to_string(&self.events)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        };
        let counted = || {
            agent_mib::Reader::new(&self.scoreboard).snapshot().ok().map_or(0, |s| {
                s.counter(agent_mib::Counter::LogEntries)
                    .saturating_sub(s.counter(agent_mib::Counter::EventsDropped))
            })
        };
        let started = std::time::Instant::now();
        loop {
            let events = read();
            if events.len() as u64 >= counted() || started.elapsed() > crate::PATIENCE {
                return events;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// A snapshot of its scoreboard.
    pub fn snapshot(&self) -> agent_mib::Snapshot {
        agent_mib::Reader::new(&self.scoreboard)
            .snapshot()
            .expect("scoreboard snapshot")
    }
}
