//! Shared fixtures of the avis-nanny and avis-agent end-to-end tests: a scoreboard
//! written by agent-mib's writer (standing in for avisd until it can be driven with
//! load), with workers held in chosen states and counters set to chosen values, and
//! runs of the real binaries against it.
#![allow(dead_code, clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use agent_mib::{
    Counter, Outcome, Reader, ScanResult, Scanner, Scoreboard, Snapshot, Stage, WorkerSlot, WorkerState, WriterInfo,
};
use tests::{TempDir, bin};

/// A scoreboard with live workers, held open for the length of a test.
pub struct Filter {
    pub dir: TempDir,
    pub path: PathBuf,
    pub board: Arc<Scoreboard>,
    pub slots: Vec<WorkerSlot>,
}

impl Filter {
    /// A scoreboard with `workers` idle workers.
    pub fn start(tag: &str, workers: usize) -> Filter {
        Filter::start_in(TempDir::new(tag), workers)
    }

    /// A scoreboard at `dir/scoreboard` with `workers` idle workers.
    pub fn start_in(dir: TempDir, workers: usize) -> Filter {
        let path = dir.join("scoreboard");
        let board = Scoreboard::open(
            &path,
            &WriterInfo {
                descr: "avis test filter".into(),
                name: "mx.test.example".into(),
                contact: "postmaster@test.example".into(),
                location: "rack \"7\"".into(),
                workers,
            },
        )
        .expect("open scoreboard");
        let slots = (0..workers).map(|i| board.take_slot(i).expect("slot")).collect();
        Filter {
            dir,
            path,
            board,
            slots,
        }
    }

    /// Puts slot `i` to work on a message: accept, MAIL FROM with `mail_id`, then `state`.
    pub fn busy(&self, i: usize, mail_id: &str, state: WorkerState) {
        let s = &self.slots[i];
        s.set_state_reset(WorkerState::Accepted);
        s.set_state_reset(WorkerState::Mail);
        s.set_ids(mail_id, "");
        s.message_received();
        s.set_state(state);
    }

    /// Leaves slot `i` just accepted (busy, no mail id yet).
    pub fn accepted(&self, i: usize) {
        self.slots[i].set_state_reset(WorkerState::Accepted);
    }

    /// Processes `n` messages on slot `i` to the end, with `ms` of total latency each.
    pub fn deliver(&self, i: usize, n: u64, ms: u64) {
        let s = &self.slots[i];
        for _ in 0..n {
            s.set_state_reset(WorkerState::Mail);
            s.message_received();
            s.bump(Counter::InMsgs, 1);
            s.bump(Counter::InMsgsInbound, 1);
            s.bump(Counter::InMsgsRecips, 2);
            s.bump(Counter::InMsgsSize, 3 * 1_048_576);
            s.bump(Counter::ContentCleanMsgs, 1);
            s.bump(Counter::TimeElapsedTotal, ms);
            s.observe(Stage::Total, Duration::from_millis(ms));
            s.observe(Stage::Virus, Duration::from_millis(ms / 4));
            s.scanner(Scanner::Clamd, ScanResult::Ok, Duration::from_millis(ms / 4));
            s.message_answered(Outcome::Relayed);
            s.set_state(WorkerState::Done);
        }
        s.set_state(WorkerState::Idle);
    }

    /// A snapshot as the tools read it.
    pub fn snapshot(&self) -> Snapshot {
        Reader::new(&self.path).snapshot().expect("snapshot")
    }
}

/// Runs a workspace binary with `args`, returning its output.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .env_remove("AVIS_SCOREBOARD")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"))
}

/// Stdout of a run that must succeed.
pub fn stdout_ok(name: &str, args: &[&str]) -> String {
    let out = run(name, args);
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}
