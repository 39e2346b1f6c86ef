//! SNMPv3 USM against net-snmp's tools: authPriv with SHA-256/AES-128 and SHA-1/AES-256
//! returns the same subtree as v2c, a wrong key or an unknown user is refused with
//! net-snmp's own error, noAuthNoPriv is off, and the engine ID stays while engine
//! boots counts up across restarts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod snmp_support;

use snmp_support::*;
use tests::TempDir;

fn args<'a>(v: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    v.iter().map(String::as_str).chain(extra.iter().copied()).collect()
}

#[test]
fn v3_authpriv_walks_return_the_same_subtree_as_v2c_with_sha256_aes128_and_sha1_aes256() {
    let dir = TempDir::new("snmp-v3");
    let board = open_board(&dir.join("scoreboard"));
    known_load(&board, 17);
    let agent = start_agent(&dir, &dir.join("scoreboard"), &[]);
    let v2c = lines("snmpbulkwalk", &["-v2c", "-c", "public", &agent.addr, AMAVIS]);

    let monitor = v3_monitor(&agent.addr);
    let get = lines(
        "snmpget",
        &args(&monitor, &["AMAVIS-MIB::inMsgs.0", "AMAVIS-MIB::inMsgsSize.0"]),
    );
    assert_eq!(
        get,
        vec![
            "AMAVIS-MIB::inMsgs.0 = Counter32: 17".to_string(),
            "AMAVIS-MIB::inMsgsSize.0 = Counter64: 170000".to_string()
        ]
    );
    let next = lines("snmpgetnext", &args(&monitor, &["AMAVIS-MIB::inMsgs"]));
    assert_eq!(next, vec!["AMAVIS-MIB::inMsgs.0 = Counter32: 17".to_string()]);
    assert_eq!(stable(&lines("snmpwalk", &args(&monitor, &[AMAVIS]))), stable(&v2c));
    assert_eq!(stable(&lines("snmpbulkwalk", &args(&monitor, &[AMAVIS]))), stable(&v2c));

    let legacy: Vec<String> = [
        "-v3",
        "-l",
        "authPriv",
        "-u",
        "legacy",
        "-a",
        "SHA",
        "-A",
        "legacyauth123",
        "-x",
        "AES256",
        "-X",
        "legacypriv123",
        &agent.addr,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(stable(&lines("snmpbulkwalk", &args(&legacy, &[AMAVIS]))), stable(&v2c));
}

#[test]
fn a_wrong_v3_key_an_unknown_user_and_no_auth_are_refused() {
    let dir = TempDir::new("snmp-v3-bad");
    let _board = open_board(&dir.join("scoreboard"));
    let agent = start_agent(&dir, &dir.join("scoreboard"), &[]);
    let refused = |a: &[&str], why: &str| {
        let out = snmp(
            "snmpget",
            &[a, &["-t", "1", "-r", "0", &agent.addr, "AMAVIS-MIB::inMsgs.0"]].concat(),
        );
        assert!(!out.status.success(), "{a:?} was answered");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{a:?}: {err}");
    };
    refused(
        &[
            "-v3",
            "-l",
            "authPriv",
            "-u",
            "monitor",
            "-a",
            "SHA-256",
            "-A",
            "wrongauth123",
            "-x",
            "AES",
            "-X",
            "monitorpriv123",
        ],
        "Authentication failure",
    );
    refused(
        &[
            "-v3",
            "-l",
            "authPriv",
            "-u",
            "nobody",
            "-a",
            "SHA-256",
            "-A",
            "monitorauth123",
            "-x",
            "AES",
            "-X",
            "monitorpriv123",
        ],
        "Unknown user name",
    );
    refused(
        &["-v3", "-l", "noAuthNoPriv", "-u", "monitor"],
        "Unsupported security level",
    );
    // A wrong privacy key authenticates but cannot be decrypted: no answer with data.
    let out = snmp(
        "snmpget",
        &[
            "-v3",
            "-l",
            "authPriv",
            "-u",
            "monitor",
            "-a",
            "SHA-256",
            "-A",
            "monitorauth123",
            "-x",
            "AES",
            "-X",
            "wrongpriv123",
            "-t",
            "1",
            "-r",
            "0",
            &agent.addr,
            "AMAVIS-MIB::inMsgs.0",
        ],
    );
    assert!(!out.status.success());
}

#[test]
fn the_engine_id_is_stable_and_engine_boots_persist_across_restarts() {
    let dir = TempDir::new("snmp-v3-boots");
    let _board = open_board(&dir.join("scoreboard"));
    let state = || std::fs::read_to_string(dir.join("snmp-engine")).unwrap();
    let first = start_agent(&dir, &dir.join("scoreboard"), &[]);
    let s1 = state();
    drop(first);
    let second = start_agent(&dir, &dir.join("scoreboard"), &[]);
    let s2 = state();
    assert_eq!(s1.lines().next(), s2.lines().next(), "engine id changed");
    assert!(s1.contains("boots 1") && s2.contains("boots 2"), "{s1} / {s2}");
    // net-snmp discovers the engine (id, boots, time) and reads through the new boots.
    let monitor = v3_monitor(&second.addr);
    let get = lines("snmpget", &args(&monitor, &["AMAVIS-MIB::inMsgs.0"]));
    assert_eq!(get[0], "AMAVIS-MIB::inMsgs.0 = Counter32: 0");
    let engine_id = s2.lines().next().unwrap().trim_start_matches("engine_id ").to_string();
    let pinned = lines(
        "snmpget",
        &args(&monitor, &["-e", &format!("0x{engine_id}"), "AMAVIS-MIB::inMsgs.0"]),
    );
    assert_eq!(pinned[0], "AMAVIS-MIB::inMsgs.0 = Counter32: 0");
}

#[test]
fn with_v1_and_v2c_turned_off_only_v3_is_answered() {
    let dir = TempDir::new("snmp-v3-only");
    let board = open_board(&dir.join("scoreboard"));
    known_load(&board, 2);
    // The support adds `--community public@127.0.0.1/32`; `off` wins over it.
    let agent = start_agent(&dir, &dir.join("scoreboard"), &["--community", "off"]);
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
            &agent.addr,
            "AMAVIS-MIB::inMsgs.0",
        ],
    );
    assert!(!out.status.success());
    let monitor = v3_monitor(&agent.addr);
    assert_eq!(
        lines("snmpget", &args(&monitor, &["AMAVIS-MIB::inMsgs.0"]))[0],
        "AMAVIS-MIB::inMsgs.0 = Counter32: 2"
    );
}
