//! The inbound protocol as a specification: a client's bytes in, the exact replies out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use filter::receive::session::{Limits, Transaction};
use filter::receive::spool::SpoolConfig;
use proptest::prelude::*;
use std::io::Read;

fn limits(max_size: u64, max_rcpts: usize) -> Limits {
    Limits {
        hostname: "mx.test".into(),
        max_message_size: max_size,
        max_recipients: max_rcpts,
        max_line: 512,
        spool: SpoolConfig {
            dir: std::env::temp_dir().join("avis-session-tests"),
            memory_threshold: 64,
        },
    }
}

/// Feeds `input` in chunks of `chunk` bytes; answers every transaction at once.
fn run(l: Limits, input: &[u8], chunk: usize) -> (Vec<String>, Vec<Transaction>) {
    support::drive(l, "t", input, chunk)
}

fn codes(replies: &[String]) -> Vec<String> {
    replies.iter().map(|r| r.get(..3).unwrap_or(r).to_string()).collect()
}

const SIMPLE: &[u8] = b"EHLO client\r\nMAIL FROM:<a@x.org> SIZE=20 BODY=8BITMIME\r\nRCPT TO:<b@y.org> NOTIFY=FAILURE ORCPT=rfc822;b@y.org\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n";

#[test]
fn a_pipelined_transaction_is_answered_in_order_whatever_the_chunking() {
    for chunk in [1, 3, 7, 64, 4096] {
        let (replies, txs) = run(limits(0, 10), SIMPLE, chunk);
        assert_eq!(
            codes(&replies),
            ["250", "250", "250", "354", "<an", "221", "<cl"],
            "chunk {chunk}: {replies:?}"
        );
        let tx = &txs[0];
        assert_eq!(tx.envelope.mail_from, "a@x.org");
        assert_eq!(tx.envelope.recipients[0].orcpt.as_deref(), Some("b@y.org"));
        assert!(tx.envelope.recipients[0].notify.failure);
        let mut body = Vec::new();
        tx.spool.reader().unwrap().read_to_end(&mut body).unwrap();
        assert_eq!(body, b"Subject: hi\r\n\r\n.dot\r\n", "dots are unstuffed");
    }
}

#[test]
fn commands_before_helo_and_out_of_order_are_refused_with_5xx() {
    let (r, _) = run(
        limits(0, 10),
        b"MAIL FROM:<a@x>\r\nHELO c\r\nRCPT TO:<b@y>\r\nDATA\r\nMAIL FROM:<a@x>\r\nMAIL FROM:<a@x>\r\nDATA\r\n",
        1000,
    );
    assert_eq!(codes(&r), ["503", "250", "503", "503", "250", "503", "554"]);
}

#[test]
fn xforward_is_remembered_for_the_next_transactions() {
    let input = b"EHLO c\r\nXFORWARD NAME=mail.example ADDR=192.0.2.1 PORT=4711\r\nXFORWARD PROTO=ESMTP HELO=mail.example IDENT=4ZxQ1 SOURCE=REMOTE\r\nMAIL FROM:<>\r\nRCPT TO:<b@y>\r\nDATA\r\nx\r\n.\r\n";
    let (r, txs) = run(limits(0, 10), input, 1000);
    assert_eq!(codes(&r), ["250", "250", "250", "250", "250", "354", "<an"]);
    let xf = &txs[0].envelope.xforward;
    assert_eq!(xf.addr.as_deref(), Some("192.0.2.1"));
    assert_eq!(xf.ident.as_deref(), Some("4ZxQ1"));
    assert_eq!(txs[0].envelope.mail_from, "", "the null sender");
}

#[test]
fn the_recipient_limit_gives_452_and_the_message_goes_to_the_others() {
    let (r, txs) = run(
        limits(0, 2),
        b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<1@y>\r\nRCPT TO:<2@y>\r\nRCPT TO:<3@y>\r\nDATA\r\nx\r\n.\r\n",
        1000,
    );
    assert_eq!(codes(&r), ["250", "250", "250", "250", "452", "354", "<an"]);
    assert_eq!(txs[0].envelope.recipients.len(), 2);
}

#[test]
fn an_oversized_body_is_drained_and_refused_after_the_final_dot() {
    let mut input = b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n".to_vec();
    input.extend(std::iter::repeat_n(b"0123456789012345678\r\n".as_slice(), 100).flatten());
    input.extend_from_slice(b".\r\nNOOP\r\n");
    let (r, txs) = run(limits(1000, 10), &input, 100);
    assert_eq!(codes(&r), ["250", "250", "250", "354", "552", "250"], "{r:?}");
    assert!(txs.is_empty());
}

#[test]
fn a_declared_size_over_the_limit_is_refused_at_mail_from() {
    let (r, _) = run(limits(1000, 10), b"EHLO c\r\nMAIL FROM:<a@x> SIZE=5000\r\n", 1000);
    assert_eq!(r[1], "552 5.3.4 Declared message size (5000 B) exceeds size limit");
}

#[test]
fn an_over_long_command_line_gets_500_and_the_session_goes_on() {
    let mut input = b"EHLO c\r\nNOOP ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 2000));
    input.extend_from_slice(b"\r\nNOOP\r\n");
    for chunk in [10, 100, 5000] {
        let (r, _) = run(limits(0, 10), &input, chunk);
        assert_eq!(codes(&r), ["250", "500", "250"], "chunk {chunk}: {r:?}");
    }
}

#[test]
fn lhlo_switches_to_lmtp_and_unknown_or_unoffered_commands_are_refused() {
    let (r, txs) = run(limits(0, 10), b"LHLO c\r\nFOO\r\nSTARTTLS\r\nBDAT 10 LAST\r\nVRFY x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nx\r\n.\r\n", 1000);
    assert_eq!(
        codes(&r),
        ["250", "500", "502", "502", "252", "250", "250", "354", "<an"]
    );
    assert!(txs[0].envelope.lmtp);
}

#[test]
fn a_large_body_is_spooled_to_a_file() {
    let mut input = b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n".to_vec();
    input.extend(std::iter::repeat_n(b"line of the body\r\n".as_slice(), 1000).flatten());
    input.extend_from_slice(b".\r\n");
    let (_, txs) = run(limits(0, 10), &input, 8192);
    assert!(
        txs[0].spool.path().is_some(),
        "beyond the memory threshold the body is in a file"
    );
    assert_eq!(txs[0].spool.len(), 18_000);
}

proptest! {
    #[test]
    fn any_input_gets_replies_and_never_a_panic(input in proptest::collection::vec(any::<u8>(), 0..2000), chunk in 1usize..300) {
        let _ = run(limits(500, 5), &input, chunk);
    }

    #[test]
    fn any_command_soup_gets_replies_and_never_a_panic(cmds in proptest::collection::vec(
        prop_oneof![
            Just("EHLO a\r\n".to_string()), Just("LHLO a\r\n".to_string()), Just("MAIL FROM:<a@b>\r\n".to_string()),
            Just("RCPT TO:<c@d>\r\n".to_string()), Just("DATA\r\n".to_string()), Just(".\r\n".to_string()),
            Just("RSET\r\n".to_string()), Just("XFORWARD ADDR=1.2.3.4\r\n".to_string()), Just("XFORWARD\r\n".to_string()),
            "[ -~]{0,80}\r\n", Just("QUIT\r\n".to_string()),
        ], 0..40)) {
        let _ = run(limits(500, 5), cmds.concat().as_bytes(), 17);
    }
}
