//! The external scanner clients (clamd, spamd, rspamd) against small fake servers on
//! loopback, each in hit, miss, error, timeout and garbage modes: what the client sends
//! (byte for byte, in chunks) and what it makes of every kind of answer, including none.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use filter::receive::spool::{Spool, SpoolConfig};
// The one line to change when the clients move under `filter::check`.
use filter::check as sc;
use sc::clamd::{self, ClamdConfig, ScannerRole, VirusVerdict};
use sc::endpoint::{Endpoint, ScanError};
use sc::rspamd::{self, RspamdConfig};
use sc::spamd::{self, SpamdConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};

/// How a fake scanner answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Finds something (a virus, spam).
    Hit,
    /// Finds nothing.
    Miss,
    /// Answers in its protocol that it failed.
    Error,
    /// Reads the request, then never answers (and never closes).
    Timeout,
    /// Answers bytes that are not its protocol.
    Garbage,
    /// Closes the connection as soon as it is accepted.
    Close,
}

/// What a fake saw: one entry per connection.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// The request line / command and headers (text protocols) or the command (clamd).
    head: Vec<u8>,
    /// The message bytes as received.
    body: Vec<u8>,
    /// clamd: the length of every chunk, in order (the final zero excluded).
    chunks: Vec<usize>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A fake server on 127.0.0.1 serving every connection with `serve`.
async fn fake_tcp<F, Fut>(serve: F) -> (Endpoint, Log)
where
    F: Fn(tokio::net::TcpStream, Log) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s, log2.clone()));
        }
    });
    (Endpoint::Tcp("127.0.0.1".into(), port), log)
}

/// An endpoint where nothing listens (bound, then released: connection refused).
fn dead_endpoint() -> Endpoint {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    Endpoint::Tcp("127.0.0.1".into(), port)
}

/// A private directory for spool files and sockets, removed when dropped.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(tag: &str) -> Scratch {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("avis-scanners-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// A spooled message: in memory when `threshold` allows, else in a file under `dir`.
fn spool(dir: &std::path::Path, bytes: &[u8], threshold: usize) -> Spool {
    let mut s = Spool::new(
        SpoolConfig {
            dir: dir.to_path_buf(),
            memory_threshold: threshold,
        },
        "msg",
    );
    // Written in odd-sized pieces, as the receiver does.
    for piece in bytes.chunks(7001) {
        s.write(piece).unwrap();
    }
    s.finish().unwrap();
    s
}

const MESSAGE: &[u8] = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n";

/// A message of `len` bytes whose content depends on the position (so a lost,
/// repeated or reordered chunk shows).
fn big_message(len: usize) -> Vec<u8> {
    let mut m = b"From: a@example.com\r\nSubject: big\r\n\r\n".to_vec();
    let mut i = 0u32;
    while m.len() < len {
        m.extend_from_slice(format!("{i:08x}\r\n").as_bytes());
        i += 1;
    }
    m.truncate(len);
    m
}

