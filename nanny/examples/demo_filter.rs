//! A stand-in for avisd while it is not ready: writes a scoreboard with workers moving
//! through amavisd's states and counters going up, so avis-nanny and avis-agent have
//! something to show. `cargo run -p nanny --example demo_filter -- PATH [WORKERS]`.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Duration;

use agent_mib::{Counter, Outcome, ScanResult, Scanner, Scoreboard, Stage, WorkerState, WriterInfo};

const STEPS: [WorkerState; 8] = [
    WorkerState::Accepted,
    WorkerState::Mail,
    WorkerState::Data,
    WorkerState::Decode,
    WorkerState::Virus,
    WorkerState::Spam,
    WorkerState::Forward,
    WorkerState::Done,
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().unwrap_or_else(|| "avis-state/scoreboard".into()));
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(6);
    let board = Scoreboard::open(
        &path,
        &WriterInfo {
            descr: "avis demo".into(),
            name: "demo.example".into(),
            workers,
            ..WriterInfo::default()
        },
    )?;
    let slots: Vec<_> = (0..workers).filter_map(|i| board.take_slot(i)).collect();
    println!("writing {} ({workers} workers); Ctrl-C to stop", path.display());
    let mut tick = 0usize;
    loop {
        for (i, slot) in slots.iter().enumerate() {
            // Worker i advances every (i + 1) ticks; the last worker never moves: stuck.
            if i + 1 == slots.len() && tick > 0 {
                continue;
            }
            if !tick.is_multiple_of(i + 1) {
                continue;
            }
            let step = (tick / (i + 1) + i) % (STEPS.len() + 2);
            match STEPS.get(step) {
                Some(WorkerState::Accepted) => slot.set_state_reset(WorkerState::Accepted),
                Some(WorkerState::Mail) => {
                    slot.set_state_reset(WorkerState::Mail);
                    slot.set_ids(&format!("{:05}-{:02}", i, tick % 100), "4XyZ1abc");
                }
                Some(WorkerState::Done) => {
                    slot.bump(Counter::InMsgs, 1);
                    slot.bump(Counter::ContentCleanMsgs, 1);
                    slot.bump(Counter::InMsgsSize, 40_000);
                    slot.bump(Counter::TimeElapsedTotal, 800);
                    slot.observe(Stage::Total, Duration::from_millis(80 + 40 * i as u64));
                    slot.observe(Stage::Virus, Duration::from_millis(12 + i as u64));
                    slot.scanner(Scanner::Clamd, ScanResult::Ok, Duration::from_millis(12));
                    slot.message_answered(Outcome::Relayed);
                    slot.clear_ids();
                    slot.set_state(WorkerState::Done);
                }
                Some(WorkerState::Data) => {
                    slot.set_state(WorkerState::Data);
                    slot.message_received();
                }
                Some(s) => slot.set_state(*s),
                None => slot.set_state(WorkerState::Idle),
            }
        }
        board.heartbeat();
        tick += 1;
        std::thread::sleep(Duration::from_millis(700));
    }
}
