//! avis-agent `--prometheus`: one snapshot as OpenMetrics text.
//!
//! Every counter of the table becomes a counter family named `avis_` + its internal key
//! in snake case (`InMsgs` → `avis_in_msgs_total`), `TimeElapsed*` in seconds; the
//! latency bucket counters become one histogram family `avis_latency_seconds` with a
//! `stage` label (cumulative buckets, as OpenMetrics wants); stored gauges, the worker
//! gauges and the ledger become gauges; the header strings an info family; the virus
//! names a counter family with a `name` label. Names and
//! help texts come from agent-mib's table. Pure; no I/O.

use std::fmt::Write as _;

use agent_mib::{Counter, Feed, Gauge, LATENCY_BOUNDS_MS, LedgerKey, OBJECTS, ProcKey, Snapshot, Stage, TextField};

/// The prefix of every family.
pub const PREFIX: &str = "avis_";

/// `InMsgsStatusRelayedUntagged` → `in_msgs_status_relayed_untagged`; acronyms stay one
/// word (`OutMsgsProtoSMTPRelay` → `out_msgs_proto_smtp_relay`).
pub fn snake(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let mut out = String::with_capacity(key.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower) {
                out.push('_');
            }
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.push('_');
        }
    }
    out
}

/// The description of the object that `counter` feeds, else its key.
fn help_of_counter(c: Counter) -> String {
    OBJECTS
        .iter()
        .find(|o| matches!(o.feed, Feed::Counter(x) | Feed::ElapsedMs(x) if x == c))
        .map_or_else(|| c.key().to_string(), |o| o.description.to_string())
}

fn help_of_gauge(g: Gauge) -> String {
    OBJECTS
        .iter()
        .find(|o| matches!(o.feed, Feed::Gauge(x) if x == g))
        .map_or_else(|| g.key().to_string(), |o| o.description.to_string())
}

/// Escapes a HELP text: backslash and newline.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Escapes a label value: backslash, double quote and newline.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Whether a counter belongs to a latency histogram (exported as the histogram instead).
fn in_histogram(c: Counter) -> bool {
    Stage::ALL.iter().any(|s| {
        let (count, sum, buckets) = s.counters();
        c == count || c == sum || buckets.contains(&c)
    })
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, ty: &str, unit: Option<&str>, help: &str) {
        let _ = writeln!(self.0, "# TYPE {name} {ty}");
        if let Some(u) = unit {
            let _ = writeln!(self.0, "# UNIT {name} {u}");
        }
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Seconds from milliseconds (Rust prints whole values without `.0`, which OpenMetrics accepts).
fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The snapshot as an OpenMetrics exposition, ending with `# EOF`.
pub fn openmetrics(snap: &Snapshot) -> String {
    let mut o = Out(String::new());
    filter_families(&mut o, snap);
    counter_families(&mut o, snap);
    virus_family(&mut o, snap);
    latency_histogram(&mut o, snap);
    gauge_families(&mut o, snap);
    o.0.push_str("# EOF\n");
    o.0
}

/// Whether avisd runs, since when, its generation and its header strings.
fn filter_families(o: &mut Out, snap: &Snapshot) {
    o.family(
        "avis_up",
        "gauge",
        None,
        "1 while avisd runs on this scoreboard, else 0.",
    );
    o.sample("avis_up", &[], u8::from(snap.writer_alive()));
    o.family(
        "avis_start_time_seconds",
        "gauge",
        Some("seconds"),
        "Unix time when the counters started (the scoreboard was created).",
    );
    o.sample("avis_start_time_seconds", &[], secs(snap.started_ms()));
    o.family(
        "avis_generation",
        "gauge",
        None,
        "How many times avisd attached to this scoreboard.",
    );
    o.sample("avis_generation", &[], snap.generation());
    o.family(
        "avis_filter",
        "info",
        None,
        "The filter's sysDescr, sysName, sysContact and sysLocation.",
    );
    let labels = [
        ("descr", snap.text(TextField::Descr)),
        ("name", snap.text(TextField::Name)),
        ("contact", snap.text(TextField::Contact)),
        ("location", snap.text(TextField::Location)),
    ];
    o.sample("avis_filter_info", &labels, 1);
}

/// Every counter of the table but the latency buckets; `TimeElapsed*` in seconds.
fn counter_families(o: &mut Out, snap: &Snapshot) {
    for c in Counter::ALL.iter().copied().filter(|c| !in_histogram(*c)) {
        let help = help_of_counter(c);
        let base = format!("{PREFIX}{}", snake(c.key()));
        if c.key().starts_with("TimeElapsed") {
            let name = format!("{base}_seconds");
            o.family(&name, "counter", Some("seconds"), &help);
            o.sample(&format!("{name}_total"), &[], secs(snap.counter(c)));
        } else {
            o.family(&base, "counter", None, &help);
            o.sample(&format!("{base}_total"), &[], snap.counter(c));
        }
    }
}

/// Messages per virus name (a bounded table in the scoreboard, so a bounded label set).
fn virus_family(o: &mut Out, snap: &Snapshot) {
    o.family(
        "avis_virus_by_name",
        "counter",
        None,
        "Messages in which a virus of this name was found (amavisd's virus.byname.*).",
    );
    for (name, n) in snap.viruses() {
        o.sample("avis_virus_by_name_total", &[("name", &name)], n);
    }
}

/// The per-stage latency histograms as one family with cumulative buckets.
fn latency_histogram(o: &mut Out, snap: &Snapshot) {
    o.family(
        "avis_latency_seconds",
        "histogram",
        Some("seconds"),
        "How long each stage of a message took.",
    );
    for stage in Stage::ALL {
        let (_, sum, buckets) = stage.counters();
        let mut cumulative = 0u64;
        for (i, b) in buckets.iter().enumerate() {
            cumulative += snap.counter(*b);
            let le = LATENCY_BOUNDS_MS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |ms| format!("{}", secs(*ms)));
            o.sample(
                "avis_latency_seconds_bucket",
                &[("stage", stage.name()), ("le", &le)],
                cumulative,
            );
        }
        // The count is the +Inf bucket, so the two agree even mid-update.
        o.sample("avis_latency_seconds_count", &[("stage", stage.name())], cumulative);
        o.sample(
            "avis_latency_seconds_sum",
            &[("stage", stage.name())],
            secs(snap.counter(sum)),
        );
    }
}

