//! The connection driver: runs a [`Session`] on a socket. Reads with the idle or data
//! timeout, writes the session's replies in batches (so pipelined commands get their
//! replies together), moves the worker slot through the nanny's letters, and hands each
//! complete transaction to the [`Handler`] that `main` wires up. On shutdown an idle
//! session is closed with 421 at once; a transaction in progress is finished first.

use std::future::Future;
use std::time::{Duration, Instant};

use agent_mib::{Outcome, WorkerSlot, WorkerState};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::session::{Limits, Output, Refused, Session, Transaction};
use crate::message::{Ids, Reply};
use crate::replies;

/// What processes a complete transaction (the pipeline, or a test double). The ledger
/// entry of a message closes here, with what avisd did with it, just before its answer is
/// written: a message still in flight when avisd dies therefore never had a 2xx, and its
/// sender surely retries (counted tempfailed at the restart). One relayed whose 2xx was
/// then lost stays relayed, truthfully, and its retry is a second, counted message.
pub trait Handler: Sync {
    /// Accounts for a message the protocol layer refused after its DATA; its outcome.
    fn refused(&self, slot: &WorkerSlot, refused: Refused, ids: Ids, mail_at: Instant, mail_ms: u64) -> Outcome;

    /// The replies (one for ESMTP, one per recipient for LMTP) and the ledger outcome.
    fn handle(
        &self,
        slot: &WorkerSlot,
        tx: Transaction,
        ids: Ids,
        mail_at: Instant,
        mail_ms: u64,
    ) -> impl Future<Output = (Vec<Reply>, Outcome)> + Send;
}

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    /// Session limits.
    pub limits: Limits,
    /// Silence allowed between commands.
    pub idle_timeout: Duration,
    /// Silence allowed during DATA.
    pub data_timeout: Duration,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// QUIT.
    Quit,
    /// The client closed the connection.
    ClientClosed,
    /// A timeout (421 sent).
    Timeout,
    /// avisd is shutting down (421 sent).
    Shutdown,
    /// A read or write failed.
    IoError,
}

const READ_CHUNK: usize = 64 * 1024;

/// Ids and times for a transaction whose MAIL FROM was not seen (never in practice: the
/// session emits MailStarted first), so a message is never left without ids.
fn fresh(slot: &WorkerSlot, conn_number: u64, txn: u32) -> (Ids, Instant, u64) {
    (
        Ids::new(slot.index(), conn_number, txn),
        Instant::now(),
        agent_mib::now_ms(),
    )
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
    let mut mail: Option<(Ids, Instant, u64)> = None;
    let mut last_command = Instant::now();
    loop {
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return Ending::IoError;
            }
            out.clear();
        }
        if *shutdown.borrow() && !session.in_transaction() {
            let _ = stream.write_all(replies::shutting_down().to_wire().as_bytes()).await;
            return Ending::Shutdown;
        }
        // Between commands the idle timeout bounds the whole next command, not each read:
        // a client dripping a byte at a time (slowloris) is cut off all the same. During
        // DATA each read is bounded by the data timeout.
        let wait = if session.in_data() {
            last_command = Instant::now();
            settings.data_timeout
        } else {
            settings.idle_timeout.saturating_sub(last_command.elapsed())
        };
        let n = tokio::select! {
            r = tokio::time::timeout(wait, stream.read(&mut buf)) => match r {
                Ok(Ok(0)) => return Ending::ClientClosed,
                Ok(Ok(n)) => n,
                Ok(Err(_)) => return Ending::IoError,
                Err(_) => {
                    let _ = stream.write_all(replies::timeout(&settings.limits.hostname).to_wire().as_bytes()).await;
                    return Ending::Timeout;
                }
            },
            _ = shutdown.changed(), if !*shutdown.borrow() => continue,
        };
        session.feed(&buf[..n], &mut outputs);
        let answered_something = !outputs.is_empty();
        // A transaction's answer may unblock pipelined input already buffered.
        while !outputs.is_empty() {
            let mut progressed = false;
            for o in std::mem::take(&mut outputs) {
                match o {
                    Output::Reply(r) => out.extend_from_slice(r.to_wire().as_bytes()),
                    Output::Close => {
                        let _ = stream.write_all(&out).await;
                        return Ending::Quit;
                    }
                    Output::MailStarted => {
                        txn += 1;
                        let ids = Ids::new(slot.index(), conn_number, txn);
                        slot.set_state_reset(WorkerState::Mail);
                        slot.set_ids(&ids.log_id, "");
                        mail = Some((ids, Instant::now(), agent_mib::now_ms()));
                    }
                    Output::DataStarted => slot.set_state(WorkerState::Data),
                    Output::Refused(r) => {
                        out.extend_from_slice(r.reply.to_wire().as_bytes());
                        let (ids, at, ms) = mail.take().unwrap_or_else(|| fresh(slot, conn_number, txn));
                        let outcome = handler.refused(slot, *r, ids, at, ms);
                        slot.message_answered(outcome);
                        let written = stream.write_all(&out).await;
                        out.clear();
                        slot.clear_ids();
                        if written.is_err() {
                            return Ending::IoError;
                        }
                    }
                    Output::Message(tx) => {
                        // Replies before the message go out first; the client waits for the final one.
                        if !out.is_empty() && stream.write_all(&out).await.is_err() {
                            return Ending::IoError;
                        }
                        out.clear();
                        let (ids, at, ms) = mail.take().unwrap_or_else(|| fresh(slot, conn_number, txn));
                        slot.set_ids(&ids.log_id, tx.envelope.xforward.ident.as_deref().unwrap_or(""));
                        let (replies, outcome) = handler.handle(slot, *tx, ids, at, ms).await;
                        for r in replies {
                            out.extend_from_slice(r.to_wire().as_bytes());
                        }
                        slot.message_answered(outcome);
                        let written = stream.write_all(&out).await;
                        out.clear();
                        slot.clear_ids();
                        if written.is_err() {
                            return Ending::IoError;
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
            last_command = Instant::now();
        }
    }
}
