//! act: what avisd adds or generates for a message: its Received trace field, and the
//! delivery status notification (RFC 3464) for recipients the back end refused after
//! the client was already promised delivery (one ESMTP reply must stand for all).

use std::fmt::Write as _;

use crate::message::{Envelope, Ids, Recipient, Reply};
use crate::receive::spool::Spool;

/// RFC 5322 date-time in UTC, e.g. `Sun, 29 Nov 2026 05:30:00 +0000`.
pub fn rfc5322_date(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let iso = agent_mib::snapshot::iso8601_utc(ms); // YYYY-MM-DDTHH:MM:SSZ
    let day = DAYS[((ms / 86_400_000) % 7) as usize];
    let month = iso
        .get(5..7)
        .and_then(|m| m.parse::<usize>().ok())
        .and_then(|m| MONTHS.get(m.wrapping_sub(1)))
        .unwrap_or(&"Jan");
    format!(
        "{day}, {} {month} {} {} +0000",
        iso.get(8..10).unwrap_or("01").trim_start_matches('0'),
        iso.get(0..4).unwrap_or("1970"),
        iso.get(11..19).unwrap_or("00:00:00")
    )
}

/// The Received field avisd prepends, as amavisd does (trace and loop detection).
pub fn received_header(envelope: &Envelope, ids: &Ids, host: &str, port: Option<u16>, ms: u64) -> Vec<u8> {
    let from = envelope
        .xforward
        .helo
        .as_deref()
        .or(Some(envelope.helo.as_str()))
        .filter(|h| !h.is_empty())
        .unwrap_or("unknown");
    let addr = envelope
        .xforward
        .addr
        .as_deref()
        .map(|a| format!(" ([{a}])"))
        .unwrap_or_default();
    let with = if envelope.lmtp { "LMTP" } else { "ESMTP" };
    let port = port.map(|p| format!(", port {p}")).unwrap_or_default();
    let rcpt = match envelope.recipients.as_slice() {
        [only] => format!("\r\n\tfor <{}>", only.address),
        _ => String::new(),
    };
    format!(
        "Received: from {from}{addr}\r\n\tby {host} (avis{port}) with {with} id {}{rcpt};\r\n\t{}\r\n",
        ids.mail_id,
        rfc5322_date(ms)
    )
    .into_bytes()
}

/// Whether a failure DSN must not be sent for `rcpt`: never bounce a bounce (null
/// sender), and honour NOTIFY.
pub fn dsn_suppressed(envelope: &Envelope, rcpt: &Recipient) -> bool {
    envelope.mail_from.is_empty() || !rcpt.notify.wants_failure()
}

/// The original header section (up to the first empty line, at most 64 KiB).
fn original_headers(spool: &Spool) -> String {
    let head = spool.head(64 * 1024).unwrap_or_default();
    let text = String::from_utf8_lossy(&head);
    let end = text
        .find("\r\n\r\n")
        .map(|i| i + 2)
        .or_else(|| text.find("\n\n").map(|i| i + 1))
        .unwrap_or(text.len());
    text[..end].to_string()
}

/// Builds a failure DSN to the envelope sender for the `failed` recipients with the
/// replies the back end gave them. Returns its envelope and its bytes.
pub fn failure_dsn(
    envelope: &Envelope,
    ids: &Ids,
    host: &str,
    failed: &[(&Recipient, &Reply)],
    spool: &Spool,
    now_ms: u64,
) -> (Envelope, Vec<u8>) {
    let boundary = format!("----------=_{}", ids.mail_id);
    let date = rfc5322_date(now_ms);
    let mut m = String::new();
    let _ = write!(
        m,
        "From: \"Content-filter at {host}\" <postmaster@{host}>\r\n\
         To: <{to}>\r\n\
         Subject: Undelivered mail returned to sender\r\n\
         Date: {date}\r\n\
         Message-ID: <DSN{id}@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"{boundary}\"\r\n\r\n\
         This is a multi-part message in MIME format.\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n\
         Your message (id {id}) could not be delivered to the following recipients:\r\n\r\n",
        to = envelope.mail_from,
        id = ids.mail_id,
    );
    for (r, reply) in failed {
        let _ = write!(m, "  <{}>: {}\r\n", r.address, reply);
    }
    let _ = write!(
        m,
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {host}\r\n"
    );
    if let Some(envid) = &envelope.envid {
        let _ = write!(m, "Original-Envelope-Id: {envid}\r\n");
    }
    let _ = write!(m, "Arrival-Date: {date}\r\n");
    for (r, reply) in failed {
        let status = reply
            .enhanced
            .map_or("5.0.0".to_string(), |(a, b, c)| format!("{a}.{b}.{c}"));
        m.push_str("\r\n");
        if let Some(o) = &r.orcpt {
            let _ = write!(m, "Original-Recipient: rfc822;{o}\r\n");
        }
        let _ = write!(
            m,
            "Final-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {}\r\nLast-Attempt-Date: {date}\r\n",
            r.address,
            reply.to_string().replace(['\r', '\n'], " ")
        );
    }
    let _ = write!(
        m,
        "\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n{}\r\n--{boundary}--\r\n",
        original_headers(spool)
    );
    let dsn_envelope = Envelope {
        mail_from: String::new(),
        recipients: vec![Recipient {
            address: envelope.mail_from.clone(),
            orcpt: None,
            notify: Default::default(),
        }],
        body: envelope.body,
        smtputf8: envelope.smtputf8,
        ret: None,
        envid: None,
        declared_size: None,
        xforward: Default::default(),
        helo: host.to_string(),
        lmtp: false,
    };
    (dsn_envelope, m.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc5322_in_utc() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(1_796_000_000_000), "Mon, 30 Nov 2026 00:53:20 +0000");
    }
}
