//! Turns `mib/objects.tsv`, the one table of every object avis serves, into Rust:
//! the `Counter` and `Gauge` handles the filter bumps, the sorted object list the
//! agent serves, the latency and scanner handle arrays, and a hash of the table that
//! the scoreboard header carries so a reader built from another table refuses it.
//!
//! A build script and not a proc macro: the table stays a plain file that people and
//! scripts can read, and the generated code is ordinary Rust that rustdoc shows.

use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

struct Row {
    oid: Vec<u32>,
    name: String,
    syntax: String,
    feed: String,
    key: String,
    description: String,
}

fn fail(line: usize, why: &str) -> ! {
    // A build script reports by panicking; the table is ours, so this is a bug of ours.
    #[allow(clippy::panic)]
    {
        panic!("mib/objects.tsv line {line}: {why}")
    }
}

fn parse(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != 6 {
            fail(n, "expected 6 tab-separated columns");
        }
        let oid = cols[0]
            .split('.')
            .map(|a| a.parse::<u32>().unwrap_or_else(|_| fail(n, "bad OID arc")))
            .collect();
        rows.push(Row {
            oid,
            name: cols[1].to_string(),
            syntax: cols[2].to_string(),
            feed: cols[3].to_string(),
            key: cols[4].to_string(),
            description: cols[5].to_string(),
        });
    }
    rows
}

fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *hash ^= u64::from(*b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

fn syntax_variant(s: &str, line: &str) -> &'static str {
    match s {
        "Counter32" => "Syntax::Counter32",
        "Counter64" => "Syntax::Counter64",
        "Gauge32" => "Syntax::Gauge32",
        "Integer32" => "Syntax::Integer32",
        "TimeTicks" => "Syntax::TimeTicks",
        "TimeInterval" => "Syntax::TimeInterval",
        "DisplayString" => "Syntax::DisplayString",
        "OBJECT IDENTIFIER" => "Syntax::ObjectIdentifier",
        _ => fail(0, &format!("unknown syntax {s} for {line}")),
    }
}

