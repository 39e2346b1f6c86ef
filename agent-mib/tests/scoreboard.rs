//! The scoreboard contract: what avisd writes, the monitors read, across restarts,
//! recreation, crashes and concurrent updates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use agent_mib::{
    Counter, LedgerKey, Outcome, ProcKey, ReadError, Reader, Scoreboard, ScoreboardError, Stage, TextField,
    WorkerState, WriterInfo, by_name,
};

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("avis-sb-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("scoreboard")
}

fn info(workers: usize) -> WriterInfo {
    WriterInfo {
        descr: "avis-test".into(),
        name: "mx.example".into(),
        workers,
        ..WriterInfo::default()
    }
}

fn open(path: &std::path::Path, workers: usize) -> Arc<Scoreboard> {
    Scoreboard::open(path, &info(workers)).expect("open scoreboard")
}

#[test]
fn a_missing_file_reads_as_no_filter_running() {
    let path = temp_path("missing");
    let err = Reader::new(&path).snapshot().expect_err("no file");
    assert!(matches!(err, ReadError::Missing(_)));
    assert!(err.to_string().contains("no filter running"));
}

#[test]
fn counters_bumped_by_workers_and_the_daemon_are_summed_by_readers() {
    let path = temp_path("sum");
    let board = open(&path, 4);
    let a = board.take_slot(0).expect("slot 0");
    let b = board.take_slot(1).expect("slot 1");
    a.bump(Counter::InMsgs, 2);
    b.bump(Counter::InMsgs, 3);
    board.bump(Counter::InMsgs, 1);
    board.set_gauge(agent_mib::Gauge::UserGauge1, 77);
    let snap = Reader::new(&path).snapshot().expect("snapshot");
    assert_eq!(snap.counter(Counter::InMsgs), 6);
    assert_eq!(snap.gauge(agent_mib::Gauge::UserGauge1), 77);
    assert_eq!(snap.text(TextField::Name), "mx.example");
    assert!(snap.writer_alive());
    assert_eq!(snap.proc(ProcKey::All), 4);
    let inmsgs = by_name("inMsgs").expect("inMsgs");
    assert_eq!(snap.value(inmsgs), Some(agent_mib::Value::Counter32(6)));
}

#[test]
fn a_slot_cannot_be_taken_twice() {
    let path = temp_path("twice");
    let board = open(&path, 2);
    let held = board.take_slot(0);
    assert!(held.is_some());
    assert!(board.take_slot(0).is_none());
    drop(held);
    assert!(board.take_slot(0).is_some());
    assert!(board.take_slot(9999).is_none());
}

#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_file() {
    let path = temp_path("busy");
    let _first = open(&path, 1);
    let err = Scoreboard::open(&path, &info(1)).expect_err("second writer");
    assert!(matches!(err, ScoreboardError::Busy { pid, .. } if pid == u64::from(std::process::id())));
}

#[test]
fn counters_and_start_time_survive_a_restart_and_the_generation_grows() {
    let path = temp_path("restart");
    let board = open(&path, 2);
    board.bump(Counter::InMsgs, 5);
    let started = board.started_ms();
    let generation = board.generation();
    drop(board);
    let snap = Reader::new(&path).snapshot().expect("snapshot");
    assert!(!snap.writer_alive(), "a detached writer is not running");
    assert_eq!(snap.workers().count(), 0);
    let board = open(&path, 2);
    assert_eq!(board.started_ms(), started);
    assert_eq!(board.generation(), generation + 1);
    let snap = Reader::new(&path).snapshot().expect("snapshot");
    assert_eq!(snap.counter(Counter::InMsgs), 5);
}

#[test]
fn an_incompatible_file_is_replaced_by_the_writer_and_refused_by_readers() {
    let path = temp_path("incompatible");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, vec![0xAB; 4096]).expect("write junk");
    let err = Reader::new(&path).snapshot().expect_err("junk refused");
    assert!(err.to_string().contains("not an avis scoreboard"), "{err}");
    let board = open(&path, 1);
    board.bump(Counter::InMsgs, 1);
    assert_eq!(
        Reader::new(&path)
            .snapshot()
            .expect("snapshot")
            .counter(Counter::InMsgs),
        1
    );
}

#[test]
fn a_reader_built_from_another_table_refuses_with_a_clear_message() {
    let path = temp_path("hash");
    drop(open(&path, 1));
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[16] ^= 0xFF; // the table hash word
    std::fs::write(&path, bytes).expect("write");
    let err = Reader::new(&path).snapshot().expect_err("hash mismatch");
    assert!(err.to_string().contains("different builds"), "{err}");
}

