//! pipeline: the one place that sequences a received message through the stages —
//! decode → check → decide → act → forward → record — and turns the per-recipient
//! results into the client's reply or replies. The reliability contract lives here: the
//! client sees 2xx only for recipients the back end accepted, that policy discarded, or
//! that were bounced by a DSN the back end accepted; anything else that fails inside
//! avisd is a 4xx and the sender keeps the message. Each message is decoded and scanned
//! once, whatever the number of recipients; verdicts are per recipient.

pub mod answer;
mod deliver;

use std::sync::Arc;
use std::time::Instant;

use agent_mib::{Outcome, Status, WorkerSlot, WorkerState};

use crate::act::quarantine::store as quarantine_store;
use crate::check::run::{self, CheckRun};
use crate::check::{SpamOutcome, VirusOutcome};
use crate::config::Policy;
use crate::decide::{self, RecipientPolicy, Verdict};
use crate::forward::Forwarder;
use crate::message::{ConnUse, Delivery, DeliveryKind, Ids, Quarantined, RecipientResult, Reply, TxMeta};
use crate::receive::session::{Refused, Transaction};
use crate::record::sink::EventLog;
use crate::record::{self, CheckSummary, MessageSummary};
use crate::replies;

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
    /// Where quarantine copies go.
    pub quarantine_dir: std::path::PathBuf,
}

/// Processes one transaction and returns the replies for the client (one for ESMTP,
/// one per recipient for LMTP) and its ledger outcome, which the connection records once
/// the replies are written.
pub async fn process(ctx: &Context, slot: &WorkerSlot, tx: Transaction, meta: TxMeta) -> (Vec<Reply>, Outcome) {
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
    let policies: Vec<RecipientPolicy> = envelope
        .recipients
        .iter()
        .map(|r| ctx.policy.checks.recipient(&r.address, ctx.policy.is_local(&r.address)))
        .collect();

    let checks = &ctx.policy.checks;
    let spam_can_matter = |o: &crate::check::Outcomes| {
        !policies
            .iter()
            .all(|p| decide::blocked_before_spam(o, p, &checks.destinies, checks.virus_failure_tempfails))
    };
    let (spool, checked) = run::run(&ctx.policy, slot, &envelope, spool, &policies, &spam_can_matter).await;
    let mut results: Vec<Option<RecipientResult>> = vec![None; envelope.recipients.len()];
    let mut deliveries = Vec::new();
    let mut verdicts: Vec<Verdict> = Vec::new();
    let mut check_run: Option<CheckRun> = None;
    let mut quarantined = Vec::new();
    let mut quarantine_failures = 0;
    let sending_started;
    match checked {
        Err(e) => {
            tracing::warn!(log_id = %meta.ids.log_id, error = %e, "checks failed; tempfailing");
            let reply = replies::tempfail(&meta.ids.log_id, "checks", &e.to_string());
            tempfail_all(&envelope, &policies, &reply, &mut results);
            sending_started = Instant::now();
        }
        Ok(c) => {
            slot.set_state(WorkerState::Decide);
            let dctx = decide::Context {
                log_id: &meta.ids.log_id,
                hostname: &ctx.hostname,
                null_sender: envelope.mail_from.is_empty(),
                destinies: &ctx.policy.checks.destinies,
                virus_failure_tempfails: ctx.policy.checks.virus_failure_tempfails,
            };
            verdicts = policies.iter().map(|p| decide::decide(&c.outcomes, p, &dctx)).collect();
            deliver::blocked(&envelope, &policies, &verdicts, &mut results);
            let (kept, failures) = quarantine(ctx, slot, &envelope, &spool, &meta.ids, &verdicts, &mut deliveries);
            if failures > 0 {
                // amavisd: a quarantine that fails tempfails the message; it comes back.
                let reply = replies::tempfail(
                    &meta.ids.log_id,
                    "quarantine",
                    "the quarantine copy could not be written",
                );
                tempfail_all(&envelope, &policies, &reply, &mut results);
            } else if let Some(q) = kept.first() {
                for (v, p) in verdicts.iter_mut().zip(&policies) {
                    if v.reply.is_none() && p.local {
                        v.add_headers
                            .push(("X-Quarantine-ID".into(), format!("<{}>", meta.ids.mail_id)));
                    }
                }
                tracing::info!(log_id = %meta.ids.log_id, quarantine = %q.relative, "quarantined");
            }
            quarantined = kept;
            quarantine_failures = failures;
            let passed: Vec<usize> = (0..verdicts.len()).filter(|&i| results[i].is_none()).collect();
            slot.set_state(WorkerState::Forward);
            sending_started = Instant::now();
            let msg = message(&envelope, &spool, &meta, &policies, &verdicts);
            deliver::forward_passed(ctx, slot, &msg, &passed, &mut results, &mut deliveries).await;
            check_run = Some(c);
        }
    }
    let mut results: Vec<RecipientResult> = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| RecipientResult {
                address: envelope.recipients[i].address.clone(),
                orcpt: None,
                local: policies[i].local,
                status: Status::TempFailed,
                response: replies::tempfail(&meta.ids.log_id, "pipeline", "recipient left unanswered"),
                queued_as: None,
                blocking: None,
                spam_score: None,
            })
        })
        .collect();
    let score = check_run.as_ref().and_then(|c| match &c.outcomes.spam {
        SpamOutcome::Scored { score, .. } => Some(*score),
        SpamOutcome::NotScanned | SpamOutcome::Failed(_) => None,
    });
    for ((r, v), p) in results.iter_mut().zip(&verdicts).zip(&policies) {
        r.blocking = v.blocking.map(decide::display_name);
        r.spam_score = score.filter(|_| !p.bypass_spam);
    }
    // No DSN when the client is going to be told 4xx: the whole message comes back.
    let tempfailing = !envelope.lmtp && results.iter().any(|r| r.status == Status::TempFailed);
    let dsn_sent = if tempfailing {
        false
    } else {
        slot.set_state(WorkerState::Quarantine);
        let msg = message(&envelope, &spool, &meta, &policies, &verdicts);
        deliver::bounce(ctx, slot, &msg, &mut results, &mut deliveries).await
    };
    let sending = sending_started.elapsed();

    let client_replies = answer::client_replies(&envelope, &results, &meta.ids);
    let outcome = answer::ledger_outcome(&envelope, &results, &client_replies, !quarantined.is_empty());
    let checks = check_run.map(|c| summarize(&c)).unwrap_or_default();
    let summary = MessageSummary {
        ids: meta.ids.clone(),
        received_at_ms: meta.received_at_ms,
        size: spool.len(),
        originating,
        policy: ctx.policy.name.clone(),
        host: ctx.hostname.clone(),
        peer: meta.peer,
        recipients: results,
        content: decide::message_category(&verdicts),
        content_name: verdicts
            .iter()
            .filter_map(|v| v.blocking)
            .max()
            .or_else(|| verdicts.iter().filter_map(|v| v.ccats.first().copied()).max())
            .map_or_else(|| "Clean".to_string(), decide::display_name),
        deliveries,
        dsn_sent,
        client_replies: client_replies.clone(),
        outcome,
        receiving: data_done.duration_since(meta.mail_at),
        sending,
        total: meta.mail_at.elapsed(),
        checks,
        quarantined,
        quarantine_failures,
        envelope,
    };
    record::record_message(slot, &summary, &ctx.events);
    slot.set_state(WorkerState::Done);
    drop(spool);
    (client_replies, outcome)
}

