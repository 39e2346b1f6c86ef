//! The connection driver against clients that hold a worker (issue 11 items 6 and 7): one
//! that never reads its replies, one that drips its data, one that sends for ever. Tokio's
//! clock is paused, so the timeouts run in virtual time and the tests take milliseconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent_mib::{Outcome, Reader, Scoreboard, WorkerSlot, WorkerState, WriterInfo};
use filter::message::{Peer, Reply, TxMeta};
use filter::receive::conn::{ConnSettings, Ending, Handler, serve};
use filter::receive::session::{Limits, Refused, Transaction};
use filter::receive::spool::SpoolConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// Answers every message 250, and leaves the slot at `.` as the pipeline does.
struct Accepting;

impl Handler for Accepting {
    fn refused(&self, slot: &WorkerSlot, _: Refused, _: TxMeta) -> Outcome {
        slot.set_state(WorkerState::Done);
        Outcome::Rejected
    }

    async fn handle(&self, slot: &WorkerSlot, _: Transaction, _: TxMeta) -> (Vec<Reply>, Outcome) {
        slot.set_state(WorkerState::Done);
        (vec![Reply::new(250, (2, 0, 0), "Ok")], Outcome::Relayed)
    }
}

fn scoreboard(name: &str) -> (Arc<Scoreboard>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("avis-slow-clients-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scoreboard");
    let info = WriterInfo {
        descr: "test".into(),
        name: "mx.test".into(),
        contact: String::new(),
        location: String::new(),
        workers: 1,
    };
    (Scoreboard::open(&path, &info).unwrap(), path)
}

fn settings(max_size: u64, idle: u64, data: u64, phase_limit: u64) -> ConnSettings {
    ConnSettings {
        peer: Peer::default(),
        limits: Limits {
            hostname: "mx.test".into(),
            max_message_size: max_size,
            max_recipients: 10,
            max_line: 512,
            spool: SpoolConfig {
                dir: std::env::temp_dir().join("avis-slow-clients-spool"),
                memory_threshold: 1 << 20,
            },
        },
        idle_timeout: Duration::from_secs(idle),
        data_timeout: Duration::from_secs(data),
        min_data_rate: 500,
        data_phase_limit: Duration::from_secs(phase_limit),
    }
}

