//! The before-queue proxy topology with a real Postfix: the front smtpd
//! (`smtpd_proxy_filter`, `speed_adjust`) replays each message to avisd, avisd forwards
//! to the reinjection smtpd, and the sending client hears avisd's verdict in its own SMTP
//! session. A refused message is refused to the client and never queued.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use agent_mib::{Counter, LedgerKey};
use tests::fakescan;
use tests::mta::send;
use tests::postfix::{Kind, Topology, samples};
use tests::{PATIENCE, wait_for};

#[test]
fn a_load_through_the_before_queue_proxy_is_delivered_once_and_postfix_and_avisd_agree() {
    let t = Topology::start(Kind::BeforeQueue, "pf-bq-load", 4, "");
    let started = Instant::now();
    let out = t.smtp_source(4, 120, 2048, "load@example.org", "rcpt@example.com");
    assert!(out.status.success(), "{out:?}");
    let accepted = started.elapsed();
    t.settle();
    let sink = t.sink_count();
    println!(
        "before-queue: 120 messages accepted by the front smtpd in {accepted:?} ({:.1} msg/s); sink {sink:?}",
        120.0 / accepted.as_secs_f64()
    );
    assert_eq!(sink.distinct, 120);
    assert_eq!(sink.duplicates, 0);
    assert_eq!(sink.dsns, 0);

    let log = t.postfix.tally();
    assert_eq!(
        log.proxy_accept, 120,
        "the front smtpd took each message on avisd's word"
    );
    assert_eq!(log.proxy_reject, 0);
    assert_eq!(log.count(t.sink.port, "sent"), 120);
    assert_eq!(log.total("deferred") + log.total("bounced"), 0);

    let snap = t.avisd().snapshot();
    assert_eq!(snap.counter(Counter::InMsgs), 120);
    assert_eq!(snap.counter(Counter::LedgerRelayed), 120);
    assert!(
        snap.counter(Counter::OutConnReuseRecent) > 0,
        "avisd reuses its connections to the reinjection listener"
    );
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}

#[test]
fn a_message_over_the_size_limit_is_refused_with_552_during_the_clients_session_and_nothing_is_queued() {
    // amavisd answers `552 5.3.4 Message size (N B) exceeds size limit` for such a message.
    let t = Topology::start(Kind::BeforeQueue, "pf-bq-552", 2, "message_size_limit = 65536");
    let body = format!(
        "Subject: too big\r\nMessage-ID: <big@client.test>\r\n\r\n{}",
        format!("{}\r\n", "y".repeat(998)).repeat(80)
    );
    let r = send(t.front_port, false, "big@example.org", &["rcpt@example.com"], &body).expect("an SMTP session");
    assert!(
        r.final_replies[0].starts_with("552 5.3.4 Message size (") && r.final_replies[0].contains("exceeds size limit"),
        "the client saw avisd's 552 at the end of DATA: {:?}",
        r.final_replies
    );
    // The same through swaks, whose transcript is what a mail administrator would see.
    let body_file = t.dir.join("big.eml");
    std::fs::write(&body_file, &body).unwrap();
    let swaks = t.swaks(&[
        "--from",
        "big2@example.org",
        "--to",
        "rcpt@example.com",
        "--body",
        body_file.to_str().unwrap(),
        "--suppress-data",
    ]);
    let transcript = String::from_utf8_lossy(&swaks.stdout);
    assert!(
        !swaks.status.success() && transcript.contains("<** 552 5.3.4 Message size ("),
        "swaks saw the 552 in its session:\n{transcript}"
    );
    let ok = send(
        t.front_port,
        false,
        "small@example.org",
        &["rcpt@example.com"],
        "Subject: fine\r\nMessage-ID: <small@client.test>\r\n\r\nfine\r\n",
    )
    .expect("an SMTP session");
    assert!(ok.final_replies[0].starts_with("250 "), "{:?}", ok.final_replies);
    t.settle();

    let sink = t.sink_count();
    assert_eq!(
        (sink.distinct, sink.dsns),
        (1, 0),
        "only the small message, and no bounce"
    );
    assert!(t.postfix.queue().is_empty(), "nothing queued");
    let log = t.postfix.tally();
    assert_eq!(log.proxy_reject, 2, "both oversized messages: {log:?}");
    assert_eq!(log.proxy_accept, 1);
    assert_eq!(
        log.total("sent"),
        1,
        "one delivery attempt in all, for the small message"
    );
    assert!(
        t.postfix
            .log_text()
            .contains("proxy-reject: END-OF-MESSAGE: 552 5.3.4 Message size")
    );

    let snap = t.avisd().snapshot();
    assert_eq!(snap.counter(Counter::LedgerReceived), 3);
    assert_eq!(
        snap.counter(Counter::LedgerRejected),
        2,
        "as many as Postfix's proxy-reject lines"
    );
    assert_eq!(snap.counter(Counter::LedgerRelayed), 1);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}