/// Accounts for a message the protocol layer refused after its DATA (over the size
/// limit, or the spool failed): it was received and answered, so it is on the ledger,
/// counted (as Oversized when too big) and logged like any other message.
pub fn refused(ctx: &Context, slot: &WorkerSlot, r: Refused, meta: TxMeta) -> Outcome {
    slot.message_received();
    let Refused { envelope, size, reply } = r;
    let oversized = reply.code == 552;
    let status = if reply.is_transient() {
        Status::TempFailed
    } else {
        Status::Rejected
    };
    let client_ip = envelope
        .xforward
        .addr
        .as_deref()
        .and_then(|a| a.trim_start_matches("IPv6:").parse().ok());
    let results: Vec<RecipientResult> = envelope
        .recipients
        .iter()
        .map(|rc| RecipientResult {
            address: rc.address.clone(),
            orcpt: rc.orcpt.clone(),
            local: ctx.policy.is_local(&rc.address),
            status,
            response: reply.clone(),
            queued_as: None,
            blocking: oversized.then(|| "Oversized".to_string()),
            spam_score: None,
        })
        .collect();
    let content = if oversized {
        agent_mib::ContentCategory::Oversized
    } else {
        agent_mib::ContentCategory::Clean
    };
    let outcome = if status == Status::TempFailed {
        agent_mib::Outcome::TempFailed
    } else {
        agent_mib::Outcome::Rejected
    };
    let summary = MessageSummary {
        ids: meta.ids.clone(),
        received_at_ms: meta.received_at_ms,
        size,
        originating: ctx.policy.is_originating(client_ip.or(meta.peer.src_ip)),
        policy: ctx.policy.name.clone(),
        host: ctx.hostname.clone(),
        peer: meta.peer,
        recipients: results,
        content,
        content_name: content.name().to_string(),
        deliveries: Vec::new(),
        dsn_sent: false,
        client_replies: vec![reply],
        outcome,
        receiving: meta.mail_at.elapsed(),
        sending: std::time::Duration::ZERO,
        total: meta.mail_at.elapsed(),
        checks: CheckSummary::default(),
        quarantined: Vec::new(),
        quarantine_failures: 0,
        envelope,
    };
    record::record_message(slot, &summary, &ctx.events);
    slot.set_state(WorkerState::Done);
    outcome
}

