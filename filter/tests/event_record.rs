//! The `avis.message/1` event, held to its contract: golden JSON files for representative
//! messages (filter/tests/events/*.json, compared as parsed values, so key order does not
//! matter), and docs/events.md, field by field, against what the event serializes.
//!
//! A golden file that is missing is written and the test fails, so it gets reviewed (run
//! with `AVIS_WRITE_GOLDEN=1` to rewrite them all); a mismatch writes `<name>.json.failed`
//! beside it for a diff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use agent_mib::Outcome;
use agent_mib::families::{ContentCategory, Status};
use filter::message::{
    Body, Envelope, HeaderFacts, Ids, Notify, Peer, Quarantined, Recipient, RecipientResult, Reply, XForward,
};
use filter::record::event;
use filter::record::{CheckSummary, MessageSummary};
use serde_json::Value;

fn recipient(address: &str, local: bool, status: Status, response: Reply) -> RecipientResult {
    RecipientResult {
        address: address.into(),
        orcpt: None,
        local,
        status,
        response,
        queued_as: None,
        blocking: None,
        spam_score: None,
    }
}

fn envelope(mail_from: &str, rcpts: &[&str]) -> Envelope {
    Envelope {
        mail_from: mail_from.into(),
        recipients: rcpts
            .iter()
            .map(|a| Recipient {
                address: (*a).into(),
                orcpt: None,
                notify: Notify::default(),
            })
            .collect(),
        body: Body::SevenBit,
        smtputf8: false,
        ret: None,
        envid: None,
        declared_size: None,
        xforward: XForward::default(),
        helo: "mta.example".into(),
        lmtp: false,
    }
}

/// A clean message to one local recipient, relayed; no optional field has a source.
fn minimal() -> MessageSummary {
    MessageSummary {
        ids: Ids {
            log_id: "00001-01".into(),
            mail_id: "AbCdEfGhIjKl".into(),
        },
        received_at_ms: 1_795_930_754_123,
        envelope: envelope("", &["user@example.org"]),
        size: 1234,
        originating: false,
        policy: "default".into(),
        host: "avis.example".into(),
        peer: Peer::default(),
        recipients: vec![recipient(
            "user@example.org",
            true,
            Status::RelayedUntagged,
            Reply::new(250, (2, 0, 0), "from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok"),
        )],
        content: ContentCategory::Clean,
        content_name: "Clean".into(),
        checks: CheckSummary::default(),
        quarantined: vec![],
        quarantine_failures: 0,
        deliveries: vec![],
        dsn_sent: false,
        client_replies: vec![Reply::new(250, (2, 0, 0), "Ok")],
        outcome: Outcome::Relayed,
        receiving: Duration::from_millis(12),
        sending: Duration::from_millis(34),
        total: Duration::from_millis(56),
    }
}

