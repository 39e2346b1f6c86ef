//! Faults under load in the after-queue topology with a real Postfix: avisd killed with
//! SIGKILL, avisd stopped for a while, the reinjection listener gone, the virus scanner
//! down. Postfix keeps each
//! message queued until avisd has answered 2xx, so every message must reach the sink,
//! counted by Message-ID; a message can arrive twice only when avisd died after the
//! reinjection listener took it and before it answered Postfix, so duplicates stay
//! within the transactions in flight at the kill, and each test prints how many.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use agent_mib::{Counter, LedgerKey};
use tests::mta::send;
use tests::postfix::{Kind, Topology, samples};
use tests::{PATIENCE, Proc, fakescan, free_tcp_port, wait_for};

const LOAD: usize = 200;

/// Starts `LOAD` messages into the front smtpd in the background.
fn start_load(t: &Topology, tag: &str) -> Proc {
    Proc::spawn(
        "smtp-source",
        &mut t.smtp_source_command(5, LOAD, 2048, &format!("{tag}@example.org"), "rcpt@example.com"),
    )
}

/// Waits until Postfix has deferred a delivery because avisd refused the connection: it
/// tried while avisd was down.
fn wait_for_refused_delivery(t: &Topology) {
    let refused = format!(":{}: Connection refused", t.ports.avisd);
    wait_for("Postfix to defer a delivery avisd refused", PATIENCE, || {
        t.postfix
            .log_text()
            .lines()
            .any(|l| l.contains("status=deferred") && l.contains(&refused))
            .then_some(())
    });
}

fn finish_source(mut source: Proc) {
    let status = source.child.wait().expect("smtp-source");
    assert!(status.success(), "smtp-source queued its whole load in Postfix");
}

#[test]
fn avisd_killed_mid_load_and_restarted_loses_nothing_and_duplicates_stay_within_the_transactions_in_flight() {
    // A clamd that takes 100 ms, as a real one may, keeps transactions in avisd when the
    // kill comes (without it the kill could fall between them and prove nothing).
    let slow_clamd = fakescan::clamd_with(fakescan::Mode::Slow(Duration::from_millis(100)));
    let checks = samples::checks(slow_clamd, fakescan::spamd(), "");
    let mut t = Topology::start(Kind::AfterQueue, "pf-kill", 4, &checks);
    let source = start_load(&t, "kill");
    let seen = t.kill_avisd_when_busy(30, 3);
    // Postfix's deliveries to avisd fail now; it defers them and retries.
    wait_for_refused_delivery(&t);
    t.restart_avisd();
    finish_source(source);
    t.settle();

    let log = t.postfix.tally();
    let snap = t.avisd().snapshot();
    // In flight at the kill, in Postfix's log: the deliveries to avisd that lost their
    // connection ("message may be sent more than once"). avisd counts its own at the
    // restart, as tempfailed (their sender, Postfix, never got a 2xx and retries).
    let in_flight = log.lost_in_flight;
    let avisd_in_flight = snap.counter(Counter::LedgerTempFailed);
    let sink = t.sink_count();
    println!(
        "SIGKILL with {in_flight} transactions in flight (Postfix's log; avisd counted {avisd_in_flight} at its \
         restart, {seen} in its last snapshot): {} distinct messages delivered, {} duplicates",
        sink.distinct, sink.duplicates
    );
    assert!(in_flight > 0, "the kill hit transactions in flight");
    assert_eq!(sink.distinct, LOAD, "none lost");
    assert!(
        sink.duplicates <= in_flight,
        "{} duplicates, more than the {in_flight} transactions in flight",
        sink.duplicates
    );
    assert_eq!(sink.dsns, 0, "nothing bounced");

    let (avisd_port, sink_port) = (t.ports.avisd, t.sink.port);
    assert_eq!(
        log.count(avisd_port, "sent"),
        LOAD,
        "Postfix handed each message to avisd once with success"
    );
    assert!(
        log.total("deferred") > 0,
        "Postfix deferred while avisd was dead: {log:?}"
    );
    assert_eq!(log.total("bounced"), 0);
    assert_eq!(log.count(sink_port, "sent"), LOAD + sink.duplicates);

    assert!(
        avisd_in_flight as usize <= in_flight,
        "avisd never counts more in flight than Postfix lost"
    );
    // Every delivery at the sink passed through avisd once: recorded relayed, or (killed
    // after the back end accepted, before avisd recorded it) counted tempfailed at the
    // restart. A relayed message whose 2xx the kill cut off is resent by Postfix and
    // relayed again: a duplicate, counted as such.
    let relayed = snap.counter(Counter::LedgerRelayed);
    let passes = (LOAD + sink.duplicates) as u64;
    assert!(
        relayed <= passes && relayed + avisd_in_flight >= passes,
        "relayed {relayed}, deliveries {passes}, in flight at the kill {avisd_in_flight}"
    );
    assert_eq!(snap.counter(Counter::LedgerReceived), relayed + avisd_in_flight);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}