/// Writes a quarantine copy per category the policy keeps, taken from each recipient's
/// blocking category, else its main one (spam only at the kill level, as amavisd).
/// Returns the copies written and how many failed.
/// Every recipient gets `reply` as a tempfail: the whole message goes back to the client.
fn tempfail_all(
    envelope: &crate::message::Envelope,
    policies: &[RecipientPolicy],
    reply: &Reply,
    results: &mut [Option<RecipientResult>],
) {
    for ((r, p), slot) in envelope.recipients.iter().zip(policies).zip(results) {
        *slot = Some(deliver::result(r, p.local, Status::TempFailed, reply.clone()));
    }
}

fn quarantine(
    ctx: &Context,
    slot: &WorkerSlot,
    envelope: &crate::message::Envelope,
    spool: &crate::message::spool::Spool,
    ids: &Ids,
    verdicts: &[Verdict],
    deliveries: &mut Vec<Delivery>,
) -> (Vec<Quarantined>, usize) {
    let keep = &ctx.policy.checks.quarantine;
    let mut wanted: Vec<agent_mib::ContentCategory> = Vec::new();
    for v in verdicts {
        let cat = v.blocking.or_else(|| v.ccats.first().copied()).map(|c| c.0);
        if let Some(cat) = cat.filter(|c| keep.contains(c) && !wanted.contains(c)) {
            wanted.push(cat);
        }
    }
    if wanted.is_empty() {
        return (Vec::new(), 0);
    }
    slot.set_state(WorkerState::Quarantine);
    let blocked: Vec<&str> = envelope
        .recipients
        .iter()
        .zip(verdicts)
        .filter(|(_, v)| v.reply.is_some())
        .map(|(r, _)| r.address.as_str())
        .collect();
    let (mut kept, mut failures) = (Vec::new(), 0);
    for cat in wanted {
        // Disk writes of a possibly large message: off the reactor's other tasks.
        let stored =
            tokio::task::block_in_place(|| quarantine_store(&ctx.quarantine_dir, cat, envelope, &blocked, ids, spool));
        let (replies, size) = match stored {
            Ok(q) => {
                let size = q.size;
                kept.push(q);
                (Some(vec![replies::quarantined(ids)]), size)
            }
            Err(e) => {
                tracing::error!(log_id = %ids.log_id, error = %e, dir = %ctx.quarantine_dir.display(), "quarantine failed");
                failures += 1;
                (None, 0)
            }
        };
        deliveries.push(Delivery {
            protocol: "Local",
            kind: DeliveryKind::Quarantine,
            conn: ConnUse::None,
            reuse_failed: false,
            replies,
            size,
        });
    }
    (kept, failures)
}

fn message<'a>(
    envelope: &'a crate::message::Envelope,
    spool: &'a crate::message::spool::Spool,
    meta: &'a TxMeta,
    policies: &'a [RecipientPolicy],
    verdicts: &'a [Verdict],
) -> deliver::Msg<'a> {
    deliver::Msg {
        envelope,
        spool,
        meta,
        policies,
        verdicts,
    }
}

fn summarize(c: &CheckRun) -> CheckSummary {
    let d = c.decoded.as_ref();
    CheckSummary {
        performed: c.performed.clone(),
        virus_names: match &c.outcomes.virus {
            VirusOutcome::Infected(n) => n.clone(),
            VirusOutcome::NotScanned | VirusOutcome::Clean | VirusOutcome::Failed(_) => Vec::new(),
        },
        spam: match &c.outcomes.spam {
            SpamOutcome::Scored { score, tests } => Some((*score, tests.clone())),
            SpamOutcome::NotScanned | SpamOutcome::Failed(_) => None,
        },
        subject: d.and_then(|d| d.subject.clone()),
        from: d.map(|d| d.from.clone()).unwrap_or_default(),
        message_id: d.and_then(|d| d.message_id.clone()),
        file_names: d
            .map(|d| {
                d.parts
                    .iter()
                    .filter(|p| p.depth == 0)
                    .filter_map(|p| p.name.clone())
                    .collect()
            })
            .unwrap_or_default(),
        headers: d.map(|d| d.headers.clone()).unwrap_or_default(),
        decoding: c.decoding,
        virus: c.virus,
        spam_time: c.spam,
    }
}