/// Reads until `needle` has been seen `times` times; everything read.
async fn read_until<R: AsyncRead + Unpin>(r: &mut R, needle: &str, times: usize) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&got).matches(needle).count() < times {
        let n = r.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before {needle:?}: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

const ENVELOPE: &[u8] = b"EHLO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n";

/// Longer than any bound under test: a server still serving then holds the worker for ever.
const FOREVER: Duration = Duration::from_secs(3600);

#[tokio::test(start_paused = true)]
async fn a_client_that_pipelines_and_never_reads_its_replies_is_cut_off_and_shows_busy_meanwhile() {
    let (board, path) = scoreboard("nonreader");
    let slot = board.take_slot(0).unwrap();
    slot.set_state_reset(WorkerState::Accepted);
    let s = settings(0, 30, 30, 600);
    let (client, server) = tokio::io::duplex(4096);
    let (mut rd, mut wr) = tokio::io::split(client);
    let (_stop, stop) = watch::channel(false);
    let started = tokio::time::Instant::now();
    let (done_tx, done_rx) = watch::channel(false);
    let server = async {
        let ending = tokio::time::timeout(FOREVER, serve(server, &s, &slot, 1, &Accepting, stop)).await;
        let _ = done_tx.send(true);
        ending
    };
    let client = async {
        // One message answered, so the slot shows `.` as it does after any message...
        wr.write_all(ENVELOPE).await.unwrap();
        read_until(&mut rd, "354 ", 1).await;
        wr.write_all(b"x\r\n.\r\n").await.unwrap();
        read_until(&mut rd, "250 2.0.0 Ok", 1).await;
        // ...then NOOPs by the hundred thousand, and not one reply read.
        let _ = wr.write_all("NOOP\r\n".repeat(100_000).as_bytes()).await;
    };
    let observer = async {
        let mut reader = Reader::new(&path);
        let mut letters = Vec::new();
        while !*done_rx.borrow() {
            if let Ok(snap) = reader.snapshot() {
                letters.push(snap.slots()[0].state);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        letters
    };
    let (ending, (), letters) = tokio::join!(server, client, observer);
    assert_eq!(ending, Ok(Ending::WriteTimeout), "the worker was held for ever");
    assert!(started.elapsed() <= Duration::from_secs(31), "{:?}", started.elapsed());
    let blocked = &letters[letters.len() - 10..];
    assert!(
        blocked.iter().all(|l| *l == WorkerState::Begin && !l.is_idle_letter()),
        "while its replies wait the slot must show busy `b`: {letters:?}"
    );
}

/// Sends the envelope, then `piece` every `every` until the server hangs up; how the
/// connection ended, after how long, and what the client read last.
async fn data_sender(
    s: &ConnSettings,
    name: &str,
    piece: &'static [u8],
    every: Duration,
) -> (Ending, Duration, String) {
    let (board, _path) = scoreboard(name);
    let slot = board.take_slot(0).unwrap();
    let (client, server) = tokio::io::duplex(1 << 16);
    let (mut rd, mut wr) = tokio::io::split(client);
    let (_stop, stop) = watch::channel(false);
    let started = tokio::time::Instant::now();
    let server = async { tokio::time::timeout(FOREVER, serve(server, s, &slot, 1, &Accepting, stop)).await };
    let client = async {
        wr.write_all(ENVELOPE).await.unwrap();
        read_until(&mut rd, "354 ", 1).await;
        let sending = async {
            while wr.write_all(piece).await.is_ok() {
                tokio::time::sleep(every).await;
            }
        };
        let mut last = String::new();
        tokio::select! {
            () = sending => {}
            r = rd.read_to_string(&mut last) => { let _ = r; }
        }
        last
    };
    let (ending, last) = tokio::join!(server, client);
    let ending = ending.expect("the DATA phase held the worker for ever");
    (ending, started.elapsed(), last)
}

#[tokio::test(start_paused = true)]
async fn a_client_dripping_a_data_byte_every_3_s_is_cut_off_by_the_data_deadline() {
    // The numbers: data_timeout 5 s, one byte every 3 s.
    let s = settings(0, 30, 5, 1800);
    let (ending, took, last) = data_sender(&s, "drip", b"x", Duration::from_secs(3)).await;
    assert_eq!(ending, Ending::Timeout);
    assert!(took < Duration::from_secs(8), "DATA stayed open {took:?}");
    assert!(last.starts_with("421 4.4.2"), "{last:?}");
}

#[tokio::test(start_paused = true)]
async fn a_data_phase_ends_at_its_hard_limit_however_fast_the_client_sends() {
    // 1000 bytes a second is twice the minimum rate: only the phase limit stops it.
    let s = settings(0, 30, 5, 60);
    let (ending, took, _) = data_sender(&s, "fast", &[b'x'; 1000], Duration::from_secs(1)).await;
    assert_eq!(ending, Ending::Timeout);
    assert!(took <= Duration::from_secs(61), "DATA stayed open {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_client_above_the_minimum_rate_gets_its_message_through() {
    // 100 bytes every 100 ms for 10 s (1000 B/s): longer than data_timeout, yet fine.
    let (board, _path) = scoreboard("steady");
    let slot = board.take_slot(0).unwrap();
    let s = settings(0, 30, 5, 1800);
    let (client, server) = tokio::io::duplex(1 << 16);
    let (mut rd, mut wr) = tokio::io::split(client);
    let (_stop, stop) = watch::channel(false);
    let server = async { tokio::time::timeout(FOREVER, serve(server, &s, &slot, 1, &Accepting, stop)).await };
    let client = async {
        wr.write_all(ENVELOPE).await.unwrap();
        read_until(&mut rd, "354 ", 1).await;
        for _ in 0..100 {
            wr.write_all(&[b'y'; 100]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wr.write_all(b"\r\n.\r\nQUIT\r\n").await.unwrap();
        read_until(&mut rd, "221 ", 1).await
    };
    let (ending, transcript) = tokio::join!(server, client);
    assert_eq!(ending, Ok(Ending::Quit));
    assert!(transcript.contains("250 2.0.0 Ok"), "{transcript:?}");
}

#[tokio::test(start_paused = true)]
async fn an_lmtp_message_refused_after_its_data_gets_one_reply_per_recipient() {
    let (board, _path) = scoreboard("lmtp");
    let slot = board.take_slot(0).unwrap();
    let s = settings(10, 30, 30, 600);
    let (client, server) = tokio::io::duplex(1 << 16);
    let (mut rd, mut wr) = tokio::io::split(client);
    let (_stop, stop) = watch::channel(false);
    let server = async { tokio::time::timeout(FOREVER, serve(server, &s, &slot, 1, &Accepting, stop)).await };
    let client = async {
        wr.write_all(b"LHLO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nDATA\r\n")
            .await
            .unwrap();
        read_until(&mut rd, "354 ", 1).await;
        wr.write_all(b"more than ten bytes\r\n.\r\n").await.unwrap();
        let t = tokio::time::timeout(Duration::from_secs(60), read_until(&mut rd, "552 ", 2)).await;
        wr.write_all(b"QUIT\r\n").await.unwrap();
        t.expect("LMTP wants one reply per recipient after DATA")
    };
    let (ending, replies) = tokio::join!(server, client);
    assert_eq!(ending, Ok(Ending::Quit));
    assert_eq!(replies.matches("552 5.3.4").count(), 2, "{replies:?}");
}
