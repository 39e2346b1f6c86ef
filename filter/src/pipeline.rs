//! pipeline: the one place that sequences a received message through the stages —
//! (decode → check → decide, when they exist) → act → forward → record — and turns
//! the per-recipient results into the client's reply or replies. The reliability
//! contract lives here: the client sees 2xx only for recipients the back end accepted
//! (or that were bounced by a DSN the back end accepted); anything else that fails
//! inside avisd is a 4xx and the sender keeps the message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_mib::{ContentCategory, Outcome, ScanResult, Scanner, Status, WorkerSlot, WorkerState};

use crate::act;
use crate::config::Policy;
use crate::forward::client::ClientError;
use crate::forward::{ConnUse, Forwarder, Outgoing};
use crate::message::{Envelope, Ids, Reply};
use crate::receive::replies;
use crate::receive::session::Transaction;
use crate::receive::spool::{Spool, SpoolConfig};
use crate::record::sink::EventLog;
use crate::record::{self, Delivery, MessageSummary, Peer, RecipientResult};

/// What a connection needs to process its messages.
#[derive(Debug, Clone)]
pub struct Context {
    /// The listener's policy bank.
    pub policy: Arc<Policy>,
    /// Its forwarder (with the connection cache).
    pub forwarder: Arc<Forwarder>,
    /// The JSON event log.
    pub events: Arc<EventLog>,
    /// Our host name.
    pub hostname: String,
}

/// Facts about a transaction that the protocol layer knows.
#[derive(Debug, Clone)]
pub struct TxMeta {
    /// Ids.
    pub ids: Ids,
    /// Unix ms of MAIL FROM.
    pub received_at_ms: u64,
    /// When MAIL FROM came.
    pub mail_at: Instant,
    /// The connection.
    pub peer: Peer,
}

/// Processes one transaction and returns the replies for the client: one for ESMTP,
/// one per recipient for LMTP.
pub async fn process(ctx: &Context, slot: &WorkerSlot, tx: Transaction, meta: TxMeta) -> Vec<Reply> {
    let data_done = Instant::now();
    slot.message_received();
    slot.set_state(WorkerState::Check);
    let Transaction { envelope, spool, .. } = tx;
    let client_ip = envelope
        .xforward
        .addr
        .as_deref()
        .and_then(|a| a.trim_start_matches("IPv6:").parse().ok());
    let originating = ctx.policy.is_originating(client_ip.or(meta.peer.src_ip));
    let prepend = act::received_header(
        &envelope,
        &meta.ids,
        &ctx.hostname,
        meta.peer.dst_port,
        meta.received_at_ms,
    );

    slot.set_state(WorkerState::Forward);
    let sending_started = Instant::now();
    let (mut results, mut deliveries) = forward(ctx, slot, &envelope, &prepend, &spool, &meta.ids).await;
    let dsn_sent = bounce_refused(ctx, slot, &envelope, &spool, &meta.ids, &mut results, &mut deliveries).await;
    let sending = sending_started.elapsed();

    let client_replies = client_replies(&envelope, &results, &meta.ids);
    let outcome = ledger_outcome(&envelope, &results, &client_replies);
    let summary = MessageSummary {
        ids: meta.ids.clone(),
        received_at_ms: meta.received_at_ms,
        size: spool.len(),
        originating,
        policy: ctx.policy.name.clone(),
        host: ctx.hostname.clone(),
        peer: meta.peer,
        recipients: results,
        content: ContentCategory::Clean,
        deliveries,
        dsn_sent,
        client_replies: client_replies.clone(),
        outcome,
        receiving: data_done.duration_since(meta.mail_at),
        sending,
        total: meta.mail_at.elapsed(),
        envelope,
    };
    record::record_message(slot, &summary, &ctx.events);
    slot.set_state(WorkerState::Done);
    drop(spool);
    client_replies
}

