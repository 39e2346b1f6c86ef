//! The outbound client against a scripted back end over an in-memory stream: every value
//! that came in xtext (ENVID, ORCPT, XFORWARD) goes out as one well-formed xtext
//! parameter whatever its bytes, and a back end that sends one reply too many or too few
//! never has a reply taken for another command's (issue 11, item 1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use filter::forward::Outgoing;
use filter::forward::client::{ClientError, Connection, RcptOutcome};
use filter::forward::target::Protocol;
use filter::message::{Body, Envelope, Notify, Recipient, XForward};
use filter::receive::spool::{Spool, SpoolConfig};
use proptest::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

/// A fault the back end commits: counting its replies after EHLO from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// An unsolicited reply line with this code, written with reply `n`, before it.
    ExtraBefore(usize, u16),
    /// The same, after reply `n`.
    ExtraAfter(usize, u16),
    /// Reply `n` is never sent.
    Missing(usize),
}

/// What the back end saw.
#[derive(Debug, Default)]
struct Seen {
    /// Command lines (CRLF removed), after EHLO, outside DATA.
    commands: Vec<Vec<u8>>,
    /// Message bodies it accepted.
    bodies: usize,
}

struct Backend {
    pipelining: bool,
    fault: Fault,
    replies_sent: usize,
}

impl Backend {
    async fn reply(&mut self, w: &mut (impl AsyncWriteExt + Unpin), text: &str) {
        let n = self.replies_sent;
        self.replies_sent += 1;
        let extra = |code: u16| format!("{code} 2.0.0 unsolicited\r\n");
        let bytes = match self.fault {
            Fault::ExtraBefore(k, code) if k == n => extra(code) + text,
            Fault::ExtraAfter(k, code) if k == n => text.to_string() + &extra(code),
            Fault::Missing(k) if k == n => String::new(),
            _ => text.to_string(),
        };
        // One write, so an extra line arrives together with the reply it travels with.
        let _ = w.write_all(bytes.as_bytes()).await;
    }

    async fn run(mut self, io: DuplexStream) -> Seen {
        let (r, mut w) = tokio::io::split(io);
        let mut r = BufReader::new(r);
        let mut seen = Seen::default();
        let _ = w.write_all(b"220 backend.test ESMTP\r\n").await;
        let mut rcpts = 0;
        loop {
            let mut line = Vec::new();
            if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                return seen;
            }
            let cmd = line.strip_suffix(b"\r\n").unwrap_or(&line).to_vec();
            let upper = String::from_utf8_lossy(&cmd).to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                let pipelining = if self.pipelining { "250-PIPELINING\r\n" } else { "" };
                let caps = format!(
                    "250-backend.test\r\n{pipelining}250-DSN\r\n250-SIZE\r\n250-XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n250 8BITMIME\r\n"
                );
                let _ = w.write_all(caps.as_bytes()).await;
                continue;
            }
            seen.commands.push(cmd);
            if upper.starts_with("RCPT") {
                rcpts += 1;
                self.reply(&mut w, "250 2.1.5 Ok\r\n").await;
            } else if upper == "DATA" {
                if rcpts == 0 {
                    self.reply(&mut w, "554 5.5.1 No valid recipients\r\n").await;
                    continue;
                }
                self.reply(&mut w, "354 go ahead\r\n").await;
                loop {
                    let mut body_line = Vec::new();
                    if r.read_until(b'\n', &mut body_line).await.unwrap_or(0) == 0 {
                        return seen;
                    }
                    if body_line == b".\r\n" {
                        break;
                    }
                }
                seen.bodies += 1;
                rcpts = 0;
                self.reply(&mut w, "250 2.0.0 Ok: queued as Q1\r\n").await;
            } else if upper == "QUIT" {
                self.reply(&mut w, "221 2.0.0 Bye\r\n").await;
                return seen;
            } else {
                if upper == "RSET" {
                    rcpts = 0;
                }
                self.reply(&mut w, "250 2.0.0 Ok\r\n").await;
            }
        }
    }
}

