//! avis-agent prints the counters the way amavisd-agent did, so the collectors that
//! parse amavisd-agent today keep working: checked here with the collectors' own rules
//! against a scoreboard whose counters we set, and the numbers must be the scoreboard's.
//!
//! The rules, as the collectors apply them to `amavisd-agent -c 1` output:
//! - Diamond's `AmavisCollector` (diamond/collectors/amavis/amavis.py) tries four regular
//!   expressions on every line (copied below verbatim, Python syntax that `regex` accepts)
//!   and publishes `<name>.<group>` for each named group of the first that matches.
//! - munin's shell plugins split each line on whitespace: field 1 is the key, field 2
//!   the value (sizes carry an `MB` suffix, times are followed by `s`).
//! - amavisd-agent's columns: the key left-aligned in 35 columns, a space, the value
//!   right-aligned in 6 columns, a space, the rate in 6 columns then `/h`, then
//!   ` %7.1f % (<TotalKey>)`; sizes `%6.0fMB %4.0fMB/h` + ` %5.1f % (<TotalKey>)`; times
//!   `%6.0f s   %8s s/msg (InMsgs)`; strings `%-15s STR <text>`; sysUpTime as
//!   `sysUpTime       TimeTicks <n> (<d> days, H:MM:SS.cc)`.
// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod nanny_support;

use std::collections::HashMap;

use agent_mib::{Counter, Gauge};
use nanny_support::{Filter, run, stdout_ok};
use regex::Regex;

/// Diamond's AmavisCollector.matchers, in its order.
const DIAMOND: [&str; 4] = [
    r"^\s*(?P<name>sysUpTime)\s+TimeTicks\s+(?P<time>\d+)\s+\([\w:\., ]+\)\s*$",
    r"^\s*(?P<name>[\w]+)\s+(?P<time>[\d]+) s\s+(?P<frequency>[\d.]+) s/msg\s+\([\w]+\)\s*$",
    r"^\s*(?P<name>[\w.-]+)\s+(?P<count>[\d]+)\s+(?P<frequency>[\d.]+)/h\s+(?P<percentage>[\d.]+) %\s\([\w]+\)\s*$",
    r"^\s*(?P<name>[\w.-]+)\s+(?P<size>[\d]+)MB\s+(?P<frequency>[\d.]+)MB/h\s+(?P<percentage>[\d.]+) %\s\([\w]+\)\s*$",
];

/// What Diamond would publish from `text`: metric path → value.
fn diamond(text: &str) -> HashMap<String, String> {
    let res: Vec<Regex> = DIAMOND.iter().map(|r| Regex::new(r).unwrap()).collect();
    let mut out = HashMap::new();
    for line in text.lines() {
        if let Some(caps) = res.iter().find_map(|r| r.captures(line)) {
            let name = &caps["name"];
            for r in &res {
                for g in r.capture_names().flatten().filter(|g| *g != "name") {
                    if let Some(v) = caps.name(g) {
                        out.insert(format!("{name}.{g}"), v.as_str().to_string());
                    }
                }
            }
        }
    }
    out
}

/// A loaded filter: 40 messages of 200 ms, 3 MB each, two thirds inbound.
fn loaded() -> Filter {
    let f = Filter::start("agent", 3);
    f.deliver(0, 25, 200);
    f.deliver(1, 15, 200);
    f.slots[2].bump(Counter::ContentSpamMsgs, 4);
    f.slots[2].bump(Counter::OutMsgs, 30);
    f.slots[2].bump(Counter::OutMsgsSize, 50 * 1_048_576);
    f.slots[2].bump(Counter::ContentVirusMsgs, 4);
    for name in [
        "Eicar-Signature",
        "Win.Trojan.Agent-1",
        "Eicar-Signature",
        "Eicar-Signature",
    ] {
        f.board.count_virus(name);
    }
    f
}

