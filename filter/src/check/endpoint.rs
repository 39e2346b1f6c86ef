//! check, shared by the external scanner clients (clamd, spamd, rspamd): connecting to a
//! scanner's endpoint (parsed once by the configuration, `config::endpoint`) with a time
//! bound, the one error type every client returns, and streaming a spooled message
//! in large chunks without holding it whole in memory, and splitting the header section of
//! the HTTP-like replies (spamd, rspamd). It knows no scanner's verdicts and touches
//! nothing but the socket it opens.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

pub use crate::config::endpoint::{Endpoint, EndpointError};
use crate::message::spool::{Spool, SpoolReader};

/// How much of a spooled message is read and sent at a time: large enough that a big
/// message costs few system calls and few clamd chunk headers, small enough that neither
/// side needs a large buffer (clamd reads each chunk whole before scanning on).
pub const CHUNK: usize = 256 * 1024;

impl Endpoint {
    /// Connects, bounded by `timeout` (name resolution included).
    pub async fn connect(&self, timeout: Duration) -> Result<Conn, ScanError> {
        let attempt = async {
            match self {
                Endpoint::Tcp(host, port) => {
                    let s = TcpStream::connect((host.as_str(), *port)).await?;
                    // Chunks are large; Nagle would only delay the short trailers.
                    s.set_nodelay(true)?;
                    Ok(Conn::Tcp(s))
                }
                Endpoint::Unix(path) => Ok(Conn::Unix(UnixStream::connect(path).await?)),
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(source)) => Err(ScanError::Connect {
                endpoint: self.to_string(),
                source,
            }),
            Err(_) => Err(ScanError::Timeout {
                endpoint: self.to_string(),
                stage: "connect",
            }),
        }
    }
}

/// Why a scan produced no verdict. Every variant names the endpoint (or the message)
/// so the event that reports it says which scanner failed and how.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// No endpoint is configured (a configuration gap, reported rather than panicking).
    #[error("no scanner endpoint configured")]
    NotConfigured,
    /// The connection could not be made.
    #[error("{endpoint}: connect: {source}")]
    Connect {
        /// The scanner.
        endpoint: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A step took longer than the configured timeout.
    #[error("{endpoint}: {stage}: timed out")]
    Timeout {
        /// The scanner.
        endpoint: String,
        /// What we were doing (connect, send, reply, scan).
        stage: &'static str,
    },
    /// Reading or writing the socket failed after connecting (reset, broken pipe).
    #[error("{endpoint}: {stage}: {source}")]
    Io {
        /// The scanner.
        endpoint: String,
        /// What we were doing.
        stage: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The scanner answered something that is not its protocol (or nothing at all).
    #[error("{endpoint}: protocol error: {detail}")]
    Protocol {
        /// The scanner.
        endpoint: String,
        /// What was wrong.
        detail: String,
    },
    /// The message is larger than the scanner takes (clamd's StreamMaxLength), or than
    /// the configured limit for sending it at all.
    #[error("{endpoint}: message of {size} bytes is too large for the scanner{}", limit.map(|l| format!(" (limit {l})")).unwrap_or_default())]
    TooLarge {
        /// The scanner.
        endpoint: String,
        /// The message size.
        size: u64,
        /// The limit, when we know it.
        limit: Option<u64>,
    },
    /// The scanner answered in its protocol that it failed (clamd `... ERROR`, a spamd
    /// non-zero EX code, an rspamd HTTP error or `error` field).
    #[error("{endpoint}: scanner error: {reply}")]
    Scanner {
        /// The scanner.
        endpoint: String,
        /// Its reply, cut to a loggable length.
        reply: String,
    },
    /// Reading the spooled message failed (our disk, not the scanner).
    #[error("reading the spooled message: {source}")]
    Spool {
        /// The cause.
        source: std::io::Error,
    },
}

impl ScanError {
    /// Whether the scan ran out of time (the pipeline counts timeouts apart).
    pub fn is_timeout(&self) -> bool {
        matches!(self, ScanError::Timeout { .. })
    }

    /// Whether trying again later could succeed. A message too large for the scanner
    /// stays too large; every other failure is the scanner's or our environment's state,
    /// so policy may tempfail the message (4xx) rather than pass it unchecked.
    pub fn is_temporary(&self) -> bool {
        match self {
            ScanError::TooLarge { .. } => false,
            ScanError::NotConfigured
            | ScanError::Connect { .. }
            | ScanError::Timeout { .. }
            | ScanError::Io { .. }
            | ScanError::Protocol { .. }
            | ScanError::Scanner { .. }
            | ScanError::Spool { .. } => true,
        }
    }
}

/// Cuts a scanner's reply to a loggable length, as text (invalid UTF-8 replaced).
pub(crate) fn excerpt(reply: &[u8]) -> String {
    const MAX: usize = 200;
    let cut = &reply[..reply.len().min(MAX)];
    let mut s = String::from_utf8_lossy(cut).trim().to_string();
    if reply.len() > MAX {
        s.push('…');
    }
    s
}

/// Splits a reply of the HTTP-like protocols (spamd's `SPAMD/1.x`, rspamd's HTTP/1.1) into
/// its header section, as text, and the bytes after the empty line.
pub(crate) fn split_head(reply: &[u8]) -> Option<(&str, &[u8])> {
    let at = reply.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&reply[..at]).ok()?;
    Some((head, &reply[at + 4..]))
}

