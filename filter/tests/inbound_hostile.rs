//! The inbound side against hostile clients (issue 11): header injection through EHLO and
//! XFORWARD, bare line endings and SMTP smuggling, slow and non-reading clients. Each test
//! names the behaviour it pins; the bytes in are what an attacker sends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Read;

use filter::act::received_header;
use filter::message::{Body, Envelope, Ids, Notify, Recipient, XForward};
use filter::receive::session::{Limits, Transaction};
use filter::receive::spool::SpoolConfig;

fn limits() -> Limits {
    Limits {
        hostname: "mx.test".into(),
        max_message_size: 0,
        max_recipients: 10,
        max_line: 512,
        spool: SpoolConfig {
            dir: std::env::temp_dir().join("avis-inbound-hostile-tests"),
            memory_threshold: 1 << 20,
        },
    }
}

/// Feeds `input` in chunks of `chunk` bytes; answers every transaction at once.
fn run(input: &[u8], chunk: usize) -> (Vec<String>, Vec<Transaction>) {
    support::drive(limits(), "h", input, chunk)
}

fn codes(replies: &[String]) -> Vec<&str> {
    replies.iter().map(|r| r.get(..3).unwrap_or(r)).collect()
}

const ENVELOPE: &str = "MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n";

// ---- item 3: header injection through EHLO and XFORWARD ----

#[test]
fn a_helo_name_with_a_nul_or_a_cr_is_refused_with_501_and_never_becomes_the_helo() {
    for bad in [
        "EHLO evil\0host\r\n",
        "HELO evil\rX-Spam-Flag: NO\r\n",
        "LHLO a\x7fb\r\n",
    ] {
        let script = format!("{bad}EHLO good.example\r\n{ENVELOPE}x\r\n.\r\n");
        let (replies, txs) = run(script.as_bytes(), 4096);
        assert_eq!(codes(&replies)[..2], ["501", "250"], "{bad:?}: {replies:?}");
        assert!(
            replies[0].starts_with("501 5.5.2 Syntax: control characters"),
            "{replies:?}"
        );
        assert_eq!(txs[0].envelope.helo, "good.example", "{bad:?}");
    }
}

#[test]
fn xforward_values_carrying_encoded_cr_lf_or_nul_are_masked_as_postfix_smtpd_does() {
    let script =
        format!("EHLO mx\r\nXFORWARD HELO=x+0D+0AX-Spam-Flag:+20NO NAME=n+00m IDENT=q+0Aid\r\n{ENVELOPE}x\r\n.\r\n");
    let (replies, txs) = run(script.as_bytes(), 4096);
    assert_eq!(codes(&replies)[..2], ["250", "250"], "{replies:?}");
    let xf = &txs[0].envelope.xforward;
    assert_eq!(xf.helo.as_deref(), Some("x??X-Spam-Flag: NO"));
    assert_eq!(xf.name.as_deref(), Some("n?m"));
    assert_eq!(xf.ident.as_deref(), Some("q?id"));
}

#[test]
fn an_xtext_escape_is_a_plus_and_exactly_two_hex_digits_even_at_the_end_of_a_value() {
    // Rust's radix parser took `+b` (after a `+`) as the number +11, which became a control
    // character (masked to `?`): the sender's literal `++b` was lost.
    let script = format!("EHLO mx\r\nXFORWARD NAME=mx+41 HELO=a++b\r\n{ENVELOPE}x\r\n.\r\n");
    let (replies, txs) = run(script.as_bytes(), 4096);
    assert_eq!(codes(&replies)[..2], ["250", "250"], "{replies:?}");
    let xf = &txs[0].envelope.xforward;
    assert_eq!(xf.name.as_deref(), Some("mxA"));
    assert_eq!(xf.helo.as_deref(), Some("a++b"));
}

#[test]
fn an_xforward_value_longer_than_postfix_allows_is_refused_with_501() {
    let script = format!("EHLO mx\r\nXFORWARD HELO={}\r\n", "a".repeat(256));
    let (replies, _) = run(script.as_bytes(), 4096);
    assert_eq!(codes(&replies), ["250", "501"], "{replies:?}");
}