#[test]
fn every_line_has_amavisd_agent_columns_and_the_scoreboard_value() {
    let f = loaded();
    let text = stdout_ok("avis-agent", &["--scoreboard", f.path.to_str().unwrap(), "-c", "1"]);
    let snap = f.snapshot();
    let count = Regex::new(r"^(\S+) +(\d+) +(\d+)/h((?: +[\d.]+| +---) % \((\w+)\))?$").unwrap();
    let size = Regex::new(r"^(\S+) +(\d+)MB +(\d+)MB/h +([\d.]+|---) % \((\w+)\)$").unwrap();
    let time = Regex::new(r"^(TimeElapsed\w+) +(\d+) s +([\d.]+|---) s/msg \(InMsgs\)$").unwrap();
    // The keys, then an empty line and the virus names (checked apart below).
    let (main, by_name) = text.split_once("\n\n").unwrap();
    let mut keys = Vec::new();
    for line in main.lines() {
        let key = line.split_whitespace().next().unwrap();
        keys.push(key.to_string());
        if line.starts_with("sys") && (line[16..].starts_with("STR ") || line[16..].starts_with("OID ")) {
            assert_eq!(line[..15].trim_end(), key, "{line}");
            continue;
        }
        if key == "sysUpTime" {
            assert!(line.starts_with("sysUpTime       TimeTicks "), "{line}");
            continue;
        }
        // Fixed columns: key in 35, value right-aligned in the next 6 after a space. As
        // with Perl's `%-35s`, a longer key (amavisd's own InMsgsStatusRelayedUntagged-
        // Originating is 38) pushes the rest of its line right by the excess.
        let o = key.len().saturating_sub(35);
        assert_eq!(line[..35 + o].trim_end(), key, "key column: {line}");
        assert_eq!(&line[35 + o..36 + o], " ", "{line}");
        let value_field = line[36 + o..42 + o].trim_start();
        if let Some(c) = time.captures(line) {
            let ms = Counter::ALL
                .iter()
                .find(|x| x.key() == key)
                .map(|x| snap.counter(*x))
                .unwrap();
            assert_eq!(
                c[2].parse::<u64>().unwrap(),
                (ms as f64 / 1000.0).round() as u64,
                "{line}"
            );
        } else if let Some(c) = size.captures(line) {
            let bytes = Counter::ALL
                .iter()
                .find(|x| x.key() == key)
                .map(|x| snap.counter(*x))
                .unwrap();
            assert_eq!(
                c[2].parse::<u64>().unwrap(),
                (bytes as f64 / 1_048_576.0).round() as u64,
                "{line}"
            );
            assert_eq!(&line[42 + o..44 + o], "MB", "{line}");
        } else if let Some(c) = count.captures(line) {
            let v: u64 = value_field.parse().unwrap_or_else(|_| panic!("value column: {line}"));
            assert_eq!(c[2].parse::<u64>().unwrap(), v);
            let want = Counter::ALL
                .iter()
                .find(|x| x.key() == key)
                .map(|x| snap.counter(*x))
                .or_else(|| Gauge::ALL.iter().find(|g| g.key() == key).map(|g| snap.gauge(*g)))
                .or((key == "sysServices").then_some(64))
                .unwrap_or_else(|| panic!("unknown key {key}"));
            assert_eq!(v, want, "{line}");
            // The rate right-aligned in at least 6 columns (more when it is that large: a
            // scoreboard only milliseconds old has huge rates, and Perl's %6.0f widens too).
            let rate = &line[43 + o..43 + o + line[43 + o..].find("/h").unwrap()];
            assert!(rate.len() >= 6 && rate.trim_start().parse::<u64>().is_ok(), "{line}");
        } else {
            panic!("line in no amavisd-agent format: {line:?}");
        }
    }
    // Every counter once, sorted as Perl's sort (ASCII) sorts the keys.
    for c in Counter::ALL {
        assert_eq!(keys.iter().filter(|k| *k == c.key()).count(), 1, "{}", c.key());
    }
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    // virus.byname.* by count, `%-35s %6d %6.0f/h %6.1f % (ContentVirusMsgs)`.
    let p2 = Regex::new(r"^(virus\.byname\.\S+) +(\d+) +(\d+)/h +([\d.]+) % \(ContentVirusMsgs\)$").unwrap();
    let viruses: Vec<(String, u64, String)> = by_name
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let c = p2.captures(l).unwrap_or_else(|| panic!("not a p2 line: {l:?}"));
            assert_eq!(&l[35..36], " ", "{l}");
            (c[1].to_string(), c[2].parse().unwrap(), c[4].to_string())
        })
        .collect();
    assert_eq!(
        viruses,
        [
            ("virus.byname.Eicar-Signature".to_string(), 3, "75.0".to_string()),
            ("virus.byname.Win.Trojan.Agent-1".to_string(), 1, "25.0".to_string()),
        ]
    );
    assert_eq!(
        snap.viruses(),
        [
            ("Eicar-Signature".to_string(), 3),
            ("Win.Trojan.Agent-1".to_string(), 1)
        ]
    );
    // amavisd-agent ends each cycle with two empty lines.
    assert!(text.ends_with("\n\n\n"), "{:?}", &text[text.len() - 10..]);
}

