//! The scoreboard damaged under the running programs (issue 11): truncated or replaced
//! while avisd writes it and avis-snmp-agent reads it. Neither may die (before, both died
//! of SIGBUS), mail keeps flowing, avisd puts a whole file back with a clear log line,
//! and the agent serves the figures again from it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod snmp_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use snmp_support::*;
use tests::avisd::{Avisd, config_text};
use tests::mta::{Behaviour, FakeMta, send};
use tests::{Proc, TempDir, bin, free_tcp_port, wait_for};

const BODY: &str = "From: a@example.org\r\nDate: Sun, 29 Nov 2026 05:00:00 +0000\r\nSubject: s\r\n\r\nx\r\n";

fn relayed(port: u16) -> bool {
    send(port, false, "a@example.org", &["u@example.com"], BODY)
        .is_ok_and(|r| r.final_replies.iter().all(|l| l.starts_with("250")))
}

fn in_msgs(agent: &Agent) -> Option<u64> {
    let out = snmp(
        "snmpget",
        &[
            "-v2c",
            "-c",
            "public",
            "-t",
            "0.5",
            "-r",
            "0",
            "-Oqv",
            &agent.addr,
            "AMAVIS-MIB::inMsgs.0",
        ],
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn avisd_log(dir: &TempDir) -> String {
    std::fs::read_to_string(dir.join("avisd.log")).unwrap_or_default()
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn start(tag: &str) -> (TempDir, FakeMta, Avisd, Agent) {
    let dir = TempDir::new(tag);
    let backend = FakeMta::start(Behaviour::default());
    let port = free_tcp_port();
    let cfg = config_text(
        dir.path(),
        port,
        &format!("smtp:[127.0.0.1]:{}", backend.port),
        2,
        "local_domains = [\"example.com\"]",
    );
    let avisd = Avisd::start(dir.path(), &cfg, port);
    assert!(relayed(avisd.port));
    let agent = start_agent(&dir, &avisd.scoreboard, &[]);
    (dir, backend, avisd, agent)
}

#[test]
fn a_scoreboard_truncated_under_avisd_and_the_agent_kills_neither_and_avisd_puts_a_whole_one_back() {
    let (dir, _backend, mut avisd, mut agent) = start("sb-truncated");
    let whole = len(&avisd.scoreboard);
    std::fs::File::options()
        .write(true)
        .open(&avisd.scoreboard)
        .unwrap()
        .set_len(0)
        .unwrap();
    // Before the fix, avisd died of SIGBUS at this message's first counter bump.
    assert!(relayed(avisd.port), "mail still flows");
    // ... and the agent at its next read of the file.
    let _ = in_msgs(&agent);
    wait_for("avisd to recreate the scoreboard", Duration::from_secs(10), || {
        assert!(!avisd.proc.exited(), "avisd died:\n{}", avisd_log(&dir));
        avisd_log(&dir)
            .contains("the scoreboard was truncated under avisd")
            .then_some(())
    });
    assert!(avisd_log(&dir).contains("recreated it with the current figures"));
    assert_eq!(len(&avisd.scoreboard), whole);
    assert!(relayed(avisd.port));
    let served = wait_for("the agent to serve the new file", Duration::from_secs(15), || {
        assert!(!agent.proc.exited(), "the agent died:\n{}", agent_log(&dir));
        in_msgs(&agent).filter(|&n| n >= 1)
    });
    assert!(served >= 1, "the messages after the truncation are counted");
    assert!(!avisd.proc.exited() && !agent.proc.exited());
}

#[test]
fn a_scoreboard_replaced_under_avisd_is_noticed_and_avisd_puts_its_own_back() {
    let (dir, _backend, mut avisd, mut agent) = start("sb-replaced");
    assert!(relayed(avisd.port));
    let other = dir.join("other");
    std::fs::write(&other, b"not a scoreboard").unwrap();
    std::fs::rename(&other, &avisd.scoreboard).unwrap();
    wait_for("avisd to notice the replacement", Duration::from_secs(10), || {
        assert!(!avisd.proc.exited(), "avisd died:\n{}", avisd_log(&dir));
        avisd_log(&dir)
            .contains("the scoreboard was replaced by another file under avisd; recreated it")
            .then_some(())
    });
    // Nothing was lost: the two messages so far are in the file avisd put back.
    wait_for("the agent to serve avisd's figures", Duration::from_secs(15), || {
        assert!(!agent.proc.exited(), "the agent died:\n{}", agent_log(&dir));
        (in_msgs(&agent) == Some(2)).then_some(())
    });
}

#[test]
fn the_agent_survives_a_scoreboard_truncated_under_it_and_serves_nothing_meanwhile() {
    let dir = TempDir::new("sb-agent-truncated");
    let path = dir.join("scoreboard");
    let board = open_board(&path);
    known_load(&board, 5);
    let mut agent = start_agent(&dir, &path, &[]);
    assert_eq!(in_msgs(&agent), Some(5));
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    // Requests until the agent's snapshot is renewed from the truncated file: before the
    // fix, that read died of SIGBUS.
    wait_for("the agent to notice the damage", Duration::from_secs(15), || {
        assert!(!agent.proc.exited(), "the agent died:\n{}", agent_log(&dir));
        (in_msgs(&agent) == Some(0)).then_some(())
    });
    assert!(
        agent_log(&dir).contains("is damaged: it shrank to 0 bytes"),
        "{}",
        agent_log(&dir)
    );
    // The writer (here the test, in avisd's place) puts a whole file back: served again.
    assert!(matches!(board.check_file(), agent_mib::FileCheck::Recreated(_)));
    board.bump(agent_mib::Counter::InMsgs, 1);
    wait_for("the agent to serve the new file", Duration::from_secs(15), || {
        assert!(!agent.proc.exited(), "the agent died:\n{}", agent_log(&dir));
        (in_msgs(&agent) == Some(1)).then_some(())
    });
}

/// A small tmpfs mounted for one test; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` where we may not mount (not root).
    fn mount(at: PathBuf, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(&at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(at))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn avisd_with_its_scoreboard_on_a_full_disk_refuses_to_start_with_a_clear_message() {
    let dir = TempDir::new("sb-full-disk");
    let Some(fs) = Tmpfs::mount(dir.join("full"), "64k") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let port = free_tcp_port();
    let cfg = config_text(dir.path(), port, "smtp:[127.0.0.1]:1", 2, "").replacen(
        "[daemon]\n",
        &format!("[daemon]\nscoreboard = \"{}\"\n", fs.0.join("scoreboard").display()),
        1,
    );
    std::fs::write(dir.join("avisd.toml"), cfg).unwrap();
    let mut avisd = Proc::spawn(
        "avisd",
        Command::new(bin("avisd"))
            .arg("--config")
            .arg(dir.join("avisd.toml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("avisd.log")).unwrap()),
    );
    // Before the fix, avisd started on a sparse file and died of SIGBUS at the first
    // message whose counters sat on a page the disk had no room for.
    let status = wait_for("avisd to refuse to start", Duration::from_secs(10), || {
        avisd.child.try_wait().ok().flatten()
    });
    assert!(
        status.code().is_some_and(|c| c != 0),
        "an error exit, not a signal: {status:?}"
    );
    let log = avisd_log(&dir);
    assert!(log.contains("cannot reserve the scoreboard's blocks"), "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    drop(avisd);
}
