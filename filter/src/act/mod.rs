//! act: what avisd adds or generates for a message: its Received trace field, and the
//! delivery status notification (RFC 3464) for recipients the back end refused after
//! the client was already promised delivery (one ESMTP reply must stand for all).

pub mod quarantine;

use std::fmt::Write as _;

use crate::message::spool::Spool;
use crate::message::{Envelope, Ids, Recipient, Reply, escape_controls, xtext_encode};

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
/// Every value is masked (control characters become '?') whatever receive let through:
/// a CR or LF from a peer here would start a header field of the peer's choosing.
pub fn received_header(envelope: &Envelope, ids: &Ids, host: &str, port: Option<u16>, ms: u64) -> Vec<u8> {
    use crate::message::mask_controls as safe;
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
        .map(|a| format!(" ([{}])", safe(a)))
        .unwrap_or_default();
    let with = if envelope.lmtp { "LMTP" } else { "ESMTP" };
    let port = port.map(|p| format!(", port {p}")).unwrap_or_default();
    let rcpt = match envelope.recipients.as_slice() {
        [only] => format!("\r\n\tfor <{}>", safe(&only.address)),
        _ => String::new(),
    };
    format!(
        "Received: from {}{addr}\r\n\tby {} (avis{port}) with {with} id {}{rcpt};\r\n\t{}\r\n",
        safe(from),
        safe(host),
        safe(&ids.mail_id),
        rfc5322_date(ms)
    )
    .into_bytes()
}

/// Header fields avisd owns: incoming copies are removed before ours are added, so a
/// sender cannot forge a verdict (amavisd's `remove_existing_spam_headers`).
const OWNED_FIELDS: [&str; 6] = [
    "x-spam-flag",
    "x-spam-score",
    "x-spam-level",
    "x-spam-status",
    "x-amavis-alert",
    "x-amavis-hold",
];

/// Rewrites the header section for a group of recipients: removes incoming copies of
/// the fields avisd owns, adds `add` on top and prefixes the Subject with `subject_tag`
/// (adding a Subject when there is none). Returns the new header section and how many
/// bytes of the original it replaces; `None` when the header section cannot be found in
/// the first 256 KiB (the message then goes out unedited, with only its Received field).
pub fn edit_header(spool: &Spool, add: &[(String, String)], subject_tag: Option<&str>) -> Option<(Vec<u8>, u64)> {
    let head = spool.head(256 * 1024).ok()?;
    let end = head.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 2)?;
    let mut out = Vec::with_capacity(end + 512);
    for (name, value) in add {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    let mut subject_done = subject_tag.is_none();
    let mut skipping = false;
    for line in head[..end].split_inclusive(|&b| b == b'\n') {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if continuation {
            if !skipping {
                out.extend_from_slice(line);
            }
            continue;
        }
        let name = line
            .split(|&b| b == b':')
            .next()
            .map(|n| String::from_utf8_lossy(n).trim().to_ascii_lowercase())
            .unwrap_or_default();
        skipping = OWNED_FIELDS.contains(&name.as_str());
        if skipping {
            continue;
        }
        match subject_tag {
            Some(tag) if name == "subject" && !subject_done => {
                let value = &line[line.iter().position(|&b| b == b':').map_or(line.len(), |i| i + 1)..];
                let value = String::from_utf8_lossy(value);
                let trimmed = value.trim_start();
                // An existing copy of the tag is not repeated.
                let rest = trimmed.strip_prefix(tag.trim_end()).map_or(trimmed, str::trim_start);
                out.extend_from_slice(format!("Subject: {tag}{rest}").as_bytes());
                subject_done = true;
            }
            _ => out.extend_from_slice(line),
        }
    }
    if let (Some(tag), false) = (subject_tag, subject_done) {
        out.extend_from_slice(format!("Subject: {}\r\n", tag.trim_end()).as_bytes());
    }
    Some((out, end as u64))
}

