//! avis-agent's amavisd-agent layout: every scoreboard value under amavisd's internal key
//! name, sorted as Perl sorts (ASCII), with its rate per hour and its share of the
//! reference total that amavisd-agent picks from the key's name, in the exact columns
//! the munin and Diamond collectors parse, then amavisd's `virus.byname.*` counts. Also
//! the same figures as JSON.
//!
//! Rates follow amavisd-agent: over a five-minute window of the samples this process
//! took, once the window covers at least 150 s; before that, the average since the
//! counters started. Input: snapshots; output: text. No I/O.

use std::collections::{HashMap, VecDeque};

use agent_mib::{Counter, Gauge, Snapshot, TextField, by_name, dotted};
use serde_json::{Map, Value as Json, json};

/// How far back rates look (amavisd-agent's window).
pub const WINDOW_MS: u64 = 300_000;
/// The shortest span of samples that amavisd-agent trusts for a windowed rate.
pub const MIN_SPAN_MS: u64 = 150_000;
/// amavisd-agent's megabyte.
const MB: f64 = 1_048_576.0;

/// How an entry is printed, from amavisd-agent's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A string (`STR`) or an OID (`OID`), printed raw.
    Text(&'static str, String),
    /// sysUpTime, printed as TimeTicks.
    UpTime,
    /// A count: `p1`.
    Count,
    /// Bytes (`*MsgsSize*`): `p1_size`.
    Size,
    /// Milliseconds (`TimeElapsed*`): `p1_time`.
    Time,
}

/// One line's worth: the key, how to print it, its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// amavisd's internal key name.
    pub key: &'static str,
    /// How it prints.
    pub kind: Kind,
    /// The value (ticks for sysUpTime, 0 for text).
    pub value: u64,
}

fn kind_of(key: &str) -> Kind {
    if key.starts_with("TimeElapsed") {
        Kind::Time
    } else if ["InMsgsSize", "OutMsgsSize", "QuarMsgsSize"]
        .iter()
        .any(|p| key.starts_with(p))
    {
        Kind::Size
    } else {
        Kind::Count
    }
}

/// Every entry of `snap`, sorted by key as amavisd-agent sorts them.
pub fn entries(snap: &Snapshot) -> Vec<Entry> {
    let text = |key: &'static str, field: TextField| Entry {
        key,
        kind: Kind::Text("STR", snap.text(field).to_string()),
        value: 0,
    };
    let object_id = by_name("sysObjectID")
        .and_then(|o| {
            let agent_mib::Feed::ConstOid(oid) = o.feed else {
                return None;
            };
            Some(dotted(oid))
        })
        .unwrap_or_default();
    let mut all = vec![
        text("sysDescr", TextField::Descr),
        Entry {
            key: "sysObjectID",
            kind: Kind::Text("OID", object_id),
            value: 0,
        },
        Entry {
            key: "sysUpTime",
            kind: Kind::UpTime,
            value: snap.uptime_ticks(),
        },
        text("sysContact", TextField::Contact),
        text("sysName", TextField::Name),
        text("sysLocation", TextField::Location),
        Entry {
            key: "sysServices",
            kind: Kind::Count,
            value: 64,
        },
    ];
    all.extend(Counter::ALL.iter().map(|c| Entry {
        key: c.key(),
        kind: kind_of(c.key()),
        value: snap.counter(*c),
    }));
    all.extend(Gauge::ALL.iter().map(|g| Entry {
        key: g.key(),
        kind: Kind::Count,
        value: snap.gauge(*g),
    }));
    all.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    all
}

