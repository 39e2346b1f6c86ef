//! What avisd does at start and leaves on disk (issue 11, items 5, 10 and 11): spool files
//! are private and never outlive a killed daemon; started as root, avisd either becomes
//! `[daemon] user` once bound or refuses, unless root was explicitly allowed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tests::avisd::{Avisd, config_text};
use tests::mta::{Behaviour, FakeMta, send};
use tests::{Proc, TempDir, bin, free_tcp_port, wait_for};

/// A message of about `kib` KiB, larger than the tests' 64 KiB memory threshold when
/// `kib` is, so it is spooled to a file.
fn large_message(kib: usize) -> String {
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    format!(
        "From: sender@example.org\r\nSubject: large\r\n\r\n{}",
        line.repeat(kib * 1024 / line.len())
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

fn spool_files(state: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(state.join("spool"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// `Uid:` of /proc/PID/status: real, effective, saved, filesystem.
fn uids(pid: u32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().skip(1).map(|u| u.parse().unwrap()).collect()
}

fn running_as_root() -> bool {
    uids(std::process::id())[1] == 0
}

#[test]
fn a_spool_file_is_private_and_what_a_sigkill_mid_data_leaves_is_removed_at_the_next_start() {
    let dir = TempDir::new("start-spool");
    let backend = FakeMta::start(Behaviour::default());
    let port = free_tcp_port();
    let cfg = config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", backend.port), 2, "");
    let avisd = Avisd::start(dir.path(), &cfg, port);
    let state = dir.join("state");

    // Half a large message: spooled to a file, no final dot.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    s.write_all(b"HELO client\r\nMAIL FROM:<sender@example.org>\r\nRCPT TO:<user@example.com>\r\nDATA\r\n")
        .unwrap();
    for _ in 0..4 {
        line.clear();
        r.read_line(&mut line).unwrap();
    }
    assert!(line.starts_with("354"), "{line}");
    // More than the receiver's 256 KiB chunk, so part of it reaches the spool file.
    s.write_all(large_message(600).as_bytes()).unwrap();
    let spooled = wait_for("the body to be spooled to a file", Duration::from_secs(10), || {
        spool_files(&state).into_iter().next()
    });
    assert_eq!(mode(&spooled), 0o600, "a spool file is readable by its owner only");
    assert_eq!(mode(&state.join("spool")), 0o700, "the spool directory is private");

    let mut avisd = avisd;
    avisd.proc.signal("KILL");
    wait_for("avisd to die", Duration::from_secs(10), || {
        avisd.proc.exited().then_some(())
    });
    drop(s);
    assert_eq!(spool_files(&state).len(), 1, "the killed daemon left its spool file");

    let again = Avisd::start_with(dir.path(), &avisd.config, port);
    assert_eq!(
        spool_files(&state),
        Vec::<std::path::PathBuf>::new(),
        "the leftover is removed at start"
    );
    let r = send(
        again.port,
        false,
        "sender@example.org",
        &["user@example.com"],
        &large_message(200),
    )
    .unwrap();
    assert!(r.final_replies[0].starts_with("250 "), "{:?}", r.final_replies);
    assert_eq!(backend.received().len(), 1);
}

#[test]
fn started_as_root_without_a_user_avisd_refuses_unless_root_is_explicitly_allowed() {
    if !running_as_root() {
        eprintln!("not root: nothing to refuse");
        return;
    }
    let dir = TempDir::new("start-root");
    let port = free_tcp_port();
    let cfg = config_text(dir.path(), port, "smtp:[127.0.0.1]:1", 2, "").replace("allow_root = true\n", "");
    let path = dir.join("avisd.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut p = Proc::spawn(
        "avisd",
        Command::new(bin("avisd"))
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let status = wait_for("avisd to refuse", Duration::from_secs(20), || {
        p.child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(78), "a configuration problem (EX_CONFIG)");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut p.child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("refusing to run as root"), "{err}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "nothing listens");
}

#[test]
fn started_as_root_with_a_user_avisd_binds_then_serves_mail_as_that_user() {
    if !running_as_root() {
        eprintln!("not root: no privileges to drop");
        return;
    }
    let dir = TempDir::new("start-user");
    let backend = FakeMta::start(Behaviour::default());
    let port = free_tcp_port();
    let cfg = config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", backend.port), 2, "")
        .replace("allow_root = true\n", "user = \"nobody\"\n");
    let avisd = Avisd::start(dir.path(), &cfg, port);
    let nobody = 65534;
    wait_for("avisd to become nobody", Duration::from_secs(10), || {
        (uids(avisd.proc.pid()) == [nobody; 4]).then_some(())
    });
    // Every thread, the runtime's workers and the event writer included.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", avisd.proc.pid())).unwrap();
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(
            line.split_whitespace().skip(1).all(|u| u == "65534"),
            "{:?}: {line}",
            task.path()
        );
    }
    // A large message goes through the spool, which the user must be able to write.
    let r = send(
        avisd.port,
        false,
        "sender@example.org",
        &["user@example.com"],
        &large_message(200),
    )
    .unwrap();
    assert!(r.final_replies[0].starts_with("250 "), "{:?}", r.final_replies);
    assert_eq!(backend.received().len(), 1);
    wait_for("the event, written as nobody", Duration::from_secs(5), || {
        Some(()).filter(|()| !avisd.events().is_empty())
    });
}