/// The value of the first header `name` (case-insensitive), trimmed; the status line is
/// skipped.
pub(crate) fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// A connection to a scanner, over TCP or a Unix socket.
#[derive(Debug)]
pub enum Conn {
    /// TCP.
    Tcp(TcpStream),
    /// Unix socket.
    Unix(UnixStream),
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// One scanner exchange on one connection: every read and write bounded by `timeout`,
/// every failure turned into a [`ScanError`] naming the endpoint.
#[derive(Debug)]
pub(crate) struct Session {
    conn: Conn,
    endpoint: String,
    timeout: Duration,
}

impl Session {
    /// Connects to `endpoint` within `timeout`.
    pub(crate) async fn open(endpoint: &Endpoint, timeout: Duration) -> Result<Session, ScanError> {
        let conn = endpoint.connect(timeout).await?;
        Ok(Session {
            conn,
            endpoint: endpoint.to_string(),
            timeout,
        })
    }

    /// The endpoint's name, for errors.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A protocol error on this endpoint.
    pub(crate) fn protocol(&self, detail: impl Into<String>) -> ScanError {
        ScanError::Protocol {
            endpoint: self.endpoint.clone(),
            detail: detail.into(),
        }
    }

    /// Writes all of `bytes`.
    pub(crate) async fn write(&mut self, stage: &'static str, bytes: &[u8]) -> Result<(), ScanError> {
        match tokio::time::timeout(self.timeout, self.conn.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(self.io(stage, source)),
            Err(_) => Err(self.timed_out(stage)),
        }
    }

    /// Reads what is there (at least one byte, or 0 at end of stream).
    pub(crate) async fn read(&mut self, stage: &'static str, buf: &mut [u8]) -> Result<usize, ScanError> {
        match tokio::time::timeout(self.timeout, self.conn.read(buf)).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(source)) => Err(self.io(stage, source)),
            Err(_) => Err(self.timed_out(stage)),
        }
    }

    /// Reads until end of stream or until `done(bytes so far)` says the reply is complete;
    /// more than `max` bytes is a protocol error (a scanner never needs that much to answer,
    /// and a broken one must not make us buffer without bound).
    pub(crate) async fn read_reply(&mut self, max: usize, done: impl Fn(&[u8]) -> bool) -> Result<Vec<u8>, ScanError> {
        let mut reply = Vec::with_capacity(512);
        let mut buf = [0u8; 8192];
        loop {
            if done(&reply) {
                return Ok(reply);
            }
            let n = self.read("reply", &mut buf).await?;
            if n == 0 {
                return Ok(reply);
            }
            reply.extend_from_slice(&buf[..n]);
            if reply.len() > max {
                return Err(self.protocol(format!("reply longer than {max} bytes")));
            }
        }
    }

    /// Streams the spooled message, each chunk framed by `frame` (clamd's length
    /// prefix) or sent as is. The message is never held whole: memory is sent from the
    /// spool's own buffer, a file is read [`CHUNK`] bytes at a time.
    pub(crate) async fn send_spool(
        &mut self,
        spool: &Spool,
        frame: Option<fn(usize) -> [u8; 4]>,
    ) -> Result<u64, ScanError> {
        let reader = spool.reader().map_err(|source| ScanError::Spool { source })?;
        let mut sent = 0u64;
        match reader {
            SpoolReader::Memory(bytes) => {
                for chunk in bytes.chunks(CHUNK) {
                    self.send_chunk(chunk, frame).await?;
                    sent += chunk.len() as u64;
                }
            }
            SpoolReader::File(file) => {
                // The spool file is read through tokio's blocking pool so a slow disk
                // never stalls the reactor that serves other messages.
                let mut file = tokio::fs::File::from_std(file);
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let n = fill(&mut file, &mut buf)
                        .await
                        .map_err(|source| ScanError::Spool { source })?;
                    if n == 0 {
                        break;
                    }
                    self.send_chunk(&buf[..n], frame).await?;
                    sent += n as u64;
                }
            }
        }
        Ok(sent)
    }

    async fn send_chunk(&mut self, chunk: &[u8], frame: Option<fn(usize) -> [u8; 4]>) -> Result<(), ScanError> {
        if let Some(frame) = frame {
            self.write("send", &frame(chunk.len())).await?;
        }
        self.write("send", chunk).await
    }

    fn io(&self, stage: &'static str, source: std::io::Error) -> ScanError {
        ScanError::Io {
            endpoint: self.endpoint.clone(),
            stage,
            source,
        }
    }

    fn timed_out(&self, stage: &'static str) -> ScanError {
        ScanError::Timeout {
            endpoint: self.endpoint.clone(),
            stage,
        }
    }
}

/// Reads until `buf` is full or the file ends, so every chunk but the last is full size.
async fn fill(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_too_large_message_is_a_permanent_failure() {
        let e = ScanError::TooLarge {
            endpoint: "x".into(),
            size: 10,
            limit: Some(5),
        };
        assert!(!e.is_temporary());
        assert!(e.to_string().contains("limit 5"));
        let t = ScanError::Timeout {
            endpoint: "x".into(),
            stage: "reply",
        };
        assert!(t.is_temporary() && t.is_timeout());
    }

    #[test]
    fn excerpts_are_cut_and_lossy() {
        assert_eq!(excerpt(b" ok \r\n"), "ok");
        let long = vec![b'a'; 500];
        assert_eq!(excerpt(&long).chars().count(), 201);
        assert_eq!(excerpt(b"\xffz"), "\u{fffd}z");
    }
}