/// How a rule of [`TOTAL_RULES`] matches a key.
#[derive(Debug, Clone, Copy)]
enum Pat {
    /// Exactly this key.
    Is(&'static str),
    /// Any key starting with this.
    Starts(&'static str),
    /// Any key starting with this and longer than it.
    Longer(&'static str),
    /// `Content<X>Msgs<suffix>`.
    Content,
}

/// What a rule of [`TOTAL_RULES`] gives.
#[derive(Debug, Clone, Copy)]
enum Base {
    /// This key.
    Key(&'static str),
    /// `InMsgs` followed by what follows `prefix` in the key (for `Pat::Starts(prefix)`),
    /// or the `<suffix>` of `Content<X>Msgs<suffix>`.
    InMsgsSuffix,
}

/// amavisd-agent's percentage bases ("TotalKey"), first match wins, in its order.
const TOTAL_RULES: &[(Pat, Base)] = &[
    (Pat::Is("CacheHitsVirusMsgs"), Base::Key("ContentVirusMsgs")),
    (Pat::Starts("Cache"), Base::Key("CacheAttempts")),
    (Pat::Content, Base::InMsgsSuffix),
    (Pat::Starts("OpsSql"), Base::Key("InMsgsRecips")),
    (Pat::Starts("InMsgsSize"), Base::Key("InMsgsSize")),
    (Pat::Is("InMsgsRecipsLocal"), Base::Key("InMsgsRecips")),
    (Pat::Starts("InMsgsRecips"), Base::InMsgsSuffix),
    (Pat::Longer("InMsgsBounce"), Base::Key("InMsgsBounce")),
    (Pat::Starts("InMsgs"), Base::Key("InMsgs")),
    (Pat::Starts("Ops"), Base::Key("InMsgs")),
    (Pat::Is("OutMsgsSize"), Base::Key("InMsgsSize")),
    (Pat::Longer("OutMsgsSize"), Base::Key("OutMsgsSize")),
    (Pat::Is("OutMsgs"), Base::Key("InMsgs")),
    (Pat::Starts("Out"), Base::Key("OutMsgs")),
    (Pat::Is("QuarMsgsSize"), Base::Key("InMsgsSize")),
    (Pat::Longer("QuarMsgsSize"), Base::Key("QuarMsgsSize")),
    (Pat::Starts("Quar"), Base::Key("QuarMsgs")),
    (Pat::Is("LogEntries"), Base::Key("InMsgs")),
    (Pat::Starts("Log"), Base::Key("LogEntries")),
    (Pat::Is("GenMailIdRetries"), Base::Key("InMsgs")),
    (Pat::Is("PenPalsAttempts"), Base::Key("InMsgsRecipsLocal")),
    (Pat::Is("PenPalsHits"), Base::Key("PenPalsAttempts")),
    (Pat::Longer("PenPalsHits"), Base::Key("PenPalsHits")),
    (Pat::Starts("PenPals"), Base::Key("PenPalsAttempts")),
    (Pat::Is("SqlAddrSenderAttempts"), Base::Key("InMsgs")),
    (Pat::Starts("SqlAddrSender"), Base::Key("SqlAddrSenderAttempts")),
    (Pat::Is("SqlAddrRecipAttempts"), Base::Key("InMsgsRecips")),
    (Pat::Starts("SqlAddrRecip"), Base::Key("SqlAddrRecipAttempts")),
    (Pat::Starts("banned.byOS"), Base::Key("InMsgs")),
];

/// The key whose value is the percentage base of `key` ("TotalKey"), by amavisd-agent's
/// rules; `None` for keys it prints without a percentage.
pub fn total_key(key: &str) -> Option<String> {
    TOTAL_RULES.iter().find_map(|(pat, base)| {
        let suffix = match *pat {
            Pat::Is(k) => (key == k).then_some(""),
            Pat::Starts(p) => key.strip_prefix(p),
            Pat::Longer(p) => key.strip_prefix(p).filter(|rest| !rest.is_empty()),
            Pat::Content => content_suffix(key),
        }?;
        Some(match base {
            Base::Key(k) => (*k).to_string(),
            Base::InMsgsSuffix => format!("InMsgs{suffix}"),
        })
    })
}

/// The `<suffix>` of `Content<X>Msgs<suffix>`.
fn content_suffix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("Content")?;
    let at = rest.find("Msgs").filter(|&i| i > 0)?;
    Some(&rest[at + "Msgs".len()..])
}

/// The samples this process took, for windowed rates.
#[derive(Debug, Clone, Default)]
pub struct Rates {
    samples: VecDeque<(u64, HashMap<String, u64>)>,
    started_ms: u64,
}

/// What one entry's rate and averages came to.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Change {
    /// Per second.
    rate: f64,
    /// Per message: Δvalue / ΔInMsgs (None without messages).
    per_msg: Option<f64>,
}

impl Rates {
    /// Adds a sample; a recreated scoreboard starts the window over.
    pub fn push(&mut self, snap: &Snapshot, entries: &[Entry]) {
        if snap.started_ms() != self.started_ms {
            self.samples.clear();
            self.started_ms = snap.started_ms();
        }
        let t = snap.taken_ms();
        let values = entries
            .iter()
            .map(|e| (e.key.to_string(), e.value))
            .chain(viruses(snap))
            .collect();
        self.samples.push_back((t, values));
        while self
            .samples
            .front()
            .is_some_and(|(t0, _)| t.saturating_sub(*t0) > WINDOW_MS)
        {
            self.samples.pop_front();
        }
    }

    fn change(&self, snap: &Snapshot, key: &str, value: u64) -> Change {
        let in_msgs = snap.counter(Counter::InMsgs);
        let window = match (self.samples.front(), self.samples.back()) {
            (Some((t0, first)), Some((t1, last)))
                if self.samples.len() >= 2 && t1.saturating_sub(*t0) >= MIN_SPAN_MS =>
            {
                let d = |m: &HashMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
                let dv = d(last, key).saturating_sub(d(first, key));
                let dm = d(last, "InMsgs").saturating_sub(d(first, "InMsgs"));
                Some((dv as f64, dm, t1.saturating_sub(*t0) as f64 / 1000.0))
            }
            _ => None,
        };
        let (dv, dm, secs) = window.unwrap_or((value as f64, in_msgs, snap.uptime_ticks() as f64 / 100.0));
        Change {
            rate: if secs > 0.0 { dv / secs } else { 0.0 },
            per_msg: (dm > 0).then(|| dv / dm as f64),
        }
    }
}

/// amavisd-agent's `virus.byname.<name>` entries, most frequent first.
pub fn viruses(snap: &Snapshot) -> Vec<(String, u64)> {
    snap.viruses()
        .into_iter()
        .map(|(name, n)| (format!("virus.byname.{name}"), n))
        .collect()
}

/// The text of one sample in amavisd-agent's layout: the keys, then (after an empty
/// line) the virus names by count, in its `p2` format; two empty lines end it.
pub fn text(snap: &Snapshot, entries: &[Entry], rates: &Rates) -> String {
    let values: HashMap<&str, u64> = entries.iter().map(|e| (e.key, e.value)).collect();
    let mut out = String::new();
    for e in entries {
        let change = rates.change(snap, e.key, e.value);
        let total = total_key(e.key).map(|k| {
            let v = values.get(k.as_str()).copied().unwrap_or(0);
            (k, v)
        });
        out.push_str(&line(e, change, total.as_ref()));
        out.push('\n');
    }
    let by_name = viruses(snap);
    if !by_name.is_empty() {
        out.push('\n');
    }
    let total = snap.counter(Counter::ContentVirusMsgs);
    for (key, n) in by_name {
        let change = rates.change(snap, &key, n);
        let pct = if total > 0 {
            format!("{:>6.1}", 100.0 * n as f64 / total as f64)
        } else {
            format!("{:>6}", "---")
        };
        out.push_str(&format!(
            "{key:<35} {n:>6} {:>6.0}/h {pct} % (ContentVirusMsgs)\n",
            change.rate * 3600.0
        ));
    }
    out.push_str("\n\n");
    out
}

fn line(e: &Entry, change: Change, total: Option<&(String, u64)>) -> String {
    let key = e.key;
    let pct = |fmt_width: usize| match total {
        Some((k, t)) if *t > 0 => format!(" {:>w$.1} % ({k})", 100.0 * e.value as f64 / *t as f64, w = fmt_width),
        Some((k, _)) => format!(" {:>w$} % ({k})", "---", w = fmt_width),
        None => String::new(),
    };
    match &e.kind {
        Kind::Text(ty, v) => format!("{key:<15} {ty} {v}"),
        Kind::UpTime => format!("{key:<15} TimeTicks {} {}", e.value, crate::fmt::uptime_ticks(e.value)),
        Kind::Count => format!("{key:<35} {:>6} {:>6.0}/h{}", e.value, change.rate * 3600.0, pct(7)),
        Kind::Size => format!(
            "{key:<35} {:>6.0}MB {:>4.0}MB/h{}",
            e.value as f64 / MB,
            change.rate * 3600.0 / MB,
            pct(5)
        ),
        Kind::Time => {
            let per_msg = change
                .per_msg
                .map_or_else(|| "---".to_string(), |ms| format!("{:.3}", ms / 1000.0));
            format!(
                "{key:<35} {:>6.0} s   {per_msg:>8} s/msg (InMsgs)",
                e.value as f64 / 1000.0
            )
        }
    }
}

/// One sample as a JSON document: every entry with its value, rate per hour, share of
/// its reference total and (for times) seconds per message.
pub fn json(snap: &Snapshot, entries: &[Entry], rates: &Rates) -> Json {
    let values: HashMap<&str, u64> = entries.iter().map(|e| (e.key, e.value)).collect();
    let mut counters = Map::new();
    let mut text = Map::new();
    for e in entries {
        match &e.kind {
            Kind::Text(_, v) => {
                text.insert(e.key.to_string(), json!(v));
            }
            Kind::UpTime => {}
            Kind::Count | Kind::Size | Kind::Time => {
                let change = rates.change(snap, e.key, e.value);
                let mut m = Map::new();
                m.insert("value".into(), json!(e.value));
                m.insert("per_hour".into(), json!(round3(change.rate * 3600.0)));
                if let Some(k) = total_key(e.key) {
                    let t = values.get(k.as_str()).copied().unwrap_or(0);
                    let pct = (t > 0).then(|| round3(100.0 * e.value as f64 / t as f64));
                    m.insert("percent".into(), json!(pct));
                    m.insert("of".into(), json!(k));
                }
                if e.kind == Kind::Time {
                    m.insert(
                        "seconds_per_msg".into(),
                        json!(change.per_msg.map(|v| round3(v / 1000.0))),
                    );
                }
                counters.insert(e.key.to_string(), Json::Object(m));
            }
        }
    }
    json!({
        "taken_ms": snap.taken_ms(),
        "started_ms": snap.started_ms(),
        "uptime_ticks": snap.uptime_ticks(),
        "writer_pid": snap.writer_pid(),
        "running": snap.writer_alive(),
        "text": text,
        "counters": counters,
        "viruses": snap.viruses().into_iter().map(|(name, n)| (name, json!(n))).collect::<Map<String, Json>>(),
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_totals_follow_amavisd_agent_rules() {
        let cases = [
            ("CacheHitsVirusMsgs", Some("ContentVirusMsgs")),
            ("CacheHits", Some("CacheAttempts")),
            ("ContentSpamMsgsInbound", Some("InMsgsInbound")),
            ("ContentCleanMsgs", Some("InMsgs")),
            ("InMsgs", Some("InMsgs")),
            ("InMsgsSizeInbound", Some("InMsgsSize")),
            ("InMsgsRecipsLocal", Some("InMsgsRecips")),
            ("InMsgsRecipsOutbound", Some("InMsgsOutbound")),
            ("InMsgsBounce", Some("InMsgs")),
            ("InMsgsBounceKilled", Some("InMsgsBounce")),
            ("OutMsgsSize", Some("InMsgsSize")),
            ("OutMsgsSizeRelay", Some("OutMsgsSize")),
            ("OutMsgs", Some("InMsgs")),
            ("OutConnNew", Some("OutMsgs")),
            ("QuarMsgsSize", Some("InMsgsSize")),
            ("QuarMsgsSizeSpam", Some("QuarMsgsSize")),
            ("QuarMsgsSpam", Some("QuarMsgs")),
            ("LogEntries", Some("InMsgs")),
            ("LogLines", Some("LogEntries")),
            ("PenPalsAttempts", Some("InMsgsRecipsLocal")),
            ("PenPalsHits", Some("PenPalsAttempts")),
            ("PenPalsHitsMid", Some("PenPalsHits")),
            ("PenPalsMisses", Some("PenPalsAttempts")),
            ("SqlAddrRecipAttempts", Some("InMsgsRecips")),
            ("SqlAddrRecipHits", Some("SqlAddrRecipAttempts")),
            ("TimeElapsedTotal", None),
            ("LedgerReceived", None),
        ];
        for (key, want) in cases {
            assert_eq!(total_key(key).as_deref(), want, "{key}");
        }
    }

    /// The lines of nanny-and-agent.md §3's example, from a filter up for 20 hours.
    #[test]
    fn lines_have_amavisd_agent_columns() {
        let now = 1_800_000_000_000;
        let mut counters = vec![0; agent_mib::COUNTER_COUNT];
        counters[Counter::InMsgs as usize] = 2400;
        counters[Counter::InMsgsInbound as usize] = 2000;
        counters[Counter::InMsgsSize as usize] = 85 * 1_048_576;
        counters[Counter::TimeElapsedSpamCheck as usize] = 3_000_000;
        counters[Counter::ContentVirusMsgs as usize] = 40;
        let snap = Snapshot::new(agent_mib::SnapshotParts {
            taken_ms: now,
            started_ms: now - 20 * 3_600_000,
            writer_pid: 1,
            generation: 1,
            heartbeat_ms: now,
            writer_alive: true,
            texts: [
                "amavis-2.13.0 (20230106)".into(),
                String::new(),
                String::new(),
                String::new(),
            ],
            counters,
            gauges: Vec::new(),
            slots: Vec::new(),
        })
        .with_viruses(vec![("Eicar-Signature".into(), 30), ("Worm.X".into(), 10)]);
        let entries = entries(&snap);
        let mut rates = Rates::default();
        rates.push(&snap, &entries);
        let out = text(&snap, &entries, &rates);
        assert!(
            out.ends_with(concat!(
                "sysUpTime       TimeTicks 7200000 (0 days, 20:00:00.00)\n",
                "\n",
                "virus.byname.Eicar-Signature            30      2/h   75.0 % (ContentVirusMsgs)\n",
                "virus.byname.Worm.X                     10      0/h   25.0 % (ContentVirusMsgs)\n",
                "\n\n",
            )),
            "{out}"
        );
        for want in [
            "sysDescr        STR amavis-2.13.0 (20230106)",
            "sysUpTime       TimeTicks 7200000 (0 days, 20:00:00.00)",
            "InMsgs                                2400    120/h   100.0 % (InMsgs)",
            "InMsgsInbound                         2000    100/h    83.3 % (InMsgs)",
            "InMsgsSize                              85MB    4MB/h 100.0 % (InMsgsSize)",
            "TimeElapsedSpamCheck                  3000 s      1.250 s/msg (InMsgs)",
            "CacheHits                                0      0/h     --- % (CacheAttempts)",
            "LedgerReceived                           0      0/h",
        ] {
            assert!(out.lines().any(|l| l == want), "no line {want:?} in\n{out}");
        }
    }

    fn counting(taken_ms: u64, in_msgs: u64, elapsed_ms: u64) -> Snapshot {
        let mut counters = vec![0; agent_mib::COUNTER_COUNT];
        counters[Counter::InMsgs as usize] = in_msgs;
        counters[Counter::TimeElapsedTotal as usize] = elapsed_ms;
        Snapshot::new(agent_mib::SnapshotParts {
            taken_ms,
            started_ms: 0,
            writer_pid: 1,
            generation: 1,
            heartbeat_ms: taken_ms,
            writer_alive: true,
            texts: Default::default(),
            counters,
            gauges: Vec::new(),
            slots: Vec::new(),
        })
    }

    #[test]
    fn rates_use_the_five_minute_window_once_it_spans_150_seconds() {
        let t0 = 36_000_000; // up 10 h, 1000 messages so far: 100/h since start
        let mut rates = Rates::default();
        let first = counting(t0, 1000, 1_000_000);
        rates.push(&first, &entries(&first));
        let early = counting(t0 + 100_000, 1010, 1_001_000);
        rates.push(&early, &entries(&early));
        // 100 s of samples is too short: the average since start.
        let c = rates.change(&early, "InMsgs", 1010);
        assert!((c.rate * 3600.0 - 1010.0 / (36_100.0 / 3600.0)).abs() < 0.01, "{c:?}");
        let later = counting(t0 + 200_000, 1100, 1_050_000);
        rates.push(&later, &entries(&later));
        // 100 messages in 200 s = 1800/h; 50 s of elapsed time over them = 0.5 s/msg.
        let c = rates.change(&later, "InMsgs", 1100);
        assert!((c.rate * 3600.0 - 1800.0).abs() < 1e-6, "{c:?}");
        let t = rates.change(&later, "TimeElapsedTotal", 1_050_000);
        assert_eq!(t.per_msg.map(|ms| ms / 1000.0), Some(0.5));
    }

    #[test]
    fn sizes_and_times_are_recognised_by_name() {
        assert_eq!(kind_of("InMsgsSizeInbound"), Kind::Size);
        assert_eq!(kind_of("QuarMsgsSizeSpam"), Kind::Size);
        assert_eq!(kind_of("TimeElapsedSpamCheck"), Kind::Time);
        assert_eq!(kind_of("InMsgsRecips"), Kind::Count);
    }
}