#[test]
fn a_reader_follows_the_file_when_it_is_recreated() {
    let path = temp_path("recreate");
    let board = open(&path, 1);
    board.bump(Counter::InMsgs, 9);
    let mut reader = Reader::new(&path);
    assert_eq!(reader.snapshot().expect("first").counter(Counter::InMsgs), 9);
    drop(board);
    std::fs::remove_file(&path).expect("operator reset");
    assert!(matches!(reader.snapshot(), Err(ReadError::Missing(_))));
    let board = open(&path, 1);
    board.bump(Counter::InMsgs, 1);
    assert_eq!(reader.snapshot().expect("after").counter(Counter::InMsgs), 1);
    assert_eq!(reader.attach_count(), 2);
}

#[test]
fn worker_states_ids_and_busy_gauges_follow_the_slot() {
    let path = temp_path("states");
    let board = open(&path, 3);
    let w = board.take_slot(0).expect("slot");
    w.set_state_reset(WorkerState::Accepted);
    w.set_state_reset(WorkerState::Mail);
    w.set_ids("Ab3dE_9xYz", "4ZxQ1");
    w.set_state(WorkerState::Virus);
    let snap = Reader::new(&path).snapshot().expect("snapshot");
    let slot = &snap.slots()[0];
    assert_eq!(slot.state, WorkerState::Virus);
    assert_eq!(slot.mail_id, "Ab3dE_9xYz");
    assert_eq!(slot.queue_id, "4ZxQ1");
    assert_eq!(slot.connections, 1);
    assert_eq!(snap.proc(ProcKey::Busy), 1);
    assert_eq!(snap.proc(ProcKey::BusyVirus), 1);
    assert_eq!(snap.proc(ProcKey::Idle), 2);
    assert_eq!(snap.proc(ProcKey::BusyAtLeast(0)), 1);
    assert_eq!(snap.proc(ProcKey::BusyAtLeast(21)), 0);
    drop(w);
    let snap = Reader::new(&path).snapshot().expect("snapshot");
    assert!(snap.slots()[0].is_idle());
}

#[test]
fn the_ledger_balances_and_a_dropped_slot_tempfails_what_it_held() {
    let path = temp_path("ledger");
    let board = open(&path, 2);
    let w = board.take_slot(0).expect("slot");
    for outcome in [Outcome::Relayed, Outcome::Rejected, Outcome::Discarded] {
        w.message_received();
        w.message_answered(outcome);
    }
    w.message_received();
    let snap = Reader::new(&path).snapshot().expect("snapshot");
    assert_eq!(snap.counter(Counter::LedgerReceived), 4);
    assert_eq!(snap.ledger(LedgerKey::InFlight), 1);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
    drop(w);
    let snap = Reader::new(&path).snapshot().expect("snapshot");
    assert_eq!(snap.counter(Counter::LedgerTempFailed), 1);
    assert_eq!(snap.ledger(LedgerKey::InFlight), 0);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}

#[test]
fn latency_observations_land_in_their_bucket() {
    let path = temp_path("latency");
    let board = open(&path, 1);
    let w = board.take_slot(0).expect("slot");
    w.observe(Stage::Virus, Duration::from_millis(30));
    w.observe(Stage::Virus, Duration::from_secs(100));
    let snap = Reader::new(&path).snapshot().expect("snapshot");
    assert_eq!(snap.counter(Counter::LatencyVirusCount), 2);
    assert_eq!(snap.counter(Counter::LatencyVirusSumMs), 100_030);
    assert_eq!(snap.counter(Counter::LatencyVirusLe50ms), 1);
    assert_eq!(snap.counter(Counter::LatencyVirusLeInf), 1);
}

