//! avis-snmp-agent as an AgentX subagent of a private net-snmp `snmpd` master: the same
//! walks through the master give the same answers as the standalone agent, SETs are
//! refused through the master too, and when snmpd restarts the subagent is back within
//! its ping interval.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod snmp_support;

use std::time::{Duration, Instant};

use snmp_support::*;
use tests::{PATIENCE, TempDir, wait_for};

/// Both front ends in one process: UDP for the reference walk, AgentX to the master.
fn setup(tag: &str, ping_s: &str) -> (TempDir, std::sync::Arc<agent_mib::Scoreboard>, Snmpd, Agent) {
    let dir = TempDir::new(tag);
    let board = open_board(&dir.join("scoreboard"));
    known_load(&board, 23);
    let (udp, tcp) = free_ports();
    let snmpd = Snmpd::start(&dir, udp, tcp);
    let agentx = snmpd.agentx.clone();
    let agent = start_agent(
        &dir,
        &dir.join("scoreboard"),
        &["--agentx", &agentx, "--agentx-ping", ping_s],
    );
    let addr = snmpd.addr.clone();
    wait_for("the subagent to register with snmpd", PATIENCE, || {
        let out = snmp(
            "snmpget",
            &[
                "-v2c",
                "-c",
                "public",
                "-t",
                "0.5",
                "-r",
                "0",
                &addr,
                "AMAVIS-MIB::inMsgs.0",
            ],
        );
        String::from_utf8_lossy(&out.stdout)
            .contains("Counter32: 23")
            .then_some(())
    });
    (dir, board, snmpd, agent)
}

#[test]
fn walks_through_the_snmpd_master_equal_the_standalone_agent_for_v1_v2c_and_bulk() {
    let (_dir, _board, snmpd, agent) = setup("agentx-walk", "5");
    for (tool, version) in [("snmpwalk", "-v1"), ("snmpwalk", "-v2c"), ("snmpbulkwalk", "-v2c")] {
        let direct = lines(tool, &[version, "-c", "public", &agent.addr, AMAVIS]);
        let master = lines(tool, &[version, "-c", "public", &snmpd.addr, AMAVIS]);
        assert_eq!(stable(&master), stable(&direct), "{tool} {version}");
        assert!(stable(&master).len() > 250, "{tool} {version}: {} rows", master.len());
    }
    let get = lines(
        "snmpget",
        &[
            "-v2c",
            "-c",
            "public",
            &snmpd.addr,
            "AMAVIS-MIB::inMsgs.0",
            "AMAVIS-MIB::inMsgsSize.0",
            "AMAVIS-MIB::inMsgs.3",
        ],
    );
    assert_eq!(get[0], "AMAVIS-MIB::inMsgs.0 = Counter32: 23");
    assert_eq!(get[1], "AMAVIS-MIB::inMsgsSize.0 = Counter64: 230000");
    assert!(get[2].contains("No Such Instance"), "{}", get[2]);
}

#[test]
fn v3_authpriv_through_the_master_equals_v3_on_the_standalone_agent() {
    let (_dir, _board, snmpd, agent) = setup("agentx-v3", "5");
    let via = |addr: &str| {
        let mut args = v3_monitor(addr);
        args.push(AMAVIS.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lines("snmpbulkwalk", &args)
    };
    assert_eq!(stable(&via(&snmpd.addr)), stable(&via(&agent.addr)));
}

#[test]
fn a_set_through_the_master_is_refused() {
    let (_dir, _board, snmpd, _agent) = setup("agentx-set", "5");
    let out = snmp(
        "snmpset",
        &[
            "-v2c",
            "-c",
            "public",
            &snmpd.addr,
            "AMAVIS-MIB::sysName.0",
            "s",
            "pwned",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notWritable") || err.contains("noAccess"), "{err}");
}

#[test]
fn after_snmpd_restarts_the_subagent_is_back_within_its_ping_interval() {
    let ping = Duration::from_secs(2);
    let (dir, _board, mut snmpd, _agent) = setup("agentx-restart", "2");
    snmpd.restart(&dir);
    let master_up = Instant::now();
    let addr = snmpd.addr.clone();
    // The deadline only bounds a failure; the bound under test is asserted below.
    wait_for("the subagent to re-register", PATIENCE, || {
        let out = snmp(
            "snmpget",
            &[
                "-v2c",
                "-c",
                "public",
                "-t",
                "0.3",
                "-r",
                "0",
                &addr,
                "AMAVIS-MIB::inMsgs.0",
            ],
        );
        String::from_utf8_lossy(&out.stdout)
            .contains("Counter32: 23")
            .then_some(())
    });
    let took = master_up.elapsed();
    // Its back-off is capped at the ping interval, so it is back within one interval; the
    // second interval is slack for a busy machine (each probe is an snmpget with a 0.3 s
    // timeout), still far from what an uncapped back-off would take.
    assert!(took <= ping * 2, "back after {took:?}, ping interval {ping:?}");
}

#[test]
fn the_subagent_registers_over_a_unix_socket_like_the_debian_default() {
    let dir = TempDir::new("agentx-unix");
    let board = open_board(&dir.join("scoreboard"));
    known_load(&board, 31);
    let socket = dir.join("master");
    let snmpd = Snmpd::start_on(&dir, tests::free_udp_port(), socket.to_str().unwrap());
    let _agent = start_agent(&dir, &dir.join("scoreboard"), &["--agentx", socket.to_str().unwrap()]);
    let addr = snmpd.addr.clone();
    wait_for("the subagent to register over the Unix socket", PATIENCE, || {
        let out = snmp(
            "snmpget",
            &[
                "-v2c",
                "-c",
                "public",
                "-t",
                "0.5",
                "-r",
                "0",
                &addr,
                "AMAVIS-MIB::inMsgs.0",
            ],
        );
        String::from_utf8_lossy(&out.stdout)
            .contains("Counter32: 31")
            .then_some(())
    });
}

#[test]
fn a_subagent_started_before_snmpd_registers_once_the_master_comes_up() {
    let dir = TempDir::new("agentx-late-master");
    let board = open_board(&dir.join("scoreboard"));
    known_load(&board, 8);
    let (udp, tcp) = free_ports();
    let agentx = format!("tcp:127.0.0.1:{tcp}");
    let _agent = start_agent(
        &dir,
        &dir.join("scoreboard"),
        &["--agentx", &agentx, "--agentx-ping", "2"],
    );
    wait_for("the subagent to find no master", PATIENCE, || {
        agent_log(&dir).contains("cannot reach the AgentX master").then_some(())
    });
    let snmpd = Snmpd::start(&dir, udp, tcp);
    let addr = snmpd.addr.clone();
    wait_for("the subagent to register with the late master", PATIENCE, || {
        let out = snmp(
            "snmpget",
            &[
                "-v2c",
                "-c",
                "public",
                "-t",
                "0.3",
                "-r",
                "0",
                &addr,
                "AMAVIS-MIB::inMsgs.0",
            ],
        );
        String::from_utf8_lossy(&out.stdout)
            .contains("Counter32: 8")
            .then_some(())
    });
    assert!(agent_log(&dir).contains("registered with the AgentX master"));
}