async fn forward(
    ctx: &Context,
    slot: &WorkerSlot,
    envelope: &Envelope,
    prepend: &[u8],
    spool: &Spool,
    ids: &Ids,
) -> (Vec<RecipientResult>, Vec<Delivery>) {
    let target = ctx.forwarder.target().to_string();
    let started = Instant::now();
    // One bound on the whole forwarding, below the MTA's own DATA-done timeout.
    let limit = ctx.policy.forward_timeout * 2;
    let result = match tokio::time::timeout(
        limit,
        ctx.forwarder.forward(
            envelope,
            &Outgoing {
                prepend,
                skip: 0,
                spool,
            },
        ),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout("forwarding")),
    };
    let health = match &result {
        Ok(_) => ScanResult::Ok,
        Err(ClientError::Timeout(_)) => ScanResult::Timeout,
        Err(_) => ScanResult::Error,
    };
    slot.scanner(Scanner::Backend, health, started.elapsed());
    let protocol = ctx.forwarder.target().counter_protocol();
    let size = spool.len() + prepend.len() as u64;
    match result {
        Ok(f) => {
            let results = envelope
                .recipients
                .iter()
                .zip(&f.replies)
                .map(|(r, reply)| RecipientResult {
                    address: r.address.clone(),
                    orcpt: r.orcpt.clone(),
                    local: ctx.policy.is_local(&r.address),
                    status: if reply.is_positive() {
                        Status::RelayedUntagged
                    } else if reply.is_transient() {
                        Status::TempFailed
                    } else {
                        Status::Rejected
                    },
                    response: replies::from_mta(&target, reply),
                    queued_as: queued_as(reply),
                })
                .collect();
            let d = Delivery {
                protocol,
                dsn: false,
                conn: f.conn,
                reuse_failed: f.reuse_failed,
                replies: Some(f.replies),
                size,
            };
            (results, vec![d])
        }
        Err(e) => {
            tracing::warn!(log_id = %ids.log_id, error = %e, target = %target, "forwarding failed; tempfailing");
            let reply = replies::tempfail(&ids.log_id, "forwarding", &e.to_string());
            let results = envelope
                .recipients
                .iter()
                .map(|r| RecipientResult {
                    address: r.address.clone(),
                    orcpt: r.orcpt.clone(),
                    local: ctx.policy.is_local(&r.address),
                    status: Status::TempFailed,
                    response: reply.clone(),
                    queued_as: None,
                })
                .collect();
            let conn = if protocol == "Pipe" {
                ConnUse::None
            } else {
                ConnUse::New
            };
            (
                results,
                vec![Delivery {
                    protocol,
                    dsn: false,
                    conn,
                    reuse_failed: false,
                    replies: None,
                    size,
                }],
            )
        }
    }
}

/// In ESMTP one reply stands for all recipients, so when the back end refused some
/// recipients and accepted others, the refused ones are bounced with a DSN (or the DSN
/// is suppressed), as amavisd does. LMTP clients, and ESMTP clients whose every
/// recipient was refused, get the refusal itself: the MTA in front bounces then.
async fn bounce_refused(
    ctx: &Context,
    slot: &WorkerSlot,
    envelope: &Envelope,
    spool: &Spool,
    ids: &Ids,
    results: &mut [RecipientResult],
    deliveries: &mut Vec<Delivery>,
) -> bool {
    let refused: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].status == Status::Rejected)
        .collect();
    if envelope.lmtp || refused.is_empty() || refused.len() == results.len() {
        return false;
    }
    let mut to_report = Vec::new();
    for &i in &refused {
        let Some(rcpt) = envelope.recipients.get(i) else {
            continue;
        };
        if act::dsn_suppressed(envelope, rcpt) {
            results[i].status = Status::NoBounce;
        } else {
            to_report.push(i);
        }
    }
    if to_report.is_empty() {
        return false;
    }
    let failed: Vec<_> = to_report
        .iter()
        .filter_map(|&i| Some((envelope.recipients.get(i)?, &results[i].response)))
        .collect();
    let (dsn_env, bytes) = act::failure_dsn(envelope, ids, &ctx.hostname, &failed, spool, agent_mib::now_ms());
    let mut dsn_spool = Spool::new(
        SpoolConfig {
            dir: std::env::temp_dir(),
            memory_threshold: usize::MAX,
        },
        &ids.mail_id,
    );
    let written = dsn_spool.write(&bytes);
    let started = Instant::now();
    let sent = match written {
        Ok(()) => {
            ctx.forwarder
                .forward(
                    &dsn_env,
                    &Outgoing {
                        prepend: b"",
                        skip: 0,
                        spool: &dsn_spool,
                    },
                )
                .await
        }
        Err(e) => Err(ClientError::Io {
            stage: "building the DSN",
            source: e,
        }),
    };
    slot.scanner(
        Scanner::Backend,
        if sent.is_ok() {
            ScanResult::Ok
        } else {
            ScanResult::Error
        },
        started.elapsed(),
    );
    let protocol = ctx.forwarder.target().counter_protocol();
    let ok = matches!(&sent, Ok(f) if f.replies.iter().all(Reply::is_positive));
    let (conn, reuse_failed, replies_) = match sent {
        Ok(f) => (f.conn, f.reuse_failed, Some(f.replies)),
        Err(_) => (ConnUse::New, false, None),
    };
    deliveries.push(Delivery {
        protocol,
        dsn: true,
        conn,
        reuse_failed,
        replies: replies_,
        size: dsn_spool.len(),
    });
    for &i in &to_report {
        if ok {
            results[i].status = Status::Bounced;
        } else {
            // The DSN could not be handed on: the sender must keep the whole message.
            results[i].status = Status::TempFailed;
            results[i].response = replies::tempfail(&ids.log_id, "DSN", "the back end did not accept the DSN");
        }
    }
    ok
}