fn proc_variant(key: &str) -> String {
    match key {
        "ProcAll" => "ProcKey::All".into(),
        "ProcIdle" => "ProcKey::Idle".into(),
        "ProcBusy" => "ProcKey::Busy".into(),
        "ProcBusyTransfer" => "ProcKey::BusyTransfer".into(),
        "ProcBusyDecode" => "ProcKey::BusyDecode".into(),
        "ProcBusyVirus" => "ProcKey::BusyVirus".into(),
        "ProcBusySpam" => "ProcKey::BusySpam".into(),
        "ProcBusyOther" => "ProcKey::BusyOther".into(),
        k => match k.strip_prefix("ProcBusy").and_then(|n| n.parse::<u8>().ok()) {
            Some(n) if n <= 21 => format!("ProcKey::BusyAtLeast({n})"),
            _ => fail(0, &format!("unknown proc key {k}")),
        },
    }
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let table_path = manifest.join("mib").join("objects.tsv");
    println!("cargo:rerun-if-changed={}", table_path.display());
    let text = fs::read_to_string(&table_path).unwrap_or_else(|e| fail(0, &e.to_string()));
    let mut rows = parse(&text);

    // Counter and gauge handles, in table order (the scoreboard index is this order:
    // append-only; a change shows in the table hash and recreates the file).
    let mut counters: Vec<String> = Vec::new();
    let mut gauges: Vec<String> = Vec::new();
    let mut counter_desc: BTreeMap<String, String> = BTreeMap::new();
    for r in &rows {
        match r.feed.as_str() {
            "counter" | "elapsed" if !counters.contains(&r.key) => {
                counters.push(r.key.clone());
                counter_desc.insert(r.key.clone(), r.description.clone());
            }
            "gauge" if !gauges.contains(&r.key) => gauges.push(r.key.clone()),
            _ => {}
        }
    }

    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for r in &rows {
        for part in [
            r.oid.iter().map(u32::to_string).collect::<Vec<_>>().join("."),
            r.name.clone(),
        ] {
            fnv1a(&mut hash, part.as_bytes());
            fnv1a(&mut hash, b"\t");
        }
        for part in [&r.syntax, &r.feed, &r.key] {
            fnv1a(&mut hash, part.as_bytes());
            fnv1a(&mut hash, b"\t");
        }
    }

    rows.sort_by(|a, b| a.oid.cmp(&b.oid));
    for w in rows.windows(2) {
        if w[0].oid == w[1].oid {
            fail(0, &format!("duplicate OID for {} and {}", w[0].name, w[1].name));
        }
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "/// FNV-1a hash of the table's OIDs, names, syntaxes, feeds and keys."
    );
    let _ = writeln!(out, "pub const TABLE_HASH: u64 = {hash:#018x};");

    let _ = writeln!(
        out,
        "/// A counter of the scoreboard: one variant per internal key of the table."
    );
    let _ = writeln!(
        out,
        "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]"
    );
    let _ = writeln!(out, "#[repr(u16)]");
    let _ = writeln!(out, "pub enum Counter {{");
    for c in &counters {
        let _ = writeln!(
            out,
            "    #[doc = {:?}]",
            counter_desc.get(c).cloned().unwrap_or_default()
        );
        let _ = writeln!(out, "    {c},");
    }
    let _ = writeln!(out, "}}");
    let _ = writeln!(out, "impl Counter {{");
    let _ = writeln!(out, "    /// Every counter, in scoreboard order.");
    let _ = writeln!(out, "    pub const ALL: [Counter; {}] = [", counters.len());
    for c in &counters {
        let _ = writeln!(out, "        Counter::{c},");
    }
    let _ = writeln!(out, "    ];");
    let _ = writeln!(out, "    /// The internal key, as amavisd-agent prints it.");
    let _ = writeln!(out, "    pub const fn key(self) -> &'static str {{");
    let _ = writeln!(out, "        match self {{");
    for c in &counters {
        let _ = writeln!(out, "            Counter::{c} => {c:?},");
    }
    let _ = writeln!(out, "        }}\n    }}\n}}");
    let _ = writeln!(out, "/// How many counters the table has.");
    let _ = writeln!(out, "pub const COUNTER_COUNT: usize = {};", counters.len());

    let _ = writeln!(out, "/// A stored gauge of the scoreboard (set, not added).");
    let _ = writeln!(
        out,
        "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]"
    );
    let _ = writeln!(out, "#[repr(u16)]");
    let _ = writeln!(out, "pub enum Gauge {{");
    for g in &gauges {
        let _ = writeln!(out, "    #[allow(missing_docs)]\n    {g},");
    }
    let _ = writeln!(out, "}}");
    let _ = writeln!(out, "impl Gauge {{");
    let _ = writeln!(out, "    /// Every gauge, in scoreboard order.");
    let _ = writeln!(out, "    pub const ALL: [Gauge; {}] = [", gauges.len());
    for g in &gauges {
        let _ = writeln!(out, "        Gauge::{g},");
    }
    let _ = writeln!(out, "    ];");
    let _ = writeln!(out, "    /// The internal key.");
    let _ = writeln!(out, "    pub const fn key(self) -> &'static str {{");
    let _ = writeln!(out, "        match self {{");
    for g in &gauges {
        let _ = writeln!(out, "            Gauge::{g} => {g:?},");
    }
    let _ = writeln!(out, "        }}\n    }}\n}}");
    let _ = writeln!(out, "/// How many gauges the table has.");
    let _ = writeln!(out, "pub const GAUGE_COUNT: usize = {};", gauges.len());

    // Latency histograms: per stage, [count, sum_ms, buckets...] in table order.
    let stages = ["Receive", "Decode", "Virus", "Spam", "Forward", "Total"];
    let bucket_names = [
        "10ms", "25ms", "50ms", "100ms", "250ms", "500ms", "1s", "2500ms", "5s", "10s", "30s", "60s", "Inf",
    ];
    let _ = writeln!(
        out,
        "/// Per stage (in `Stage` order): the count, sum and bucket counters."
    );
    let _ = writeln!(
        out,
        "pub(crate) const LATENCY: [(Counter, Counter, [Counter; {}]); {}] = [",
        bucket_names.len(),
        stages.len()
    );
    for s in stages {
        let buckets: Vec<String> = bucket_names
            .iter()
            .map(|b| format!("Counter::Latency{s}Le{b}"))
            .collect();
        let _ = writeln!(
            out,
            "    (Counter::Latency{s}Count, Counter::Latency{s}SumMs, [{}]),",
            buckets.join(", ")
        );
    }
    let _ = writeln!(out, "];");

    // Families indexed by the MIB's own arcs: direction D (1 All .. 6 OpenRelay) under
    // amavisStats.2/.3/.4, content category C under amavisStats.10.C.D, status S under
    // amavisStats.(19+S).D. The OIDs are the index, so the families cannot drift.
    let stats: Vec<u32> = vec![1, 3, 6, 1, 4, 1, 15312, 2, 1, 1];
    let find = |arcs: &[u32]| -> String {
        let mut oid = stats.clone();
        oid.extend_from_slice(arcs);
        match rows.iter().find(|r| r.oid == oid && r.feed == "counter") {
            Some(r) => format!("Counter::{}", r.key),
            None => fail(0, &format!("no counter at amavisStats.{arcs:?}")),
        }
    };
    for (name, arc, doc) in [
        ("IN_MSGS", 2, "InMsgs by direction."),
        ("IN_MSGS_SIZE", 3, "InMsgsSize by direction."),
        ("IN_MSGS_RECIPS", 4, "InMsgsRecips by direction."),
    ] {
        let items: Vec<String> = (1..=6).map(|d| find(&[arc, d])).collect();
        let _ = writeln!(
            out,
            "/// {doc}\npub const {name}: [Counter; 6] = [{}];",
            items.join(", ")
        );
    }
    let _ = writeln!(out, "/// Content<Ccat>Msgs<Dir>: [category][direction].");
    let _ = writeln!(out, "pub const CONTENT: [[Counter; 6]; 9] = [");
    for c in 1..=9 {
        let items: Vec<String> = (1..=6).map(|d| find(&[10, c, d])).collect();
        let _ = writeln!(out, "    [{}],", items.join(", "));
    }
    let _ = writeln!(out, "];");
    let _ = writeln!(out, "/// InMsgsStatus<Status><Dir>: [status][direction].");
    let _ = writeln!(out, "pub const STATUS: [[Counter; 6]; 8] = [");
    for st in 19..=26 {
        let items: Vec<String> = (1..=6).map(|d| find(&[st, d])).collect();
        let _ = writeln!(out, "    [{}],", items.join(", "));
    }
    let _ = writeln!(out, "];");

    let _ = writeln!(out, "/// Every object served, sorted by OID.");
    let _ = writeln!(out, "pub static OBJECTS: &[MibObject] = &[");
    for r in &rows {
        let line = format!("{} {}", r.name, r.key);
        let feed = match r.feed.as_str() {
            "counter" => format!("Feed::Counter(Counter::{})", r.key),
            "elapsed" => format!("Feed::ElapsedMs(Counter::{})", r.key),
            "gauge" => format!("Feed::Gauge(Gauge::{})", r.key),
            "uptime" => "Feed::Uptime".into(),
            "text" => match r.key.as_str() {
                "descr" => "Feed::Text(TextField::Descr)".into(),
                "name" => "Feed::Text(TextField::Name)".into(),
                "contact" => "Feed::Text(TextField::Contact)".into(),
                "location" => "Feed::Text(TextField::Location)".into(),
                _ => fail(0, &format!("unknown text field in {line}")),
            },
            "const" => {
                if r.syntax == "OBJECT IDENTIFIER" {
                    let arcs: Vec<&str> = r.key.split('.').collect();
                    format!("Feed::ConstOid(&[{}])", arcs.join(", "))
                } else {
                    let v: i64 = r.key.parse().unwrap_or_else(|_| fail(0, &line));
                    format!("Feed::ConstInt({v})")
                }
            }
            "proc" => format!("Feed::Proc({})", proc_variant(&r.key)),
            "mta" => match r.key.as_str() {
                "maildrop" => "Feed::Mta(MtaKey::Maildrop)".into(),
                "incoming" => "Feed::Mta(MtaKey::Incoming)".into(),
                "active" => "Feed::Mta(MtaKey::Active)".into(),
                "deferred" => "Feed::Mta(MtaKey::Deferred)".into(),
                "oldest" => "Feed::Mta(MtaKey::OldestAge)".into(),
                _ => fail(0, &format!("unknown mta key in {line}")),
            },
            "ledger" => match r.key.as_str() {
                "InFlight" => "Feed::Ledger(LedgerKey::InFlight)".into(),
                "Unaccounted" => "Feed::Ledger(LedgerKey::Unaccounted)".into(),
                _ => fail(0, &format!("unknown ledger key in {line}")),
            },
            "since" => "Feed::Since".into(),
            "running" => "Feed::Running".into(),
            "generation" => "Feed::Generation".into(),
            f => fail(0, &format!("unknown feed {f} in {line}")),
        };
        let oid: Vec<String> = r.oid.iter().map(u32::to_string).collect();
        let _ = writeln!(
            out,
            "    MibObject {{ oid: &[{}], name: {:?}, syntax: {}, feed: {}, description: {:?} }},",
            oid.join(", "),
            r.name,
            syntax_variant(&r.syntax, &line),
            feed,
            r.description
        );
    }
    let _ = writeln!(out, "];");

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap_or_default());
    if let Err(e) = fs::write(out_dir.join("table.rs"), out) {
        fail(0, &e.to_string());
    }
}
