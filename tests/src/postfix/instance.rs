//! A private Postfix instance for a test: `main.cf` and `master.cf` generated into a
//! temporary directory with its own queue, data directory and log file, every command
//! run with `-c <that directory>`, stopped when dropped. Never touches `/etc/postfix`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::Tally;
use crate::{PATIENCE, require_tool, wait_for};

/// The standard Postfix services a private test instance needs (no chroot, no local
/// delivery), ahead of the topology's services in `master.cf`. Not for the documentation.
const BASE_MASTER_CF: &str = include_str!("../../postfix/base.master.cf");

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

    /// `postfix start`; returns when the master runs. A failed start is tried once more
    /// (under load a first start has been seen to fail with nothing on stdout); a second
    /// failure panics with the tail of the instance's own log, where Postfix says why.
    pub fn start(&mut self) {
        let first = self.cmd("postfix").arg("start").stdin(Stdio::null()).output();
        if !first.as_ref().is_ok_and(|o| o.status.success()) {
            std::thread::sleep(Duration::from_secs(1));
            let again = self.cmd("postfix").arg("start").stdin(Stdio::null()).output();
            if !again.as_ref().is_ok_and(|o| o.status.success()) {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                panic!(
                    "postfix start failed twice: {first:?} / {again:?}\nits log:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        self.running = true;
        wait_for("the Postfix master", PATIENCE, || self.master_pid());
    }

    /// `postfix reload` (re-reads `master.cf`: services added or removed); returns when
    /// the master has logged the reload.
    pub fn reload(&self) {
        let count = |log: &str| log.lines().filter(|l| l.contains(": reload -- version")).count();
        let before = count(&self.log_text());
        run("postfix reload", self.cmd("postfix").arg("reload"));
        wait_for("the Postfix master to reload", PATIENCE, || {
            (count(&self.log_text()) > before).then_some(())
        });
    }

    /// `postfix stop`, waiting until the master has gone.
    pub fn stop(&mut self) {
        if self.running {
            let _ = self.cmd("postfix").arg("stop").stdin(Stdio::null()).output();
            self.running = false;
            let deadline = Instant::now() + PATIENCE;
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

    /// Logs `text` as Postfix's programs do, through postlogd.
    pub fn log_line(&self, text: &str) {
        run(
            "postlog",
            self.cmd("postlog").args(["-t", "avis-test", "-p", "info", text]),
        );
    }

    /// The PID of a process the master runs, by its program name (`postlogd`, `qmgr`...).
    pub fn child_pid(&self, program: &str) -> Option<u32> {
        let master = self.master_pid()?;
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so split at the last ')'.
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (comm == program && ppid == master).then_some(pid)
        })
    }

    /// Waits until the log file holds every line logged so far. Postfix's programs send
    /// their lines to postlogd, which writes them to `maillog_file` when it gets to them:
    /// a marker logged now through the same channel (`postlog`) is written after every
    /// line sent before it, so once the marker is in the file, so are they.
    pub fn sync_log(&self) {
        static MARKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MARKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let marker = format!("avis-test log sync {} {n}", std::process::id());
        self.log_line(&marker);
        wait_for("Postfix's log to catch up", PATIENCE, || {
            self.log_text().contains(&marker).then_some(())
        });
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