/// Spam to two recipients over LMTP with SMTPUTF8, every optional field present: XFORWARD,
/// peer addresses, ORCPT, queue ids, blocking category, scores, header facts, quarantine.
fn full() -> MessageSummary {
    let mut s = minimal();
    s.envelope = envelope("sender@example.com", &["a@example.org", "b@remote.example"]);
    s.envelope.lmtp = true;
    s.envelope.smtputf8 = true;
    s.envelope.xforward = XForward {
        name: Some("client.example".into()),
        addr: Some("192.0.2.7".into()),
        port: Some("40123".into()),
        proto: Some("ESMTP".into()),
        helo: Some("client.example".into()),
        ident: Some("4ZxQ1".into()),
        source: Some("REMOTE".into()),
    };
    s.peer = Peer {
        src_ip: Some("127.0.0.1".parse().unwrap()),
        dst_ip: Some("127.0.0.2".parse().unwrap()),
        dst_port: Some(10024),
    };
    s.policy = "MYNETS".into();
    s.originating = true;
    let mut a = recipient(
        "a@example.org",
        true,
        Status::RelayedTagged,
        Reply::new(
            250,
            (2, 0, 0),
            "from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 9AbC",
        ),
    );
    a.orcpt = Some("A@example.org".into());
    a.queued_as = Some("9AbC".into());
    a.spam_score = Some(7.12345);
    let mut b = recipient(
        "b@remote.example",
        false,
        Status::Bounced,
        Reply::new(554, (5, 7, 0), "Reject, id=00001-01 - spam"),
    );
    b.orcpt = Some("b@remote.example".into());
    b.blocking = Some("Spam".into());
    b.spam_score = Some(7.12345);
    s.recipients = vec![a, b];
    s.content = ContentCategory::Spam;
    s.content_name = "Spam".into();
    s.checks = CheckSummary {
        performed: "VSHB".into(),
        virus_names: vec!["Eicar-Test-Signature".into()],
        spam: Some((7.12345, vec!["Z_RULE".into(), "A_RULE".into()])),
        subject: Some("Hello, Wörld".into()),
        from: vec!["author@example.com".into()],
        message_id: Some("<id@example.com>".into()),
        file_names: vec!["a.txt".into(), "b.zip".into()],
        headers: HeaderFacts {
            to: vec!["a@example.org".into()],
            cc: vec!["c@example.org".into()],
            sender: Some("list@example.com".into()),
            references: vec!["<ref@example.com>".into()],
            user_agent: Some("Mutt/2.2".into()),
        },
        decoding: Some(Duration::from_micros(1500)),
        virus: Some(Duration::from_millis(20)),
        spam_time: Some(Duration::from_millis(300)),
    };
    s.quarantined = vec![Quarantined {
        category: ContentCategory::Spam,
        relative: "S/spam-AbCdEfGhIjKl".into(),
        quar_type: "Z",
        size: 1234,
    }];
    s.dsn_sent = true;
    s.outcome = Outcome::Bounced;
    s.client_replies = vec![Reply::new(250, (2, 0, 0), "Ok"), Reply::new(554, (5, 7, 0), "Rejected")];
    s.total = Duration::from_millis(400);
    s
}

/// Three recipients with repeated codes and actions (the distinct lists keep first-seen
/// order), a tempfail, a reply without enhanced code, an unparsable XFORWARD PORT, an
/// ORCPT equal to the address, and a second transaction's log id.
fn repeated() -> MessageSummary {
    let mut s = minimal();
    s.ids.log_id = "00002-03-2".into();
    s.envelope = envelope("x@example.com", &["a@example.org", "b@example.org", "c@example.org"]);
    s.envelope.xforward.port = Some("not-a-port".into());
    let ok = Reply::new(250, (2, 0, 0), "Ok: queued as Q1");
    let mut a = recipient("a@example.org", true, Status::RelayedUntagged, ok.clone());
    a.queued_as = Some("Q1".into());
    a.orcpt = Some("a@example.org".into());
    let mut b = recipient("b@example.org", true, Status::RelayedUntagged, ok);
    b.queued_as = Some("Q1".into());
    let c = recipient(
        "c@example.org",
        false,
        Status::TempFailed,
        Reply {
            code: 451,
            enhanced: None,
            text: "back end down".into(),
        },
    );
    s.recipients = vec![a, b, c];
    s.outcome = Outcome::TempFailed;
    s.checks.performed = "H".into();
    s.checks.decoding = Some(Duration::from_millis(1));
    s
}

fn cases() -> Vec<(&'static str, MessageSummary)> {
    vec![("minimal", minimal()), ("full", full()), ("repeated", repeated())]
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/events")
}