/// Stored gauges, the worker gauges and the ledger.
fn gauge_families(o: &mut Out, snap: &Snapshot) {
    for g in Gauge::ALL {
        let name = format!("{PREFIX}{}", snake(g.key()));
        o.family(&name, "gauge", None, &help_of_gauge(g));
        o.sample(&name, &[], snap.gauge(g));
    }
    o.family("avis_workers", "gauge", None, "Worker slots in use, by idle or busy.");
    o.sample("avis_workers", &[("state", "idle")], snap.proc(ProcKey::Idle));
    o.sample("avis_workers", &[("state", "busy")], snap.proc(ProcKey::Busy));
    o.family(
        "avis_workers_busy",
        "gauge",
        None,
        "Busy workers by activity, as the amavisProc gauges group states.",
    );
    for (activity, key) in [
        ("transfer", ProcKey::BusyTransfer),
        ("decode", ProcKey::BusyDecode),
        ("virus", ProcKey::BusyVirus),
        ("spam", ProcKey::BusySpam),
        ("other", ProcKey::BusyOther),
    ] {
        o.sample("avis_workers_busy", &[("activity", activity)], snap.proc(key));
    }
    o.family(
        "avis_ledger_in_flight",
        "gauge",
        None,
        "Messages received and not yet answered.",
    );
    o.sample("avis_ledger_in_flight", &[], snap.ledger(LedgerKey::InFlight));
    o.family(
        "avis_ledger_unaccounted",
        "gauge",
        None,
        "Received minus answered minus in flight; 0 unless mail was lost track of.",
    );
    o.sample("avis_ledger_unaccounted", &[], snap.ledger(LedgerKey::Unaccounted));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_snake_case_with_acronyms_kept_whole() {
        assert_eq!(snake("InMsgs"), "in_msgs");
        assert_eq!(snake("OutMsgsProtoSMTPRelay"), "out_msgs_proto_smtp_relay");
        assert_eq!(snake("OutMsgsSubmitAV"), "out_msgs_submit_av");
        assert_eq!(snake("LogEntriesLevel3"), "log_entries_level3");
        assert_eq!(snake("ScannerClamdLastLatencyMs"), "scanner_clamd_last_latency_ms");
    }

    #[test]
    fn every_family_name_is_unique() {
        let text = openmetrics(&Snapshot::empty(0));
        let mut names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(text.ends_with("# EOF\n"));
    }
}