fn envelope(envid: Option<String>, recipients: Vec<Recipient>, xforward: XForward) -> Envelope {
    Envelope {
        mail_from: "sender@example.org".into(),
        recipients,
        body: Body::SevenBit,
        smtputf8: false,
        ret: None,
        envid,
        declared_size: None,
        xforward,
        helo: "client.test".into(),
        lmtp: false,
    }
}

fn rcpt(address: &str, orcpt: Option<String>) -> Recipient {
    Recipient {
        address: address.into(),
        orcpt,
        notify: Notify::default(),
    }
}

fn spool() -> Spool {
    let mut s = Spool::new(
        SpoolConfig {
            dir: std::env::temp_dir(),
            memory_threshold: usize::MAX,
        },
        "forward-client-test",
    );
    s.write(b"Subject: t\r\n\r\nbody\r\n").unwrap();
    s
}

/// Runs one transaction against a back end with `fault`; returns the client's result and
/// what the back end saw.
fn exchange(
    envelope: &Envelope,
    pipelining: bool,
    fault: Fault,
    timeout: Duration,
) -> (Result<Vec<RcptOutcome>, ClientError>, Seen) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client_io, backend_io) = tokio::io::duplex(64 * 1024);
        let backend = tokio::spawn(
            Backend {
                pipelining,
                fault,
                replies_sent: 0,
            }
            .run(backend_io),
        );
        let spool = spool();
        let out = Outgoing {
            prepend: b"",
            skip: 0,
            spool: &spool,
        };
        let result = match Connection::open(Box::new(client_io), Protocol::Smtp, "avis.test", timeout).await {
            Ok(mut conn) => {
                let r = conn.transaction(envelope, &out).await;
                drop(conn);
                r
            }
            Err(e) => Err(e),
        };
        (result, backend.await.unwrap())
    })
}

/// Decodes one xtext word, or says why it is not one.
fn xtext_decode(word: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < word.len() {
        let b = word[i];
        if b == b'+' {
            let hex = word.get(i + 1..i + 3).ok_or("truncated +XX")?;
            if !hex.iter().all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)) {
                return Err(format!("bad hexchar {:?}", String::from_utf8_lossy(hex)));
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap());
            i += 3;
        } else if (b'!'..=b'~').contains(&b) && b != b'=' {
            out.push(b);
            i += 1;
        } else {
            return Err(format!("octet {b:#04x} is not xtext"));
        }
    }
    Ok(out)
}

/// The value of `KEY=` in a command line whose words are separated by single spaces.
fn param<'a>(line: &'a [u8], key: &str) -> Vec<&'a [u8]> {
    line.split(|&b| b == b' ')
        .filter_map(|w| w.strip_prefix(key.as_bytes()))
        .collect()
}

