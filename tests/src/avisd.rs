//! Starting a real avisd for a test: its own config file, state directory and ports.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Proc, bin, wait_for};

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
    /// Writes the config into `dir` and starts avisd; waits until it accepts connections.
    pub fn start(dir: &Path, config: &str, port: u16) -> Avisd {
        let path = dir.join("avisd.toml");
        std::fs::write(&path, config).expect("write config");
        Avisd::start_with(dir, &path, port)
    }

    /// Starts avisd with an existing config file.
    pub fn start_with(dir: &Path, config: &Path, port: u16) -> Avisd {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("avisd.log"))
            .expect("log");
        let proc = Proc::spawn(
            "avisd",
            Command::new(bin("avisd"))
                .arg("--config")
                .arg(config)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log),
        );
        wait_for("avisd to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Avisd {
            proc,
            port,
            scoreboard: dir.join("state").join("scoreboard"),
            events: dir.join("events.jsonl"),
            config: config.to_path_buf(),
        }
    }

    /// The JSON events written so far. avisd writes an event off the message path, a moment
    /// after counting the message: this polls (2 s at most) until the file holds as many
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
            if events.len() as u64 >= counted() || started.elapsed() > Duration::from_secs(2) {
                return events;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A snapshot of its scoreboard.
    pub fn snapshot(&self) -> agent_mib::Snapshot {
        agent_mib::Reader::new(&self.scoreboard)
            .snapshot()
            .expect("scoreboard snapshot")
    }
}
