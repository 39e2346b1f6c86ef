//! check: the virus check's client of ClamAV's clamd. It streams the spooled message with
//! `zINSTREAM` (4-byte big-endian chunk lengths, ended by a zero-length chunk) and reads
//! `stream: OK`, `stream: <name> FOUND` or `... ERROR`. Like amavisd's `@av_scanners` and
//! `@av_scanners_backup`, it asks the primary scanners in turn and the backup ones only when
//! every primary failed, and reports each attempt to a health callback (the counters are
//! the caller's). It reads the spool and opens sockets; it decides nothing about the message.

use std::time::Duration;

use tokio::time::Instant;

use super::endpoint::{Endpoint, ScanError, Session, excerpt};
use crate::message::spool::Spool;

/// The most a clamd reply may hold: a few lines of virus names (AllMatchScan), never more.
const MAX_REPLY: usize = 64 * 1024;

/// Which clamd servers to ask and how long to wait.
#[derive(Debug, Clone)]
pub struct ClamdConfig {
    /// Asked first, in order, until one answers.
    pub primary: Vec<Endpoint>,
    /// Asked in order only when every primary failed.
    pub backup: Vec<Endpoint>,
    /// Bounds each step: connecting, each write of a chunk, waiting for the reply.
    pub timeout: Duration,
    /// Bounds one whole attempt on one server (connect, stream, verdict): a server that
    /// trickles never holds a message longer than this. The worst case for a scan is this
    /// times the number of servers.
    pub scan_timeout: Duration,
}

/// What clamd found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VirusVerdict {
    /// Nothing.
    Clean,
    /// These virus names (at least one).
    Infected(Vec<String>),
}

/// Which list the server that was asked belongs to (for health counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScannerRole {
    /// From `primary`.
    Primary,
    /// From `backup`.
    Backup,
}

/// The health callback: which list the server came from, whether it answered, how long
/// it took. `Sync` so that the scan future stays `Send`; `'a` so that it may borrow the
/// caller's state (a `dyn` alias would otherwise demand `'static`).
pub type Health<'a> = dyn Fn(ScannerRole, Result<(), &ScanError>, Duration) + Sync + 'a;

