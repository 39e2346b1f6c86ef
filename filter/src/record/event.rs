//! The per-message JSON event: amavisd-new's JSON log fields (json-log.md) plus ours,
//! versioned by `schema`. Keys are sorted (serde_json's map is ordered), numbers are
//! numbers, timestamps are UTC. The schema is documented in docs/events.md.

use serde_json::{Map, Value, json};

use super::{MessageSummary, actions_performed};

/// The schema version of the event; bumped when a field changes meaning or goes away.
pub const SCHEMA: &str = "avis.message/1";

fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.iter().any(|o| o == i) {
            out.push(i.to_string());
        }
    }
    out
}

/// Builds the event of a message.
pub fn build(s: &MessageSummary) -> Value {
    let mut m = Map::new();
    let ms = s.received_at_ms;
    m.insert("@timestamp".into(), json!(iso_ms(ms)));
    m.insert("time_unix".into(), json!(ms as f64 / 1000.0));
    m.insert("schema".into(), json!(SCHEMA));
    m.insert("type".into(), json!("amavis"));
    m.insert("time_iso_week_date".into(), json!(iso_week_date(ms)));
    m.insert("partition".into(), json!("0"));
    m.insert("host".into(), json!(s.host));
    m.insert("log_id".into(), json!(s.ids.log_id));
    m.insert("mail_id".into(), json!(s.ids.mail_id));
    if let Some(ip) = s.peer.src_ip {
        m.insert("src_ip".into(), json!(ip.to_string()));
    }
    if let Some(ip) = s.peer.dst_ip {
        m.insert("dst_ip".into(), json!(ip.to_string()));
    }
    if let Some(p) = s.peer.dst_port {
        m.insert("dst_port".into(), json!(p));
    }
    let xf = &s.envelope.xforward;
    if let Some(a) = &xf.addr {
        m.insert("client_ip".into(), json!(a));
    }
    if let Some(p) = xf.port.as_deref().and_then(|p| p.parse::<u16>().ok()) {
        m.insert("client_port".into(), json!(p));
    }
    if let Some(q) = &xf.ident {
        m.insert("queue_id".into(), json!(q));
    }
    let protocol = match (s.envelope.lmtp, s.envelope.smtputf8) {
        (true, true) => "UTF8LMTP",
        (true, false) => "LMTP",
        (false, true) => "UTF8SMTP",
        (false, false) => "ESMTP",
    };
    m.insert("protocol".into(), json!(protocol));
    m.insert("mail_from".into(), json!(s.envelope.mail_from));
    let rcpts: Vec<&str> = s.recipients.iter().map(|r| r.address.as_str()).collect();
    m.insert("rcpt_to".into(), json!(rcpts));
    m.insert("rcpt_num".into(), json!(rcpts.len()));
    let recipients: Vec<Value> = s
        .recipients
        .iter()
        .map(|r| {
            let mut o = Map::new();
            o.insert("rcpt_to".into(), json!(r.address));
            if let Some(orig) = r.orcpt.as_deref()
                && orig != r.address
            {
                o.insert("rcpt_to_orig".into(), json!(orig));
            }
            o.insert("rcpt_is_local".into(), json!(r.local));
            o.insert("action".into(), json!(r.action()));
            o.insert("status".into(), json!(r.status.name()));
            o.insert("smtp_response".into(), json!(r.response.to_string()));
            o.insert("smtp_code".into(), json!(r.response.code.to_string()));
            if let Some(q) = &r.queued_as {
                o.insert("queued_as".into(), json!(q));
            }
            if let Some(b) = &r.blocking {
                o.insert("ccat_blocking".into(), json!(b));
            }
            if let Some(score) = r.spam_score {
                o.insert("spam_score".into(), json!((score * 1000.0).round() / 1000.0));
            }
            Value::Object(o)
        })
        .collect();
    m.insert("recipients".into(), Value::Array(recipients));
    m.insert(
        "policy_banks".into(),
        json!(if s.policy == "default" {
            vec![]
        } else {
            vec![s.policy.clone()]
        }),
    );
    m.insert("size".into(), json!(s.size));
    m.insert("content_type".into(), json!(s.content_name));
    let c = &s.checks;
    if !c.performed.is_empty() {
        m.insert("checks_performed".into(), json!(c.performed));
    }
    if !c.virus_names.is_empty() {
        m.insert("virusnames".into(), json!(c.virus_names));
    }
    if let Some((score, tests)) = &c.spam {
        m.insert("spam_score".into(), json!((score * 1000.0).round() / 1000.0));
        let mut sorted = tests.clone();
        sorted.sort();
        m.insert("tests".into(), json!(sorted));
    }
    if let Some(subject) = &c.subject {
        m.insert("subject".into(), json!(subject));
        m.insert("subject_rot13".into(), json!(rot13(subject)));
    }
    let h = &c.headers;
    for (key, list) in [("to_addr", &h.to), ("cc_addr", &h.cc), ("references", &h.references)] {
        if !list.is_empty() {
            m.insert(key.into(), json!(list));
        }
    }
    if let Some(sender) = &h.sender {
        m.insert("sender".into(), json!(sender));
    }
    if let Some(ua) = &h.user_agent {
        m.insert("user_agent".into(), json!(ua));
    }
    if !c.from.is_empty() {
        m.insert("author".into(), json!(c.from));
    }
    if let Some(id) = &c.message_id {
        m.insert("message_id".into(), json!(id));
    }
    if !c.file_names.is_empty() {
        m.insert("attached_file_names".into(), json!(c.file_names));
    }
    m.insert("dsn_sent".into(), json!(s.dsn_sent));
    if let Some(q) = s.quarantined.first() {
        m.insert("quarantine".into(), json!(q.relative));
        m.insert("quar_type".into(), json!(q.quar_type));
    }
    m.insert("originating".into(), json!(s.originating));
    let actions = actions_performed(s);
    if !actions.is_empty() {
        m.insert("actions_performed".into(), json!(actions.join(" ")));
    }
    let codes = unique(
        s.recipients
            .iter()
            .map(|r| r.response.code.to_string())
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    m.insert("smtp_code".into(), json!(codes));
    let queued = unique(s.recipients.iter().filter_map(|r| r.queued_as.as_deref()));
    if !queued.is_empty() {
        m.insert("queued_as".into(), json!(queued));
    }
    let action = unique(s.recipients.iter().map(|r| r.action()));
    m.insert(
        "message".into(),
        json!(format!(
            "{} {} {} <{}> -> {}",
            s.ids.log_id,
            action.join(","),
            s.content_name,
            s.envelope.mail_from,
            rcpts.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>().join(",")
        )),
    );
    m.insert("action".into(), json!(action));
    m.insert("outcome".into(), json!(format!("{:?}", s.outcome)));
    let replies: Vec<String> = s.client_replies.iter().map(ToString::to_string).collect();
    m.insert("client_reply".into(), json!(replies));
    let mut elapsed = Map::new();
    elapsed.insert("Receiving".into(), json!(secs(s.receiving)));
    elapsed.insert("Sending".into(), json!(secs(s.sending)));
    elapsed.insert("Total".into(), json!(secs(s.total)));
    let mut scanning = std::time::Duration::ZERO;
    for (name, d) in [
        ("Decoding", c.decoding),
        ("VirusCheck", c.virus),
        ("SpamCheck", c.spam_time),
    ] {
        if let Some(d) = d {
            elapsed.insert(name.into(), json!(secs(d)));
            if name != "Decoding" {
                scanning += d;
            }
        }
    }
    elapsed.insert("Amavis".into(), json!(secs(s.total.saturating_sub(scanning))));
    m.insert("elapsed".into(), Value::Object(elapsed));
    Value::Object(m)
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