async fn read_exact_or_eof(s: &mut (impl AsyncRead + Unpin), n: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

/// Reads up to and including the blank line ending a header section.
async fn read_head(s: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(b[0]);
    }
    head
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// Holds a connection open without answering, longer than any test waits.
async fn stall<S>(s: S) {
    tokio::time::sleep(Duration::from_secs(30)).await;
    drop(s);
}

// ---------------------------------------------------------------- clamd

/// A fake clamd. `limit`: like StreamMaxLength, answer "size limit exceeded" and close
/// as soon as more than this many bytes arrived.
async fn clamd_session<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, log: Log, mode: Mode, limit: Option<usize>) {
    if mode == Mode::Close {
        return;
    }
    let mut seen = Seen {
        head: read_exact_or_eof(&mut s, 10).await.unwrap_or_default(),
        ..Seen::default()
    };
    loop {
        let Some(len) = read_exact_or_eof(&mut s, 4).await else {
            return;
        };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len == 0 {
            break;
        }
        let Some(chunk) = read_exact_or_eof(&mut s, len).await else {
            return;
        };
        seen.chunks.push(len);
        seen.body.extend_from_slice(&chunk);
        if limit.is_some_and(|l| seen.body.len() > l) {
            log.lock().unwrap().push(seen);
            let _ = s.write_all(b"INSTREAM size limit exceeded. ERROR\0").await;
            return;
        }
    }
    log.lock().unwrap().push(seen);
    let reply: &[u8] = match mode {
        Mode::Hit => b"stream: Fake.Test-Virus FOUND\0",
        Mode::Miss => b"stream: OK\0",
        Mode::Error => b"stream: Can't allocate memory ERROR\0",
        Mode::Garbage => b"\xff\xfe<html>hello</html>\r\n",
        Mode::Timeout => return stall(s).await,
        Mode::Close => return,
    };
    let _ = s.write_all(reply).await;
}

async fn fake_clamd(mode: Mode) -> (Endpoint, Log) {
    fake_tcp(move |s, log| clamd_session(s, log, mode, None)).await
}

fn clamd_cfg(primary: Vec<Endpoint>, backup: Vec<Endpoint>) -> ClamdConfig {
    ClamdConfig {
        primary,
        backup,
        timeout: Duration::from_secs(5),
        scan_timeout: Duration::from_secs(10),
    }
}

/// Scans and records every health report: (role, answered, time taken). The callback
/// borrows local state, as the pipeline's will.
async fn clamd_scan_timed(
    cfg: &ClamdConfig,
    spool: &Spool,
) -> (Result<VirusVerdict, ScanError>, Vec<(ScannerRole, bool, Duration)>) {
    let seen = Mutex::new(Vec::new());
    let health = |role, result: Result<(), &ScanError>, took: Duration| {
        seen.lock().unwrap().push((role, result.is_ok(), took));
    };
    let verdict = clamd::scan(cfg, spool, &health).await;
    (verdict, seen.into_inner().unwrap())
}

/// [`clamd_scan_timed`] without the times.
async fn clamd_scan(cfg: &ClamdConfig, spool: &Spool) -> (Result<VirusVerdict, ScanError>, Vec<(ScannerRole, bool)>) {
    let (verdict, seen) = clamd_scan_timed(cfg, spool).await;
    (verdict, seen.into_iter().map(|(role, ok, _)| (role, ok)).collect())
}

#[test]
fn every_scan_future_can_be_spawned_on_a_multi_threaded_runtime() {
    fn assert_send<T: Send>(_: &T) {}
    let dir = scratch("send");
    let msg = spool(&dir, MESSAGE, 1 << 20);
    let cfg = clamd_cfg(vec![], vec![]);
    let health = |_: ScannerRole, _: Result<(), &ScanError>, _: Duration| {};
    assert_send(&clamd::scan(&cfg, &msg, &health));
    assert_send(&spamd::check(&spamd_cfg(dead_endpoint()), &msg));
    let rcpts = Vec::new();
    assert_send(&rspamd::check(&rspamd_cfg(dead_endpoint()), &msg, "", &rcpts, None));
}

#[tokio::test]
async fn clamd_hit_names_the_virus_and_the_stream_is_exact() {
    let dir = scratch("clamd-hit");
    let (ep, log) = fake_clamd(Mode::Hit).await;
    let msg = spool(&dir, MESSAGE, 1 << 20);
    let (verdict, health) = clamd_scan(&clamd_cfg(vec![ep], vec![]), &msg).await;
    assert_eq!(verdict.unwrap(), VirusVerdict::Infected(vec!["Fake.Test-Virus".into()]));
    assert_eq!(health, [(ScannerRole::Primary, true)]);
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.head, b"zINSTREAM\0");
    assert_eq!(seen.body, MESSAGE);
}

