//! `avis-nanny -c N -w S` prints amavisd-nanny's layout, which munin plugins count
//! (`amavisd-nanny -c 1 2>&1`), and `--json` a document per sample; both carry the
//! scoreboard's workers.
//!
//! The rules written down here, as scripts apply them to amavisd-nanny's output:
//! - the header, once: `process-id task-id     elapsed in    elapsed-bar (dots indicate idle)`
//!   and `           or state   idle or busy`;
//! - per cycle an empty line, then one line per process, sorted:
//!   `PID <key>: <task-id or state, %-11s> <elapsed> <bar>` where `<key>` is `%05d`,
//!   `<elapsed>` is `Nd` or two spaces then `H:MM:SS`, and the bar is at most 35 columns
//!   of `.` (idle, a `:` every ten) or `=` / state letters (busy), cut with `>`;
//! - munin counts processes as the lines matching `^PID `, busy ones as those whose task
//!   column is neither blank nor `.` (amavisd's idle states), idle ones as the rest.
// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod nanny_support;

use agent_mib::{ProcKey, WorkerState};
use nanny_support::{Filter, run, stdout_ok};
use regex::Regex;

const LINE: &str = r"^PID (\d{5}): (.{11}) (  |\d+d)(\d+):(\d\d):(\d\d) ([=.:A-Za-z>]{0,35})$";

/// Five workers: virus scanning, spam scanning, just accepted, idle, done (idle).
fn busy_filter() -> Filter {
    let f = Filter::start("nanny-batch", 5);
    f.busy(0, "01234-05-2", WorkerState::Virus);
    f.busy(1, "01234-06", WorkerState::Spam);
    f.accepted(2);
    f.deliver(4, 1, 50);
    f.slots[4].set_state(WorkerState::Done);
    f
}

#[test]
fn text_has_the_header_once_and_a_pid_line_per_worker_per_cycle() {
    let f = busy_filter();
    let text = stdout_ok(
        "avis-nanny",
        &["--scoreboard", f.path.to_str().unwrap(), "-c", "2", "-w", "0.3"],
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "process-id task-id     elapsed in    elapsed-bar (dots indicate idle)"
    );
    assert_eq!(lines[1], "           or state   idle or busy");
    assert_eq!(text.matches("process-id").count(), 1, "header once");
    // Two cycles, each an empty line then five PID lines.
    let cycles: Vec<&[&str]> = lines[2..].split(|l| l.is_empty()).filter(|c| !c.is_empty()).collect();
    assert_eq!(cycles.len(), 2, "{text}");
    let re = Regex::new(LINE).unwrap();
    let snap = f.snapshot();
    for cycle in cycles {
        assert_eq!(cycle.len(), 5, "{cycle:?}");
        let mut busy = 0;
        for (i, line) in cycle.iter().enumerate() {
            let c = re
                .captures(line)
                .unwrap_or_else(|| panic!("not amavisd-nanny's layout: {line:?}"));
            assert_eq!(c[1].parse::<usize>().unwrap(), i, "sorted by slot");
            let task = c[2].trim_end();
            if !task.is_empty() && task != "." {
                busy += 1;
            }
        }
        assert_eq!(busy, snap.proc(ProcKey::Busy), "{cycle:?}");
        assert!(cycle[0].starts_with("PID 00000: 01234-05-2 "), "{}", cycle[0]);
        assert!(cycle[1].starts_with("PID 00001: 01234-06    "), "{}", cycle[1]);
        // A worker with no mail id yet shows its state letter.
        assert!(cycle[2].starts_with("PID 00002: A           "), "{}", cycle[2]);
        assert!(cycle[3].starts_with("PID 00003:             "), "{}", cycle[3]);
        assert!(cycle[4].starts_with("PID 00004: .           "), "{}", cycle[4]);
        // Busy bars end in the current state letter.
        assert!(cycle[0].ends_with('V'), "{}", cycle[0]);
        assert!(cycle[1].ends_with('S'), "{}", cycle[1]);
    }
}

#[test]
fn json_has_one_document_per_sample_with_the_scoreboard_workers() {
    let f = busy_filter();
    let text = stdout_ok(
        "avis-nanny",
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
    assert_eq!(docs.len(), 2);
    let snap = f.snapshot();
    for doc in &docs {
        assert_eq!(doc["running"], true);
        assert_eq!(doc["writer_pid"], std::process::id());
        assert_eq!(doc["totals"]["busy"], snap.proc(ProcKey::Busy));
        assert_eq!(doc["totals"]["idle"], snap.proc(ProcKey::Idle));
        assert_eq!(doc["totals"]["busy_virus"], 1);
        assert_eq!(doc["totals"]["busy_spam"], 1);
        assert_eq!(doc["totals"]["stuck"], 0);
        let w = doc["workers"].as_array().unwrap();
        assert_eq!(w.len(), 5);
        assert_eq!(w[0]["state"], "V");
        assert_eq!(w[0]["mail_id"], "01234-05-2");
        assert_eq!(w[0]["meaning"], WorkerState::Virus.meaning());
        assert_eq!(w[2]["state"], "A");
        assert_eq!(w[2]["busy"], true);
        assert_eq!(w[3]["busy"], false);
        assert_eq!(w[4]["msgs_done"], 1);
    }
}

#[test]
fn a_worker_busy_past_the_threshold_is_stuck_in_json() {
    let f = busy_filter();
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let text = stdout_ok(
        "avis-nanny",
        &[
            "--scoreboard",
            f.path.to_str().unwrap(),
            "--json",
            "--once",
            "--stuck",
            "1",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(doc["totals"]["stuck"], 3, "{doc}");
    assert_eq!(doc["workers"][0]["stuck"], true);
    assert_eq!(doc["workers"][3]["stuck"], false);
}

#[test]
fn no_scoreboard_prints_no_filter_running_and_exits_nonzero() {
    let dir = tests::TempDir::new("nanny-missing");
    let path = dir.join("absent");
    let out = run("avis-nanny", &["--scoreboard", path.to_str().unwrap(), "-c", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no filter running"));
    let out = run(
        "avis-nanny",
        &["--scoreboard", path.to_str().unwrap(), "--json", "-c", "1"],
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["running"], false);
    assert!(doc["error"].as_str().unwrap().contains("no filter running"));
}