/// `user+ext@domain` (an existing extension is replaced, as amavisd does by default).
pub fn with_extension(address: &str, delimiter: char, ext: &str) -> String {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return address.to_string();
    };
    let base = local.split(delimiter).next().unwrap_or(local);
    format!("{base}{delimiter}{ext}@{domain}")
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
        let _ = write!(m, "  <{}>: {}\r\n", r.address, escape_controls(&reply.to_string()));
    }
    let _ = write!(
        m,
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {host}\r\n"
    );
    // RFC 3464 2.2.1 and 2.3.1: the ENVID and ORCPT go back as xtext, as they came; decoded,
    // a CR LF in them would end the field and start one of the sender's choosing.
    if let Some(envid) = &envelope.envid {
        let _ = write!(m, "Original-Envelope-Id: {}\r\n", xtext_encode(envid));
    }
    let _ = write!(m, "Arrival-Date: {date}\r\n");
    for (r, reply) in failed {
        let status = reply
            .enhanced
            .map_or("5.0.0".to_string(), |(a, b, c)| format!("{a}.{b}.{c}"));
        m.push_str("\r\n");
        if let Some(o) = &r.orcpt {
            let _ = write!(m, "Original-Recipient: rfc822;{}\r\n", xtext_encode(o));
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

    fn spool_of(text: &str) -> Spool {
        let mut s = Spool::new(
            crate::message::spool::SpoolConfig {
                dir: std::env::temp_dir(),
                memory_threshold: 1 << 20,
            },
            "t",
        );
        s.write(text.as_bytes()).unwrap();
        s
    }

    #[test]
    fn owned_fields_are_replaced_and_the_subject_tagged_once() {
        let s = spool_of(
            "X-Spam-Flag: NO\r\nX-Spam-Status: No,\r\n folded\r\nSubject: ***SPAM*** hello\r\nFrom: a@b\r\n\r\nbody\r\n",
        );
        let add = vec![("X-Spam-Flag".to_string(), "YES".to_string())];
        let (h, skip) = edit_header(&s, &add, Some("***SPAM*** ")).unwrap();
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "X-Spam-Flag: YES\r\nSubject: ***SPAM*** hello\r\nFrom: a@b\r\n"
        );
        assert_eq!(&s.head(1000).unwrap()[skip as usize..], b"\r\nbody\r\n");
        let (h, _) = edit_header(&spool_of("From: a@b\r\n\r\nx"), &[], Some("[T] ")).unwrap();
        assert_eq!(String::from_utf8(h).unwrap(), "From: a@b\r\nSubject: [T]\r\n");
    }

    #[test]
    fn extensions_replace_an_existing_one() {
        assert_eq!(with_extension("user@example.com", '+', "spam"), "user+spam@example.com");
        assert_eq!(
            with_extension("user+old@example.com", '+', "spam"),
            "user+spam@example.com"
        );
    }

    #[test]
    fn a_dsn_carries_the_envid_and_orcpt_as_xtext_so_a_crlf_in_them_adds_no_field() {
        let rcpt = Recipient {
            address: "bob@example.com".into(),
            orcpt: Some("bob@example.com\r\nX-Injected: orcpt".into()),
            notify: Default::default(),
        };
        let envelope = Envelope {
            mail_from: "alice@example.org".into(),
            recipients: vec![rcpt.clone()],
            body: crate::message::Body::SevenBit,
            smtputf8: false,
            ret: None,
            envid: Some("x\r\nX-Injected: envid".into()),
            declared_size: None,
            xforward: Default::default(),
            helo: "client.test".into(),
            lmtp: false,
        };
        let ids = Ids {
            log_id: "00001-01".into(),
            mail_id: "abcdefghijkl".into(),
        };
        let reply = Reply::new(550, (5, 1, 1), "No such user\r\nX-Injected: reply");
        let (_, bytes) = failure_dsn(
            &envelope,
            &ids,
            "avis.test",
            &[(&rcpt, &reply)],
            &spool_of("Subject: x\r\n\r\nx\r\n"),
            0,
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("\nX-Injected"), "{text}");
        assert!(
            text.contains("Original-Envelope-Id: x+0D+0AX-Injected:+20envid\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Original-Recipient: rfc822;bob@example.com+0D+0AX-Injected:+20orcpt\r\n"),
            "{text}"
        );
    }

    #[test]
    fn dates_are_rfc5322_in_utc() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(1_796_000_000_000), "Mon, 30 Nov 2026 00:53:20 +0000");
    }
}
