//! Every reply avisd sends is a well-formed SMTP reply whatever text went into it: lines
//! of at most 512 octets with their CRLF (RFC 5321 4.5.3.1.5), no control character that
//! could end a line early or confuse the client, and attacker-chosen reasons (a file
//! name deep in an archive) cut as amavisd cuts them (issue 11, item 15).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use filter::message::Reply;
use filter::replies::{self, Blocked};
use proptest::prelude::*;

/// Checks the wire form of `reply`; returns its lines without CRLF.
fn well_formed(reply: &Reply) -> Vec<String> {
    let wire = reply.to_wire();
    assert!(wire.ends_with("\r\n"), "{wire:?}");
    let lines: Vec<String> = wire
        .strip_suffix("\r\n")
        .unwrap()
        .split("\r\n")
        .map(str::to_string)
        .collect();
    for (i, line) in lines.iter().enumerate() {
        assert!(line.len() + 2 <= 512, "line of {} octets: {line:?}", line.len() + 2);
        assert!(
            !line.bytes().any(|b| b.is_ascii_control()),
            "control character in {line:?}"
        );
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        assert!(line.starts_with(&format!("{}{sep}", reply.code)), "{line:?}");
    }
    lines
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn every_reply_line_is_at_most_512_octets_without_control_characters(
        code in 200u16..600,
        enhanced in proptest::option::of((2u8..6, 0u16..1000, 0u16..1000)),
        text in proptest::collection::vec(any::<char>(), 0..1500).prop_map(String::from_iter),
    ) {
        well_formed(&Reply { code, enhanced, text });
    }
}

#[test]
fn a_banned_archive_members_10_kb_path_is_cut_and_escaped_in_the_reply() {
    let member = format!("{}evil\r\n250 2.0.0 Ok\0.exe", "deep/".repeat(2000));
    let why = format!("BANNED: archive.zip | {member}");
    let reply = replies::blocked(Blocked::Reject, 554, (5, 7, 0), "00001-01", &why);
    let lines = well_formed(&reply);
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    assert!(
        lines[0].starts_with("554 5.7.0 Reject, id=00001-01 - BANNED: archive.zip | deep/deep/"),
        "{lines:?}"
    );
    assert!(lines[0].ends_with("..."), "the reason is cut like amavisd's: {lines:?}");
    assert!(lines[0].len() < 200, "{} octets", lines[0].len());
}

#[test]
fn a_short_reason_is_kept_whole_with_its_controls_escaped() {
    let reply = replies::blocked(Blocked::Bounce, 554, (5, 7, 0), "00001-01", "BANNED: a\tb\r\n.exe");
    assert_eq!(
        reply.to_wire(),
        "554 5.7.0 Bounce, id=00001-01 - BANNED: a\\tb\\r\\n.exe\r\n"
    );
}

#[test]
fn a_multi_line_reply_keeps_its_lines() {
    let lines = well_formed(&replies::ehlo("avis.test", 0));
    assert_eq!(lines.first().map(String::as_str), Some("250-avis.test"));
    assert_eq!(lines.len(), 8);
}
