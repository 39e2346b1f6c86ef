//! check, shared by the external scanner clients (clamd, spamd, rspamd): where a scanner
//! listens (`tcp:host:port`, `host:port`, `[v6]:port`, `unix:/path`), connecting to it with
//! a time bound, the one error type every client returns, and streaming a spooled message
//! in large chunks without holding it whole in memory, and splitting the header section of
//! the HTTP-like replies (spamd, rspamd). It knows no scanner's verdicts and touches
//! nothing but the socket it opens.

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::message::spool::{Spool, SpoolReader};

/// How much of a spooled message is read and sent at a time: large enough that a big
/// message costs few system calls and few clamd chunk headers, small enough that neither
/// side needs a large buffer (clamd reads each chunk whole before scanning on).
pub const CHUNK: usize = 256 * 1024;

/// Where a scanner listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A host name or IP literal (without brackets) and a port.
    Tcp(String, u16),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// Why an endpoint string was refused (a configuration error, reported with the string).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad scanner endpoint {spec:?}: {why}; expected tcp:host:port, host:port, [v6addr]:port or unix:/path")]
pub struct EndpointError {
    spec: String,
    why: &'static str,
}

impl Endpoint {
    /// Parses `tcp:127.0.0.1:3310`, `127.0.0.1:3310`, `[::1]:783`, `tcp:[::1]:783`,
    /// `localhost:783` or `unix:/run/clamav/clamd.ctl`.
    pub fn parse(spec: &str) -> Result<Endpoint, EndpointError> {
        let err = |why| EndpointError {
            spec: spec.to_string(),
            why,
        };
        let spec_trimmed = spec.trim();
        if let Some(path) = spec_trimmed.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(err("unix socket path must be absolute"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let rest = spec_trimmed.strip_prefix("tcp:").unwrap_or(spec_trimmed);
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner.split_once(']').ok_or_else(|| err("unclosed ["))?;
            (host, after.strip_prefix(':').ok_or_else(|| err("no port"))?)
        } else {
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| err("no port"))?;
            // An unbracketed IPv6 literal is ambiguous ("::1:783"): demand brackets.
            if host.contains(':') {
                return Err(err("an IPv6 address needs brackets"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(err("no host"));
        }
        if host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(err("bad host"));
        }
        let port: u16 = port.parse().map_err(|_| err("bad port"))?;
        if port == 0 {
            return Err(err("port 0"));
        }
        Ok(Endpoint::Tcp(host.to_string(), port))
    }

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

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(host, port) if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Endpoint::Tcp(host, port) => write!(f, "tcp:{host}:{port}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
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
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_endpoint_string_parses_or_is_refused_without_panic(s in "(tcp:|unix:)?\\[?[ -~]{0,30}") {
            if let Ok(ep) = Endpoint::parse(&s) {
                // What parses displays as something that parses to the same endpoint.
                prop_assert_eq!(Endpoint::parse(&ep.to_string()), Ok(ep));
            }
        }
    }

    #[test]
    fn endpoints_parse_in_every_documented_form() {
        let cases: &[(&str, Endpoint)] = &[
            ("tcp:127.0.0.1:3310", Endpoint::Tcp("127.0.0.1".into(), 3310)),
            ("127.0.0.1:3310", Endpoint::Tcp("127.0.0.1".into(), 3310)),
            ("[::1]:783", Endpoint::Tcp("::1".into(), 783)),
            ("tcp:[::1]:783", Endpoint::Tcp("::1".into(), 783)),
            ("localhost:11333", Endpoint::Tcp("localhost".into(), 11333)),
            (
                "unix:/run/clamav/clamd.ctl",
                Endpoint::Unix("/run/clamav/clamd.ctl".into()),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(&Endpoint::parse(spec).unwrap(), want, "{spec}");
        }
    }

    #[test]
    fn bad_endpoints_are_refused_with_the_reason() {
        for (spec, why) in [
            ("unix:relative.sock", "absolute"),
            ("127.0.0.1", "no port"),
            (":783", "no host"),
            ("host:99999", "bad port"),
            ("host:0", "port 0"),
            ("::1:783", "brackets"),
            ("[::1:783", "unclosed"),
            ("[::1]", "no port"),
        ] {
            let e = Endpoint::parse(spec).unwrap_err().to_string();
            assert!(e.contains(why), "{spec}: {e}");
        }
    }

    #[test]
    fn endpoints_display_as_they_parse() {
        for spec in ["tcp:127.0.0.1:3310", "tcp:[::1]:783", "unix:/run/x.sock"] {
            assert_eq!(Endpoint::parse(spec).unwrap().to_string(), spec);
        }
    }

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
