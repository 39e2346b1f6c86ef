//! The corpus (`tests/corpus/`, rendered by `tests::corpus`) against a real avisd with the
//! real clamd and spamd from Debian: every message gets the verdict its expect file names.
//! Then what the corpus cannot show alone: one message to recipients with different
//! settings, scanned once; and the real scanners stopped under avisd.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use agent_mib::{Counter, LedgerKey};
use tests::avisd::{Avisd, config_text};
use tests::corpus::{self, Expect};
use tests::mta::{Behaviour, FakeMta, Received, send_bytes};
use tests::scanners::{self, Clamd, Spamd};
use tests::{TempDir, free_tcp_port, wait_for};

struct Setup {
    avisd: Avisd,
    backend: FakeMta,
    clamd: Clamd,
    spamd: Spamd,
    _dir: TempDir,
}

/// The real clamd and spamd, a back end, and avisd with the corpus's policy.
fn setup(tag: &str) -> Setup {
    let clamd = scanners::start_clamd("10M");
    let spamd = scanners::start_spamd(2);
    let backend = FakeMta::start(Behaviour::default());
    let dir = TempDir::new(tag);
    let port = free_tcp_port();
    let policy = std::fs::read_to_string(corpus::dir().join("policy.toml")).unwrap();
    let cfg = format!(
        "{}\n[policy.default.checks]\nvirus_scanners = [\"tcp:127.0.0.1:{}\"]\nspamd = \"tcp:127.0.0.1:{}\"\n{policy}",
        config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", backend.port), 4, ""),
        clamd.port,
        spamd.port,
    );
    let avisd = Avisd::start(dir.path(), &cfg, port);
    Setup {
        avisd,
        backend,
        clamd,
        spamd,
        _dir: dir,
    }
}

fn header_section(data: &str) -> &str {
    data.split("\r\n\r\n").next().unwrap_or(data)
}

/// The copy the back end got for `rcpt`, or for it with an address extension
/// (`user+spam@`, `user+badh@`), and the address it went to.
fn copy_for<'a>(got: &'a [Received], rcpt: &str) -> Option<(&'a Received, &'a str)> {
    let (local, domain) = rcpt.split_once('@').unwrap();
    let (prefix, suffix) = (format!("{local}+"), format!("@{domain}"));
    got.iter().find_map(|m| {
        m.rcpts
            .iter()
            .find(|r| *r == rcpt || (r.starts_with(&prefix) && r.ends_with(&suffix)))
            .map(|r| (m, r.as_str()))
    })
}