#[test]
fn a_message_refused_for_its_size_after_data_is_received_and_rejected_on_avisds_ledger_with_an_event() {
    let t = Topology::start(Kind::BeforeQueue, "pf-bq-552-ledger", 2, "message_size_limit = 65536");
    let body = format!(
        "Subject: too big\r\nMessage-ID: <big@client.test>\r\n\r\n{}",
        format!("{}\r\n", "y".repeat(998)).repeat(80)
    );
    let r = send(t.front_port, false, "big@example.org", &["rcpt@example.com"], &body).expect("an SMTP session");
    assert!(r.final_replies[0].starts_with("552 5.3.4"), "{:?}", r.final_replies);
    wait_for("Postfix's proxy-reject line", PATIENCE, || {
        (t.postfix.tally().proxy_reject == 1).then_some(())
    });
    let snap = t.avisd().snapshot();
    assert_eq!(
        snap.counter(Counter::InMsgs),
        1,
        "Postfix counted one message refused by avisd"
    );
    assert_eq!(snap.counter(Counter::LedgerReceived), 1);
    assert_eq!(snap.counter(Counter::LedgerRejected), 1);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
    let events = wait_for("avisd's JSON event", PATIENCE, || {
        Some(t.avisd().events()).filter(|e| !e.is_empty())
    });
    assert!(
        events.iter().any(|e| e["smtp_code"][0] == "552"),
        "one JSON event for the refused message: {events:?}"
    );
}

#[test]
fn a_recipient_the_reinjection_listener_refuses_is_refused_to_the_client_with_that_5xx() {
    let t = Topology::start(Kind::BeforeQueue, "pf-bq-550", 2, "");
    // Test only: the reinjection listener refuses `refused-*` recipients, as a back end
    // with recipient validation would.
    let map = t.dir.join("refused.regexp");
    std::fs::write(&map, "/^refused-/ 550 5.1.1 No such user here\n").unwrap();
    t.reconfigure(
        true,
        &format!(
            "  -o smtpd_recipient_restrictions=check_recipient_access,regexp:{},permit_mynetworks,reject\n",
            map.display()
        ),
    );
    // The reload is logged before the master applies it: wait until the reinjection
    // listener itself refuses such a recipient.
    wait_for("the reinjection listener to refuse refused-*", PATIENCE, || {
        let probe = send(
            t.ports.reinject,
            false,
            "probe@example.org",
            &["refused-probe@example.com"],
            "x\r\n",
        );
        probe
            .ok()
            .filter(|p| p.rcpt_replies.first().is_some_and(|r| r.starts_with("550")))
    });
    let r = send(
        t.front_port,
        false,
        "a@example.org",
        &["refused-1@example.com"],
        "Subject: nobody\r\nMessage-ID: <nobody@client.test>\r\n\r\nx\r\n",
    )
    .expect("an SMTP session");
    assert_eq!(
        r.rcpt_replies[0].get(..3),
        Some("250"),
        "the front smtpd takes RCPT on trust"
    );
    assert!(
        r.final_replies[0].starts_with("550 5.1.1") && r.final_replies[0].contains("No such user here"),
        "the client saw the back end's 550 at the end of DATA: {:?}",
        r.final_replies
    );
    t.settle();
    assert_eq!(t.sink.received().len(), 0, "nothing delivered");
    assert!(t.postfix.queue().is_empty(), "nothing queued");
    let log = t.postfix.tally();
    assert_eq!(log.proxy_reject, 1, "{log:?}");
    assert_eq!(log.deliveries.len(), 0, "no delivery attempt, no bounce: {log:?}");
    let snap = t.avisd().snapshot();
    assert_eq!(snap.counter(Counter::LedgerRejected), 1);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}

