//! The per-message JSON event: amavisd-new's JSON log fields (json-log.md) plus ours,
//! versioned by `schema`, as one typed record, [`MessageEvent`], built from a
//! [`MessageSummary`] and serialized by serde. Numbers are numbers, timestamps are UTC;
//! keys come out sorted because the sink writes the event through `serde_json::Value`.
//! The schema is documented in docs/events.md, and filter/tests/event_record.rs holds the
//! two to each other field by field.
//!
//! The record is split the way the message went: where it came from ([`Origin`]), what the
//! checks found ([`Content`]), what became of it ([`Fate`]); serde flattens the three into
//! one object. An optional field is absent, not null, when it has no source (amavisd's
//! habit, which existing pipelines rely on).

use std::time::Duration;

use serde::Serialize;

use super::{MessageSummary, actions_performed};
use crate::message::RecipientResult;

/// The schema version of the event; bumped when a field changes meaning or goes away.
pub const SCHEMA: &str = "avis.message/1";

/// One `avis.message/1` event.
#[derive(Debug, Serialize)]
pub struct MessageEvent<'a> {
    #[serde(flatten)]
    origin: Origin<'a>,
    #[serde(flatten)]
    content: Content<'a>,
    #[serde(flatten)]
    fate: Fate<'a>,
}

/// When, where from and to whom: ids, connection, XFORWARD, envelope, policy.
#[derive(Debug, Serialize)]
struct Origin<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    time_unix: f64,
    schema: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    time_iso_week_date: String,
    partition: &'static str,
    host: &'a str,
    log_id: &'a str,
    mail_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ip: Option<&'a str>,
    /// Absent, too, when XFORWARD's PORT is not a port number.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue_id: Option<&'a str>,
    protocol: &'static str,
    mail_from: &'a str,
    rcpt_to: Vec<&'a str>,
    rcpt_num: usize,
    policy_banks: Vec<&'a str>,
    originating: bool,
}

/// The message and what the checks found in it.
#[derive(Debug, Serialize)]
struct Content<'a> {
    size: u64,
    content_type: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    checks_performed: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    virusnames: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    spam_score: Option<f64>,
    /// Sorted; present exactly when `spam_score` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    tests: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_rot13: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    author: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    sender: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    to_addr: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    cc_addr: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    references: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    attached_file_names: &'a [String],
}

/// What became of the message: per recipient, as a whole, and how long it took.
#[derive(Debug, Serialize)]
struct Fate<'a> {
    recipients: Vec<RecipientEvent<'a>>,
    dsn_sent: bool,
    /// The first quarantine copy only, as amavisd logs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    quarantine: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quar_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actions_performed: Option<String>,
    smtp_code: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    queued_as: Vec<&'a str>,
    message: String,
    action: Vec<&'static str>,
    outcome: String,
    client_reply: Vec<String>,
    elapsed: Elapsed,
}

/// One entry of `recipients`.
#[derive(Debug, Serialize)]
struct RecipientEvent<'a> {
    rcpt_to: &'a str,
    /// Only when it differs from `rcpt_to`.
    #[serde(skip_serializing_if = "Option::is_none")]
    rcpt_to_orig: Option<&'a str>,
    rcpt_is_local: bool,
    action: &'static str,
    status: &'static str,
    smtp_response: String,
    smtp_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    queued_as: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ccat_blocking: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spam_score: Option<f64>,
}

/// `elapsed`: seconds with milliseconds, amavisd's section names.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Elapsed {
    receiving: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    decoding: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    virus_check: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spam_check: Option<f64>,
    sending: f64,
    total: f64,
    /// Total minus the scanners' time (decoding counts as amavisd's own work).
    amavis: f64,
}

/// Builds the event of a message.
pub fn build(s: &MessageSummary) -> MessageEvent<'_> {
    MessageEvent {
        origin: Origin::of(s),
        content: Content::of(s),
        fate: Fate::of(s),
    }
}