#[test]
fn avisd_stopped_for_a_while_under_load_loses_nothing_and_duplicates_nothing() {
    let mut t = Topology::start(Kind::AfterQueue, "pf-stop", 4, "");
    let source = start_load(&t, "stop");
    wait_for("avisd to be busy with the load", PATIENCE, || {
        (t.avisd().snapshot().counter(Counter::InMsgs) >= 30).then_some(())
    });
    t.stop_avisd();
    wait_for_refused_delivery(&t);
    let deferred_while_stopped = t.postfix.tally().total("deferred");
    t.restart_avisd();
    finish_source(source);
    t.settle();

    let sink = t.sink_count();
    println!(
        "avisd stopped: Postfix deferred {deferred_while_stopped} deliveries meanwhile; {} delivered, {} duplicates",
        sink.distinct, sink.duplicates
    );
    assert!(deferred_while_stopped > 0, "Postfix deferred while avisd was down");
    assert_eq!(sink.distinct, LOAD, "none lost");
    assert_eq!(
        sink.duplicates, 0,
        "SIGTERM drains: every transaction finished before avisd exited"
    );
    let log = t.postfix.tally();
    assert_eq!(log.count(t.ports.avisd, "sent"), LOAD);
    assert_eq!(log.count(t.sink.port, "sent"), LOAD);
    let snap = t.avisd().snapshot();
    assert_eq!(snap.counter(Counter::LedgerRelayed), LOAD as u64);
    assert_eq!(snap.counter(Counter::LedgerTempFailed), 0);
    assert_eq!(snap.counter(Counter::ProcGone), 0);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}

#[test]
fn with_the_reinjection_listener_down_avisd_tempfails_postfix_retries_and_everything_arrives_once() {
    let t = Topology::start(Kind::AfterQueue, "pf-reinject", 4, "");
    t.reconfigure(false, "");
    wait_for("the reinjection listener to close", PATIENCE, || {
        std::net::TcpStream::connect(("127.0.0.1", t.ports.reinject))
            .is_err()
            .then_some(())
    });
    let out = t.smtp_source(5, 100, 2048, "reinject@example.org", "rcpt@example.com");
    assert!(out.status.success(), "{out:?}");
    wait_for("avisd to tempfail the whole load", PATIENCE, || {
        (t.avisd().snapshot().counter(Counter::LedgerTempFailed) >= 100).then_some(())
    });
    assert_eq!(t.sink.received().len(), 0, "nothing can be delivered yet");
    assert_eq!(t.postfix.queue().len(), 100, "Postfix keeps every message queued");

    t.reconfigure(true, "");
    t.settle();
    let sink = t.sink_count();
    let snap = t.avisd().snapshot();
    println!(
        "reinjection down: avisd tempfailed {} attempts; then {} delivered, {} duplicates",
        snap.counter(Counter::LedgerTempFailed),
        sink.distinct,
        sink.duplicates
    );
    assert_eq!((sink.distinct, sink.duplicates, sink.dsns), (100, 0, 0));
    let log = t.postfix.tally();
    assert_eq!(log.count(t.ports.avisd, "sent"), 100);
    assert!(log.count(t.ports.avisd, "deferred") >= 100, "{log:?}");
    assert!(t.postfix.log_text().contains("said: 451 4.5.0 Error in processing"));
    assert_eq!(log.count(t.sink.port, "sent"), 100);
    assert_eq!(snap.counter(Counter::LedgerRelayed), 100);
    assert_eq!(
        snap.counter(Counter::LedgerReceived),
        100 + snap.counter(Counter::LedgerTempFailed)
    );
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}

