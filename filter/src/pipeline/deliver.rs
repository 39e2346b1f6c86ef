//! act + forward for the recipients that pass: recipients whose edits are identical go
//! out together, others in further transactions (amavisd's recipient clusters); and the
//! DSNs for recipients bounced by policy or refused by the back end behind a single
//! ESMTP reply.

use std::time::Instant;

use agent_mib::{ScanResult, Scanner, Status, WorkerSlot};

use super::Context;
use crate::act;
use crate::decide::{RecipientPolicy, Verdict};
use crate::forward::Outgoing;
use crate::forward::client::ClientError;
use crate::message::spool::{Spool, SpoolConfig};
use crate::message::{ConnUse, Delivery, DeliveryKind, Envelope, Recipient, RecipientResult, Reply};
use crate::replies;

/// The message being delivered, with its recipients' settings and verdicts.
pub(super) struct Msg<'a> {
    /// The envelope as received.
    pub envelope: &'a Envelope,
    /// The body.
    pub spool: &'a Spool,
    /// Ids and connection facts.
    pub meta: &'a crate::message::TxMeta,
    /// Per recipient settings.
    pub policies: &'a [RecipientPolicy],
    /// Per recipient verdicts (empty when the checks failed).
    pub verdicts: &'a [Verdict],
}

/// One group of passed recipients with the same edits.
struct Group {
    indices: Vec<usize>,
    headers: Vec<(String, String)>,
    subject_tag: Option<String>,
}

fn groups(verdicts: &[Verdict], passed: &[usize]) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for &i in passed {
        let v = &verdicts[i];
        match out
            .iter_mut()
            .find(|g| g.headers == v.add_headers && g.subject_tag == v.subject_tag)
        {
            Some(g) => g.indices.push(i),
            None => out.push(Group {
                indices: vec![i],
                headers: v.add_headers.clone(),
                subject_tag: v.subject_tag.clone(),
            }),
        }
    }
    out
}

pub(super) fn result(r: &Recipient, local: bool, status: Status, response: Reply) -> RecipientResult {
    RecipientResult {
        address: r.address.clone(),
        orcpt: r.orcpt.clone(),
        local,
        status,
        queued_as: queued_as(&response),
        response,
        blocking: None,
        spam_score: None,
    }
}

/// Forwards the passed recipients (`passed` indexes), group by group. Fills `results`.
pub(super) async fn forward_passed(
    ctx: &Context,
    slot: &WorkerSlot,
    msg: &Msg<'_>,
    passed: &[usize],
    results: &mut [Option<RecipientResult>],
    deliveries: &mut Vec<Delivery>,
) {
    let Msg {
        envelope,
        spool,
        meta,
        policies,
        verdicts,
    } = *msg;
    let target = ctx.forwarder.target().to_string();
    let protocol = ctx.forwarder.target().counter_protocol();
    for group in groups(verdicts, passed) {
        let mut env = envelope.clone();
        env.recipients = group
            .indices
            .iter()
            .map(|&i| {
                let r = &envelope.recipients[i];
                match (&verdicts[i].extension, policies[i].recipient_delimiter) {
                    (Some(ext), Some(d)) => Recipient {
                        address: act::with_extension(&r.address, d, ext),
                        orcpt: r.orcpt.clone().or_else(|| Some(r.address.clone())),
                        notify: r.notify,
                    },
                    _ => r.clone(),
                }
            })
            .collect();
        let mut prepend = act::received_header(&env, &meta.ids, &ctx.hostname, meta.peer.dst_port, meta.received_at_ms);
        let mut skip = 0;
        if !group.headers.is_empty() || group.subject_tag.is_some() {
            match act::edit_header(spool, &group.headers, group.subject_tag.as_deref()) {
                Some((header, replaced)) => {
                    prepend.extend_from_slice(&header);
                    skip = replaced;
                }
                None => {
                    for (n, v) in &group.headers {
                        prepend.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
                    }
                }
            }
        }
        let out = Outgoing {
            prepend: &prepend,
            skip,
            spool,
        };
        let started = Instant::now();
        let limit = ctx.policy.forward_timeout * 2;
        let sent = match tokio::time::timeout(limit, ctx.forwarder.forward(&env, &out)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout("forwarding")),
        };
        let health = match &sent {
            Ok(_) => ScanResult::Ok,
            Err(ClientError::Timeout(_)) => ScanResult::Timeout,
            Err(_) => ScanResult::Error,
        };
        slot.scanner(Scanner::Backend, health, started.elapsed());
        match sent {
            Ok(f) => {
                for (k, &i) in group.indices.iter().enumerate() {
                    let reply = f
                        .replies
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| replies::tempfail(&meta.ids.log_id, "forwarding", "no reply"));
                    let status = if reply.is_positive() {
                        if verdicts[i].tagged {
                            Status::RelayedTagged
                        } else {
                            Status::RelayedUntagged
                        }
                    } else if reply.is_transient() {
                        Status::TempFailed
                    } else {
                        Status::Rejected
                    };
                    results[i] = Some(result(
                        &envelope.recipients[i],
                        policies[i].local,
                        status,
                        replies::from_mta(&target, &reply),
                    ));
                }
                deliveries.push(Delivery {
                    protocol,
                    kind: DeliveryKind::Relay,
                    conn: f.conn,
                    reuse_failed: f.reuse_failed,
                    replies: Some(f.replies),
                    size: out.len(),
                });
            }
            Err(e) => {
                tracing::warn!(log_id = %meta.ids.log_id, error = %e, target = %target, "forwarding failed; tempfailing");
                let reply = replies::tempfail(&meta.ids.log_id, "forwarding", &e.to_string());
                for &i in &group.indices {
                    results[i] = Some(result(
                        &envelope.recipients[i],
                        policies[i].local,
                        Status::TempFailed,
                        reply.clone(),
                    ));
                }
                let conn = if protocol == "Pipe" {
                    ConnUse::None
                } else {
                    ConnUse::New
                };
                deliveries.push(Delivery {
                    protocol,
                    kind: DeliveryKind::Relay,
                    conn,
                    reuse_failed: false,
                    replies: None,
                    size: out.len(),
                });
            }
        }
    }
}

