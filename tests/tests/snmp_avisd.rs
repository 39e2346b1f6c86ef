//! The whole chain an operator runs: mail through a real avisd, counted in its
//! scoreboard, walked with net-snmp through avis-snmp-agent. The walked counters equal
//! the load, and sysUpTime and the counters survive an avisd restart together.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod snmp_support;

use snmp_support::*;
use tests::avisd::{Avisd, config_text};
use tests::mta::{Behaviour, FakeMta, send};
use tests::{TempDir, free_tcp_port, wait_for};

fn ticks(walk: &[String]) -> u64 {
    // `AMAVIS-MIB::sysUpTime.0 = Timeticks: (1234) 0:00:12.34`
    let v = value_of(walk, "sysUpTime");
    v.split(['(', ')'])
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("bad sysUpTime {v}"))
}

fn counter(walk: &[String], name: &str) -> u64 {
    let v = value_of(walk, name);
    v.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad {name}: {v}"))
}

#[test]
fn counters_walked_after_a_known_load_through_avisd_equal_the_load_and_survive_its_restart() {
    let dir = TempDir::new("snmp-avisd");
    let backend = FakeMta::start(Behaviour::default());
    let port = free_tcp_port();
    let cfg = config_text(
        dir.path(),
        port,
        &format!("smtp:[127.0.0.1]:{}", backend.port),
        2,
        "local_domains = [\"example.com\"]",
    );
    let avisd = Avisd::start(dir.path(), &cfg, port);
    let body = "From: a@example.org\r\nDate: Sun, 29 Nov 2026 05:00:00 +0000\r\nSubject: s\r\n\r\nx\r\n";
    for _ in 0..7 {
        send(port, false, "a@example.org", &["u@example.com", "v@example.net"], body).unwrap();
    }
    for _ in 0..3 {
        send(port, false, "a@example.org", &["reject-1@example.com"], body).unwrap();
    }
    let agent = start_agent(&dir, &avisd.scoreboard, &[]);
    let walk = lines(
        "snmpbulkwalk",
        &["-v2c", "-c", "public", &agent.addr, "AMAVIS-MIB::amavis"],
    );
    assert_eq!(counter(&walk, "inMsgs"), 10);
    assert_eq!(counter(&walk, "inMsgsRecips"), 17);
    assert_eq!(
        counter(&walk, "inMsgsInbound"),
        10,
        "every message had a local recipient"
    );
    assert_eq!(counter(&walk, "inMsgsOpenRelay"), 7, "v@example.net is not local");
    assert_eq!(counter(&walk, "inMsgsStatusRelayedUntaggedAll"), 7);
    assert_eq!(counter(&walk, "inMsgsStatusRejectedAll"), 3);
    assert_eq!(counter(&walk, "outMsgsDelivers"), 7);
    assert_eq!(counter(&walk, "contentCleanMsgs"), 10);
    assert_eq!(counter(&walk, "avisLedgerReceived"), 10);
    assert_eq!(counter(&walk, "avisLedgerRelayed"), 7);
    assert_eq!(counter(&walk, "avisLedgerRejected"), 3);
    assert_eq!(value_of(&walk, "avisLedgerUnaccounted"), "INTEGER: 0");
    assert_eq!(value_of(&walk, "procAll"), "Gauge32: 2");
    let before = ticks(&walk);

    // Restart avisd: counters and uptime carry on from the same start.
    let (config, port) = (avisd.config.clone(), avisd.port);
    avisd.proc.signal("TERM");
    drop(avisd);
    let again = Avisd::start_with(dir.path(), &config, port);
    send(port, false, "a@example.org", &["u@example.com"], body).unwrap();
    let walk = wait_for(
        "the agent to see the restarted avisd's message",
        tests::PATIENCE,
        || {
            let w = lines(
                "snmpbulkwalk",
                &["-v2c", "-c", "public", &agent.addr, "AMAVIS-MIB::amavis"],
            );
            (counter(&w, "inMsgs") == 11).then_some(w)
        },
    );
    assert!(ticks(&walk) >= before, "sysUpTime did not reset with the daemon");
    assert_eq!(counter(&walk, "avisFilterGeneration"), 2);
    assert_eq!(value_of(&walk, "avisFilterRunning"), "INTEGER: 1");
    drop(again);
}