impl<'a> Origin<'a> {
    fn of(s: &'a MessageSummary) -> Origin<'a> {
        let ms = s.received_at_ms;
        let xf = &s.envelope.xforward;
        let protocol = match (s.envelope.lmtp, s.envelope.smtputf8) {
            (true, true) => "UTF8LMTP",
            (true, false) => "LMTP",
            (false, true) => "UTF8SMTP",
            (false, false) => "ESMTP",
        };
        let rcpt_to: Vec<&str> = s.recipients.iter().map(|r| r.address.as_str()).collect();
        Origin {
            timestamp: iso_ms(ms),
            time_unix: ms as f64 / 1000.0,
            schema: SCHEMA,
            kind: "amavis",
            time_iso_week_date: iso_week_date(ms),
            partition: "0",
            host: &s.host,
            log_id: &s.ids.log_id,
            mail_id: &s.ids.mail_id,
            src_ip: s.peer.src_ip.map(|ip| ip.to_string()),
            dst_ip: s.peer.dst_ip.map(|ip| ip.to_string()),
            dst_port: s.peer.dst_port,
            client_ip: xf.addr.as_deref(),
            client_port: xf.port.as_deref().and_then(|p| p.parse::<u16>().ok()),
            queue_id: xf.ident.as_deref(),
            protocol,
            mail_from: &s.envelope.mail_from,
            rcpt_num: rcpt_to.len(),
            rcpt_to,
            policy_banks: if s.policy == "default" {
                vec![]
            } else {
                vec![s.policy.as_str()]
            },
            originating: s.originating,
        }
    }
}

impl<'a> Content<'a> {
    fn of(s: &'a MessageSummary) -> Content<'a> {
        let c = &s.checks;
        let h = &c.headers;
        let tests = c.spam.as_ref().map(|(_, tests)| {
            let mut sorted: Vec<&str> = tests.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            sorted
        });
        Content {
            size: s.size,
            content_type: &s.content_name,
            checks_performed: &c.performed,
            virusnames: &c.virus_names,
            spam_score: c.spam.as_ref().map(|(score, _)| score3(*score)),
            tests,
            subject: c.subject.as_deref(),
            subject_rot13: c.subject.as_deref().map(rot13),
            author: &c.from,
            sender: h.sender.as_deref(),
            to_addr: &h.to,
            cc_addr: &h.cc,
            message_id: c.message_id.as_deref(),
            references: &h.references,
            user_agent: h.user_agent.as_deref(),
            attached_file_names: &c.file_names,
        }
    }
}

impl<'a> Fate<'a> {
    fn of(s: &'a MessageSummary) -> Fate<'a> {
        let first_quarantine = s.quarantined.first();
        let actions = actions_performed(s);
        let action = unique(s.recipients.iter().map(RecipientResult::action));
        let rcpts: Vec<String> = s.recipients.iter().map(|r| format!("<{}>", r.address)).collect();
        Fate {
            recipients: s.recipients.iter().map(RecipientEvent::of).collect(),
            dsn_sent: s.dsn_sent,
            quarantine: first_quarantine.map(|q| q.relative.as_str()),
            quar_type: first_quarantine.map(|q| q.quar_type),
            actions_performed: (!actions.is_empty()).then(|| actions.join(" ")),
            smtp_code: unique(s.recipients.iter().map(|r| r.response.code.to_string())),
            queued_as: unique(s.recipients.iter().filter_map(|r| r.queued_as.as_deref())),
            message: format!(
                "{} {} {} <{}> -> {}",
                s.ids.log_id,
                action.join(","),
                s.content_name,
                s.envelope.mail_from,
                rcpts.join(",")
            ),
            action,
            outcome: format!("{:?}", s.outcome),
            client_reply: s.client_replies.iter().map(ToString::to_string).collect(),
            elapsed: Elapsed::of(s),
        }
    }
}

impl<'a> RecipientEvent<'a> {
    fn of(r: &'a RecipientResult) -> RecipientEvent<'a> {
        RecipientEvent {
            rcpt_to: &r.address,
            rcpt_to_orig: r.orcpt.as_deref().filter(|orig| *orig != r.address),
            rcpt_is_local: r.local,
            action: r.action(),
            status: r.status.name(),
            smtp_response: r.response.to_string(),
            smtp_code: r.response.code.to_string(),
            queued_as: r.queued_as.as_deref(),
            ccat_blocking: r.blocking.as_deref(),
            spam_score: r.spam_score.map(score3),
        }
    }
}

impl Elapsed {
    fn of(s: &MessageSummary) -> Elapsed {
        let c = &s.checks;
        let scanning = c.virus.unwrap_or_default() + c.spam_time.unwrap_or_default();
        Elapsed {
            receiving: secs(s.receiving),
            decoding: c.decoding.map(secs),
            virus_check: c.virus.map(secs),
            spam_check: c.spam_time.map(secs),
            sending: secs(s.sending),
            total: secs(s.total),
            amavis: secs(s.total.saturating_sub(scanning)),
        }
    }
}

/// Seconds, rounded to milliseconds.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// A score rounded to 3 decimals, as amavisd logs it.
fn score3(score: f64) -> f64 {
    (score * 1000.0).round() / 1000.0
}

/// The distinct items, in the order first seen.
fn unique<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso_ms(ms: u64) -> String {
    let base = agent_mib::snapshot::iso8601_utc(ms);
    format!("{}.{:03}Z", base.trim_end_matches('Z'), ms % 1000)
}

fn rot13(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' => char::from((c as u8 - b'a' + 13) % 26 + b'a'),
            'A'..='Z' => char::from((c as u8 - b'A' + 13) % 26 + b'A'),
            other => other,
        })
        .collect()
}

/// `YYYY-Www-D` (ISO 8601 week date), in UTC.
pub fn iso_week_date(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64; // days since 1970-01-01, a Thursday
    let weekday = (days + 3).rem_euclid(7) + 1; // 1 = Monday
    let date = agent_mib::snapshot::iso8601_utc(ms);
    let year: i64 = date.get(0..4).and_then(|y| y.parse().ok()).unwrap_or(1970);
    // The Thursday of this week decides the ISO year; its ordinal day gives the week.
    let thursday = days - weekday + 4;
    let jan1 = |y: i64| -> i64 {
        let y1 = y - 1;
        365 * (y - 1970) + (y1 / 4 - 1969 / 4) - (y1 / 100 - 1969 / 100) + (y1 / 400 - 1969 / 400)
    };
    let mut iso_year = year;
    if thursday < jan1(year) {
        iso_year -= 1;
    } else if thursday >= jan1(year + 1) {
        iso_year += 1;
    }
    let week = (thursday - jan1(iso_year)) / 7 + 1;
    format!("{iso_year:04}-W{week:02}-{weekday}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_week_dates_match_the_calendar() {
        // `date -u -d @S +%G-W%V-%u`
        assert_eq!(iso_week_date(1_795_930_754_000), "2026-W48-7"); // Sun 29 Nov 2026
        assert_eq!(iso_week_date(1_609_459_200_000), "2020-W53-5"); // Fri 1 Jan 2021
        assert_eq!(iso_week_date(1_704_067_200_000), "2024-W01-1"); // Mon 1 Jan 2024
        assert_eq!(iso_week_date(1_735_516_800_000), "2025-W01-1"); // Mon 30 Dec 2024
    }

    #[test]
    fn rot13_is_its_own_inverse() {
        assert_eq!(rot13("Hello, World"), "Uryyb, Jbeyq");
        assert_eq!(rot13(&rot13("Caf\u{e9} 42")), "Caf\u{e9} 42");
    }
}