/// Kilobytes of the process's peak resident memory.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn every_message_of_the_corpus_gets_its_expected_verdict_from_avisd_with_the_real_clamd_and_spamd() {
    let cases = corpus::load().unwrap();
    assert!(cases.len() >= 22, "the corpus shrank: {} cases", cases.len());
    let s = setup("corpus");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let before = s.backend.received().len();
        let started = Instant::now();
        let r = send_bytes(
            s.avisd.port,
            false,
            "sender@example.org",
            &["user@example.com"],
            &case.message,
        );
        let took = started.elapsed();
        eprintln!("{}: {took:.2?}", case.name);
        let reply = match r {
            Ok(r) => r.final_replies.first().cloned().unwrap_or_default(),
            Err(e) => format!("(connection broke: {e})"),
        };
        let events = wait_for(&format!("{}'s event", case.name), tests::PATIENCE, || {
            Some(s.avisd.events()).filter(|e| e.len() > i)
        });
        let event = &events[i];
        let got = s.backend.received();
        let copy = copy_for(&got[before..], "user@example.com");
        let (copy, copied_to) = (copy.map(|c| c.0), copy.map(|c| c.1));
        let mut fail = |what: String| failures.push((case.name.clone(), what));
        for expect in &case.expect {
            match expect {
                Expect::Reply(p) if !reply.starts_with(p.as_str()) => fail(format!("reply `{reply}`, expected `{p}…`")),
                Expect::ContentType(c) if event["content_type"] != c.as_str() => {
                    fail(format!("content_type {}, expected {c}", event["content_type"]))
                }
                Expect::Virus(v) => {
                    let names: Vec<&str> = event["virusnames"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|n| n.as_str()).collect())
                        .unwrap_or_default();
                    let ok = match v {
                        None => names.is_empty(),
                        Some(p) => names.iter().any(|n| n.starts_with(p.as_str())),
                    };
                    if !ok {
                        fail(format!("virus names {names:?}, expected {v:?}"));
                    }
                }
                Expect::Test(t)
                    if !event["tests"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == t.as_str())) =>
                {
                    fail(format!("tests {}, expected {t}", event["tests"]))
                }
                Expect::Delivered(d) if copy.is_some() != *d => {
                    fail(format!("delivered {}, expected {d}", copy.is_some()))
                }
                Expect::Rcpt(a) if copied_to != Some(a.as_str()) => {
                    fail(format!("delivered to {copied_to:?}, expected {a}"))
                }
                Expect::Header(h) => match copy {
                    Some(m) if header_section(&m.data).contains(h.as_str()) => {}
                    Some(m) => fail(format!("no `{h}` in\n{}", header_section(&m.data))),
                    None => fail(format!("no copy to look for `{h}` in")),
                },
                Expect::NoHeader(h) => {
                    if let Some(m) = copy
                        && header_section(&m.data).contains(h.as_str())
                    {
                        fail(format!("`{h}` in\n{}", header_section(&m.data)));
                    }
                }
                Expect::Dsn(d) if event["dsn_sent"].as_bool().unwrap_or(false) != *d => {
                    fail(format!("dsn_sent {}, expected {d}", event["dsn_sent"]))
                }
                Expect::Quarantined(q) if event["quarantine"].is_string() != *q => {
                    fail(format!("quarantine {}, expected {q}", event["quarantine"]))
                }
                Expect::Within(limit) if took > *limit => fail(format!("answered in {took:?}, limit {limit:?}")),
                _ => {}
            }
        }
    }
    let snap = s.avisd.snapshot();
    let mut wrong: Vec<&str> = failures.iter().map(|(name, _)| name.as_str()).collect();
    wrong.dedup();
    assert!(
        failures.is_empty(),
        "{} of {} corpus messages got another verdict:\n{}",
        wrong.len(),
        cases.len(),
        failures
            .iter()
            .map(|(name, what)| format!("{name}: {what}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Every message scanned by both real daemons but the oversized one (not spam-scanned).
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
    assert_eq!(snap.counter(Counter::InMsgs), cases.len() as u64);
    assert_eq!(snap.counter(Counter::ScannerClamdErrors), 0);
    assert_eq!(snap.counter(Counter::ScannerSpamdErrors), 0);
    // The zip bomb and the big message went by without avisd holding them in memory.
    let peak = peak_rss_kib(s.avisd.proc.pid());
    eprintln!("avisd's peak RSS over the corpus: {} MiB", peak / 1024);
    assert!(peak < 200 * 1024, "avisd's peak RSS {} MiB", peak / 1024);
}

#[test]
fn one_spam_message_to_recipients_with_their_own_settings_is_scanned_once_and_each_gets_its_own_destiny_and_fields() {
    let s = setup("corpus-multi");
    let gtube = corpus::load()
        .unwrap()
        .into_iter()
        .find(|c| c.name.ends_with("gtube"))
        .unwrap();
    let rcpts = [
        "user@example.com",        // the policy's levels: spam, discarded
        "lover@example.com",       // spam_lover: passed, marked as spam
        "bypass@example.com",      // bypass_spam_checks: passed as if unscanned
        "tolerant@example.com",    // kill level 2000: spammy, tagged and redirected
        "bob@dev.lab.example.com", // tag2 and kill levels 2000: only informed
    ];
    let r = send_bytes(s.avisd.port, false, "sender@example.org", &rcpts, &gtube.message).unwrap();
    assert!(
        r.final_replies[0].starts_with("250 ") && r.final_replies[0].ends_with("but 1 DISCARD"),
        "one reply for all, naming the discard: {:?}",
        r.final_replies
    );
    let got = s.backend.received();
    let fields = |rcpt: &str| {
        let (m, to) = copy_for(&got, rcpt).unwrap_or_else(|| panic!("nothing delivered for {rcpt}"));
        (to.to_string(), header_section(&m.data).to_string())
    };
    assert!(copy_for(&got, "user@example.com").is_none(), "discarded");

    let (to, h) = fields("lover@example.com");
    assert_eq!(
        to, "lover+spam@example.com",
        "not blocked, but spam all the same: the +spam extension as for spammy mail (amavisd does so)"
    );
    assert!(
        h.contains("X-Spam-Flag: YES") && h.contains("Subject: ***SPAM*** Cheap watches"),
        "{h}"
    );

    let (to, h) = fields("bypass@example.com");
    assert_eq!(to, "bypass@example.com");
    assert!(!h.contains("X-Spam-") && h.contains("Subject: Cheap watches"), "{h}");

    let (to, h) = fields("tolerant@example.com");
    assert_eq!(
        to, "tolerant+spam@example.com",
        "spammy mail goes to the +spam extension"
    );
    assert!(
        h.contains("X-Spam-Flag: YES") && h.contains("Subject: ***SPAM*** Cheap watches"),
        "{h}"
    );

    let (to, h) = fields("bob@dev.lab.example.com");
    assert_eq!(to, "bob@dev.lab.example.com");
    assert!(h.contains("X-Spam-Score: 1") && h.contains("X-Spam-Flag: NO"), "{h}");
    assert!(h.contains("Subject: Cheap watches"), "{h}");

    // Scanned once by each scanner, decoded once, one event with five verdicts.
    let snap = s.avisd.snapshot();
    assert_eq!(snap.counter(Counter::ScannerSpamdRequests), 1);
    assert_eq!(snap.counter(Counter::ScannerClamdRequests), 1);
    assert_eq!(snap.counter(Counter::OpsSpamCheck), 1);
    assert_eq!(snap.counter(Counter::OpsDec), 1);
    let events = wait_for("the event", tests::PATIENCE, || {
        Some(s.avisd.events()).filter(|e| !e.is_empty())
    });
    assert_eq!(events.len(), 1);
    let verdicts: Vec<(String, String)> = events[0]["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rcpt_to"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let status = |rcpt: &str| verdicts.iter().find(|v| v.0 == rcpt).map(|v| v.1.as_str());
    assert_eq!(status("user@example.com"), Some("Discarded"), "{verdicts:?}");
    assert_eq!(status("lover@example.com"), Some("RelayedTagged"), "{verdicts:?}");
    assert_eq!(status("bypass@example.com"), Some("RelayedUntagged"), "{verdicts:?}");
    assert_eq!(status("tolerant@example.com"), Some("RelayedTagged"), "{verdicts:?}");
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}

#[test]
fn with_the_real_spamd_stopped_mail_passes_unscored_and_with_clamd_stopped_it_is_tempfailed_and_nothing_is_lost() {
    let mut s = setup("corpus-down");
    let clean = corpus::load()
        .unwrap()
        .into_iter()
        .find(|c| c.name.ends_with("clean-text"))
        .unwrap();
    let send = |s: &Setup| {
        send_bytes(
            s.avisd.port,
            false,
            "sender@example.org",
            &["user@example.com"],
            &clean.message,
        )
        .unwrap()
        .final_replies[0]
            .clone()
    };
    let reply = send(&s);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");

    // spamd gone: a failed spam scan leaves the message unscored; it is not held up.
    scanners::terminate(&mut s.spamd.proc);
    let reply = send(&s);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let snap = s.avisd.snapshot();
    assert_eq!(snap.counter(Counter::ScannerSpamdErrors), 1);
    assert_eq!(snap.counter(Counter::ScannerSpamdRequests), 2);
    let events = wait_for("two events", tests::PATIENCE, || {
        Some(s.avisd.events()).filter(|e| e.len() == 2)
    });
    assert!(
        events[0]["spam_score"].is_number() && events[1]["spam_score"].is_null(),
        "{events:?}"
    );

    // clamd gone too: no virus scanner answers, so the client is told to retry (451) and
    // keeps the message; nothing is passed unchecked.
    s.clamd.proc.signal("KILL");
    wait_for("clamd to exit", tests::PATIENCE, || s.clamd.proc.exited().then_some(()));
    let reply = send(&s);
    assert!(reply.starts_with("451 4.5.0"), "{reply}");
    let snap = s.avisd.snapshot();
    assert_eq!(snap.counter(Counter::ScannerClamdErrors), 1);

    // Nothing lost: 3 sent = 2 at the back end + 1 still with the client.
    assert_eq!(s.backend.received().len(), 2);
    assert_eq!(snap.counter(Counter::LedgerRelayed), 2);
    assert_eq!(snap.counter(Counter::LedgerTempFailed), 1);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}
