//! The one place that knows mail-parser (0.11 here; 1.x needs a newer rustc). Everything
//! else sees our own types, so the upgrade touches this file only.
//!
//! mail-parser builds every part of a message before we can count them (two million empty
//! parts in 20 MB cost 350 MB), so a linear pre-scan counts the delimiter lines of the
//! declared boundaries (and the header fields) first, and a message with far more parts
//! than the cap (or absurdly many fields) is parsed only up to that point and reported
//! truncated (held as over the part limit, as the cap does).

use std::collections::HashSet;

use mail_parser::{MessageParser, MimeHeaders, PartType};

/// One MIME leaf part, decoded from its transfer encoding, lent to the caller while the
/// parsed message lives (so a large attachment is never copied once more).
#[derive(Debug, Clone, Copy)]
pub struct MimePart<'a> {
    /// Declared file name (Content-Disposition filename or Content-Type name).
    pub name: Option<&'a str>,
    /// Declared type, `type/subtype`, lower case.
    pub declared_type: Option<&'a str>,
    /// The decoded content.
    pub content: &'a [u8],
    /// Nesting depth of message/rfc822 it sits in (0 = top level).
    pub depth: usize,
}

/// What the parser found in a message (its leaf parts go to the caller's closure).
#[derive(Debug, Clone, Default)]
pub struct MimeMessage {
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

/// The declared boundary on a line holding a `boundary=` parameter (anywhere: a folded
/// Content-Type puts it on a continuation line), quoted or not.
fn declared_boundary(line: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"boundary=";
    if !line.contains(&b'=') {
        return None;
    }
    let at = line.windows(KEY.len()).position(|w| w.eq_ignore_ascii_case(KEY))? + KEY.len();
    let rest = line.get(at..)?;
    let value = match rest.strip_prefix(b"\"") {
        Some(quoted) => &quoted[..quoted.iter().position(|&b| b == b'"').unwrap_or(quoted.len())],
        None => {
            &rest[..rest
                .iter()
                .position(|&b| b == b';' || b.is_ascii_whitespace())
                .unwrap_or(rest.len())]
        }
    };
    Some(value).filter(|v| !v.is_empty())
}

/// Header fields the parser may build in all (top-level, part and nested-message header
/// sections): about 13 MB of mail-parser's memory. Postfix alone stops a header section at
/// 100 KB (some 10,000 fields); two million cost 245 MB.
const MAX_HEADER_FIELDS: usize = 100_000;

/// How much of a message the parser may see.
#[derive(Debug, Clone, Copy)]
struct Budget {
    /// Part openings (delimiter lines of a declared boundary) and declared boundaries.
    parts: usize,
    /// Header fields.
    fields: usize,
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// Where to cut `raw` so that the parser meets no more part openings (delimiter lines of
/// any declared boundary, nested ones included), declared boundaries and header fields
/// than the budget; `None` when the whole message is within. One pass, linear in the size
/// of `raw`: a delimiter line is looked up once per distinct boundary length no longer
/// than it. Header sections are where the parser expects them: at the start, after each
/// opening delimiter, and at the start of a body declared message/rfc822.
fn over_budget(raw: &[u8], budget: Budget) -> Option<usize> {
    let mut boundaries: HashSet<&[u8]> = HashSet::new();
    let mut lengths: Vec<usize> = Vec::new();
    let mut openings = 0usize;
    let mut fields = 0usize;
    let (mut in_head, mut nested_message) = (true, false);
    let mut start = 0;
    for line in raw.split(|&b| b == b'\n') {
        let at = start;
        start += line.len() + 1;
        if let Some(rest) = line.strip_prefix(b"--") {
            let rest = rest.trim_ascii_end();
            let delimiter = lengths
                .iter()
                .filter(|&&n| n <= rest.len())
                .find(|&&n| boundaries.contains(&rest[..n]));
            if let Some(&n) = delimiter {
                let opening = !rest[n..].starts_with(b"--");
                (in_head, nested_message) = (opening, false);
                if opening {
                    openings += 1;
                    if openings > budget.parts {
                        return Some(at);
                    }
                }
                continue;
            }
        }
        if in_head {
            if line.trim_ascii().is_empty() {
                (in_head, nested_message) = (nested_message, false);
                continue;
            }
            if !line.first().is_some_and(u8::is_ascii_whitespace) {
                fields += 1;
                if fields > budget.fields {
                    return Some(at);
                }
            }
            nested_message |= contains_ignore_case(line, b"message/rfc822");
        }
        if let Some(b) = declared_boundary(line)
            && boundaries.insert(b)
        {
            if boundaries.len() > budget.parts {
                return Some(at);
            }
            if !lengths.contains(&b.len()) {
                lengths.push(b.len());
            }
        }
    }
    None
}

/// Parses `raw`, descending into nested messages up to `max_depth`, handing at most
/// `max_parts` leaves to `on_part` in order; parts beyond are reported through the
/// returned `truncated` flag. A message with more than twice `max_parts` part openings, or
/// more than `MAX_HEADER_FIELDS` header fields, is parsed only up to there (the parser's
/// memory grows with every part and field it builds); twice, so that multipart containers
/// do not count against the leaves.
pub fn parse(
    raw: &[u8],
    max_depth: usize,
    max_parts: usize,
    on_part: &mut dyn FnMut(MimePart<'_>),
) -> (MimeMessage, bool) {
    let budget = Budget {
        parts: max_parts.saturating_mul(2),
        fields: MAX_HEADER_FIELDS,
    };
    let cut = over_budget(raw, budget);
    let raw = cut.map_or(raw, |at| &raw[..at]);
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
    let mut seen = 0;
    let mut walk = Walk {
        max_depth,
        max_parts,
        seen: &mut seen,
        truncated: &mut truncated,
        on_part,
    };
    collect(&msg, 0, &mut walk, &mut out);
    if cut.is_some() {
        // The prefix ends inside an open multipart: a missing closing delimiter there is
        // our cut, not the sender's error.
        out.encoding_problem = false;
        truncated = true;
    }
    (out, truncated)
}

struct Walk<'w, 'f> {
    max_depth: usize,
    max_parts: usize,
    seen: &'w mut usize,
    truncated: &'w mut bool,
    on_part: &'w mut (dyn FnMut(MimePart<'_>) + 'f),
}

fn collect(msg: &mail_parser::Message<'_>, depth: usize, walk: &mut Walk<'_, '_>, out: &mut MimeMessage) {
    for part in &msg.parts {
        // A multipart without a boundary cannot be split: MIME-tools (amavisd) calls it an
        // error; mail-parser quietly reads it as one text part.
        out.encoding_problem |= part.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart") && ct.attribute("boundary").is_none_or(str::is_empty)
        });
        let declared_type = part.content_type().map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        });
        let mut content: &[u8] = match &part.body {
            PartType::Multipart(_) => {
                out.encoding_problem |= part.is_encoding_problem;
                continue;
            }
            PartType::Message(inner) => {
                out.encoding_problem |= part.is_encoding_problem;
                if depth + 1 > walk.max_depth {
                    *walk.truncated = true;
                } else {
                    collect(inner, depth + 1, walk, out);
                }
                continue;
            }
            PartType::Text(t) | PartType::Html(t) => t.as_bytes(),
            PartType::Binary(b) | PartType::InlineBinary(b) => b,
        };
        let lenient;
        let mut problem = part.is_encoding_problem;
        if problem
            && part
                .content_transfer_encoding()
                .is_some_and(|e| e.eq_ignore_ascii_case("base64"))
            && let Some(raw) = msg
                .raw_message()
                .get(part.raw_body_offset() as usize..part.raw_end_offset() as usize)
            && let Some(decoded) = lenient_base64(raw)
        {
            lenient = decoded;
            content = &lenient;
            problem = false;
        }
        out.encoding_problem |= problem;
        if *walk.seen >= walk.max_parts {
            *walk.truncated = true;
            return;
        }
        *walk.seen += 1;
        (walk.on_part)(MimePart {
            name: part.attachment_name(),
            declared_type: declared_type.as_deref(),
            content,
            depth,
        });
    }
}