#[tokio::test]
async fn clamd_miss_is_clean() {
    let dir = scratch("clamd-miss");
    let (ep, _) = fake_clamd(Mode::Miss).await;
    let (verdict, _) = clamd_scan(&clamd_cfg(vec![ep], vec![]), &spool(&dir, MESSAGE, 1 << 20)).await;
    assert_eq!(verdict.unwrap(), VirusVerdict::Clean);
}

#[tokio::test]
async fn clamd_error_reply_is_a_temporary_scanner_error() {
    let dir = scratch("clamd-error");
    let (ep, _) = fake_clamd(Mode::Error).await;
    let (verdict, health) = clamd_scan(&clamd_cfg(vec![ep], vec![]), &spool(&dir, MESSAGE, 1 << 20)).await;
    let e = verdict.unwrap_err();
    assert!(
        matches!(&e, ScanError::Scanner { reply, .. } if reply.contains("Can't allocate memory")),
        "{e}"
    );
    assert!(e.is_temporary() && !e.is_timeout());
    assert_eq!(health, [(ScannerRole::Primary, false)]);
}

#[tokio::test]
async fn clamd_garbage_is_a_protocol_error() {
    let dir = scratch("clamd-garbage");
    let (ep, _) = fake_clamd(Mode::Garbage).await;
    let (verdict, _) = clamd_scan(&clamd_cfg(vec![ep], vec![]), &spool(&dir, MESSAGE, 1 << 20)).await;
    assert!(matches!(verdict, Err(ScanError::Protocol { .. })), "{verdict:?}");
}

#[tokio::test]
async fn clamd_closing_at_once_is_an_error_not_a_verdict() {
    let dir = scratch("clamd-close");
    let (ep, _) = fake_clamd(Mode::Close).await;
    let (verdict, _) = clamd_scan(&clamd_cfg(vec![ep], vec![]), &spool(&dir, MESSAGE, 1 << 20)).await;
    let e = verdict.unwrap_err();
    assert!(matches!(e, ScanError::Protocol { .. } | ScanError::Io { .. }), "{e:?}");
}

