//! The connection driver: runs a [`Session`] on a socket. Every read and every write has a
//! deadline on tokio's clock (each command, the DATA phase with a minimum rate, each batch
//! of replies), writes the session's replies in batches (so pipelined commands get their
//! replies together), moves the worker slot through the nanny's letters, and hands each
//! complete transaction to the [`Handler`] that the daemon wires up. On shutdown an idle
//! session is closed with 421 at once; a transaction in progress is finished first.

use std::future::Future;
use std::time::{Duration, Instant};

use agent_mib::{Outcome, WorkerSlot, WorkerState};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant as TokioInstant;

use super::session::{Limits, Output, Refused, Session, Transaction};
use crate::message::{Ids, Peer, Reply, TxMeta};
use crate::replies;

/// What processes a complete transaction (the pipeline, or a test double). The ledger
/// entry of a message closes here, with what avisd did with it, just before its answer is
/// written: a message still in flight when avisd dies therefore never had a 2xx, and its
/// sender surely retries (counted tempfailed at the restart). One relayed whose 2xx was
/// then lost stays relayed, truthfully, and its retry is a second, counted message.
pub trait Handler: Sync {
    /// Accounts for a message the protocol layer refused after its DATA; its outcome.
    fn refused(&self, slot: &WorkerSlot, refused: Refused, meta: TxMeta) -> Outcome;

    /// The replies (one for ESMTP, one per recipient for LMTP) and the ledger outcome.
    fn handle(
        &self,
        slot: &WorkerSlot,
        tx: Transaction,
        meta: TxMeta,
    ) -> impl Future<Output = (Vec<Reply>, Outcome)> + Send;
}

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    /// Where the connection came from (for the transactions' records).
    pub peer: Peer,
    /// Session limits.
    pub limits: Limits,
    /// Time allowed for each command line (from the previous answer to its end) and for
    /// writing each batch of replies, as Postfix's `smtpd_timeout` bounds both.
    pub idle_timeout: Duration,
    /// The time a DATA phase starts with; each byte received earns it more (below).
    pub data_timeout: Duration,
    /// Bytes per second a DATA phase must keep up: each byte received extends its deadline
    /// by `1 / min_data_rate` s (Postfix's `smtpd_min_data_rate`, 500 by default), so a
    /// client dripping a byte now and then runs out of time however often it sends.
    pub min_data_rate: u64,
    /// The longest a DATA phase may last, however fast the client sends.
    pub data_phase_limit: Duration,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// QUIT.
    Quit,
    /// The client closed the connection.
    ClientClosed,
    /// A read timeout: the client was too slow with a command or its data (421 sent).
    Timeout,
    /// Replies could not be written in time: the client does not read them.
    WriteTimeout,
    /// avisd is shutting down (421 sent).
    Shutdown,
    /// A read or write failed.
    IoError,
}

const READ_CHUNK: usize = 64 * 1024;

/// How long a last 421 (timeout, shutdown) may take to write before the socket is dropped.
const FAREWELL_LIMIT: Duration = Duration::from_secs(5);

/// Ids and times for a transaction whose MAIL FROM was not seen (never in practice: the
/// session emits MailStarted first), so a message is never left without ids.
fn fresh(slot: &WorkerSlot, conn_number: u64, txn: u32, peer: &Peer) -> TxMeta {
    TxMeta {
        ids: Ids::new(slot.index(), conn_number, txn),
        mail_at: Instant::now(),
        received_at_ms: agent_mib::now_ms(),
        peer: peer.clone(),
    }
}

/// Why replies could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteFailed {
    /// Not within the time allowed.
    Timeout,
    /// The socket failed.
    Io,
}

impl From<WriteFailed> for Ending {
    fn from(w: WriteFailed) -> Ending {
        match w {
            WriteFailed::Timeout => Ending::WriteTimeout,
            WriteFailed::Io => Ending::IoError,
        }
    }
}

/// Writes `bytes` within `limit`. A client that pipelines commands and never reads the
/// replies fills its receive window and then ours, and the write waits: while it does, a
/// slot whose letter says idle (`letter`) shows `b` instead, so the nanny sees the worker
/// held by that client (amavisd's letter for protocol handling).
async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    limit: Duration,
    slot: &WorkerSlot,
    letter: WorkerState,
) -> Result<(), WriteFailed> {
    if bytes.is_empty() {
        return Ok(());
    }
    let idle = letter.is_idle_letter();
    if idle {
        slot.set_state(WorkerState::Begin);
    }
    let written = tokio::time::timeout(limit, stream.write_all(bytes)).await;
    if idle {
        slot.set_state(letter);
    }
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(WriteFailed::Io),
        Err(_) => Err(WriteFailed::Timeout),
    }
}

/// The deadline of the DATA phase under way: it starts at `data_timeout`, each byte
/// received adds `1 / min_data_rate` s, and it never passes the phase's hard limit.
#[derive(Debug, Clone, Copy)]
struct DataClock {
    deadline: TokioInstant,
    limit: TokioInstant,
}

impl DataClock {
    fn start(settings: &ConnSettings) -> DataClock {
        let now = TokioInstant::now();
        let limit = now + settings.data_phase_limit;
        DataClock {
            deadline: (now + settings.data_timeout).min(limit),
            limit,
        }
    }

    fn received(&mut self, bytes: usize, min_rate: u64) {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        let earned = Duration::from_millis(bytes.saturating_mul(1000) / min_rate.max(1));
        self.deadline = (self.deadline + earned).min(self.limit);
    }
}

