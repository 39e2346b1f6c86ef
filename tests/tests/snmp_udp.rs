//! avis-snmp-agent as a standalone UDP agent, read by net-snmp's own tools with v1 and
//! v2c: every object answers with its MIB type, counters equal the load written to the
//! scoreboard, v1 follows RFC 3584, SETs are refused, strangers and garbage are dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod snmp_support;

use std::net::UdpSocket;
use std::time::Duration;

use agent_mib::{Counter, OBJECTS};
use snmp_support::*;
use tests::TempDir;

#[test]
fn v2c_get_getnext_walk_and_bulkwalk_return_the_whole_subtree_with_the_right_types() {
    let dir = TempDir::new("snmp-v2c");
    let board = open_board(&dir.join("scoreboard"));
    known_load(&board, 41);
    let agent = start_agent(&dir, &dir.join("scoreboard"), &[]);

    let get = lines(
        "snmpget",
        &[
            "-v2c",
            "-c",
            "public",
            &agent.addr,
            "AMAVIS-MIB::inMsgs.0",
            "AMAVIS-MIB::inMsgsSize.0",
            "AMAVIS-MIB::sysName.0",
            "AMAVIS-MIB::sysObjectID.0",
        ],
    );
    assert_eq!(get[0], "AMAVIS-MIB::inMsgs.0 = Counter32: 41");
    assert_eq!(get[1], "AMAVIS-MIB::inMsgsSize.0 = Counter64: 410000");
    assert_eq!(get[2], "AMAVIS-MIB::sysName.0 = STRING: mx1.example");
    assert!(get[3].starts_with("AMAVIS-MIB::sysObjectID.0 = OID: "), "{}", get[3]);

    let next = lines(
        "snmpgetnext",
        &["-v2c", "-c", "public", &agent.addr, "AMAVIS-MIB::inMsgs"],
    );
    assert_eq!(next, vec!["AMAVIS-MIB::inMsgs.0 = Counter32: 41".to_string()]);

    let walk = lines("snmpwalk", &["-v2c", "-c", "public", &agent.addr, AMAVIS]);
    let bulk = lines("snmpbulkwalk", &["-v2c", "-c", "public", &agent.addr, AMAVIS]);
    let served = OBJECTS
        .iter()
        .filter(|o| !matches!(o.feed, agent_mib::Feed::Mta(_)))
        .count();
    assert_eq!(stable(&walk).len(), served - 1, "every object but sysUpTime, once");
    assert_eq!(stable(&walk), stable(&bulk));
    // net-snmp checks each value against the type our shipped MIB declares.
    assert!(walk.iter().all(|l| !l.contains("Wrong Type")), "{walk:#?}");
    assert_eq!(value_of(&walk, "inMsgsStatusRelayed"), "Counter32: 41");
    assert_eq!(value_of(&walk, "procAll"), "Gauge32: 4");
    assert!(value_of(&walk, "sysUpTime").starts_with("Timeticks: "));
    assert!(value_of(&walk, "timeElapsedTotal").starts_with("INTEGER: "));
}

