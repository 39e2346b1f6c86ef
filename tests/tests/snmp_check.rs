//! Nagios `check_snmp` (monitoring-plugins-basic) reads `AMAVIS-MIB::inMsgs.0` by name
//! with our shipped MIB and applies its thresholds to the value avis-snmp-agent serves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod snmp_support;

use std::process::Command;

use snmp_support::*;
use tests::{TempDir, mib_env};

const CHECK_SNMP: &str = "/usr/lib/nagios/plugins/check_snmp";

fn check(port: u16, warn: &str, crit: &str) -> (i32, String) {
    assert!(
        std::path::Path::new(CHECK_SNMP).is_file(),
        "{CHECK_SNMP} missing; run scripts/install-test-deps.sh"
    );
    let mut cmd = Command::new(CHECK_SNMP);
    for (k, v) in mib_env() {
        cmd.env(k, v);
    }
    let out = cmd
        .args([
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-P",
            "2c",
            "-C",
            "public",
            "-o",
            "AMAVIS-MIB::inMsgs.0",
        ])
        .args(["-m", "AMAVIS-MIB", "-w", warn, "-c", crit])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[test]
fn check_snmp_reads_in_msgs_by_name_and_applies_ok_warning_and_critical_thresholds() {
    let dir = TempDir::new("snmp-check");
    let board = open_board(&dir.join("scoreboard"));
    known_load(&board, 50);
    let agent = start_agent(&dir, &dir.join("scoreboard"), &[]);

    let (code, text) = check(agent.port, "100", "200");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("SNMP OK") && text.contains("50"), "{text}");

    let (code, text) = check(agent.port, "10", "200");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("WARNING"), "{text}");

    let (code, text) = check(agent.port, "10", "20");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("CRITICAL"), "{text}");
}