/// Serves one connection until it ends.
pub async fn serve<S, H>(
    mut stream: S,
    settings: &ConnSettings,
    slot: &WorkerSlot,
    conn_number: u64,
    handler: &H,
    mut shutdown: watch::Receiver<bool>,
) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let seed = format!("{:05}-{conn_number:02}", slot.index());
    let mut session = Session::new(settings.limits.clone(), &seed);
    let mut out: Vec<u8> = session.greeting().to_wire().into_bytes();
    let mut outputs = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut txn: u32 = 0;
    let mut mail: Option<TxMeta> = None;
    // The letter the slot shows between our writes (accept set `A`).
    let mut letter = WorkerState::Accepted;
    let limit = settings.idle_timeout;
    let mut last_command = TokioInstant::now();
    let mut data_clock: Option<DataClock> = None;
    loop {
        if let Err(w) = send(&mut stream, &out, limit, slot, letter).await {
            return w.into();
        }
        out.clear();
        if *shutdown.borrow() && !session.in_transaction() {
            let bye = replies::shutting_down().to_wire();
            let _ = send(&mut stream, bye.as_bytes(), FAREWELL_LIMIT, slot, letter).await;
            return Ending::Shutdown;
        }
        // Between commands the idle timeout bounds the whole next command, not each read:
        // a client dripping a byte at a time (slowloris) is cut off all the same. The DATA
        // phase runs on its own clock, which only a minimum rate of bytes keeps going.
        let deadline = if session.in_data() {
            last_command = TokioInstant::now();
            data_clock.get_or_insert_with(|| DataClock::start(settings)).deadline
        } else {
            data_clock = None;
            last_command + settings.idle_timeout
        };
        let n = tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => match r {
                Ok(Ok(0)) => return Ending::ClientClosed,
                Ok(Ok(n)) => n,
                Ok(Err(_)) => return Ending::IoError,
                Err(_) => {
                    let bye = replies::timeout(&settings.limits.hostname).to_wire();
                    let _ = send(&mut stream, bye.as_bytes(), FAREWELL_LIMIT, slot, letter).await;
                    return Ending::Timeout;
                }
            },
            _ = shutdown.changed(), if !*shutdown.borrow() => continue,
        };
        if let Some(clock) = data_clock.as_mut() {
            clock.received(n, settings.min_data_rate);
        }
        session.feed(&buf[..n], &mut outputs);
        let answered_something = !outputs.is_empty();
        // A transaction's answer may unblock pipelined input already buffered.
        while !outputs.is_empty() {
            let mut progressed = false;
            for o in std::mem::take(&mut outputs) {
                match o {
                    Output::Reply(r) => out.extend_from_slice(r.to_wire().as_bytes()),
                    Output::Close => {
                        let _ = send(&mut stream, &out, limit, slot, letter).await;
                        return Ending::Quit;
                    }
                    Output::MailStarted => {
                        txn += 1;
                        let ids = Ids::new(slot.index(), conn_number, txn);
                        slot.set_state_reset(WorkerState::Mail);
                        letter = WorkerState::Mail;
                        slot.set_ids(&ids.log_id, "");
                        mail = Some(TxMeta {
                            ids,
                            mail_at: Instant::now(),
                            received_at_ms: agent_mib::now_ms(),
                            peer: settings.peer.clone(),
                        });
                    }
                    Output::DataStarted => {
                        slot.set_state(WorkerState::Data);
                        letter = WorkerState::Data;
                    }
                    Output::Refused(r) => {
                        // LMTP answers the end of DATA once per recipient.
                        let answers = if session.is_lmtp() {
                            r.envelope.recipients.len().max(1)
                        } else {
                            1
                        };
                        for _ in 0..answers {
                            out.extend_from_slice(r.reply.to_wire().as_bytes());
                        }
                        let meta = mail
                            .take()
                            .unwrap_or_else(|| fresh(slot, conn_number, txn, &settings.peer));
                        let outcome = handler.refused(slot, *r, meta);
                        letter = WorkerState::Done;
                        slot.message_answered(outcome);
                        let written = send(&mut stream, &out, limit, slot, letter).await;
                        out.clear();
                        slot.clear_ids();
                        if let Err(w) = written {
                            return w.into();
                        }
                    }
                    Output::Message(tx) => {
                        // Replies before the message go out first; the client waits for the final one.
                        if let Err(w) = send(&mut stream, &out, limit, slot, letter).await {
                            return w.into();
                        }
                        out.clear();
                        let meta = mail
                            .take()
                            .unwrap_or_else(|| fresh(slot, conn_number, txn, &settings.peer));
                        slot.set_ids(&meta.ids.log_id, tx.envelope.xforward.ident.as_deref().unwrap_or(""));
                        let (replies, outcome) = handler.handle(slot, *tx, meta).await;
                        // The pipeline leaves the slot at `.` (done, session open).
                        letter = WorkerState::Done;
                        for r in replies {
                            out.extend_from_slice(r.to_wire().as_bytes());
                        }
                        slot.message_answered(outcome);
                        let written = send(&mut stream, &out, limit, slot, letter).await;
                        out.clear();
                        slot.clear_ids();
                        if let Err(w) = written {
                            return w.into();
                        }
                        session.answered();
                        progressed = true;
                    }
                }
            }
            if progressed {
                session.feed(&[], &mut outputs);
            }
        }
        if answered_something {
            // The clock of the next command starts once this one is answered.
            last_command = TokioInstant::now();
        }
    }
}