#[test]
fn with_avisd_down_the_client_is_told_to_try_later_and_nothing_is_queued_until_it_is_back() {
    let mut t = Topology::start(Kind::BeforeQueue, "pf-bq-down", 2, "");
    t.stop_avisd();
    let msg = "Subject: later\r\nMessage-ID: <later@client.test>\r\n\r\nlater\r\n";
    let r = send(t.front_port, false, "a@example.org", &["rcpt@example.com"], msg).expect("an SMTP session");
    let refused = r
        .final_replies
        .first()
        .or(r.rcpt_replies.first())
        .cloned()
        .unwrap_or_default();
    assert!(
        refused.starts_with('4'),
        "a temporary refusal during the session: {r:?}"
    );
    wait_for("Postfix to log why", PATIENCE, || {
        t.postfix
            .log_text()
            .contains("warning: connect to proxy filter 127.0.0.1:")
            .then_some(())
    });
    // Postfix tells the postmaster (notify_classes resource, software); the message
    // itself stays with the client.
    wait_for("Postfix's notice to the postmaster", PATIENCE, || {
        (t.sink_count().postmaster_notices > 0).then_some(())
    });
    t.settle();
    let notice = t.sink_count();
    assert_eq!(
        (notice.distinct, notice.dsns, notice.postmaster_notices),
        (0, 0, 1),
        "{notice:?}"
    );
    assert!(t.postfix.queue().is_empty(), "nothing queued");

    t.restart_avisd();
    let r = send(t.front_port, false, "a@example.org", &["rcpt@example.com"], msg).expect("an SMTP session");
    assert!(
        r.final_replies[0].starts_with("250 "),
        "the client's retry goes through: {r:?}"
    );
    t.settle();
    let sink = t.sink_count();
    println!("before-queue, avisd down: the client saw {refused:?}; after the restart {sink:?}");
    assert_eq!((sink.distinct, sink.duplicates, sink.dsns), (1, 0, 0));
    assert_eq!(t.postfix.tally().proxy_reject, 1, "{:?}", t.postfix.tally());
    assert_eq!(t.postfix.tally().proxy_accept, 1);
}

