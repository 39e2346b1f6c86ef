//! `avis-agent --prometheus` prints OpenMetrics that a strict parser accepts — the
//! Python prometheus_client's OpenMetrics parser (pip `prometheus-client==0.26.0`,
//! installed by scripts/install-test-deps.sh) — and whose samples are the scoreboard's.
// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod nanny_support;

use std::io::Write;
use std::process::{Command, Stdio};

use agent_mib::{Counter, ProcKey};
use nanny_support::{Filter, stdout_ok};
use serde_json::Value;

/// Parses `text` with prometheus_client's OpenMetrics parser; returns every sample as
/// `[family, type, sample name, labels, value]`. Panics loudly when python3 or the
/// module is missing, or when the parser rejects the text.
fn parse_openmetrics(text: &str) -> Vec<Value> {
    let python = tests::require_tool("python3");
    let script = r#"
import json, sys
try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError as e:
    sys.exit("prometheus_client is not installed (run scripts/install-test-deps.sh): %s" % e)
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append([fam.name, fam.type, s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected the output:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn sample<'a>(samples: &'a [Value], name: &str, labels: &[(&str, &str)]) -> &'a Value {
    samples
        .iter()
        .find(|s| s[2] == name && labels.iter().all(|(k, v)| s[3][*k] == *v))
        .map(|s| &s[4])
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

#[test]
fn openmetrics_output_passes_the_strict_parser_and_matches_the_scoreboard() {
    let f = Filter::start("prom", 4);
    f.deliver(0, 7, 300);
    f.deliver(1, 5, 40);
    f.slots[2].bump(Counter::ContentVirusMsgs, 2);
    f.busy(3, "qJ1nS-Ab3cdE", agent_mib::WorkerState::Spam);
    f.board.count_virus("Eicar-Signature");
    f.board.count_virus("Eicar-Signature");
    f.board.count_virus("Odd \"quoted\" name");
    let text = stdout_ok(
        "avis-agent",
        &["--scoreboard", f.path.to_str().unwrap(), "--prometheus"],
    );
    assert!(text.ends_with("# EOF\n"));
    let samples = parse_openmetrics(&text);
    let snap = f.snapshot();

    assert_eq!(sample(&samples, "avis_in_msgs_total", &[]), 12.0);
    assert_eq!(
        *sample(&samples, "avis_in_msgs_total", &[]),
        snap.counter(Counter::InMsgs) as f64
    );
    assert_eq!(sample(&samples, "avis_content_virus_msgs_total", &[]), 2.0);
    let by_name = |name: &str| sample(&samples, "avis_virus_by_name_total", &[("name", name)]);
    assert_eq!(by_name("Eicar-Signature"), 2.0);
    assert_eq!(by_name("Odd \"quoted\" name"), 1.0, "label values are escaped");
    assert_eq!(sample(&samples, "avis_time_elapsed_total_seconds_total", &[]), 2.3); // 7×0.3 + 5×0.04
    assert_eq!(sample(&samples, "avis_ledger_received_total", &[]), 13.0);
    assert_eq!(sample(&samples, "avis_ledger_in_flight", &[]), 1.0);
    assert_eq!(sample(&samples, "avis_ledger_unaccounted", &[]), 0.0);
    assert_eq!(sample(&samples, "avis_workers", &[("state", "busy")]), 1.0);
    assert_eq!(
        *sample(&samples, "avis_workers", &[("state", "idle")]),
        snap.proc(ProcKey::Idle) as f64
    );
    assert_eq!(sample(&samples, "avis_workers_busy", &[("activity", "spam")]), 1.0);
    assert_eq!(sample(&samples, "avis_up", &[]), 1.0);
    assert_eq!(
        sample(&samples, "avis_filter_info", &[("name", "mx.test.example")]),
        1.0
    );
    // Latency: cumulative buckets; 7 totals of 300 ms (≤ 500 ms) and 5 of 40 ms (≤ 50 ms).
    let total = |le: &str| {
        sample(
            &samples,
            "avis_latency_seconds_bucket",
            &[("stage", "total"), ("le", le)],
        )
    };
    assert_eq!(total("0.025"), 0.0);
    assert_eq!(total("0.05"), 5.0);
    assert_eq!(total("0.25"), 5.0);
    assert_eq!(total("0.5"), 12.0);
    assert_eq!(total("+Inf"), 12.0);
    assert_eq!(
        sample(&samples, "avis_latency_seconds_count", &[("stage", "total")]),
        12.0
    );
    // Every counter of the table but the latency buckets (the histogram above) is a
    // counter `avis_<key in snake case>_total` with the scoreboard's value; times in seconds.
    let mut checked = 0;
    for c in Counter::ALL.iter().filter(|c| !c.key().starts_with("Latency")) {
        let (name, want) = if c.key().starts_with("TimeElapsed") {
            let name = format!("avis_{}_seconds_total", snake(c.key()));
            (name, snap.counter(*c) as f64 / 1000.0)
        } else {
            (format!("avis_{}_total", snake(c.key())), snap.counter(*c) as f64)
        };
        assert_eq!(*sample(&samples, &name, &[]), want, "{name}");
        checked += 1;
    }
    let by_name_samples = samples.iter().filter(|s| s[0] == "avis_virus_by_name").count();
    assert_eq!(
        samples.iter().filter(|s| s[1] == "counter").count(),
        checked + by_name_samples
    );
}

/// The naming rule: `InMsgsStatusRelayedUntagged` → `in_msgs_status_relayed_untagged`,
/// acronyms one word (`OutMsgsProtoSMTPRelay` → `out_msgs_proto_smtp_relay`).
fn snake(key: &str) -> String {
    let c: Vec<char> = key.chars().collect();
    let mut out = String::new();
    for i in 0..c.len() {
        let boundary = i > 0
            && c[i].is_ascii_uppercase()
            && (c[i - 1].is_ascii_lowercase()
                || c[i - 1].is_ascii_digit()
                || (c[i - 1].is_ascii_uppercase() && c.get(i + 1).is_some_and(char::is_ascii_lowercase)));
        if boundary {
            out.push('_');
        }
        out.push(c[i].to_ascii_lowercase());
    }
    out
}
