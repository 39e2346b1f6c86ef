//! The after-queue ("sandwich") topology with a real Postfix: front smtpd queues, the
//! `avis-filter` transport delivers to avisd, avisd forwards to the reinjection smtpd,
//! Postfix delivers to the sink. A mixed load is counted three ways: at the sink, in
//! Postfix's own log, and on avisd's scoreboard; all three must agree.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use agent_mib::{Counter, LedgerKey};
use tests::fakescan;
use tests::mta::send;
use tests::postfix::{Kind, Topology, samples};
use tests::{PATIENCE, wait_for};

#[test]
fn a_mixed_load_through_postfix_and_avisd_is_delivered_bounced_or_refused_and_every_message_is_counted() {
    // avisd refuses anything over 64 KiB; the sink refuses `reject-*` recipients.
    let t = Topology::start(Kind::AfterQueue, "pf-aq-mixed", 4, "message_size_limit = 65536");
    let started = Instant::now();
    let clean = t.smtp_source(5, 100, 2048, "clean@example.org", "rcpt@example.com");
    assert!(clean.status.success(), "{clean:?}");
    let oversized = t.smtp_source(2, 6, 100_000, "big@example.org", "rcpt@example.com");
    assert!(oversized.status.success(), "{oversized:?}");
    let refused = t.smtp_source(2, 8, 1024, "refused@example.org", "reject-me@example.com");
    assert!(refused.status.success(), "{refused:?}");
    wait_for("the sink to receive 100 messages and 14 DSNs", PATIENCE, || {
        (t.sink.received().len() >= 114).then_some(())
    });
    let elapsed = started.elapsed();
    t.settle();
    let sink = t.sink_count();
    println!(
        "after-queue: 114 messages from smtp-source to the sink in {elapsed:?} ({:.1} msg/s end to end); sink {sink:?}",
        114.0 / elapsed.as_secs_f64()
    );

    // The sink: every clean message once, and one DSN per message bounced.
    assert_eq!(sink.distinct, 100, "every clean message arrived");
    assert_eq!(sink.duplicates, 0);
    assert_eq!(sink.dsns, 6 + 8, "a DSN for each oversized and each refused message");

    // Postfix's log: 114 handed to avisd (6 of them refused there), 108 sent to the sink
    // or bounced by it, 14 notices sent.
    let log = t.postfix.tally();
    let (avisd_port, sink_port) = (t.ports.avisd, t.sink.port);
    assert_eq!(log.count(avisd_port, "sent"), 108, "{log:?}");
    assert_eq!(log.count(avisd_port, "bounced"), 6, "avisd's 552 bounces in Postfix");
    assert_eq!(log.count(avisd_port, "deferred"), 0);
    assert_eq!(log.count(sink_port, "bounced"), 8, "the sink's 550 bounces in Postfix");
    assert_eq!(log.count(sink_port, "sent"), 100 + 14, "clean messages and notices");
    assert_eq!(
        log.notices, 14,
        "Postfix wrote a non-delivery notification for each bounce"
    );
    assert!(
        t.postfix.log_text().contains("said: 552 5.3.4 Declared message size"),
        "Postfix logged avisd's own reply"
    );

    // Message by message: each JSON event of avisd names the front queue id (from
    // Postfix's XFORWARD) and the reinjection queue id (from the back end's reply), and
    // Postfix's log links the same two ids (the reinjection listener got XFORWARD from avisd).
    let events = wait_for("avisd's 108 JSON events", PATIENCE, || {
        Some(t.avisd().events()).filter(|e| e.len() >= 108)
    });
    let mut from_events: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["queue_id"].as_str().unwrap_or_default().to_string(),
                e["queued_as"][0].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let mut from_log = log.reinjected.clone();
    from_events.sort();
    from_log.sort();
    assert_eq!(from_events.len(), 108);
    assert_eq!(
        from_events, from_log,
        "avisd's events and Postfix's log trace the same messages"
    );

    // avisd's scoreboard agrees with Postfix's log. The oversized messages were refused at
    // MAIL FROM (Postfix declares SIZE), before there was a message to count, as in amavisd.
    let snap = t.avisd().snapshot();
    assert_eq!(snap.counter(Counter::InMsgs), 108);
    assert_eq!(snap.counter(Counter::LedgerReceived), 108);
    assert_eq!(snap.counter(Counter::LedgerRelayed), 108);
    assert_eq!(snap.counter(Counter::LedgerRejected), 0);
    assert_eq!(snap.counter(Counter::LedgerTempFailed), 0);
    assert_eq!(snap.ledger(LedgerKey::InFlight), 0);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}

#[test]
fn viruses_and_banned_files_are_discarded_spam_is_tagged_and_clean_mail_delivered_and_each_is_counted_once() {
    // amavisd's default destinies: virus and banned discarded, spam passed with its tags.
    let checks = samples::checks(fakescan::clamd(), fakescan::spamd(), "");
    let t = Topology::start(Kind::AfterQueue, "pf-aq-checks", 4, &checks);
    let clean = t.smtp_source(4, 50, 2048, "clean@example.org", "rcpt@example.com");
    assert!(clean.status.success(), "{clean:?}");
    for i in 0..3 {
        for body in [
            samples::virus(&format!("virus-{i}")),
            samples::spam(&format!("spam-{i}")),
            samples::banned(&format!("banned-{i}")),
        ] {
            let r = send(t.front_port, false, "sender@example.org", &["user@example.com"], &body).unwrap();
            assert!(r.final_replies[0].starts_with("250 "), "Postfix queued it: {r:?}");
        }
    }
    t.settle();

    let sink = t.sink_count();
    let received = t.sink.received();
    let arrived = |prefix: &str| {
        received
            .iter()
            .filter(|m| tests::postfix::message_id(&m.data).is_some_and(|id| id.starts_with(&format!("<{prefix}"))))
            .collect::<Vec<_>>()
    };
    assert_eq!(sink.distinct, 50 + 3, "the clean messages and the spam: {sink:?}");
    assert_eq!((sink.duplicates, sink.dsns), (0, 0), "discarded means no DSN");
    assert!(arrived("virus-").is_empty() && arrived("banned-").is_empty());
    assert_eq!(arrived("spam-").len(), 3);
    assert!(arrived("spam-").iter().all(|m| m.data.contains("X-Spam-Flag: YES\r\n")));

    let log = t.postfix.tally();
    assert_eq!(
        log.count(t.ports.avisd, "sent"),
        59,
        "Postfix handed every message to avisd"
    );
    assert_eq!(
        t.postfix
            .log_text()
            .matches("status=sent (250 2.7.0 Ok, discarded")
            .count(),
        6,
        "and heard avisd discard six"
    );
    assert_eq!(log.count(t.sink.port, "sent"), 53);

    let snap = t.avisd().snapshot();
    assert_eq!(snap.counter(Counter::ContentVirusMsgs), 3);
    assert_eq!(snap.counter(Counter::ContentBannedMsgs), 3);
    assert_eq!(snap.counter(Counter::ContentSpamMsgs), 3);
    assert_eq!(snap.counter(Counter::LedgerReceived), 59);
    assert_eq!(
        snap.counter(Counter::LedgerQuarantined),
        6,
        "discarded for their recipients, kept in quarantine"
    );
    assert_eq!(
        snap.counter(Counter::QuarMsgsVirus) + snap.counter(Counter::QuarMsgsBanned),
        6
    );
    assert_eq!(snap.counter(Counter::LedgerRelayed), 53);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}