#[test]
fn v1_sees_no_counter64_and_gets_no_such_name_for_one() {
    let dir = TempDir::new("snmp-v1");
    let board = open_board(&dir.join("scoreboard"));
    known_load(&board, 3);
    let agent = start_agent(&dir, &dir.join("scoreboard"), &[]);

    let walk = lines("snmpwalk", &["-v1", "-c", "public", &agent.addr, AMAVIS]);
    assert!(
        walk.iter().all(|l| !l.contains("Counter64")),
        "v1 walk shows a Counter64"
    );
    assert_eq!(value_of(&walk, "inMsgs"), "Counter32: 3");
    let counter64s = OBJECTS
        .iter()
        .filter(|o| o.syntax == agent_mib::Syntax::Counter64)
        .count();
    let served = OBJECTS
        .iter()
        .filter(|o| !matches!(o.feed, agent_mib::Feed::Mta(_)))
        .count();
    assert_eq!(stable(&walk).len(), served - counter64s - 1);

    let out = snmp(
        "snmpget",
        &[
            "-v1",
            "-c",
            "public",
            &agent.addr,
            "AMAVIS-MIB::inMsgs.0",
            "AMAVIS-MIB::inMsgsSize.0",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("noSuchName") && text.contains("inMsgsSize.0"), "{text}");
}

#[test]
fn v2c_exceptions_are_no_such_instance_no_such_object_and_end_of_mib_view() {
    let dir = TempDir::new("snmp-exc");
    let _board = open_board(&dir.join("scoreboard"));
    let agent = start_agent(&dir, &dir.join("scoreboard"), &[]);
    let get = lines(
        "snmpget",
        &[
            "-v2c",
            "-c",
            "public",
            &agent.addr,
            "AMAVIS-MIB::inMsgs.5",
            "1.3.6.1.2.1.1.1.0",
        ],
    );
    assert!(get[0].contains("No Such Instance"), "{}", get[0]);
    assert!(get[1].contains("No Such Object"), "{}", get[1]);
    let next = lines(
        "snmpgetnext",
        &["-v2c", "-c", "public", &agent.addr, "1.3.6.1.4.1.15313"],
    );
    assert!(
        next[0].contains("No more variables left in this MIB View"),
        "{}",
        next[0]
    );
}

#[test]
fn every_set_is_refused_read_only() {
    let dir = TempDir::new("snmp-set");
    let _board = open_board(&dir.join("scoreboard"));
    let agent = start_agent(&dir, &dir.join("scoreboard"), &[]);
    let v2 = snmp(
        "snmpset",
        &[
            "-v2c",
            "-c",
            "public",
            &agent.addr,
            "AMAVIS-MIB::sysName.0",
            "s",
            "pwned",
        ],
    );
    assert!(!v2.status.success());
    assert!(
        String::from_utf8_lossy(&v2.stderr).contains("notWritable"),
        "{}",
        String::from_utf8_lossy(&v2.stderr)
    );
    let v1 = snmp(
        "snmpset",
        &[
            "-v1",
            "-c",
            "public",
            &agent.addr,
            "AMAVIS-MIB::sysName.0",
            "s",
            "pwned",
        ],
    );
    assert!(
        String::from_utf8_lossy(&v1.stderr).contains("noSuchName"),
        "{}",
        String::from_utf8_lossy(&v1.stderr)
    );
    let name = lines(
        "snmpget",
        &["-v2c", "-c", "public", &agent.addr, "AMAVIS-MIB::sysName.0"],
    );
    assert_eq!(name[0], "AMAVIS-MIB::sysName.0 = STRING: mx1.example");
}

#[test]
fn a_wrong_community_or_a_stranger_gets_no_answer() {
    let dir = TempDir::new("snmp-acl");
    let _board = open_board(&dir.join("scoreboard"));
    // `secret` is good only from a network we are not in.
    let agent = start_agent(
        &dir,
        &dir.join("scoreboard"),
        &["--community", "public@127.0.0.1", "--community", "secret@192.0.2.0/24"],
    );
    for community in ["wrong", "secret"] {
        let out = snmp(
            "snmpget",
            &[
                "-v2c",
                "-c",
                community,
                "-t",
                "0.5",
                "-r",
                "0",
                &agent.addr,
                "AMAVIS-MIB::inMsgs.0",
            ],
        );
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("Timeout"), "{community}");
    }
}

