//! The amavisMta gauges: entries of Postfix's maildrop, incoming, active and deferred
//! queues (hashed one-character subdirectories recursed, as amavisd counts), and our
//! oldest-message age; and when the queue cannot be read, the subtree is not served at
//! all, as amavisd-snmp-subagent does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod snmp_support;

use std::fs;
use std::time::{Duration, SystemTime};

use snmp_support::*;
use tests::TempDir;

#[test]
fn queue_gauges_count_postfix_queue_files_and_the_oldest_age() {
    let dir = TempDir::new("snmp-mta");
    let _board = open_board(&dir.join("scoreboard"));
    let q = dir.join("postfix");
    for sub in ["maildrop", "incoming", "active", "deferred/A", "deferred/B"] {
        fs::create_dir_all(q.join(sub)).unwrap();
    }
    fs::write(q.join("maildrop/1A2B3C"), b"x").unwrap();
    fs::write(q.join("active/4D5E6F"), b"x").unwrap();
    fs::write(q.join("deferred/A/7A8B9C"), b"x").unwrap();
    fs::write(q.join("deferred/B/7A8B9D"), b"x").unwrap();
    let old = fs::File::options()
        .write(true)
        .open(q.join("deferred/B/7A8B9D"))
        .unwrap();
    old.set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();

    let agent = start_agent(
        &dir,
        &dir.join("scoreboard"),
        &["--queue-directory", q.to_str().unwrap()],
    );
    let walk = lines("snmpbulkwalk", &["-v2c", "-c", "public", &agent.addr, AMAVIS]);
    assert_eq!(value_of(&walk, "mtaQueueEntriesMaildrop"), "Gauge32: 1");
    assert_eq!(value_of(&walk, "mtaQueueEntriesIncoming"), "Gauge32: 0");
    assert_eq!(value_of(&walk, "mtaQueueEntriesActive"), "Gauge32: 1");
    assert_eq!(value_of(&walk, "mtaQueueEntriesDeferred"), "Gauge32: 2");
    let age: u64 = value_of(&walk, "avisMtaQueueOldestAge")
        .trim_start_matches("Gauge32: ")
        .parse()
        .unwrap();
    assert!((3600..3700).contains(&age), "oldest age {age}");
}

#[test]
fn an_unreadable_queue_directory_leaves_the_mta_subtree_unserved() {
    let dir = TempDir::new("snmp-mta-none");
    let _board = open_board(&dir.join("scoreboard"));
    let missing = dir.join("no-such-queue");
    let agent = start_agent(
        &dir,
        &dir.join("scoreboard"),
        &["--queue-directory", missing.to_str().unwrap()],
    );
    let get = lines(
        "snmpget",
        &[
            "-v2c",
            "-c",
            "public",
            &agent.addr,
            "AMAVIS-MIB::mtaQueueEntriesActive.0",
        ],
    );
    assert!(get[0].contains("No Such Object"), "{}", get[0]);
    let walk = lines("snmpbulkwalk", &["-v2c", "-c", "public", &agent.addr, AMAVIS]);
    assert!(walk.iter().all(|l| !l.contains("mtaQueue")), "MTA objects served");
    assert_eq!(value_of(&walk, "procAll"), "Gauge32: 4");
}