#[test]
fn the_event_of_each_golden_message_is_unchanged() {
    let rewrite = std::env::var_os("AVIS_WRITE_GOLDEN").is_some();
    let mut compared = 0;
    for (name, summary) in cases() {
        let got: Value = serde_json::to_value(event::build(&summary)).unwrap();
        let path = golden_dir().join(format!("{name}.json"));
        let failed = path.with_extension("json.failed");
        if rewrite || !path.exists() {
            std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
            continue;
        }
        let want: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if got == want {
            let _ = std::fs::remove_file(&failed);
        } else {
            std::fs::write(&failed, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
            panic!(
                "{name}: the event differs from {}; see {}",
                path.display(),
                failed.display()
            );
        }
        compared += 1;
    }
    assert!(
        !rewrite,
        "golden files written: review them and run again without AVIS_WRITE_GOLDEN"
    );
    assert_eq!(
        compared,
        cases().len(),
        "a golden file was missing and has been written: review it"
    );
}

/// A field of docs/events.md: its name and its documented type (`string`, `[string]`…).
type DocFields = Vec<(String, String)>;

/// The fields of one table of docs/events.md: the rows after the heading line that
/// contains `heading`, up to the end of that table. A row may document several fields
/// (`` `src_ip`, `dst_ip` ``) with one type each or one type for all.
fn doc_table(doc: &str, heading: &str) -> DocFields {
    let mut lines = doc.lines().skip_while(|l| !l.contains(heading)).skip(1);
    let rows = lines
        .by_ref()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2); // the header and its |---| line
    let mut fields = Vec::new();
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let names: Vec<&str> = cells[1].split(',').map(|n| n.trim().trim_matches('`')).collect();
        let types: Vec<&str> = cells[2].split(',').map(str::trim).collect();
        assert!(
            types.len() == 1 || types.len() == names.len(),
            "docs/events.md: row {row:?} has {} names but {} types",
            names.len(),
            types.len()
        );
        for (i, name) in names.iter().enumerate() {
            fields.push((
                (*name).to_string(),
                types[if types.len() == 1 { 0 } else { i }].to_string(),
            ));
        }
    }
    assert!(!fields.is_empty(), "docs/events.md: no table after {heading:?}");
    fields
}

/// The backquoted words of the `meaning` cell of field `name`'s row.
fn doc_quoted_words(doc: &str, name: &str) -> Vec<String> {
    let row = doc
        .lines()
        .find(|l| l.starts_with(&format!("| `{name}` |")))
        .unwrap_or_else(|| panic!("docs/events.md: no row for {name}"));
    let meaning = row.split('|').nth(3).unwrap();
    meaning.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// The documented type name of a JSON value (an empty list matches any list type).
fn type_name(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Object(_) => "object".into(),
        Value::Array(items) => match items.first() {
            Some(first) => format!("[{}]", type_name(first)),
            None => "[]".into(),
        },
    }
}

/// Checks one object level: every documented field is in `fields` with its documented
/// type, and every field in `fields` is documented.
fn hold_to_doc(level: &str, doc: &DocFields, fields: &serde_json::Map<String, Value>) {
    for (name, want) in doc {
        let value = fields
            .get(name)
            .unwrap_or_else(|| panic!("{level}: `{name}` is documented but the event has no such field"));
        let got = type_name(value);
        assert!(
            got == *want || (got == "[]" && want.starts_with('[')),
            "{level}: `{name}` is documented as {want} but serializes as {got}"
        );
    }
    for name in fields.keys() {
        assert!(
            doc.iter().any(|(n, _)| n == name),
            "{level}: the event has `{name}`, which docs/events.md does not document"
        );
    }
}

/// Every key of `objects`, with the value it has in the first object that has it.
fn union(objects: impl Iterator<Item = Value>) -> serde_json::Map<String, Value> {
    let mut all = serde_json::Map::new();
    for object in objects {
        for (k, v) in object.as_object().unwrap() {
            all.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    all
}

#[test]
fn docs_events_md_documents_exactly_the_fields_the_event_has_with_their_types() {
    let doc = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/events.md")).unwrap();
    // `full` has every optional field; the other cases add nothing undocumented.
    let events: Vec<Value> = cases()
        .iter()
        .map(|(_, s)| serde_json::to_value(event::build(s)).unwrap())
        .collect();
    let full = serde_json::to_value(event::build(&full())).unwrap();
    for (name, _) in &doc_table(&doc, "## `avis.message/1`") {
        assert!(full.get(name).is_some(), "the `full` case must set `{name}`");
    }

    hold_to_doc(
        "event",
        &doc_table(&doc, "## `avis.message/1`"),
        &union(events.iter().cloned()),
    );

    let recipients = events.iter().flat_map(|e| e["recipients"].as_array().unwrap().clone());
    hold_to_doc("recipients[]", &doc_table(&doc, "(`recipients[]`)"), &union(recipients));

    let elapsed_doc: DocFields = doc_quoted_words(&doc, "elapsed")
        .into_iter()
        .map(|w| (w, "number".to_string()))
        .collect();
    hold_to_doc(
        "elapsed",
        &elapsed_doc,
        &union(events.iter().map(|e| e["elapsed"].clone())),
    );
}
