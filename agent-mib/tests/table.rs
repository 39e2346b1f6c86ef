//! The table: every AMAVIS-MIB object of amavisd-new is there with its OID, name and
//! type, and the shipped MIB file is exactly the one the table generates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_mib::{AMAVIS_OID, AVIS_OID, Feed, OBJECTS, Syntax, by_name, by_oid, dotted, mib_text};

fn amavis_objects() -> impl Iterator<Item = &'static agent_mib::MibObject> {
    OBJECTS.iter().filter(|o| !o.oid.starts_with(AVIS_OID))
}

#[test]
fn the_table_holds_all_331_amavis_objects_with_their_types() {
    assert_eq!(amavis_objects().count(), 331);
    let count = |s: Syntax| amavis_objects().filter(|o| o.syntax == s).count();
    assert_eq!(count(Syntax::Counter32), 203);
    assert_eq!(count(Syntax::Counter64), 70);
    assert_eq!(count(Syntax::Gauge32), 44);
    assert_eq!(count(Syntax::TimeInterval), 7);
    assert_eq!(count(Syntax::DisplayString), 4);
    assert_eq!(
        count(Syntax::Integer32) + count(Syntax::TimeTicks) + count(Syntax::ObjectIdentifier),
        3
    );
}

#[test]
fn the_table_matches_the_reference_mib_tsv_when_it_is_beside_the_repo() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/reference/amavis/mib.tsv");
    let Ok(text) = std::fs::read_to_string(path) else {
        // CI has shared/ beside the clone; a developer without it still has the counts above.
        assert!(std::env::var_os("CI").is_none(), "CI must have {path}");
        eprintln!("skipped: {path} not present");
        return;
    };
    let mut rows = 0;
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let oid: Vec<u32> = cols[0].split('.').map(|a| a.parse().unwrap_or(0)).collect();
        let obj = by_oid(&oid).unwrap_or_else(|| panic!("{} missing from the table", cols[1]));
        assert_eq!(obj.name, cols[1]);
        assert_eq!(obj.syntax.smi_name(), cols[2], "{}", cols[1]);
        rows += 1;
    }
    assert_eq!(rows, 331);
}

#[test]
fn objects_are_sorted_unique_and_under_the_amavis_node() {
    for w in OBJECTS.windows(2) {
        assert!(w[0].oid < w[1].oid, "{} before {}", w[0].name, w[1].name);
    }
    assert!(OBJECTS.iter().all(|o| o.oid.starts_with(AMAVIS_OID)));
}

#[test]
fn duplicate_status_objects_share_one_counter_as_amavisd_does() {
    let feed = |n: &str| by_name(n).map(|o| o.feed);
    assert_eq!(feed("inMsgsStatusAccepted"), feed("inMsgsStatusAcceptedAll"));
    assert_eq!(feed("inMsgsStatusTempFailed"), feed("inMsgsStatusTempFailedAll"));
    assert_ne!(feed("inMsgsStatusRelayed"), feed("inMsgsStatusRelayedTaggedAll"));
}

#[test]
fn elapsed_objects_read_milliseconds_counters() {
    let o = by_name("timeElapsedTotal").map(|o| o.feed);
    assert!(matches!(o, Some(Feed::ElapsedMs(agent_mib::Counter::TimeElapsedTotal))));
}

#[test]
fn our_subtree_has_histograms_scanner_health_and_the_ledger() {
    let ours: Vec<_> = OBJECTS.iter().filter(|o| o.oid.starts_with(AVIS_OID)).collect();
    assert_eq!(
        ours.iter().filter(|o| o.name.starts_with("avisLatency")).count(),
        6 * 15
    );
    assert_eq!(ours.iter().filter(|o| o.name.starts_with("avisScanner")).count(), 5 * 4);
    assert!(by_name("avisLedgerUnaccounted").is_some());
    assert_eq!(
        dotted(by_name("avisLedgerReceived").map_or(&[][..], |o| o.oid)),
        "1.3.6.1.4.1.15312.2.1.4.3.1"
    );
}

#[test]
fn the_shipped_mib_file_is_the_generated_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/mib/AMAVIS-MIB.txt");
    let generated = mib_text();
    if std::env::var_os("AVIS_BLESS").is_some() {
        std::fs::write(path, &generated).expect("write the MIB file");
    }
    let shipped = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        shipped == generated,
        "agent-mib/mib/AMAVIS-MIB.txt differs from the table; regenerate with AVIS_BLESS=1 cargo test -p agent-mib --test table"
    );
    for o in OBJECTS {
        assert!(
            shipped.contains(&format!("\n{} OBJECT-TYPE\n", o.name)),
            "{} not in the MIB file",
            o.name
        );
    }
    assert_eq!(
        shipped.matches(" OBJECT-TYPE\n").count(),
        OBJECTS.len(),
        "no object in the file that the table lacks"
    );
}

#[test]
fn families_follow_the_mib_arcs() {
    use agent_mib::{ContentCategory, Counter, Direction, Status, families};
    assert_eq!(families::in_msgs(Direction::OpenRelay), Counter::InMsgsOpenRelay);
    assert_eq!(
        families::in_msgs_recips(Direction::Internal),
        Counter::InMsgsRecipsInternal
    );
    assert_eq!(
        ContentCategory::Virus.counter(Direction::Inbound),
        Counter::ContentVirusMsgsInbound
    );
    assert_eq!(
        ContentCategory::Clean.counter(Direction::All),
        Counter::ContentCleanMsgs
    );
    assert_eq!(Status::Accepted.counter(Direction::All), Counter::InMsgsStatusAccepted);
    assert_eq!(
        Status::RelayedUntagged.counter(Direction::Outbound),
        Counter::InMsgsStatusRelayedUntaggedOutbound
    );
    assert_eq!(
        Status::TempFailed.counter(Direction::Originating),
        Counter::InMsgsStatusTempFailedOriginating
    );
}