#[tokio::test]
async fn clamd_silence_times_out_within_the_step_timeout() {
    let dir = scratch("clamd-timeout");
    let (ep, _) = fake_clamd(Mode::Timeout).await;
    let mut cfg = clamd_cfg(vec![ep], vec![]);
    cfg.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let (verdict, health) = clamd_scan_timed(&cfg, &spool(&dir, MESSAGE, 1 << 20)).await;
    let e = verdict.unwrap_err();
    assert!(e.is_timeout() && e.is_temporary(), "{e:?}");
    assert!(e.to_string().contains("reply: timed out"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let [(ScannerRole::Primary, false, took)] = health[..] else {
        panic!("{health:?}");
    };
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn clamd_whole_attempt_is_bounded_by_the_scan_timeout() {
    let dir = scratch("clamd-scan-timeout");
    let (ep, _) = fake_clamd(Mode::Timeout).await;
    let mut cfg = clamd_cfg(vec![ep], vec![]);
    cfg.scan_timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let (verdict, _) = clamd_scan(&cfg, &spool(&dir, MESSAGE, 1 << 20)).await;
    let e = verdict.unwrap_err();
    assert!(e.is_timeout() && e.to_string().contains("scan: timed out"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn primary_down_then_backup_answers_and_health_saw_each_attempt() {
    let dir = scratch("clamd-backup");
    let (garbage, _) = fake_clamd(Mode::Garbage).await;
    let (backup, backup_log) = fake_clamd(Mode::Hit).await;
    let cfg = clamd_cfg(vec![dead_endpoint(), garbage], vec![backup]);
    let (verdict, health) = clamd_scan(&cfg, &spool(&dir, MESSAGE, 1 << 20)).await;
    assert_eq!(verdict.unwrap(), VirusVerdict::Infected(vec!["Fake.Test-Virus".into()]));
    assert_eq!(
        health,
        [
            (ScannerRole::Primary, false),
            (ScannerRole::Primary, false),
            (ScannerRole::Backup, true),
        ]
    );
    assert_eq!(backup_log.lock().unwrap()[0].body, MESSAGE);
}

#[tokio::test]
async fn a_working_primary_means_the_backup_is_never_asked() {
    let dir = scratch("clamd-primary-ok");
    let (primary, _) = fake_clamd(Mode::Miss).await;
    let (backup, backup_log) = fake_clamd(Mode::Hit).await;
    let (verdict, health) = clamd_scan(&clamd_cfg(vec![primary], vec![backup]), &spool(&dir, MESSAGE, 1 << 20)).await;
    assert_eq!(verdict.unwrap(), VirusVerdict::Clean);
    assert_eq!(health, [(ScannerRole::Primary, true)]);
    assert!(backup_log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn all_scanners_down_is_an_error_after_trying_each() {
    let dir = scratch("clamd-all-down");
    let cfg = clamd_cfg(vec![dead_endpoint()], vec![dead_endpoint(), dead_endpoint()]);
    let (verdict, health) = clamd_scan(&cfg, &spool(&dir, MESSAGE, 1 << 20)).await;
    assert!(matches!(verdict, Err(ScanError::Connect { .. })), "{verdict:?}");
    assert_eq!(
        health,
        [
            (ScannerRole::Primary, false),
            (ScannerRole::Backup, false),
            (ScannerRole::Backup, false),
        ]
    );
    let (verdict, health) = clamd_scan(&clamd_cfg(vec![], vec![]), &spool(&dir, MESSAGE, 1 << 20)).await;
    assert!(matches!(verdict, Err(ScanError::NotConfigured)));
    assert!(health.is_empty());
}

#[tokio::test]
async fn a_large_spooled_message_is_streamed_in_chunks_byte_for_byte() {
    let dir = scratch("clamd-large");
    let (ep, log) = fake_clamd(Mode::Miss).await;
    let body = big_message(3 * 256 * 1024 + 12_345);
    let msg = spool(&dir, &body, 64 * 1024);
    assert!(msg.path().is_some(), "the message must be in a file for this test");
    let (verdict, _) = clamd_scan(&clamd_cfg(vec![ep], vec![]), &msg).await;
    assert_eq!(verdict.unwrap(), VirusVerdict::Clean);
    let seen = log.lock().unwrap()[0].clone();
    assert!(seen.body == body, "the fake received different bytes");
    assert_eq!(seen.chunks, [262_144, 262_144, 262_144, 12_345]);
    // The same from memory.
    let (ep, log) = fake_clamd(Mode::Miss).await;
    let msg = spool(&dir, &body, 8 << 20);
    assert!(msg.path().is_none());
    clamd_scan(&clamd_cfg(vec![ep], vec![]), &msg).await.0.unwrap();
    let seen = log.lock().unwrap()[0].clone();
    assert!(seen.body == body);
    assert_eq!(seen.chunks.len(), 4);
}

#[tokio::test]
async fn clamds_stream_limit_is_too_large_even_when_it_closes_mid_stream() {
    let dir = scratch("clamd-limit");
    let (ep, _) = fake_tcp(|s, log| clamd_session(s, log, Mode::Miss, Some(100_000))).await;
    let body = big_message(8 << 20);
    let (verdict, health) = clamd_scan(&clamd_cfg(vec![ep.clone()], vec![]), &spool(&dir, &body, 1 << 20)).await;
    let e = verdict.unwrap_err();
    assert!(
        matches!(e, ScanError::TooLarge { size, .. } if size == 8 << 20),
        "{e:?}"
    );
    assert!(!e.is_temporary());
    assert_eq!(health, [(ScannerRole::Primary, false)]);
    // Small enough to be sent whole before the answer arrives.
    let (verdict, _) = clamd_scan(&clamd_cfg(vec![ep], vec![]), &spool(&dir, &body[..150_000], 1 << 20)).await;
    assert!(matches!(verdict, Err(ScanError::TooLarge { .. })), "{verdict:?}");
}

#[tokio::test]
async fn clamd_over_a_unix_socket() {
    let dir = scratch("clamd-unix");
    let path = dir.join("clamd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let log: Log = Arc::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(clamd_session(s, log2.clone(), Mode::Hit, None));
        }
    });
    let ep = Endpoint::parse(&format!("unix:{}", path.display())).unwrap();
    let (verdict, _) = clamd_scan(&clamd_cfg(vec![ep], vec![]), &spool(&dir, MESSAGE, 1 << 20)).await;
    assert!(matches!(verdict.unwrap(), VirusVerdict::Infected(_)));
    assert_eq!(log.lock().unwrap()[0].body, MESSAGE);
}

// ---------------------------------------------------------------- spamd

async fn spamd_session(mut s: tokio::net::TcpStream, log: Log, mode: Mode) {
    if mode == Mode::Close {
        return;
    }
    let head = read_head(&mut s).await;
    let body = read_exact_or_eof(&mut s, content_length(&head))
        .await
        .unwrap_or_default();
    log.lock().unwrap().push(Seen {
        head,
        body,
        chunks: Vec::new(),
    });
    let reply: &[u8] = match mode {
        Mode::Hit => {
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 24\r\nSpam: True ; 1002.5 / 5.0\r\n\r\nGTUBE,MISSING_DATE,X_ONE"
        }
        Mode::Miss => b"SPAMD/1.1 0 EX_OK\r\nContent-length: 11\r\nSpam: False ; 0.9 / 5.0\r\n\r\nMISSING_MID",
        Mode::Error => b"SPAMD/1.0 76 Bad header line: (Content-Length mismatch)\r\n",
        Mode::Garbage => b"220 mail.example.com ESMTP ready\r\n",
        Mode::Timeout => return stall(s).await,
        Mode::Close => return,
    };
    let _ = s.write_all(reply).await;
}

fn spamd_cfg(endpoint: Endpoint) -> SpamdConfig {
    SpamdConfig {
        endpoint,
        timeout: Duration::from_secs(5),
        max_size: 500 * 1024,
        user: Some("amavis".into()),
    }
}

#[tokio::test]
async fn spamd_hit_gives_score_threshold_and_rules_from_an_exact_request() {
    let dir = scratch("spamd-hit");
    let (ep, log) = fake_tcp(|s, log| spamd_session(s, log, Mode::Hit)).await;
    let v = spamd::check(&spamd_cfg(ep), &spool(&dir, MESSAGE, 1 << 20))
        .await
        .unwrap();
    assert!(v.is_spam);
    assert_eq!((v.score, v.required), (1002.5, 5.0));
    assert_eq!(v.tests, ["GTUBE", "MISSING_DATE", "X_ONE"]);
    let seen = log.lock().unwrap()[0].clone();
    let want = format!(
        "SYMBOLS SPAMC/1.5\r\nContent-length: {}\r\nUser: amavis\r\n\r\n",
        MESSAGE.len()
    );
    assert_eq!(String::from_utf8_lossy(&seen.head), want);
    assert_eq!(seen.body, MESSAGE);
}

#[tokio::test]
async fn spamd_miss_is_not_spam() {
    let dir = scratch("spamd-miss");
    let (ep, _) = fake_tcp(|s, log| spamd_session(s, log, Mode::Miss)).await;
    let v = spamd::check(&spamd_cfg(ep), &spool(&dir, MESSAGE, 1 << 20))
        .await
        .unwrap();
    assert!(!v.is_spam);
    assert_eq!(v.score, 0.9);
    assert_eq!(v.tests, ["MISSING_MID"]);
}

#[tokio::test]
async fn spamd_error_garbage_close_and_silence_are_errors_of_their_kind() {
    let dir = scratch("spamd-errors");
    let msg = spool(&dir, MESSAGE, 1 << 20);
    let (ep, _) = fake_tcp(|s, log| spamd_session(s, log, Mode::Error)).await;
    let e = spamd::check(&spamd_cfg(ep), &msg).await.unwrap_err();
    assert!(
        matches!(&e, ScanError::Scanner { reply, .. } if reply.contains("76 Bad header")),
        "{e:?}"
    );
    let (ep, _) = fake_tcp(|s, log| spamd_session(s, log, Mode::Garbage)).await;
    let e = spamd::check(&spamd_cfg(ep), &msg).await.unwrap_err();
    assert!(matches!(e, ScanError::Protocol { .. }), "{e:?}");
    let (ep, _) = fake_tcp(|s, log| spamd_session(s, log, Mode::Close)).await;
    let e = spamd::check(&spamd_cfg(ep), &msg).await.unwrap_err();
    assert!(matches!(e, ScanError::Protocol { .. } | ScanError::Io { .. }), "{e:?}");
    let (ep, _) = fake_tcp(|s, log| spamd_session(s, log, Mode::Timeout)).await;
    let mut cfg = spamd_cfg(ep);
    cfg.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let e = spamd::check(&cfg, &msg).await.unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let e = spamd::check(&spamd_cfg(dead_endpoint()), &msg).await.unwrap_err();
    assert!(matches!(e, ScanError::Connect { .. }), "{e:?}");
}

#[tokio::test]
async fn a_message_over_spamds_max_size_is_not_sent() {
    let dir = scratch("spamd-max");
    let (ep, log) = fake_tcp(|s, log| spamd_session(s, log, Mode::Hit)).await;
    let mut cfg = spamd_cfg(ep);
    cfg.max_size = 1000;
    let e = spamd::check(&cfg, &spool(&dir, &big_message(1001), 1 << 20))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ScanError::TooLarge {
                size: 1001,
                limit: Some(1000),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_temporary());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(log.lock().unwrap().is_empty(), "the fake was contacted");
    // At the limit it is sent, from a file, whole.
    let body = big_message(1000);
    let v = spamd::check(&cfg, &spool(&dir, &body, 100)).await.unwrap();
    assert!(v.is_spam);
    assert!(log.lock().unwrap()[0].body == body);
}

// ---------------------------------------------------------------- rspamd

async fn rspamd_session(mut s: tokio::net::TcpStream, log: Log, mode: Mode) {
    if mode == Mode::Close {
        return;
    }
    let head = read_head(&mut s).await;
    let body = read_exact_or_eof(&mut s, content_length(&head))
        .await
        .unwrap_or_default();
    log.lock().unwrap().push(Seen {
        head,
        body,
        chunks: Vec::new(),
    });
    let json = match mode {
        Mode::Hit => {
            r#"{"is_skipped":false,"score":1003.1,"required_score":15.0,"action":"reject","symbols":{"GTUBE":{"name":"GTUBE","score":0.0},"MISSING_DATE":{"name":"MISSING_DATE","score":1.0}}}"#
        }
        Mode::Miss => r#"{"is_skipped":false,"score":0.5,"required_score":15.0,"action":"no action","symbols":{}}"#,
        Mode::Error => {
            let _ = s
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 26\r\nConnection: close\r\n\r\n{\"error\":\"worker failure\"}")
                .await;
            return;
        }
        Mode::Garbage => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!")
                .await;
            return;
        }
        Mode::Timeout => return stall(s).await,
        Mode::Close => return,
    };
    let reply = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nServer: rspamd/3.8\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
    );
    let _ = s.write_all(reply.as_bytes()).await;
}

fn rspamd_cfg(endpoint: Endpoint) -> RspamdConfig {
    RspamdConfig {
        endpoint,
        timeout: Duration::from_secs(5),
        max_size: 1 << 20,
    }
}

async fn rspamd_check(cfg: &RspamdConfig, msg: &Spool) -> Result<sc::spamd::SpamVerdict, ScanError> {
    let rcpts = ["b@example.org".to_string(), "c@example.org".to_string()];
    rspamd::check(cfg, msg, "a@example.com", &rcpts, Some("192.0.2.7")).await
}

#[tokio::test]
async fn rspamd_hit_is_spam_and_the_envelope_went_as_headers() {
    let dir = scratch("rspamd-hit");
    let (ep, log) = fake_tcp(|s, log| rspamd_session(s, log, Mode::Hit)).await;
    let v = rspamd_check(&rspamd_cfg(ep), &spool(&dir, MESSAGE, 1 << 20))
        .await
        .unwrap();
    assert!(v.is_spam);
    assert_eq!((v.score, v.required), (1003.1, 15.0));
    assert_eq!(v.tests, ["GTUBE", "MISSING_DATE"]);
    assert_eq!(v.action.as_deref(), Some("reject"));
    let seen = log.lock().unwrap()[0].clone();
    let want = format!(
        "POST /checkv2 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\nFrom: a@example.com\r\nRcpt: b@example.org\r\nRcpt: c@example.org\r\nIP: 192.0.2.7\r\n\r\n",
        MESSAGE.len()
    );
    assert_eq!(String::from_utf8_lossy(&seen.head), want);
    assert_eq!(seen.body, MESSAGE);
}

#[tokio::test]
async fn rspamd_miss_is_ham() {
    let dir = scratch("rspamd-miss");
    let (ep, _) = fake_tcp(|s, log| rspamd_session(s, log, Mode::Miss)).await;
    let v = rspamd_check(&rspamd_cfg(ep), &spool(&dir, MESSAGE, 1 << 20))
        .await
        .unwrap();
    assert!(!v.is_spam);
    assert!(v.tests.is_empty());
    assert_eq!(v.action.as_deref(), Some("no action"));
}

#[tokio::test]
async fn rspamd_error_garbage_close_silence_and_size_are_errors_of_their_kind() {
    let dir = scratch("rspamd-errors");
    let msg = spool(&dir, MESSAGE, 1 << 20);
    let (ep, _) = fake_tcp(|s, log| rspamd_session(s, log, Mode::Error)).await;
    let e = rspamd_check(&rspamd_cfg(ep), &msg).await.unwrap_err();
    assert!(
        matches!(&e, ScanError::Scanner { reply, .. } if reply.contains("500")),
        "{e:?}"
    );
    let (ep, _) = fake_tcp(|s, log| rspamd_session(s, log, Mode::Garbage)).await;
    let e = rspamd_check(&rspamd_cfg(ep), &msg).await.unwrap_err();
    assert!(matches!(e, ScanError::Protocol { .. }), "{e:?}");
    let (ep, _) = fake_tcp(|s, log| rspamd_session(s, log, Mode::Close)).await;
    let e = rspamd_check(&rspamd_cfg(ep), &msg).await.unwrap_err();
    assert!(matches!(e, ScanError::Protocol { .. } | ScanError::Io { .. }), "{e:?}");
    let (ep, _) = fake_tcp(|s, log| rspamd_session(s, log, Mode::Timeout)).await;
    let mut cfg = rspamd_cfg(ep);
    cfg.timeout = Duration::from_millis(300);
    let e = rspamd_check(&cfg, &msg).await.unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    let (ep, log) = fake_tcp(|s, log| rspamd_session(s, log, Mode::Hit)).await;
    let mut cfg = rspamd_cfg(ep);
    cfg.max_size = 10;
    let e = rspamd_check(&cfg, &msg).await.unwrap_err();
    assert!(matches!(e, ScanError::TooLarge { .. }), "{e:?}");
    assert!(log.lock().unwrap().is_empty());
}
