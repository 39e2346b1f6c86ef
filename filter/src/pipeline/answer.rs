//! How per-recipient results become the client's reply or replies, and the message's
//! one ledger outcome. amavisd's aggregation rules for ESMTP (one reply must stand for
//! all): any 4xx → the first 4xx; every recipient discarded → the first discard reply;
//! only discards and rejections, at least one rejection → that 5xx; otherwise 2xx, the
//! first relayed reply or `250 2.5.0 Ok, id=…`, with what happened to the others.

use agent_mib::{Outcome, Status};

use crate::message::{Envelope, Ids, RecipientResult, Reply};
use crate::replies;

fn relayed(r: &RecipientResult) -> bool {
    matches!(r.status, Status::RelayedUntagged | Status::RelayedTagged)
}

/// Whether one ESMTP reply can carry the rejections as 5xx (no recipient passes).
pub fn rejections_propagate(envelope: &Envelope, results: &[RecipientResult]) -> bool {
    envelope.lmtp
        || results
            .iter()
            .all(|r| matches!(r.status, Status::Rejected | Status::Discarded | Status::TempFailed))
}

/// The replies for the client: one for ESMTP, one per recipient for LMTP.
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
    if let Some(d) = results
        .first()
        .filter(|_| results.iter().all(|r| r.status == Status::Discarded))
    {
        return vec![d.response.clone()];
    }
    if results
        .iter()
        .all(|r| matches!(r.status, Status::Discarded | Status::Rejected))
        && let Some(rej) = results.iter().find(|r| r.status == Status::Rejected)
    {
        return vec![rej.response.clone()];
    }
    let count = |f: fn(&RecipientResult) -> bool| results.iter().filter(|r| f(r)).count();
    let bounced = count(|r| r.status == Status::Bounced);
    let suppressed = count(|r| r.status == Status::NoBounce);
    let discarded = count(|r| r.status == Status::Discarded);
    let mut notes: Vec<String> = Vec::new();
    if bounced > 0 {
        notes.push(format!("{bounced} BOUNCE"));
    }
    if suppressed > 0 {
        notes.push(format!("{suppressed} DISCARD(bounce.suppressed)"));
    }
    if discarded > 0 {
        notes.push(format!("{discarded} DISCARD"));
    }
    match results.iter().find(|r| relayed(r)) {
        Some(first) if notes.is_empty() => vec![first.response.clone()],
        Some(first) => vec![replies::with_notes(&first.response, &notes.join(", and "))],
        None if bounced == results.len() => vec![replies::ok_id(&ids.log_id, "BOUNCE")],
        None => vec![replies::ok_id(&ids.log_id, &notes.join(", and "))],
    }
}

/// The one ledger outcome of a message. A message delivered to nobody and kept in
/// quarantine is `Quarantined` rather than `Discarded`.
pub fn ledger_outcome(
    envelope: &Envelope,
    results: &[RecipientResult],
    client: &[Reply],
    quarantined: bool,
) -> Outcome {
    let any = |s: &[Status]| results.iter().any(|r| s.contains(&r.status));
    let by_results = || {
        if any(&[Status::RelayedUntagged, Status::RelayedTagged]) {
            Outcome::Relayed
        } else if any(&[Status::Bounced, Status::NoBounce]) {
            Outcome::Bounced
        } else if any(&[Status::Discarded]) && quarantined {
            Outcome::Quarantined
        } else if any(&[Status::Discarded]) {
            Outcome::Discarded
        } else {
            Outcome::Rejected
        }
    };
    if envelope.lmtp {
        if any(&[Status::RelayedUntagged, Status::RelayedTagged]) {
            Outcome::Relayed
        } else if any(&[Status::TempFailed]) {
            Outcome::TempFailed
        } else {
            by_results()
        }
    } else {
        match client.first() {
            Some(r) if r.is_transient() => Outcome::TempFailed,
            Some(r) if r.is_permanent() => Outcome::Rejected,
            Some(_) => by_results(),
            None => Outcome::TempFailed,
        }
    }
}
