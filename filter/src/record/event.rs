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
