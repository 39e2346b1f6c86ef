//! One AgentX session with net-snmp's snmpd, as an explicit state machine:
//! `Connecting` (with exponential back-off capped at the ping interval, so after an
//! snmpd restart we are back within one ping interval) → `Opening` → `Registering` →
//! `Serving` (answer Get/GetNext/GetBulk from one frame, refuse every Set phase, ping
//! every interval and give up on the session when a ping goes unanswered) → back to
//! `Connecting`. Frames are read whole through a buffer (reads are cancel-safe inside
//! `select!`), and every answer is computed from memory, far under snmpd's 1 s timeout.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep, timeout};

use agent_mib::AMAVIS_OID;

use super::codec::{self, Data, Header, Pdu, Range, res, ty};
use crate::config::MasterAddr;
use crate::source::Source;
use crate::view::{Answer, Frame, MibView};

/// What goes wrong with a session; each ends it and we reconnect.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Socket trouble (including the master closing it).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The master sent something we cannot parse.
    #[error("bad frame from the master: {0}")]
    Codec(#[from] codec::CodecError),
    /// Open or Register refused.
    #[error("the master refused our {what}: error {code}")]
    Refused {
        /// Open or Register.
        what: &'static str,
        /// res.error.
        code: u16,
    },
    /// The master closed the session.
    #[error("the master closed the session (reason {0})")]
    Closed(u8),
    /// No answer in time.
    #[error("no answer from the master to our {0}")]
    Timeout(&'static str),
}

/// Configuration of the session loop.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The master.
    pub master: MasterAddr,
    /// Ping interval, also the cap of the reconnect back-off.
    pub ping: Duration,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Runs sessions forever: connect, serve until it breaks, back off, again.
pub async fn run(settings: Settings, source: Source, view: MibView) {
    let mut backoff = Duration::from_millis(250);
    let mut was_up = false;
    // Say once that the master cannot be reached, then keep trying quietly.
    let mut warned = false;
    loop {
        match connect(&settings.master).await {
            Ok(stream) => {
                let mut conn = Conn {
                    stream,
                    buf: Vec::with_capacity(4096),
                    session_id: 0,
                    packet_id: 0,
                };
                match conn.serve(&settings, &source, &view, &mut was_up).await {
                    Ok(()) => {}
                    Err(e) => tracing::warn!(master = ?settings.master, "AgentX session ended: {e}; reconnecting"),
                }
                if was_up {
                    backoff = Duration::from_millis(250);
                    warned = false;
                }
            }
            Err(e) => {
                if was_up || !warned {
                    tracing::warn!(master = ?settings.master, "cannot reach the AgentX master: {e}; retrying every {:?} at most", settings.ping);
                    was_up = false;
                    warned = true;
                } else {
                    tracing::debug!(master = ?settings.master, "cannot reach the AgentX master: {e}");
                }
            }
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(settings.ping);
    }
}

async fn connect(master: &MasterAddr) -> std::io::Result<Box<dyn Stream>> {
    let limit = Duration::from_secs(2);
    let io = |e: tokio::time::error::Elapsed| std::io::Error::new(std::io::ErrorKind::TimedOut, e);
    match master {
        MasterAddr::Tcp(hp) => {
            let s = timeout(limit, tokio::net::TcpStream::connect(hp.as_str()))
                .await
                .map_err(io)??;
            s.set_nodelay(true)?;
            Ok(Box::new(s))
        }
        MasterAddr::Unix(path) => Ok(Box::new(
            timeout(limit, tokio::net::UnixStream::connect(path))
                .await
                .map_err(io)??,
        )),
    }
}

struct Conn {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    session_id: u32,
    packet_id: u32,
}

impl Conn {
    fn next_packet(&mut self) -> u32 {
        self.packet_id = self.packet_id.wrapping_add(1);
        self.packet_id
    }

    /// Reads until one whole frame is buffered, then takes it out.
    async fn read_frame(&mut self) -> Result<(Header, Pdu), SessionError> {
        loop {
            if let Some((h, p, used)) = codec::decode(&self.buf)? {
                self.buf.drain(..used);
                return Ok((h, p));
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(SessionError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }

    /// Sends `frame` and waits for the Response to `packet_id` (answering nothing else:
    /// the master sends no requests before our registration is done).
    async fn call(&mut self, frame: Vec<u8>, packet_id: u32, what: &'static str) -> Result<Header, SessionError> {
        self.stream.write_all(&frame).await?;
        let wait = async {
            loop {
                let (h, pdu) = self.read_frame().await?;
                match pdu {
                    Pdu::Response { error, .. } if h.packet_id == packet_id => {
                        return if error == res::NO_ERROR {
                            Ok(h)
                        } else {
                            Err(SessionError::Refused { what, code: error })
                        };
                    }
                    Pdu::Close(reason) => return Err(SessionError::Closed(reason)),
                    Pdu::Response { .. }
                    | Pdu::Get(_)
                    | Pdu::GetNext(_)
                    | Pdu::GetBulk { .. }
                    | Pdu::TestSet
                    | Pdu::CommitSet
                    | Pdu::UndoSet
                    | Pdu::CleanupSet
                    | Pdu::Other(_) => {}
                }
            }
        };
        timeout(Duration::from_secs(5), wait)
            .await
            .map_err(|_| SessionError::Timeout(what))?
    }

    async fn serve(
        &mut self,
        s: &Settings,
        source: &Source,
        view: &MibView,
        was_up: &mut bool,
    ) -> Result<(), SessionError> {
        let id = self.next_packet();
        let opened = self
            .call(
                codec::open(id, 1, AMAVIS_OID, "avis-snmp-agent (AMAVIS-MIB)"),
                id,
                "Open",
            )
            .await?;
        self.session_id = opened.session_id;
        let id = self.next_packet();
        // One registration covers the whole amavis subtree, our amavis.4 included.
        self.call(codec::register(self.session_id, id, 1, AMAVIS_OID), id, "Register")
            .await?;
        tracing::info!(master = ?s.master, session = self.session_id, "registered with the AgentX master");
        *was_up = true;
        let mut next_ping = Instant::now() + s.ping;
        let mut ping_outstanding: Option<u32> = None;
        loop {
            tokio::select! {
                frame = self.read_frame() => {
                    let (h, pdu) = frame?;
                    if let Some(reply) = self.answer(&h, pdu, source, view, &mut ping_outstanding)? {
                        self.stream.write_all(&reply).await?;
                    }
                }
                () = tokio::time::sleep_until(next_ping) => {
                    if ping_outstanding.is_some() {
                        return Err(SessionError::Timeout("Ping"));
                    }
                    let id = self.next_packet();
                    self.stream.write_all(&codec::ping(self.session_id, id)).await?;
                    ping_outstanding = Some(id);
                    next_ping = Instant::now() + s.ping;
                }
            }
        }
    }

    fn answer(
        &self,
        h: &Header,
        pdu: Pdu,
        source: &Source,
        view: &MibView,
        ping: &mut Option<u32>,
    ) -> Result<Option<Vec<u8>>, SessionError> {
        let frame = || source.frame();
        let uptime = |f: &Frame| (f.snapshot.uptime_ticks() & 0xFFFF_FFFF) as u32;
        Ok(match pdu {
            Pdu::Get(ranges) => {
                let f = frame();
                let vbs = ranges
                    .iter()
                    .map(|r| (r.start.clone(), get(view, &f, &r.start)))
                    .collect::<Vec<_>>();
                Some(codec::response(h, uptime(&f), res::NO_ERROR, 0, &vbs))
            }
            Pdu::GetNext(ranges) => {
                let f = frame();
                let vbs = ranges.iter().map(|r| next(view, &f, r)).collect::<Vec<_>>();
                Some(codec::response(h, uptime(&f), res::NO_ERROR, 0, &vbs))
            }
            Pdu::GetBulk {
                non_repeaters,
                max_repetitions,
                ranges,
            } => {
                let f = frame();
                let vbs = bulk(
                    view,
                    &f,
                    usize::from(non_repeaters),
                    usize::from(max_repetitions),
                    &ranges,
                );
                Some(codec::response(h, uptime(&f), res::NO_ERROR, 0, &vbs))
            }
            // Read-only: the first varbind is not writable, so the master never commits.
            Pdu::TestSet => Some(codec::response(h, 0, res::NOT_WRITABLE, 1, &[])),
            Pdu::CommitSet => Some(codec::response(h, 0, res::COMMIT_FAILED, 1, &[])),
            Pdu::UndoSet => Some(codec::response(h, 0, res::UNDO_FAILED, 1, &[])),
            Pdu::CleanupSet => None,
            Pdu::Close(reason) => return Err(SessionError::Closed(reason)),
            Pdu::Response { .. } => {
                if *ping == Some(h.packet_id) {
                    *ping = None;
                }
                None
            }
            Pdu::Other(t) => {
                tracing::debug!(pdu_type = t, "ignoring AgentX PDU");
                (t != ty::RESPONSE).then(|| codec::response(h, 0, res::GEN_ERR, 0, &[]))
            }
        })
    }
}

/// Answers one frame from the master as a registered session does (no ping outstanding):
/// the fuzz target's entry (`fuzz/`), after [`codec::decode`], to what a request makes us do.
pub fn answer_frame(h: &Header, pdu: Pdu, source: &Source, view: &MibView) -> Result<Option<Vec<u8>>, SessionError> {
    let conn = Conn {
        stream: Box::new(tokio::io::empty()),
        buf: Vec::new(),
        session_id: h.session_id,
        packet_id: 0,
    };
    conn.answer(h, pdu, source, view, &mut None)
}

fn get(view: &MibView, f: &Frame, name: &[u32]) -> Data {
    match view.get(f, name) {
        Answer::Value(v) => Data::Value(v),
        Answer::NoSuchObject => Data::NoSuchObject,
        Answer::NoSuchInstance => Data::NoSuchInstance,
    }
}

fn next(view: &MibView, f: &Frame, r: &Range) -> (Vec<u32>, Data) {
    match view.next(f, &r.start, r.include, Some(&r.end)) {
        Some((n, v)) => (n, Data::Value(v)),
        None => (r.start.clone(), Data::EndOfMibView),
    }
}

/// RFC 2741 §7.2.3.3: non-repeaters once, then repetitions continuing each range.
fn bulk(view: &MibView, f: &Frame, n: usize, m: usize, ranges: &[Range]) -> Vec<(Vec<u32>, Data)> {
    let n = n.min(ranges.len());
    let mut out: Vec<(Vec<u32>, Data)> = ranges.iter().take(n).map(|r| next(view, f, r)).collect();
    let mut cursors: Vec<Range> = ranges.iter().skip(n).cloned().collect();
    for _ in 0..m.min(1024) {
        if cursors.is_empty() {
            break;
        }
        let mut all_end = true;
        for c in &mut cursors {
            let (name, data) = next(view, f, c);
            if data != Data::EndOfMibView {
                all_end = false;
                c.start = name.clone();
                c.include = false;
            }
            out.push((name, data));
        }
        if all_end {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn bulk_stops_at_the_range_end_with_end_of_mib_view() {
        let view = MibView::new();
        let f = Frame {
            snapshot: Arc::new(agent_mib::Snapshot::empty(0)),
            mta: None,
        };
        let mut sys = AMAVIS_OID.to_vec();
        sys.extend([1, 1]);
        let mut end = sys.clone();
        end.push(3);
        let r = Range {
            start: sys,
            include: false,
            end,
        };
        let out = bulk(&view, &f, 0, 10, &[r]);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[2].1, Data::EndOfMibView);
    }
}