#[test]
fn malformed_datagrams_are_dropped_and_the_agent_keeps_serving() {
    let dir = TempDir::new("snmp-junk");
    let board = open_board(&dir.join("scoreboard"));
    board.bump(Counter::InMsgs, 9);
    let agent = start_agent(&dir, &dir.join("scoreboard"), &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let junk: [&[u8]; 6] = [
        b"",
        b"\x30",
        b"\x30\x84\xff\xff\xff\xff",
        b"\x30\x0b\x02\x01\x01\x04\x06public",
        b"\x30\x10\x02\x01\x05\x04\x06public\xa0\x03\x02\x01\x00",
        &[0xa5; 1500],
    ];
    for j in junk {
        sock.send_to(j, &agent.addr).unwrap();
        let mut buf = [0u8; 64];
        assert!(sock.recv_from(&mut buf).is_err(), "answered junk {j:?}");
    }
    let get = lines(
        "snmpget",
        &["-v2c", "-c", "public", &agent.addr, "AMAVIS-MIB::inMsgs.0"],
    );
    assert_eq!(get[0], "AMAVIS-MIB::inMsgs.0 = Counter32: 9");
}

#[test]
fn counter32_wraps_on_the_wire_and_counter64_does_not() {
    let dir = TempDir::new("snmp-wrap");
    let board = open_board(&dir.join("scoreboard"));
    board.bump(Counter::InMsgs, (1 << 32) + 5);
    board.bump(Counter::InMsgsSize, (1 << 40) + 7);
    let agent = start_agent(&dir, &dir.join("scoreboard"), &[]);
    let get = lines(
        "snmpget",
        &[
            "-v2c",
            "-c",
            "public",
            &agent.addr,
            "AMAVIS-MIB::inMsgs.0",
            "AMAVIS-MIB::inMsgsSize.0",
        ],
    );
    assert_eq!(get[0], "AMAVIS-MIB::inMsgs.0 = Counter32: 5");
    assert_eq!(
        get[1],
        format!("AMAVIS-MIB::inMsgsSize.0 = Counter64: {}", (1u64 << 40) + 7)
    );
}

#[test]
fn with_no_filter_running_every_object_answers_zero_and_the_scoreboard_is_picked_up_when_it_appears() {
    let dir = TempDir::new("snmp-attach");
    let path = dir.join("scoreboard");
    let agent = start_agent(&dir, &path, &[]);
    let walk = lines("snmpbulkwalk", &["-v2c", "-c", "public", &agent.addr, AMAVIS]);
    assert_eq!(value_of(&walk, "inMsgs"), "Counter32: 0");
    assert_eq!(value_of(&walk, "sysDescr"), "STRING: ");

    let board = open_board(&path);
    known_load(&board, 12);
    tests::wait_for("the agent to attach to the new scoreboard", tests::PATIENCE, || {
        let get = lines(
            "snmpget",
            &["-v2c", "-c", "public", &agent.addr, "AMAVIS-MIB::inMsgs.0"],
        );
        (get[0] == "AMAVIS-MIB::inMsgs.0 = Counter32: 12").then_some(())
    });
}

#[test]
fn sysuptime_and_counters_survive_a_writer_restart_together_and_reset_together_on_recreation() {
    let dir = TempDir::new("snmp-restart");
    let path = dir.join("scoreboard");
    let board = open_board(&path);
    known_load(&board, 7);
    let agent = start_agent(&dir, &path, &[]);
    // Past the walk gap, so the next request takes a fresh snapshot.
    std::thread::sleep(Duration::from_millis(1600));
    let ticks = |a: &str| -> u64 {
        let out = lines(
            "snmpget",
            &["-v2c", "-c", "public", "-Ot", a, "AMAVIS-MIB::sysUpTime.0"],
        );
        out[0].rsplit(' ').next().unwrap().parse().unwrap()
    };
    let before = ticks(&agent.addr);
    assert!(before >= 100, "sysUpTime counts from the scoreboard's start: {before}");
    // avisd restarts: the writer detaches and re-attaches to the same file.
    drop(board);
    let board = open_board(&path);
    known_load(&board, 1);
    std::thread::sleep(Duration::from_millis(1600));
    let get = lines(
        "snmpget",
        &["-v2c", "-c", "public", &agent.addr, "AMAVIS-MIB::inMsgs.0"],
    );
    assert_eq!(get[0], "AMAVIS-MIB::inMsgs.0 = Counter32: 8");
    assert!(ticks(&agent.addr) > before);
    // The file is recreated (an operator's reset): both start again.
    let before_reset = ticks(&agent.addr);
    drop(board);
    std::fs::remove_file(&path).unwrap();
    let board = open_board(&path);
    known_load(&board, 2);
    std::thread::sleep(Duration::from_millis(1600));
    let get = lines(
        "snmpget",
        &["-v2c", "-c", "public", &agent.addr, "AMAVIS-MIB::inMsgs.0"],
    );
    assert_eq!(get[0], "AMAVIS-MIB::inMsgs.0 = Counter32: 2");
    let after_reset = ticks(&agent.addr);
    assert!(
        after_reset < before_reset,
        "uptime reset with the counters: {after_reset} vs {before_reset}"
    );
    drop(board);
}

#[test]
fn the_agent_answers_over_ipv6_too() {
    let dir = TempDir::new("snmp-v6");
    let board = open_board(&dir.join("scoreboard"));
    known_load(&board, 5);
    let port = std::net::UdpSocket::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let v6 = format!("[::1]:{port}");
    let _agent = start_agent(
        &dir,
        &dir.join("scoreboard"),
        &["--listen", &v6, "--community", "public@::1/128"],
    );
    let get = lines(
        "snmpget",
        &[
            "-v2c",
            "-c",
            "public",
            &format!("udp6:[::1]:{port}"),
            "AMAVIS-MIB::inMsgs.0",
        ],
    );
    assert_eq!(get[0], "AMAVIS-MIB::inMsgs.0 = Counter32: 5");
}

#[test]
fn a_getbulk_answer_too_big_for_the_message_size_is_truncated_not_an_error() {
    let dir = TempDir::new("snmp-bulk-big");
    let _board = open_board(&dir.join("scoreboard"));
    let agent = start_agent(&dir, &dir.join("scoreboard"), &["--max-message-size", "1500"]);
    let rows = lines(
        "snmpbulkget",
        &["-v2c", "-c", "public", "-Cn0", "-Cr400", &agent.addr, AMAVIS],
    );
    assert!(rows.len() > 10 && rows.len() < 400, "{} rows", rows.len());
    assert!(rows.iter().all(|r| r.starts_with("AMAVIS-MIB::")), "{rows:?}");
    // A GET whose answer cannot fit is tooBig.
    let names: Vec<&str> = std::iter::repeat_n("AMAVIS-MIB::sysDescr.0", 60).collect();
    let out = snmp(
        "snmpget",
        &[&["-v2c", "-c", "public", &agent.addr][..], &names].concat(),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tooBig"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