/// Sends `n` messages with Message-IDs `<tag-i@client.test>`, each retried (after a
/// temporary refusal or a broken session) until it gets 2xx, as a sending MTA would.
/// Returns the number of attempts.
fn send_with_retries(port: u16, tag: &str, n: usize) -> usize {
    let mut attempts = 0;
    for i in 0..n {
        let msg = format!("Subject: {tag} {i}\r\nMessage-ID: <{tag}-{i}@client.test>\r\n\r\nbody {i}\r\n");
        loop {
            attempts += 1;
            let r = send(port, false, "retry@example.org", &["rcpt@example.com"], &msg);
            match r.as_ref().ok().and_then(|r| r.final_replies.first()) {
                Some(reply) if reply.starts_with('2') => break,
                Some(reply) if reply.starts_with('5') => panic!("{tag}-{i} refused for good: {reply}"),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
    attempts
}

#[test]
fn avisd_killed_under_before_queue_load_loses_nothing_the_clients_retry_and_duplicates_stay_within_those_in_flight() {
    // Before the queue, a transaction is in avisd only while it checks and reinjects: a
    // clamd that takes 150 ms, as a real one may, keeps some there when the kill comes
    // (without it the kill could fall between transactions and prove nothing).
    let slow_clamd = fakescan::clamd_with(fakescan::Mode::Slow(Duration::from_millis(150)));
    let checks = samples::checks(slow_clamd, fakescan::spamd(), "");
    let mut t = Topology::start(Kind::BeforeQueue, "pf-bq-kill", 4, &checks);
    let port = t.front_port;
    let clients: Vec<_> = (0..4)
        .map(|c| std::thread::spawn(move || send_with_retries(port, &format!("c{c}"), 40)))
        .collect();
    let seen = t.kill_avisd_when_busy(30, 2);
    // A client's retry meets the dead avisd (Postfix says so) before it comes back.
    wait_for("Postfix to find avisd gone", PATIENCE, || {
        t.postfix
            .log_text()
            .contains(&format!("warning: connect to proxy filter 127.0.0.1:{}", t.ports.avisd))
            .then_some(())
    });
    t.restart_avisd();
    let attempts: usize = clients.into_iter().map(|c| c.join().expect("client")).sum();
    t.settle();

    let log = t.postfix.tally();
    let snap = t.avisd().snapshot();
    // In flight at the kill, in Postfix's log: "warning: lost connection with proxy".
    let in_flight = log.lost_in_flight;
    let avisd_in_flight = snap.counter(Counter::LedgerTempFailed);
    let sink = t.sink_count();
    println!(
        "before-queue SIGKILL with {in_flight} transactions in flight (Postfix's log; avisd counted \
         {avisd_in_flight} at its restart, {seen} in its last snapshot): 160 messages, {attempts} attempts; \
         {} delivered, {} duplicates",
        sink.distinct, sink.duplicates
    );
    assert!(in_flight > 0, "the kill hit transactions in flight");
    assert_eq!(sink.distinct, 160, "none lost");
    assert!(
        sink.duplicates <= in_flight,
        "{} duplicates, more than the {in_flight} transactions in flight",
        sink.duplicates
    );
    assert!(avisd_in_flight as usize <= in_flight);
    assert_eq!(sink.dsns, 0);
    assert_eq!(log.proxy_accept, 160, "each message acknowledged to its client once");
    assert_eq!(
        log.proxy_reject,
        attempts - 160,
        "every other attempt refused, none silently lost"
    );
    assert_eq!(
        log.count(t.sink.port, "sent"),
        160 + sink.duplicates + sink.postmaster_notices,
        "the messages, their duplicates, and Postfix's notices of the proxy failures"
    );
    // As in the after-queue kill test: each delivery passed avisd once, recorded relayed
    // or, killed between the back end's acceptance and avisd's record, tempfailed.
    let relayed = snap.counter(Counter::LedgerRelayed);
    let passes = 160 + sink.duplicates as u64;
    assert!(
        relayed <= passes && relayed + avisd_in_flight >= passes,
        "relayed {relayed}, deliveries {passes}, in flight {avisd_in_flight}"
    );
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}

#[test]
fn virus_spam_and_banned_mail_are_refused_with_554_during_the_clients_session_and_only_clean_mail_is_queued() {
    // The policy amavisd administrators set for a before-queue filter: refuse, don't bounce.
    let checks = samples::checks(
        fakescan::clamd(),
        fakescan::spamd(),
        "final_virus_destiny = \"reject\"\nfinal_banned_destiny = \"reject\"\nfinal_spam_destiny = \"reject\"",
    );
    let t = Topology::start(Kind::BeforeQueue, "pf-bq-checks", 2, &checks);
    let deliver = |body: &str| {
        send(t.front_port, false, "sender@example.org", &["user@example.com"], body)
            .expect("an SMTP session")
            .final_replies[0]
            .clone()
    };
    let clean = deliver(&samples::message("clean", "hello", "ham"));
    let virus = deliver(&samples::virus("virus"));
    let spam = deliver(&samples::spam("spam"));
    let banned = deliver(&samples::banned("banned"));
    println!("before-queue, the client saw:\n  {clean}\n  {virus}\n  {spam}\n  {banned}");
    assert!(clean.starts_with("250 2.0.0 from MTA("), "{clean}");
    for (what, reply, reason) in [
        ("virus", &virus, "INFECTED: Fake.Virus"),
        ("spam", &spam, "spam"),
        ("banned", &banned, "BANNED"),
    ] {
        assert!(
            reply.starts_with("554 5.7.0 Reject, id=") && reply.contains(reason),
            "the client saw amavisd's 554 for the {what} in its session: {reply}"
        );
    }
    t.settle();

    let sink = t.sink_count();
    assert_eq!(
        (sink.distinct, sink.dsns),
        (1, 0),
        "only the clean message, no bounce: {sink:?}"
    );
    assert!(t.postfix.queue().is_empty(), "nothing queued");
    let log = t.postfix.tally();
    assert_eq!((log.proxy_accept, log.proxy_reject), (1, 3), "{log:?}");
    assert_eq!(log.total("sent"), 1);

    let snap = t.avisd().snapshot();
    assert_eq!(snap.counter(Counter::ContentVirusMsgs), 1);
    assert_eq!(snap.counter(Counter::ContentSpamMsgs), 1);
    assert_eq!(snap.counter(Counter::ContentBannedMsgs), 1);
    assert_eq!(snap.counter(Counter::LedgerReceived), 4);
    assert_eq!(
        snap.counter(Counter::LedgerRejected),
        3,
        "as many as Postfix's proxy-reject lines"
    );
    assert_eq!(
        snap.counter(Counter::LedgerRelayed),
        1,
        "as many as Postfix's proxy-accept lines"
    );
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}
