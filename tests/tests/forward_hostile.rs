//! Hostile envelopes, programs and file names on the way out, through a real avisd: the
//! client never hears 2xx for a message that did not arrive, and every reply it hears is
//! a well-formed line (issue 11, items 1, 15 and 16).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use tests::TempDir;
use tests::avisd::{Avisd, config_text};
use tests::free_tcp_port;
use tests::mta::{Behaviour, FakeMta};

fn start(dir: &TempDir, forward: &str) -> Avisd {
    let port = free_tcp_port();
    Avisd::start(dir.path(), &config_text(dir.path(), port, forward, 2, ""), port)
}

/// One SMTP transaction with `mail_params` after MAIL FROM; returns every reply's last
/// line, in order (greeting, EHLO, MAIL, RCPT, DATA, end of data).
fn send(port: u16, mail_params: &str, rcpt: &str, body: &[u8]) -> Vec<String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut replies = Vec::new();
    let mut reply = |replies: &mut Vec<String>| loop {
        let mut l = String::new();
        assert!(r.read_line(&mut l).unwrap() > 0, "avisd closed the connection");
        if l.as_bytes().get(3) != Some(&b'-') {
            replies.push(l.trim_end().to_string());
            return replies.last().cloned().unwrap_or_default();
        }
    };
    reply(&mut replies);
    for cmd in [
        "EHLO client.test".to_string(),
        format!("MAIL FROM:<alice@example.org> {mail_params}"),
        format!("RCPT TO:<{rcpt}>"),
        "DATA".to_string(),
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        if !reply(&mut replies).starts_with(['2', '3']) {
            return replies;
        }
    }
    w.write_all(body).unwrap();
    w.write_all(b".\r\n").unwrap();
    reply(&mut replies);
    let _ = w.write_all(b"QUIT\r\n");
    replies
}

#[test]
fn an_envid_that_decodes_to_crlf_reaches_the_back_end_re_encoded_and_the_message_arrives() {
    // Before: the ENVID went out raw, the back end saw an extra RCPT, the replies
    // shifted, and the client heard 250 for a message that never arrived.
    let dir = TempDir::new("hostile-envid");
    let backend = FakeMta::start(Behaviour::default());
    let avisd = start(&dir, &format!("smtp:[127.0.0.1]:{}", backend.port));
    let replies = send(
        avisd.port,
        "ENVID=x+0D+0ARCPT+20TO:<injected@evil.example>",
        "bob@example.com",
        b"From: alice@example.org\r\nSubject: envid\r\n\r\nbody\r\n",
    );
    let last = replies.last().cloned().unwrap_or_default();
    let got = backend.received();
    if last.starts_with('2') {
        assert_eq!(got.len(), 1, "a 2xx ({last}) means the message arrived");
    }
    assert!(last.starts_with("250 2.0.0 from MTA("), "{replies:?}");
    assert_eq!(got[0].rcpts, ["bob@example.com"], "no recipient was injected");
    assert!(
        got[0]
            .mail_line
            .ends_with(" ENVID=x+0D+0ARCPT+20TO:<injected@evil.example>"),
        "the ENVID goes out as xtext again: {}",
        got[0].mail_line
    );
}

#[test]
fn a_delivery_program_that_exits_0_without_reading_the_message_gets_a_tempfail() {
    // `sh -c exit 0`: the shell exits 0 at once; the message is larger than a pipe buffer.
    let dir = TempDir::new("hostile-pipe");
    let avisd = start(&dir, "pipe:argv=/bin/sh -c exit 0");
    let mut body = b"From: alice@example.org\r\nSubject: big\r\n\r\n".to_vec();
    for _ in 0..20_000 {
        body.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    let replies = send(avisd.port, "", "bob@example.com", &body);
    let last = replies.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("451 "),
        "never 2xx for a partial delivery: {replies:?}"
    );
}

#[test]
fn a_banned_archive_member_with_a_10_kb_path_gets_one_short_clean_reply_line() {
    use std::io::{Cursor, Write as _};
    let dir = TempDir::new("hostile-banned-path");
    let backend = FakeMta::start(Behaviour::default());
    let avisd = start(&dir, &format!("smtp:[127.0.0.1]:{}", backend.port));
    let member = format!("{}ev\r\n250 2.0.0 Ok\til.pdf.exe", "deep/".repeat(2000));
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    z.start_file(member.as_str(), zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00")
        .unwrap();
    let zip_bytes = z.finish().unwrap().into_inner();
    let b64: Vec<String> = tests::corpus::base64(&zip_bytes)
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let body = format!(
        "From: alice@example.org\r\nSubject: archive\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--B\r\nContent-Type: application/zip; name=\"a.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--B--\r\n",
        b64.join("\r\n")
    );
    let replies = send(avisd.port, "", "bob@example.com", body.as_bytes());
    let last = replies.last().cloned().unwrap_or_default();
    assert!(last.contains("BANNED"), "the member is banned: {replies:?}");
    assert!(
        last.len() + 2 <= 512,
        "one reply line of {} octets: {last:?}",
        last.len() + 2
    );
    assert!(!last.contains("\t") && last.contains("..."), "{last:?}");
    assert!(backend.received().is_empty());
}