/// Scans the message: each primary endpoint in turn, then each backup, until one gives a
/// verdict. `health` is called once per server asked, with its role, whether it answered,
/// and how long it took. When all fail, the last failure is returned (an unreadable spool
/// stops at once: another server cannot help).
pub async fn scan(cfg: &ClamdConfig, spool: &Spool, health: &Health<'_>) -> Result<VirusVerdict, ScanError> {
    let mut last = None;
    let lists = [(ScannerRole::Primary, &cfg.primary), (ScannerRole::Backup, &cfg.backup)];
    for (role, list) in lists {
        for endpoint in list {
            let started = Instant::now();
            match scan_one(endpoint, cfg, spool).await {
                Ok(verdict) => {
                    health(role, Ok(()), started.elapsed());
                    return Ok(verdict);
                }
                Err(e) => {
                    health(role, Err(&e), started.elapsed());
                    if matches!(e, ScanError::Spool { .. }) {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
    }
    Err(last.unwrap_or(ScanError::NotConfigured))
}

/// One attempt on one server, bounded as a whole by `scan_timeout`.
async fn scan_one(endpoint: &Endpoint, cfg: &ClamdConfig, spool: &Spool) -> Result<VirusVerdict, ScanError> {
    match tokio::time::timeout(cfg.scan_timeout, instream(endpoint, cfg.timeout, spool)).await {
        Ok(result) => result,
        Err(_) => Err(ScanError::Timeout {
            endpoint: endpoint.to_string(),
            stage: "scan",
        }),
    }
}

async fn instream(endpoint: &Endpoint, timeout: Duration, spool: &Spool) -> Result<VirusVerdict, ScanError> {
    let mut s = Session::open(endpoint, timeout).await?;
    s.write("send", b"zINSTREAM\0").await?;
    let streamed = match s.send_spool(spool, Some(chunk_header)).await {
        Ok(_) => s.write("send", &[0, 0, 0, 0]).await,
        Err(e) => Err(e),
    };
    if let Err(e) = streamed {
        // clamd answers "INSTREAM size limit exceeded" and closes while we are still
        // sending, so the write fails: its reply, if one arrived, says why.
        if matches!(e, ScanError::Io { .. })
            && let Ok(reply) = s.read_reply(MAX_REPLY, reply_complete).await
            && parse_reply(&reply) == Reply::TooLarge
        {
            return Err(too_large(s.endpoint(), spool));
        }
        return Err(e);
    }
    let reply = s.read_reply(MAX_REPLY, reply_complete).await?;
    match parse_reply(&reply) {
        Reply::Clean => Ok(VirusVerdict::Clean),
        Reply::Infected(names) => Ok(VirusVerdict::Infected(names)),
        Reply::TooLarge => Err(too_large(s.endpoint(), spool)),
        Reply::Error(line) => Err(ScanError::Scanner {
            endpoint: s.endpoint().to_string(),
            reply: line,
        }),
        Reply::Garbage(why) => Err(s.protocol(why)),
    }
}

fn too_large(endpoint: &str, spool: &Spool) -> ScanError {
    ScanError::TooLarge {
        endpoint: endpoint.to_string(),
        size: spool.len(),
        // clamd does not say its StreamMaxLength.
        limit: None,
    }
}

/// INSTREAM's chunk length prefix. Chunks are at most [`super::endpoint::CHUNK`] bytes,
/// far below `u32::MAX`.
fn chunk_header(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

/// clamd ends a `z` command's reply with NUL and then closes the connection; stopping at
/// the NUL means a server that lingers before closing does not cost a timeout.
fn reply_complete(reply: &[u8]) -> bool {
    reply.last() == Some(&0)
}

/// A clamd reply, as understood.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Clean,
    Infected(Vec<String>),
    TooLarge,
    Error(String),
    Garbage(String),
}

/// Parses an INSTREAM reply: NUL- or newline-separated lines of `stream: OK`,
/// `stream: <name> FOUND`, or `<text> ERROR`. An error anywhere wins (the scan did not
/// complete); names are collected from every FOUND line.
fn parse_reply(reply: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(reply);
    let mut names = Vec::new();
    let mut clean = false;
    for line in text.split(['\0', '\n']).map(str::trim).filter(|l| !l.is_empty()) {
        let body = line.strip_prefix("stream:").map_or(line, str::trim_start);
        if let Some(what) = body.strip_suffix("ERROR") {
            if what.contains("size limit exceeded") {
                return Reply::TooLarge;
            }
            return Reply::Error(excerpt(line.as_bytes()));
        } else if let Some(name) = body.strip_suffix(" FOUND") {
            // `body` is trimmed at the start, so a name before " FOUND" is never empty.
            names.push(name.trim().to_string());
        } else if body == "OK" {
            clean = true;
        } else {
            return Reply::Garbage(format!("unexpected reply: {}", excerpt(line.as_bytes())));
        }
    }
    match (names.is_empty(), clean) {
        (false, _) => Reply::Infected(names),
        (true, true) => Reply::Clean,
        (true, false) => Reply::Garbage("empty reply".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn replies_parse_to_verdicts() {
        let cases: &[(&[u8], Reply)] = &[
            (b"stream: OK\0", Reply::Clean),
            (b"stream: OK", Reply::Clean),
            (
                b"stream: Eicar-Test-Signature FOUND\0",
                Reply::Infected(vec!["Eicar-Test-Signature".into()]),
            ),
            (
                b"stream: A.B FOUND\0stream: C FOUND\0",
                Reply::Infected(vec!["A.B".into(), "C".into()]),
            ),
            (b"INSTREAM size limit exceeded. ERROR\0", Reply::TooLarge),
            (
                b"stream: Can't allocate memory ERROR\0",
                Reply::Error("stream: Can't allocate memory ERROR".into()),
            ),
            (b"", Reply::Garbage("empty reply".into())),
            (
                b"stream:  FOUND\0",
                Reply::Garbage("unexpected reply: stream:  FOUND".into()),
            ),
            (b"PONG\0", Reply::Garbage("unexpected reply: PONG".into())),
        ];
        for (reply, want) in cases {
            assert_eq!(&parse_reply(reply), want, "{:?}", String::from_utf8_lossy(reply));
        }
    }

    #[test]
    fn chunk_headers_are_big_endian() {
        assert_eq!(chunk_header(0x0004_0000), [0, 4, 0, 0]);
        assert_eq!(chunk_header(1), [0, 0, 0, 1]);
    }

    proptest! {
        #[test]
        fn any_reply_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_reply(&bytes);
        }

        #[test]
        fn reply_like_text_parses_without_panic(s in "(stream: )?[ -~\\x00\\n]{0,80}( FOUND| ERROR| OK)?\\x00?") {
            let _ = parse_reply(s.as_bytes());
        }
    }
}