/// Decodes base64 past characters outside its alphabet, as MIME-tools (amavisd's parser)
/// does by deleting them. mail-parser gives up on such a part and hands over its raw text,
/// which would show an executable to the type checks as text; and amavisd does not call it a
/// MIME error. `None` when every character belongs to base64: then the problem is the
/// structure (no closing boundary, misplaced padding), which stays a MIME error.
fn lenient_base64(raw: &[u8]) -> Option<Vec<u8>> {
    let in_alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    if raw.iter().all(|&b| in_alphabet(b) || b"= \t\r\n".contains(&b)) {
        return None;
    }
    let value = |b: u8| match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let digits: Vec<u8> = raw.iter().copied().filter(|&b| in_alphabet(b)).map(value).collect();
    let mut out = Vec::with_capacity(digits.len() / 4 * 3 + 2);
    for group in digits.chunks(4) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | (u32::from(d) << (18 - 6 * i)));
        let bytes = n.to_be_bytes();
        // 4 digits give 3 bytes, 3 give 2, 2 give 1; a lone digit gives none.
        out.extend_from_slice(&bytes[1..group.len().max(1)]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_with_stray_characters_is_decoded_past_them_and_is_no_mime_error() {
        // "MZ" + a PE header, base64, with junk in the middle of a line.
        let raw = b"From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"X\"\r\n\r\n--X\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMA!!AAAEAAAA//8AALgA\r\n--X--\r\n";
        let mut contents = Vec::new();
        let (m, _) = parse(raw, 5, 10, &mut |p| contents.push(p.content.to_vec()));
        assert!(!m.encoding_problem);
        assert_eq!(
            contents[0],
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00"
        );
        assert_eq!(lenient_base64(b"aGk=\r\n"), None, "well-formed: not ours to decode");
        assert_eq!(lenient_base64(b"aG*k"), Some(b"hi".to_vec()));
    }

    #[test]
    fn a_multipart_without_a_boundary_is_a_mime_error() {
        for ct in ["multipart/mixed", "multipart/mixed; boundary=\"\""] {
            let raw =
                format!("From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: {ct}\r\n\r\n--x\r\n\r\ntext\r\n--x--\r\n");
            let (m, _) = parse(raw.as_bytes(), 5, 10, &mut |_| {});
            assert!(m.encoding_problem, "{ct}");
        }
        let raw = b"From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\ntext\r\n--x--\r\n";
        assert!(!parse(raw, 5, 10, &mut |_| {}).0.encoding_problem);
    }

    fn parts(n: usize) -> Budget {
        Budget {
            parts: n,
            fields: usize::MAX,
        }
    }

    #[test]
    fn header_fields_are_counted_in_every_header_section_and_nowhere_else() {
        let raw = b"From: a@b\r\nContent-Type: multipart/mixed;\r\n boundary=B\r\n\r\nBody: not a field\r\n--B\r\nContent-Type: message/rfc822\r\n\r\nSubject: nested\r\nX: y\r\n\r\nText: not a field\r\n--B--\r\nEpilogue: no\r\n";
        // From, Content-Type (folded: one field); Content-Type; Subject, X.
        let within = |fields| over_budget(raw, Budget { parts: 10, fields });
        assert_eq!(within(5), None);
        assert!(within(4).is_some());
        let mut many = b"From: a@b\r\n".to_vec();
        for _ in 0..50 {
            many.extend_from_slice(b"X-A: b\r\n");
        }
        many.extend_from_slice(b"\r\nbody\r\n");
        let cut = over_budget(&many, Budget { parts: 10, fields: 20 }).unwrap();
        assert_eq!(raw_lines(&many[..cut]), 20);
    }

    fn raw_lines(b: &[u8]) -> usize {
        b.split(|&c| c == b'\n').filter(|l| !l.is_empty()).count()
    }

    fn many_parts(n: usize) -> Vec<u8> {
        let mut raw =
            b"From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n\tboundary=\"B\"\r\n\r\n".to_vec();
        for _ in 0..n {
            raw.extend_from_slice(b"--B\r\n\r\nx\r\n");
        }
        raw.extend_from_slice(b"--B--\r\n");
        raw
    }

    #[test]
    fn a_message_with_far_more_parts_than_the_cap_is_parsed_only_up_to_twice_the_cap_and_truncated() {
        let raw = many_parts(1000);
        let cut = over_budget(&raw, parts(20)).unwrap();
        assert_eq!(raw[..cut].windows(3).filter(|w| w == b"--B").count(), 20);
        let mut leaves = 0;
        let (m, truncated) = parse(&raw, 5, 10, &mut |_| leaves += 1);
        assert_eq!((leaves, truncated, m.encoding_problem), (10, true, false));
        // Within twice the cap the whole message is parsed: the walk's own cap applies.
        assert_eq!(over_budget(&many_parts(20), parts(20)), None);
        let (_, truncated) = parse(&many_parts(10), 5, 10, &mut |_| {});
        assert!(!truncated);
    }

    #[test]
    fn the_part_budget_counts_nested_boundaries_and_not_closing_delimiters_or_other_lines() {
        let raw = b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\nContent-Type: multipart/alternative; boundary=\"in ner\"\r\n\r\n--in ner\r\n\r\na\r\n--in ner\r\n\r\nb\r\n--in ner--\r\n--outer\r\n\r\n-- not a delimiter\r\n--other\r\n--outer--\r\n";
        // Four openings: outer twice, inner twice.
        assert_eq!(over_budget(raw, parts(4)), None);
        assert!(over_budget(raw, parts(3)).is_some());
        assert_eq!(declared_boundary(b"\tBoundary=abc; charset=x"), Some(&b"abc"[..]));
        assert_eq!(declared_boundary(b"boundary=\"\""), None);
    }

    #[test]
    fn header_facts_are_read() {
        let raw = b"From: A <a@x.org>\r\nSender: s@x.org\r\nTo: b@y.org, C <c@y.org>\r\nCc: d@z.org\r\nIn-Reply-To: <p1@x>\r\nReferences: <p0@x> <p1@x>\r\nUser-Agent: Mutt/2.2\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n\r\nbody\r\n";
        let mut parts = 0;
        let (m, truncated) = parse(raw, 5, 10, &mut |_| parts += 1);
        assert_eq!(parts, 1);
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
