//! The JSON event log never holds mail up (issue 11, item 17): with the default sink,
//! stdout, going to a pipe that nobody reads, avisd keeps answering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::Duration;

use agent_mib::Counter;
use tests::avisd::config_text;
use tests::mta::{Behaviour, FakeMta, send};
use tests::{Proc, TempDir, bin, free_tcp_port, wait_for};

#[test]
fn a_stdout_nobody_reads_does_not_stall_mail() {
    let dir = TempDir::new("events-stalled");
    let backend = FakeMta::start(Behaviour::default());
    let port = free_tcp_port();
    let cfg = config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", backend.port), 2, "").replace(
        &format!("events = \"file:{}\"", dir.join("events.jsonl").display()),
        "events = \"stdout\"",
    );
    assert!(cfg.contains("events = \"stdout\""));
    let path = dir.join("avisd.toml");
    std::fs::write(&path, cfg).unwrap();
    // stdout is a pipe held open here and never read: once its 64 KiB are full, every
    // write to it blocks.
    let avisd = Proc::spawn(
        "avisd",
        Command::new(bin("avisd"))
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    wait_for("avisd to listen", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    // Each event is well over 1 KB: 100 of them are three times what the pipe holds.
    let body = format!(
        "From: sender@example.org\r\nSubject: {}\r\nMessage-ID: <e@example.org>\r\n\r\nhello\r\n",
        "s".repeat(900)
    );
    for i in 0..100 {
        let r = send(port, false, "sender@example.org", &["user@example.com"], &body)
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert!(
            r.final_replies[0].starts_with("250 "),
            "message {i}: {:?}",
            r.final_replies
        );
    }
    assert_eq!(backend.received().len(), 100);
    let snap = agent_mib::Reader::new(dir.join("state").join("scoreboard"))
        .snapshot()
        .unwrap();
    assert_eq!(snap.counter(Counter::InMsgs), 100);
    drop(avisd);
}
