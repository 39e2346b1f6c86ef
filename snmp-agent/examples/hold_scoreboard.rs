//! Holds a scoreboard open with some load in it, as avisd would, until killed: what
//! `bench/snmp-walk.sh` walks. `cargo run -p snmp-agent --example hold_scoreboard -- PATH`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Duration;

use agent_mib::{Counter, Outcome, Scoreboard, WorkerState, WriterInfo};

fn main() {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: hold_scoreboard PATH");
        std::process::exit(2);
    };
    let info = WriterInfo {
        descr: "avis bench writer".into(),
        name: "bench.example".into(),
        contact: "postmaster@example".into(),
        location: "bench".into(),
        workers: 16,
    };
    let board = match Scoreboard::open(&path, &info) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            std::process::exit(1);
        }
    };
    let slots: Vec<_> = (0..8).filter_map(|i| board.take_slot(i)).collect();
    for (i, s) in slots.iter().enumerate() {
        s.set_state_reset(if i % 2 == 0 {
            WorkerState::Virus
        } else {
            WorkerState::Spam
        });
        s.set_ids(&format!("mail{i}"), "4ABCDEF");
    }
    println!("ready");
    loop {
        board.bump(Counter::InMsgs, 1);
        board.bump(Counter::InMsgsSize, 12_345);
        if let Some(s) = slots.first() {
            s.message_received();
            s.message_answered(Outcome::Relayed);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