#[test]
fn readers_never_see_the_ledger_out_of_balance_while_workers_run() {
    let path = temp_path("concurrent");
    let board = open(&path, 2);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|i| {
            let slot = board.take_slot(i).expect("slot");
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    slot.message_received();
                    slot.set_state(WorkerState::Forward);
                    slot.message_answered(if n.is_multiple_of(2) {
                        Outcome::Relayed
                    } else {
                        Outcome::TempFailed
                    });
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut reader = Reader::new(&path);
    for _ in 0..200 {
        let snap = reader.snapshot().expect("snapshot");
        assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let done: u64 = workers.into_iter().map(|h| h.join().expect("join")).sum();
    let snap = reader.snapshot().expect("snapshot");
    assert_eq!(snap.counter(Counter::LedgerReceived), done);
}

/// Run as a child: attach, take a slot, receive one message, say so, and wait to be killed.
#[test]
fn crashed_writer_child() {
    let Some(path) = std::env::var_os("AVIS_CRASH_CHILD") else {
        return;
    };
    let board = Scoreboard::open(&PathBuf::from(path), &info(2)).expect("child open");
    let slot = board.take_slot(1).expect("slot");
    slot.set_state_reset(WorkerState::Mail);
    slot.message_received();
    slot.set_state(WorkerState::Forward);
    println!("ready");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_writer_killed_mid_message_leaves_it_tempfailed_and_its_worker_gone_at_restart() {
    use std::io::BufRead;
    let path = temp_path("crash");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "crashed_writer_child", "--nocapture"])
        .env("AVIS_CRASH_CHILD", &path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let ready = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("ready"));
    assert!(ready, "child never became ready");
    let snap = Reader::new(&path).snapshot().expect("snapshot");
    assert_eq!(snap.ledger(LedgerKey::InFlight), 1);
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap");
    let snap = Reader::new(&path).snapshot().expect("snapshot");
    assert!(!snap.writer_alive(), "a dead writer is not running");
    let board = open(&path, 2);
    let snap = Reader::new(&path).snapshot().expect("snapshot");
    assert_eq!(snap.counter(Counter::LedgerTempFailed), 1);
    assert_eq!(snap.counter(Counter::ProcGone), 1);
    assert_eq!(snap.ledger(LedgerKey::InFlight), 0);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
    drop(board);
}

#[test]
fn virus_names_are_counted_and_an_overflowing_table_folds_into_other() {
    let path = temp_path("viruses");
    let board = open(&path, 1);
    board.count_virus("Eicar-Test-Signature");
    board.count_virus("Eicar-Test-Signature");
    board.count_virus("Win.Trojan.Agent-1");
    let snap = Reader::new(&path).snapshot().expect("snapshot");
    assert_eq!(
        snap.viruses(),
        [
            ("Eicar-Test-Signature".to_string(), 2),
            ("Win.Trojan.Agent-1".to_string(), 1)
        ]
    );
    for i in 0..100 {
        board.count_virus(&format!("Name{i}"));
    }
    let snap = Reader::new(&path).snapshot().expect("snapshot");
    let v = snap.viruses();
    assert_eq!(v.len(), agent_mib::layout::VIRUS_ENTRIES);
    assert_eq!(
        v.iter().map(|(_, c)| c).sum::<u64>(),
        103,
        "nothing is lost when the table is full"
    );
    assert!(v.iter().any(|(n, c)| n == "(other)" && *c == 100 - 61));
}

/// Run as a child: write worker states, ids and ledger transitions as fast as possible,
/// each task id one digit repeated over all four of its words (a torn read mixes digits).
#[test]
fn busy_writer_child() {
    let Some(path) = std::env::var_os("AVIS_BUSY_CHILD") else {
        return;
    };
    let board = Scoreboard::open(&PathBuf::from(path), &info(2)).expect("child open");
    let slots: Vec<_> = (0..2).map(|i| board.take_slot(i).expect("slot")).collect();
    println!("ready");
    let until = std::time::Instant::now() + Duration::from_secs(3);
    let mut n = 0u64;
    while std::time::Instant::now() < until {
        for s in &slots {
            s.message_received();
            s.set_state(if n.is_multiple_of(2) {
                WorkerState::Virus
            } else {
                WorkerState::Forward
            });
            s.message_answered(Outcome::Relayed);
            let digit = char::from(b'0' + (n % 10) as u8);
            s.set_ids(&digit.to_string().repeat(31), &digit.to_string().repeat(31));
            s.bump(Counter::InMsgs, 1);
        }
        n += 1;
    }
}

#[test]
fn a_reader_in_another_process_never_sees_a_torn_slot_or_an_unbalanced_ledger() {
    use std::io::BufRead;
    let path = temp_path("two-processes");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "busy_writer_child", "--nocapture"])
        .env("AVIS_BUSY_CHILD", &path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout");
    assert!(
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("ready"))
    );
    let mut reader = Reader::new(&path);
    let mut checked = 0;
    while child.try_wait().expect("wait").is_none() {
        let snap = reader.snapshot().expect("snapshot");
        assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
        for s in &snap.slots()[..2] {
            // The seqlock: words written in one update are read together.
            if let Some(first) = s.mail_id.chars().next() {
                assert!(
                    s.mail_id.len() == 31 && s.mail_id.chars().all(|c| c == first),
                    "torn slot {s:?}"
                );
                assert_eq!(s.queue_id, s.mail_id, "torn slot {s:?}");
            }
        }
        checked += 1;
    }
    assert!(checked > 10, "only {checked} snapshots");
    println!("{checked} snapshots read from another process while it wrote");
}

#[test]
fn a_file_of_another_layout_is_refused_with_a_message_naming_both_layouts() {
    let path = temp_path("layout");
    drop(open(&path, 1));
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[8..16].copy_from_slice(&99u64.to_le_bytes()); // the layout version word
    std::fs::write(&path, bytes).expect("write");
    let err = Reader::new(&path).snapshot().expect_err("another layout").to_string();
    let ours = agent_mib::layout::LAYOUT_VERSION;
    assert!(
        err.contains("layout version 99") && err.contains(&format!("reads {ours}")),
        "{err}"
    );
}