#[test]
fn the_received_field_never_carries_a_control_character_from_any_value() {
    let envelope = Envelope {
        mail_from: "a@x.org".into(),
        recipients: vec![Recipient {
            address: "b@y.org\r\nX-Injected: rcpt".into(),
            orcpt: None,
            notify: Notify::default(),
        }],
        body: Body::SevenBit,
        smtputf8: false,
        ret: None,
        envid: None,
        declared_size: None,
        xforward: XForward {
            helo: Some("h\r\nX-Spam-Flag: NO".into()),
            addr: Some("192.0.2.1\n\0X-Injected: addr".into()),
            ..XForward::default()
        },
        helo: "ignored".into(),
        lmtp: false,
    };
    let ids = Ids::new(1, 1, 1);
    let field = String::from_utf8(received_header(&envelope, &ids, "mx\r\n.test", Some(10024), 0)).unwrap();
    assert!(!field.contains('\0'), "{field:?}");
    // The only line breaks are the builder's own folds (CRLF TAB) and the final CRLF.
    let lines: Vec<&str> = field.strip_suffix("\r\n").unwrap().split("\r\n").collect();
    assert!(
        lines[0].starts_with("Received: from h??X-Spam-Flag: NO ([192.0.2.1??X-Injected: addr])"),
        "{field:?}"
    );
    for l in &lines[1..] {
        assert!(
            l.starts_with('\t'),
            "a line that is not a continuation: {l:?} in {field:?}"
        );
    }
    assert!(
        !field.replace("\r\n", "").contains(['\r', '\n']),
        "a bare CR or LF: {field:?}"
    );
}

// ---- item 18: line endings (RFC 5321 2.3.8) and SMTP smuggling ----

#[test]
fn a_command_line_ended_by_a_bare_lf_is_refused_and_not_executed() {
    let (replies, txs) = run(b"EHLO mx\nMAIL FROM:<a@x.org>\r\nEHLO mx\r\nRSET\n", 4096);
    assert_eq!(codes(&replies), ["500", "503", "250", "500"], "{replies:?}");
    assert_eq!(replies[0], "500 5.5.2 Error: bare <LF> received");
    assert!(txs.is_empty());
}

#[test]
fn smuggled_end_of_data_sequences_never_make_a_second_message_and_the_first_is_refused() {
    for smuggle in ["\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r\n.\r", "\r.\r"] {
        let script = format!(
            "EHLO mx\r\n{ENVELOPE}x{smuggle}MAIL FROM:<evil@x.org>\r\nRCPT TO:<v@y.org>\r\nDATA\r\nspoofed\r\n.\r\nQUIT\r\n"
        );
        for chunk in [1, 7, 4096] {
            let (replies, txs) = run(script.as_bytes(), chunk);
            assert_eq!(
                codes(&replies),
                ["250", "250", "250", "354", "554", "221", "<cl"],
                "{smuggle:?} in chunks of {chunk}: {replies:?}"
            );
            assert!(replies[4].contains("bare <CR> or <LF>"), "{replies:?}");
            assert!(txs.is_empty(), "{smuggle:?}: a message was handed on");
        }
    }
}

#[test]
fn an_empty_message_and_a_dot_on_the_first_body_line_are_received_as_rfc_5321_says() {
    for (data, want) in [
        (".\r\n", ""),
        ("..x\r\n.\r\n", ".x\r\n"),
        ("a\r\n..\r\n.\r\n", "a\r\n.\r\n"),
    ] {
        let script = format!("EHLO mx\r\n{ENVELOPE}{data}");
        let (replies, txs) = run(script.as_bytes(), 4096);
        assert_eq!(
            codes(&replies),
            ["250", "250", "250", "354", "<an"],
            "{data:?}: {replies:?}"
        );
        let mut body = Vec::new();
        txs[0].spool.reader().unwrap().read_to_end(&mut body).unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), want, "{data:?}");
    }
}