/// amavisd's aggregation: LMTP answers each recipient; ESMTP answers once — the first
/// 4xx if any, else a 5xx if every recipient was refused, else a 2xx.
pub fn client_replies(envelope: &Envelope, results: &[RecipientResult], ids: &Ids) -> Vec<Reply> {
    if envelope.lmtp {
        return results
            .iter()
            .map(|r| match r.status {
                Status::Bounced => replies::lmtp_bounced(&r.address, false),
                Status::NoBounce => replies::lmtp_bounced(&r.address, true),
                Status::Accepted
                | Status::RelayedTagged
                | Status::RelayedUntagged
                | Status::Discarded
                | Status::Rejected
                | Status::TempFailed => r.response.clone(),
            })
            .collect();
    }
    if let Some(t) = results.iter().find(|r| r.status == Status::TempFailed) {
        return vec![t.response.clone()];
    }
    if !results.is_empty() && results.iter().all(|r| r.status == Status::Rejected) {
        return vec![results[0].response.clone()];
    }
    let bounced = results
        .iter()
        .filter(|r| matches!(r.status, Status::Bounced | Status::NoBounce))
        .count();
    match results
        .iter()
        .find(|r| matches!(r.status, Status::RelayedUntagged | Status::RelayedTagged))
    {
        Some(first) if bounced > 0 => vec![replies::with_bounces(&first.response, bounced)],
        Some(first) => vec![first.response.clone()],
        None => {
            let suppressed = results.iter().all(|r| r.status == Status::NoBounce);
            vec![replies::all_bounced(&ids.log_id, suppressed)]
        }
    }
}

/// The one ledger outcome of a message, from what its client was told.
pub fn ledger_outcome(envelope: &Envelope, results: &[RecipientResult], client: &[Reply]) -> Outcome {
    let relayed = results
        .iter()
        .any(|r| matches!(r.status, Status::RelayedUntagged | Status::RelayedTagged));
    if envelope.lmtp {
        if relayed {
            Outcome::Relayed
        } else if results.iter().any(|r| r.status == Status::TempFailed) {
            Outcome::TempFailed
        } else if results
            .iter()
            .any(|r| matches!(r.status, Status::Bounced | Status::NoBounce))
        {
            Outcome::Bounced
        } else {
            Outcome::Rejected
        }
    } else {
        match client.first() {
            Some(r) if r.is_transient() => Outcome::TempFailed,
            Some(r) if r.is_permanent() => Outcome::Rejected,
            Some(_) if relayed => Outcome::Relayed,
            Some(_) => Outcome::Bounced,
            None => Outcome::TempFailed,
        }
    }
}

/// The queue id in a back end's reply (`... queued as 4ZxQ1`).
fn queued_as(reply: &Reply) -> Option<String> {
    let idx = reply.text.find("queued as ")?;
    let id: String = reply.text[idx + 10..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (!id.is_empty()).then_some(id)
}

/// How long a transaction may take in total before the client's MTA gives up on it.
pub fn transaction_budget(policy: &Policy) -> Duration {
    policy.forward_timeout * 2
}
