//! check: bad header sections, each minor kind amavisd distinguishes (CC_BADH minors,
//! worst first when several: the highest minor number wins, as amavisd reports the worst).
//! The category's minor is the worst problem; alerts quote the first, as amavisd does.
//! Works on the raw header section, before any decoding, so what is judged is exactly
//! what was received.

/// A CC_BADH minor category, in amavisd's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BadHeader {
    /// 1: the MIME structure could not be parsed cleanly.
    Mime,
    /// 2: 8-bit bytes that are not valid UTF-8, or UTF-8 with control characters.
    EightBit,
    /// 3: NUL or a bare CR.
    Control,
    /// 4: a folded line holding only white space.
    Empty,
    /// 5: a line over 998 characters.
    Long,
    /// 6: an invalid field name or a non-field line.
    Syntax,
    /// 7: no Date or no From.
    Missing,
    /// 8: more than one of a field that may occur once.
    Duplicate,
}

impl BadHeader {
    /// amavisd's minor number.
    pub const fn minor(self) -> u8 {
        match self {
            BadHeader::Mime => 1,
            BadHeader::EightBit => 2,
            BadHeader::Control => 3,
            BadHeader::Empty => 4,
            BadHeader::Long => 5,
            BadHeader::Syntax => 6,
            BadHeader::Missing => 7,
            BadHeader::Duplicate => 8,
        }
    }
}

/// One problem found, with the text amavisd puts in alerts and replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProblem {
    /// Its kind.
    pub kind: BadHeader,
    /// What was wrong, e.g. `Duplicate header field: "Subject"`.
    pub text: String,
}

/// Fields that may occur at most once (RFC 5322 and MIME), as amavisd checks them.
const SINGLE: [&str; 18] = [
    "date",
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "subject",
    "message-id",
    "references",
    "in-reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-id",
    "content-description",
    "content-disposition",
    "auto-submitted",
];

/// At most this many problems are collected (amavisd: 100).
const MAX_PROBLEMS: usize = 100;

/// Checks the header section of `message` (up to the first empty line).
/// `smtputf8`: raw UTF-8 is allowed (the client declared SMTPUTF8).
pub fn check(message: &[u8], smtputf8: bool, mime_error: bool) -> Vec<HeaderProblem> {
    let mut problems = Vec::new();
    let mut add = |kind: BadHeader, text: String| {
        if problems.len() < MAX_PROBLEMS {
            problems.push(HeaderProblem { kind, text });
        }
    };
    if mime_error {
        add(BadHeader::Mime, "MIME error".into());
    }
    let mut counts: Vec<(&str, usize)> = SINGLE.iter().map(|f| (*f, 0)).collect();
    let mut seen_date = false;
    let mut seen_from = false;
    let mut rest = message;
    let mut line_no = 0;
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
        let raw = &rest[..end];
        rest = &rest[end..];
        line_no += 1;
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break; // end of the header section
        }
        if line.len() > 998 {
            add(
                BadHeader::Long,
                format!("Header line longer than 998 characters: line {line_no}"),
            );
        }
        if line.contains(&0) || line.contains(&b'\r') {
            add(
                BadHeader::Control,
                format!("Improper use of control character (char NUL or CR) in line {line_no}"),
            );
        }
        if !line.is_ascii() {
            match std::str::from_utf8(line) {
                Err(_) => add(
                    BadHeader::EightBit,
                    format!("Non-encoded 8-bit data (not valid UTF-8) in line {line_no}"),
                ),
                Ok(s) if s.chars().any(|c| c.is_control() && c != '\t') => {
                    add(
                        BadHeader::EightBit,
                        format!("UTF-8 with control characters in line {line_no}"),
                    );
                }
                Ok(_) if !smtputf8 => {} // amavisd's `utf8` test is off by default
                Ok(_) => {}
            }
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if line.iter().all(|b| *b == b' ' || *b == b'\t') {
                add(
                    BadHeader::Empty,
                    format!("Improper folded header field made up entirely of whitespace in line {line_no}"),
                );
            }
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            add(
                BadHeader::Syntax,
                format!("Header line without a field name: line {line_no}"),
            );
            continue;
        };
        let name = &line[..colon];
        let valid = !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':');
        if !valid {
            add(
                BadHeader::Syntax,
                format!("Invalid header field name in line {line_no}"),
            );
            continue;
        }
        let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        seen_date |= lower == "date";
        seen_from |= lower == "from";
        if let Some(c) = counts.iter_mut().find(|(f, _)| *f == lower) {
            c.1 += 1;
        }
    }
    if !seen_from {
        add(BadHeader::Missing, "Missing required header field: \"From\"".into());
    }
    if !seen_date {
        add(BadHeader::Missing, "Missing required header field: \"Date\"".into());
    }
    for (f, n) in counts {
        if n > 1 {
            add(
                BadHeader::Duplicate,
                format!("Duplicate header field: \"{}\"", canonical(f)),
            );
        }
    }
    problems
}

/// The worst problem (highest minor), which amavisd uses in alerts.
pub fn worst(problems: &[HeaderProblem]) -> Option<&HeaderProblem> {
    problems.iter().max_by_key(|p| p.kind)
}

fn canonical(f: &str) -> String {
    f.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map_or(String::new(), |first| {
                first.to_ascii_uppercase().to_string() + c.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(m: &str) -> Vec<BadHeader> {
        check(m.as_bytes(), false, false).into_iter().map(|p| p.kind).collect()
    }

    #[test]
    fn each_minor_kind_is_found() {
        let ok = "From: a@b\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: x\r\n\r\nbody\r\n";
        assert!(kinds(ok).is_empty());
        assert_eq!(kinds("From: a@b\r\n\r\n"), [BadHeader::Missing]);
        assert_eq!(
            kinds("From: a@b\r\nDate: d\r\nSubject: 1\r\nSubject: 2\r\n\r\n"),
            [BadHeader::Duplicate]
        );
        assert_eq!(
            kinds("From: a@b\r\nDate: d\r\nBad Name: x\r\n\r\n"),
            [BadHeader::Syntax]
        );
        assert_eq!(
            kinds("From: a@b\r\nDate: d\r\nSubject: x\r\n   \r\n\r\n"),
            [BadHeader::Empty]
        );
        assert_eq!(kinds("From: a@b\r\nDate: d\r\nX: a\0b\r\n\r\n"), [BadHeader::Control]);
        let long = format!("From: a@b\r\nDate: d\r\nX: {}\r\n\r\n", "y".repeat(1000));
        assert_eq!(kinds(&long), [BadHeader::Long]);
        let eight = b"From: a@b\r\nDate: d\r\nSubject: \xff\xfe\r\n\r\n";
        assert_eq!(check(eight, false, false)[0].kind, BadHeader::EightBit);
        assert_eq!(
            kinds("From: a@b\r\nDate: d\r\nSubject: caf\u{e9}\r\n\r\n"),
            [],
            "valid UTF-8 passes (utf8 test off)"
        );
        assert!(
            check(b"From: a@b\r\nDate: d\r\n\r\n", false, true)
                .iter()
                .any(|p| p.kind == BadHeader::Mime)
        );
    }

    #[test]
    fn the_body_is_not_judged_and_the_worst_problem_is_reported() {
        let m = "From: a@b\r\n\r\nBad Name: not a header\r\n";
        let p = check(m.as_bytes(), false, false);
        assert_eq!(p.len(), 1);
        assert_eq!(worst(&p).map(|w| w.kind), Some(BadHeader::Missing));
    }
}
