//! Writes our `AMAVIS-MIB.txt` from the table: amavisd-new's module name, OIDs, object
//! names and SMI types, with descriptions in our words, plus our `avis` subtree.
//! `mib/AMAVIS-MIB.txt` is checked against this text by a test, so it cannot drift.

use std::fmt::Write as _;

use crate::{AMAVIS_OID, OBJECTS, Syntax};

/// The named nodes objects hang from, longest first when matching.
const NODES: &[(&str, &[u32], &str)] = &[
    (
        "amavisStats",
        &[1],
        "Counters and strings fed by avisd (amavisd-new's snmp.db keys).",
    ),
    (
        "amavisProc",
        &[2],
        "Gauges derived from the worker slots (amavisd-new's nanny.db).",
    ),
    ("amavisMta", &[3], "Gauges read from the Postfix queue directories."),
    (
        "avis",
        &[4],
        "Objects avis adds and amavisd-new lacks. amavisd-new uses amavis.1 to amavis.3 and \
         reserves ijs.2.2 for LDAP; avis takes the unused arc amavis.4 so one registration of \
         the amavis subtree serves both, and a walk of AMAVIS-MIB::amavis shows everything.",
    ),
    (
        "avisLatency",
        &[4, 1],
        "Per-stage latency histograms. For stage S (1 receive, 2 decode, 3 virus, 4 spam, \
         5 forward, 6 total): avis.1.S.1 count, .2 sum in ms, .3 to .15 one counter per bucket \
         (not cumulative) with upper bounds 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, \
         30000, 60000 ms and unbounded.",
    ),
    (
        "avisScanner",
        &[4, 2],
        "Health of each external back end B (1 clamd, 2 backup clamd, 3 spamd, 4 rspamd, \
         5 the back-end MTA): requests, errors, timeouts, last latency.",
    ),
    (
        "avisLedger",
        &[4, 3],
        "The mail ledger: received = relayed + rejected + discarded + bounced + quarantined + \
         tempfailed + in flight. avisLedgerUnaccounted must read 0.",
    ),
    ("avisInfo", &[4, 4], "About the scoreboard and the filter writing it."),
];

fn wrap(text: &str, indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.replace('"', "'").split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            let _ = writeln!(out, "{indent}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    let _ = write!(out, "{indent}{line}");
    out
}

fn parent(oid: &[u32]) -> (String, Vec<u32>) {
    let rel = &oid[AMAVIS_OID.len()..];
    let best = NODES
        .iter()
        .filter(|(_, arcs, _)| rel.starts_with(arcs) && rel.len() > arcs.len())
        .max_by_key(|(_, arcs, _)| arcs.len());
    match best {
        Some((name, arcs, _)) => ((*name).to_string(), rel[arcs.len()..].to_vec()),
        None => ("amavis".to_string(), rel.to_vec()),
    }
}

fn arcs(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
}

/// The whole MIB module text.
pub fn mib_text() -> String {
    let mut m = String::new();
    m.push_str(
        "AMAVIS-MIB DEFINITIONS ::= BEGIN\n\n\
-- The AMAVIS-MIB as avis serves it: the module name, OIDs, object names and SMI\n\
-- types of amavisd-new's AMAVIS-MIB, so existing pollers keep working, with\n\
-- descriptions written for avis, and the avis subtree (amavis.4) added.\n\
-- Generated from agent-mib/mib/objects.tsv; do not edit by hand.\n\n\
IMPORTS\n    MODULE-IDENTITY, OBJECT-TYPE, enterprises,\n    Counter32, Counter64, Gauge32, Integer32, TimeTicks\n        FROM SNMPv2-SMI\n    DisplayString, TimeInterval\n        FROM SNMPv2-TC;\n\n",
    );
    m.push_str(
        "amavis MODULE-IDENTITY\n    LAST-UPDATED \"202611290000Z\"\n    ORGANIZATION \"avis\"\n    CONTACT-INFO\n        \"The avis project; see the README of the avis repository.\"\n    DESCRIPTION\n        \"Statistics of the avis mail content filter, compatible with the\n        AMAVIS-MIB of amavisd-new. Every object is a read-only scalar\n        served at instance 0.\"\n    REVISION \"202611290000Z\"\n    DESCRIPTION\n        \"First avis revision: the amavisd-new objects and the avis subtree.\"\n    ::= { enterprises 15312 2 1 }\n\n",
    );
    for (name, arcs_, desc) in NODES {
        let (p, rest) = match arcs_.len() {
            1 => ("amavis".to_string(), arcs_.to_vec()),
            _ => ("avis".to_string(), arcs_[1..].to_vec()),
        };
        let _ = writeln!(
            m,
            "-- {}\n{name} OBJECT IDENTIFIER ::= {{ {p} {} }}\n",
            wrap(desc, "", 76).replace('\n', "\n-- "),
            arcs(&rest)
        );
    }
    for o in OBJECTS {
        let (p, rest) = parent(o.oid);
        let syntax = match o.syntax {
            Syntax::ObjectIdentifier => "OBJECT IDENTIFIER",
            s => s.smi_name(),
        };
        let _ = write!(
            m,
            "{} OBJECT-TYPE\n    SYNTAX      {syntax}\n    MAX-ACCESS  read-only\n    STATUS      current\n    DESCRIPTION\n        \"{}\"\n    ::= {{ {p} {} }}\n\n",
            o.name,
            wrap(o.description, "", 64).replace('\n', "\n        "),
            arcs(&rest)
        );
    }
    m.push_str("END\n");
    m
}