/// The blocked recipients' results (their reply is decide's).
pub(super) fn blocked(
    envelope: &Envelope,
    policies: &[RecipientPolicy],
    verdicts: &[Verdict],
    results: &mut [Option<RecipientResult>],
) {
    use crate::decide::Destiny;
    for (i, v) in verdicts.iter().enumerate() {
        let Some(reply) = v.reply.clone() else { continue };
        let status = match v.destiny {
            Destiny::Discard => Status::Discarded,
            Destiny::Reject => Status::Rejected,
            Destiny::Bounce => Status::Bounced, // the DSN step settles Bounced or NoBounce
            Destiny::Tempfail => Status::TempFailed,
            Destiny::Pass => continue,
        };
        results[i] = Some(result(&envelope.recipients[i], policies[i].local, status, reply));
    }
}

/// Sends one DSN for every recipient that must be bounced: destiny bounce, or a
/// rejection that one ESMTP reply cannot carry. Suppressed for the null sender, by
/// NOTIFY, and for spam at or above the DSN cutoff (→ NoBounce). A DSN the back end
/// does not take tempfails those recipients (the sender keeps the message).
pub(super) async fn bounce(
    ctx: &Context,
    slot: &WorkerSlot,
    msg: &Msg<'_>,
    results: &mut [RecipientResult],
    deliveries: &mut Vec<Delivery>,
) -> bool {
    let Msg {
        envelope,
        spool,
        meta,
        verdicts,
        ..
    } = *msg;
    let ids = &meta.ids;
    let propagate = super::answer::rejections_propagate(envelope, results);
    let mut to_report = Vec::new();
    for (i, res) in results.iter_mut().enumerate() {
        let needs = match res.status {
            Status::Bounced => true,
            Status::Rejected => !propagate,
            _ => false,
        };
        if !needs {
            continue;
        }
        let Some(rcpt) = envelope.recipients.get(i) else {
            continue;
        };
        // amavisd's defaults: no DSN to a null sender or against NOTIFY, none for spam at or
        // above the cutoff, and none for viruses, whose senders are nearly always forged.
        let virus = verdicts
            .get(i)
            .and_then(|v| v.blocking)
            .is_some_and(|b| b.0 == agent_mib::ContentCategory::Virus);
        if act::dsn_suppressed(envelope, rcpt) || virus || verdicts.get(i).is_some_and(|v| v.dsn_cutoff) {
            res.status = Status::NoBounce;
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
        kind: DeliveryKind::Dsn,
        conn,
        reuse_failed,
        replies: replies_,
        size: dsn_spool.len(),
    });
    for &i in &to_report {
        if ok {
            results[i].status = Status::Bounced;
        } else {
            results[i].status = Status::TempFailed;
            results[i].response = replies::tempfail(&ids.log_id, "DSN", "the back end did not accept the DSN");
        }
    }
    ok
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
