//! Decoding limits end to end: a limit that trips marks the message unchecked in addition
//! to what the scanners find, never instead (issue 11, item 2). A real avisd, the fake
//! clamd (which reports EICAR as it travels) and a scriptable back end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Cursor, Write};
use std::time::Duration;

use agent_mib::Counter;
use tests::avisd::{Avisd, config_text};
use tests::mta::{Behaviour, FakeMta, send};
use tests::scanners::eicar;
use tests::{TempDir, fakescan, free_tcp_port, wait_for};

/// A zip of one 16-byte member whose headers claim 4 GiB - 16 bytes uncompressed: a bomb
/// that costs avisd nothing to spot (the declared size alone is over the quota).
fn small_bomb() -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file("huge.bin", options).unwrap();
    w.write_all(&[0u8; 16]).unwrap();
    let mut zip = w.finish().unwrap().into_inner();
    let claim = 0xFFFF_FFF0u32.to_le_bytes();
    // Local header: signature PK\3\4, uncompressed size at 22; central directory entry:
    // signature PK\1\2, uncompressed size at 24.
    for (sig, at) in [(b"PK\x03\x04", 22), (b"PK\x01\x02", 24)] {
        let pos = zip.windows(4).position(|w| w == sig).unwrap();
        zip[pos + at..pos + at + 4].copy_from_slice(&claim);
    }
    zip
}

fn base64(data: &[u8]) -> String {
    tests::corpus::base64(data)
}

#[test]
fn a_virus_beside_a_small_zip_bomb_is_still_scanned_and_blocked_as_infected_never_passed_unchecked() {
    let dir = TempDir::new("limits-bomb-virus");
    let backend = FakeMta::start(Behaviour::default());
    let clamd = fakescan::clamd();
    let port = free_tcp_port();
    let cfg = config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", backend.port), 2, "");
    let avisd = Avisd::start(
        dir.path(),
        &format!("{cfg}\n[policy.default.checks]\nvirus_scanners = [\"tcp:127.0.0.1:{clamd}\"]\n"),
        port,
    );
    let bomb = small_bomb();
    assert!(bomb.len() < 1024, "the bomb is small: {} bytes", bomb.len());
    let body = format!(
        "From: sender@example.org\r\nDate: Sun, 29 Nov 2026 05:00:00 +0000\r\nSubject: two files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: application/zip; name=\"a.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--B\r\nContent-Type: text/plain; name=\"eicar.com\"\r\n\r\n{}\r\n--B--\r\n",
        base64(&bomb),
        eicar(),
    );
    let r = send(avisd.port, false, "sender@example.org", &["user@example.com"], &body).unwrap();
    assert!(
        r.final_replies[0].starts_with("250 2.7.0 Ok, discarded"),
        "a virus is discarded, not passed: {:?}",
        r.final_replies
    );
    assert!(backend.received().is_empty(), "nothing reached the back end");
    let events = wait_for("the event", Duration::from_secs(5), || {
        Some(avisd.events()).filter(|e| !e.is_empty())
    });
    assert_eq!(events[0]["content_type"], "Virus", "{}", events[0]);
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::ContentVirusMsgs), 1);
    assert_eq!(snap.counter(Counter::OpsVirusCheck), 1, "clamd was asked");
}

/// Kilobytes of the process's peak resident memory.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn two_million_empty_mime_parts_are_held_over_the_part_limit_without_the_memory_to_parse_them() {
    let dir = TempDir::new("limits-parts");
    let backend = FakeMta::start(Behaviour::default());
    let port = free_tcp_port();
    let cfg = config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", backend.port), 2, "");
    let avisd = Avisd::start(dir.path(), &cfg, port);
    let before = peak_rss_kib(avisd.proc.pid());
    let parts = 2_000_000;
    let mut body = String::from(
        "From: sender@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n",
    );
    body.push_str(&"--B\r\n\r\nx\r\n".repeat(parts));
    body.push_str("--B--\r\n");
    assert!(body.len() > 20_000_000);
    let r = send(avisd.port, false, "sender@example.org", &["user@example.com"], &body).unwrap();
    assert!(r.final_replies[0].starts_with("250 "), "{:?}", r.final_replies);
    let got = backend.received();
    assert!(
        got[0].data.contains("X-Amavis-Hold: Maximum number of files exceeded"),
        "held over the part limit, as the 1500-part cap does"
    );
    let grown_mib = peak_rss_kib(avisd.proc.pid()).saturating_sub(before) / 1024;
    eprintln!(
        "peak RSS grew by {grown_mib} MiB for {} MB in {parts} parts",
        body.len() / 1_000_000
    );
    // The body itself is spooled and mapped (about 20 MiB resident while parsed).
    assert!(grown_mib < 80, "peak RSS grew by {grown_mib} MiB");
}

#[test]
fn two_million_header_fields_are_held_over_the_limits_without_the_memory_to_parse_them() {
    let dir = TempDir::new("limits-fields");
    let backend = FakeMta::start(Behaviour::default());
    let port = free_tcp_port();
    let cfg = config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", backend.port), 2, "");
    let avisd = Avisd::start(dir.path(), &cfg, port);
    let before = peak_rss_kib(avisd.proc.pid());
    let mut body = String::from("From: sender@example.org\r\nSubject: fields\r\n");
    body.push_str(&"X-A: b\r\n".repeat(2_000_000));
    body.push_str("\r\nbody\r\n");
    let r = send(avisd.port, false, "sender@example.org", &["user@example.com"], &body).unwrap();
    assert!(r.final_replies[0].starts_with("250 "), "{:?}", r.final_replies);
    let events = wait_for("the event", Duration::from_secs(5), || {
        Some(avisd.events()).filter(|e| !e.is_empty())
    });
    assert_eq!(events[0]["content_type"], "UncheckedOverLimits", "{}", events[0]);
    let grown_mib = peak_rss_kib(avisd.proc.pid()).saturating_sub(before) / 1024;
    eprintln!(
        "peak RSS grew by {grown_mib} MiB for {} MB in header fields",
        body.len() / 1_000_000
    );
    assert!(grown_mib < 80, "peak RSS grew by {grown_mib} MiB");
}