fn value() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 1..60).prop_map(String::from_iter)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn any_envid_orcpt_or_xforward_value_reaches_the_back_end_as_one_xtext_parameter(
        envid in value(),
        orcpt in value(),
        name in value(),
        helo in value(),
        pipelining in any::<bool>(),
    ) {
        let xforward = XForward { name: Some(name.clone()), helo: Some(helo.clone()), ..XForward::default() };
        let env = envelope(Some(envid.clone()), vec![rcpt("rcpt@example.com", Some(orcpt.clone()))], xforward);
        let (result, seen) = exchange(&env, pipelining, Fault::None, Duration::from_secs(10));
        let outcomes = result.unwrap();
        prop_assert_eq!(outcomes.len(), 1);
        prop_assert_eq!(outcomes[0].reply.code, 250);
        prop_assert_eq!(seen.bodies, 1);
        // Exactly the commands sent: two XFORWARD, MAIL, RCPT, DATA; nothing injected.
        let verbs: Vec<String> = seen.commands.iter()
            .map(|c| String::from_utf8_lossy(c.split(|&b| b == b' ').next().unwrap()).into_owned())
            .collect();
        prop_assert_eq!(verbs, ["XFORWARD", "XFORWARD", "MAIL", "RCPT", "DATA"]);
        let decoded = |line: &[u8], key: &str| -> Result<Vec<u8>, TestCaseError> {
            let words = param(line, key);
            prop_assert_eq!(words.len(), 1, "one {} in {:?}", key, String::from_utf8_lossy(line));
            xtext_decode(words[0]).map_err(TestCaseError::fail)
        };
        prop_assert_eq!(decoded(&seen.commands[0], "NAME=")?, name.as_bytes());
        prop_assert_eq!(decoded(&seen.commands[1], "HELO=")?, helo.as_bytes());
        prop_assert_eq!(decoded(&seen.commands[2], "ENVID=")?, envid.as_bytes());
        prop_assert_eq!(decoded(&seen.commands[3], "ORCPT=rfc822;")?, orcpt.as_bytes());
    }

    #[test]
    fn a_back_end_with_one_reply_too_many_or_too_few_fails_the_transaction(
        n_rcpts in 1usize..4,
        pipelining in any::<bool>(),
        kind in 0u8..3,
        at in 0usize..8,
        code in prop::sample::select(vec![250u16, 251, 354, 450, 550, 221]),
    ) {
        // Replies of a clean run: MAIL, one per RCPT, DATA, end of data.
        let total = n_rcpts + 3;
        let at = at % total;
        let fault = match kind {
            0 => Fault::ExtraBefore(at, code),
            1 => Fault::ExtraAfter(at, code),
            _ => Fault::Missing(at),
        };
        let rcpts: Vec<Recipient> = (0..n_rcpts).map(|i| rcpt(&format!("r{i}@example.com"), None)).collect();
        let env = envelope(None, rcpts, XForward::default());
        let (result, _) = exchange(&env, pipelining, fault, Duration::from_millis(150));
        prop_assert!(result.is_err(), "{:?}: {:?}", fault, result);
    }
}

#[test]
fn an_envid_that_decodes_to_crlf_cannot_add_a_recipient() {
    // The exact value of the report: ENVID=x+0D+0ARCPT+20TO:<injected@evil.example>.
    let envid = "x\r\nRCPT TO:<injected@evil.example>".to_string();
    let env = envelope(Some(envid), vec![rcpt("bob@example.com", None)], XForward::default());
    let (result, seen) = exchange(&env, true, Fault::None, Duration::from_secs(10));
    let outcomes = result.unwrap();
    assert_eq!(outcomes[0].reply.code, 250);
    assert_eq!(seen.bodies, 1, "the message arrived");
    let rcpt_lines: Vec<_> = seen.commands.iter().filter(|c| c.starts_with(b"RCPT")).collect();
    assert_eq!(rcpt_lines, [b"RCPT TO:<bob@example.com>"]);
    let mail = String::from_utf8_lossy(&seen.commands[0]).into_owned();
    assert!(
        mail.ends_with(" ENVID=x+0D+0ARCPT+20TO:<injected@evil.example>"),
        "{mail}"
    );
}

#[test]
fn a_reply_to_data_that_is_not_354_or_a_refusal_fails_the_transaction() {
    // The reply pairing of the report: the back end saw one RCPT more than we sent, so
    // the reply read for DATA was that RCPT's 250. Taken as DATA's answer, it was passed
    // on to the client as a 250 for a message that never went out.
    let env = envelope(None, vec![rcpt("bob@example.com", None)], XForward::default());
    let (result, seen) = exchange(&env, true, Fault::ExtraBefore(0, 250), Duration::from_secs(10));
    assert!(matches!(result, Err(ClientError::OutOfStep { .. })), "{result:?}");
    assert_eq!(seen.bodies, 0);
}
