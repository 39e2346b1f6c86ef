//! The one place that knows mail-parser (0.11 here; 1.x needs a newer rustc). Everything
//! else sees our own types, so the upgrade touches this file only.

use mail_parser::{MessageParser, MimeHeaders, PartType};

/// One MIME leaf part, decoded from its transfer encoding.
#[derive(Debug, Clone)]
pub struct MimePart {
    /// Declared file name (Content-Disposition filename or Content-Type name).
    pub name: Option<String>,
    /// Declared type, `type/subtype`, lower case.
    pub declared_type: Option<String>,
    /// The decoded content.
    pub content: Vec<u8>,
    /// Nesting depth of message/rfc822 it sits in (0 = top level).
    pub depth: usize,
}

/// What the parser found in a message.
#[derive(Debug, Clone, Default)]
pub struct MimeMessage {
    /// Leaf parts, in order.
    pub parts: Vec<MimePart>,
    /// A part had a transfer-encoding or structure problem.
    pub encoding_problem: bool,
    /// No header section could be found at all.
    pub unparsable: bool,
    /// Decoded Subject.
    pub subject: Option<String>,
    /// Addresses in From.
    pub from: Vec<String>,
    /// Message-ID.
    pub message_id: Option<String>,
    /// Addresses in To.
    pub to: Vec<String>,
    /// Addresses in Cc.
    pub cc: Vec<String>,
    /// The Sender address.
    pub sender: Option<String>,
    /// In-Reply-To and References ids.
    pub references: Vec<String>,
    /// User-Agent, else X-Mailer.
    pub user_agent: Option<String>,
}

fn addresses(a: Option<&mail_parser::Address<'_>>) -> Vec<String> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| x.address.as_deref().map(str::to_string))
            .collect()
    })
    .unwrap_or_default()
}

fn ids(v: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    match (v.as_text_list(), v.as_text()) {
        (Some(list), _) => list.iter().map(|s| s.to_string()).collect(),
        (None, Some(one)) => vec![one.to_string()],
        (None, None) => Vec::new(),
    }
}

/// Parses `raw`, descending into nested messages up to `max_depth`, keeping at most
/// `max_parts` leaves; parts beyond are reported through `truncated`.
pub fn parse(raw: &[u8], max_depth: usize, max_parts: usize) -> (MimeMessage, bool) {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return (
            MimeMessage {
                unparsable: true,
                ..MimeMessage::default()
            },
            false,
        );
    };
    let mut out = MimeMessage {
        subject: msg.subject().map(str::to_string),
        from: addresses(msg.from()),
        message_id: msg.message_id().map(str::to_string),
        to: addresses(msg.to()),
        cc: addresses(msg.cc()),
        sender: addresses(msg.sender()).into_iter().next(),
        references: ids(msg.in_reply_to())
            .into_iter()
            .chain(ids(msg.references()))
            .collect(),
        user_agent: msg
            .header_raw("User-Agent")
            .or_else(|| msg.header_raw("X-Mailer"))
            .map(|s| s.trim().to_string()),
        ..MimeMessage::default()
    };
    let mut truncated = false;
    collect(&msg, 0, max_depth, max_parts, &mut out, &mut truncated);
    (out, truncated)
}

fn collect(
    msg: &mail_parser::Message<'_>,
    depth: usize,
    max_depth: usize,
    max_parts: usize,
    out: &mut MimeMessage,
    truncated: &mut bool,
) {
    for part in &msg.parts {
        out.encoding_problem |= part.is_encoding_problem;
        let name = part.attachment_name().map(str::to_string);
        let declared_type = part.content_type().map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        });
        let content: Vec<u8> = match &part.body {
            PartType::Multipart(_) => continue,
            PartType::Message(inner) => {
                if depth + 1 > max_depth {
                    *truncated = true;
                } else {
                    collect(inner, depth + 1, max_depth, max_parts, out, truncated);
                }
                continue;
            }
            PartType::Text(t) | PartType::Html(t) => t.as_bytes().to_vec(),
            PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
        };
        if out.parts.len() >= max_parts {
            *truncated = true;
            return;
        }
        out.parts.push(MimePart {
            name,
            declared_type,
            content,
            depth,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_facts_are_read() {
        let raw = b"From: A <a@x.org>\r\nSender: s@x.org\r\nTo: b@y.org, C <c@y.org>\r\nCc: d@z.org\r\nIn-Reply-To: <p1@x>\r\nReferences: <p0@x> <p1@x>\r\nUser-Agent: Mutt/2.2\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n\r\nbody\r\n";
        let (m, truncated) = parse(raw, 5, 10);
        assert!(!truncated);
        assert_eq!(m.subject.as_deref(), Some("caf\u{e9}"));
        assert_eq!(m.from, ["a@x.org"]);
        assert_eq!(m.to, ["b@y.org", "c@y.org"]);
        assert_eq!(m.cc, ["d@z.org"]);
        assert_eq!(m.sender.as_deref(), Some("s@x.org"));
        assert_eq!(m.references, ["p1@x", "p0@x", "p1@x"]);
        assert_eq!(m.user_agent.as_deref(), Some("Mutt/2.2"));
    }
}