/// Listens on `port` and forwards each connection to `to` on 127.0.0.1: a scanner that
/// comes back on the address avisd was configured with.
fn bring_up_scanner(port: u16, to: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the scanner's port");
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                continue;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
                let _ = s_out.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_in, &mut c_out);
                let _ = c_out.shutdown(Shutdown::Write);
            });
        }
    });
}

#[test]
fn with_the_virus_scanner_down_avisd_tempfails_nothing_passes_unchecked_and_everything_arrives_once_it_is_back() {
    let clamd_port = free_tcp_port();
    let checks = samples::checks(clamd_port, fakescan::spamd(), "");
    let t = Topology::start(Kind::AfterQueue, "pf-scanner", 4, &checks);
    let out = t.smtp_source(4, 30, 2048, "scan@example.org", "rcpt@example.com");
    assert!(out.status.success(), "{out:?}");
    send(
        t.front_port,
        false,
        "sender@example.org",
        &["user@example.com"],
        &samples::virus("virus-while-down"),
    )
    .unwrap();
    wait_for("avisd to tempfail all 31", PATIENCE, || {
        (t.avisd().snapshot().counter(Counter::LedgerTempFailed) >= 31).then_some(())
    });
    assert_eq!(t.sink.received().len(), 0, "nothing passes unchecked");
    assert_eq!(t.postfix.queue().len(), 31, "Postfix keeps every message queued");
    wait_for("Postfix to log avisd's 451", PATIENCE, || {
        t.postfix
            .log_text()
            .contains("said: 451 4.5.0 Error in processing")
            .then_some(())
    });

    bring_up_scanner(clamd_port, fakescan::clamd());
    t.settle();
    let sink = t.sink_count();
    let snap = t.avisd().snapshot();
    println!(
        "virus scanner down: {} attempts tempfailed; then {} delivered, {} duplicates",
        snap.counter(Counter::LedgerTempFailed),
        sink.distinct,
        sink.duplicates
    );
    assert_eq!(
        (sink.distinct, sink.duplicates, sink.dsns),
        (30, 0, 0),
        "the virus is not among them"
    );
    assert_eq!(t.postfix.tally().count(t.ports.avisd, "sent"), 31);
    assert_eq!(snap.counter(Counter::LedgerRelayed), 30);
    assert_eq!(
        snap.counter(Counter::LedgerQuarantined),
        1,
        "the virus, once it could be scanned: discarded, kept in quarantine"
    );
    assert_eq!(snap.counter(Counter::ContentVirusMsgs), 1);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}

#[test]
fn settle_returns_only_once_postfixs_log_holds_every_line_logged_before_it() {
    // Postfix's programs log through postlogd, which writes when it gets to it: on a busy
    // machine it runs behind. Here it is stopped outright and resumed a little later; the
    // tests count log lines right after settle(), so settle() must wait for it.
    let t = Topology::start(Kind::AfterQueue, "pf-log-lag", 1, "");
    t.postfix.sync_log(); // postlogd is running
    let postlogd = wait_for("postlogd", PATIENCE, || t.postfix.child_pid("postlogd"));
    let signal = |sig: &str| {
        let _ = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(postlogd.to_string())
            .status();
    };
    signal("STOP");
    let line = "a line logged while postlogd was stopped";
    t.postfix.log_line(line);
    let resume = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2)); // the stall being simulated
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &postlogd.to_string()])
            .status();
    });
    t.settle();
    let logged = t.postfix.log_text().contains(line);
    signal("CONT");
    resume.join().expect("resume postlogd");
    assert!(
        logged,
        "settle() returned before Postfix's log held a line logged before it"
    );
}