#[test]
fn diamond_publishes_the_scoreboard_counts_sizes_times_and_shares() {
    let f = loaded();
    let text = stdout_ok("avis-agent", &["--scoreboard", f.path.to_str().unwrap(), "-c", "1"]);
    let snap = f.snapshot();
    let d = diamond(&text);
    assert_eq!(d["InMsgs.count"], snap.counter(Counter::InMsgs).to_string());
    assert_eq!(d["InMsgs.count"], "40");
    assert_eq!(d["InMsgs.percentage"], "100.0");
    assert_eq!(d["ContentCleanMsgs.count"], "40");
    assert_eq!(d["ContentSpamMsgs.percentage"], "10.0"); // 4 of InMsgs 40
    assert_eq!(d["InMsgsSize.size"], "120"); // 40 × 3 MB
    assert_eq!(d["OutMsgsSize.size"], "50");
    assert_eq!(d["OutMsgsSize.percentage"], "41.7"); // of InMsgsSize
    assert_eq!(d["TimeElapsedTotal.time"], "8"); // 40 × 200 ms
    assert_eq!(d["TimeElapsedTotal.frequency"], "0.200"); // s/msg
    let ticks: u64 = d["sysUpTime.time"].parse().unwrap();
    assert!(
        ticks.abs_diff(snap.uptime_ticks()) < 500,
        "{ticks} vs {}",
        snap.uptime_ticks()
    );
    assert_eq!(d["virus.byname.Eicar-Signature.count"], "3");
    assert_eq!(d["virus.byname.Eicar-Signature.percentage"], "75.0");
    // A counter whose base is still 0 shows `---` and Diamond skips it, as before.
    assert!(!d.contains_key("CacheHits.count"));
}

#[test]
fn munin_whitespace_fields_give_key_and_value() {
    let f = loaded();
    let text = stdout_ok("avis-agent", &["--scoreboard", f.path.to_str().unwrap(), "-c", "1"]);
    let field2 = |key: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("no line for {key}"))
            .to_string()
    };
    assert_eq!(field2("InMsgs"), "40");
    assert_eq!(field2("InMsgsRecips"), "80");
    assert_eq!(field2("InMsgsSize"), "120MB");
    assert_eq!(field2("TimeElapsedTotal"), "8");
    assert_eq!(field2("LedgerRelayed"), "40");
}

#[test]
fn json_carries_the_same_numbers_per_sample() {
    let f = loaded();
    let text = stdout_ok(
        "avis-agent",
        &[
            "--scoreboard",
            f.path.to_str().unwrap(),
            "--json",
            "-c",
            "2",
            "-w",
            "0.2",
        ],
    );
    let docs: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(docs.len(), 2, "one document per sample");
    let snap = f.snapshot();
    for doc in &docs {
        for c in Counter::ALL {
            assert_eq!(doc["counters"][c.key()]["value"], snap.counter(c), "{}", c.key());
        }
        assert_eq!(doc["counters"]["ContentSpamMsgs"]["percent"], 10.0);
        assert_eq!(doc["counters"]["ContentSpamMsgs"]["of"], "InMsgs");
        assert_eq!(doc["counters"]["TimeElapsedTotal"]["seconds_per_msg"], 0.2);
        assert_eq!(doc["text"]["sysName"], "mx.test.example");
        assert_eq!(doc["viruses"]["Eicar-Signature"], 3);
        assert_eq!(doc["running"], true);
    }
}

#[test]
fn no_scoreboard_says_no_filter_running_and_fails() {
    let dir = tests::TempDir::new("agent-missing");
    let path = dir.join("nothing-here");
    let out = run("avis-agent", &["--scoreboard", path.to_str().unwrap(), "-c", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no filter running"), "{err}");
}
