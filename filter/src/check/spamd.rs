//! check: the spam check's client of SpamAssassin's spamd (the SPAMC/SPAMD protocol that
//! `spamc` speaks). It sends `SYMBOLS SPAMC/1.5` with the spooled message and reads the
//! score, the threshold and the names of the rules that hit. Messages above `max_size` are
//! not sent, as spamc skips those above its 500 KB default: the caller treats that as
//! "not scanned". It reads the spool and opens one socket; it decides nothing.

use std::time::Duration;

use super::endpoint::{Endpoint, ScanError, Session, excerpt, header, split_head};
use crate::message::spool::Spool;

/// The most a SYMBOLS reply may hold: a status line, two headers and a list of rule
/// names (SpamAssassin has a few thousand rules; names are short).
const MAX_REPLY: usize = 64 * 1024;

/// Where spamd listens and how it is used.
#[derive(Debug, Clone)]
pub struct SpamdConfig {
    /// The spamd socket.
    pub endpoint: Endpoint,
    /// Bounds the whole exchange (and so each step of it).
    pub timeout: Duration,
    /// Messages larger than this are not sent ([`ScanError::TooLarge`]).
    pub max_size: u64,
    /// Whose preferences spamd applies (`User:`), if not spamd's default.
    pub user: Option<String>,
}

/// A spam scanner's answer (spamd's or rspamd's).
#[derive(Debug, Clone, PartialEq)]
pub struct SpamVerdict {
    /// The score.
    pub score: f64,
    /// The scanner's own threshold (spamd's `required_score`, rspamd's reject score).
    pub required: f64,
    /// Whether the scanner itself calls it spam.
    pub is_spam: bool,
    /// The names of the rules (symbols) that hit, in the scanner's order.
    pub tests: Vec<String>,
    /// rspamd's recommended action (`no action`, `add header`, `reject`, ...); spamd has none.
    pub action: Option<String>,
}

/// Asks spamd about the message. The whole exchange is bounded by `cfg.timeout`.
pub async fn check(cfg: &SpamdConfig, spool: &Spool) -> Result<SpamVerdict, ScanError> {
    if spool.len() > cfg.max_size {
        return Err(ScanError::TooLarge {
            endpoint: cfg.endpoint.to_string(),
            size: spool.len(),
            limit: Some(cfg.max_size),
        });
    }
    match tokio::time::timeout(cfg.timeout, exchange(cfg, spool)).await {
        Ok(result) => result,
        Err(_) => Err(ScanError::Timeout {
            endpoint: cfg.endpoint.to_string(),
            stage: "scan",
        }),
    }
}

async fn exchange(cfg: &SpamdConfig, spool: &Spool) -> Result<SpamVerdict, ScanError> {
    let mut s = Session::open(&cfg.endpoint, cfg.timeout).await?;
    s.write("send", request_head(spool.len(), cfg.user.as_deref()).as_bytes())
        .await?;
    s.send_spool(spool, None).await?;
    let reply = s.read_reply(MAX_REPLY, reply_complete).await?;
    match parse_reply(&reply) {
        Ok(verdict) => Ok(verdict),
        Err(ReplyError::Refused(line)) => Err(ScanError::Scanner {
            endpoint: s.endpoint().to_string(),
            reply: line,
        }),
        Err(ReplyError::Garbage(why)) => Err(s.protocol(why)),
    }
}

/// The request line and headers. A user name is sent only as printable ASCII without
/// spaces: anything else could split the header and is not a user spamd knows anyway.
fn request_head(len: u64, user: Option<&str>) -> String {
    let mut head = format!("SYMBOLS SPAMC/1.5\r\nContent-length: {len}\r\n");
    if let Some(user) = user {
        let user: String = user.chars().filter(char::is_ascii_graphic).collect();
        if !user.is_empty() {
            head.push_str(&format!("User: {user}\r\n"));
        }
    }
    head.push_str("\r\n");
    head
}

/// The reply is complete once its header section ended and `Content-length` bytes of body
/// followed; without a length, spamd's closing the connection ends it.
fn reply_complete(reply: &[u8]) -> bool {
    let Some((head, body)) = split_head(reply) else {
        return false;
    };
    match header(head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => body.len() >= len,
        None => false,
    }
}

/// Why a reply gave no verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReplyError {
    /// spamd answered with a non-zero code (its status line).
    Refused(String),
    /// Not a SPAMD reply.
    Garbage(String),
}

/// Parses `SPAMD/1.1 0 EX_OK\r\nContent-length: n\r\nSpam: True ; 15.0 / 5.0\r\n\r\nA,B`.
fn parse_reply(reply: &[u8]) -> Result<SpamVerdict, ReplyError> {
    let garbage = |why: &str| ReplyError::Garbage(format!("{why}: {}", excerpt(reply)));
    let (head, body) = split_head(reply).ok_or_else(|| match reply.split(|&b| b == b'\n').next() {
        // An error reply may carry no headers at all ("SPAMD/1.0 76 Bad header line").
        Some(first) if first.starts_with(b"SPAMD/") && !status_ok(first) => ReplyError::Refused(excerpt(first)),
        _ => garbage("no complete header section"),
    })?;
    let status = head.split("\r\n").next().unwrap_or_default();
    if !status.starts_with("SPAMD/") {
        return Err(garbage("not a SPAMD reply"));
    }
    if !status_ok(status.as_bytes()) {
        return Err(ReplyError::Refused(excerpt(status.as_bytes())));
    }
    let spam = header(head, "spam").ok_or_else(|| garbage("no Spam header"))?;
    let (flag, scores) = spam.split_once(';').ok_or_else(|| garbage("bad Spam header"))?;
    let (score, required) = scores.split_once('/').ok_or_else(|| garbage("bad Spam header"))?;
    let number = |s: &str| s.trim().parse::<f64>().ok().filter(|f| f.is_finite());
    let (Some(score), Some(required)) = (number(score), number(required)) else {
        return Err(garbage("bad score in Spam header"));
    };
    let is_spam = match flag.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" => true,
        "false" | "no" => false,
        _ => return Err(garbage("bad flag in Spam header")),
    };
    let body = match header(head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => body.get(..len).unwrap_or(body),
        None => body,
    };
    let tests = String::from_utf8_lossy(body)
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    Ok(SpamVerdict {
        score,
        required,
        is_spam,
        tests,
        action: None,
    })
}

/// Whether a status line says `0` (EX_OK).
fn status_ok(line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line);
    line.split_whitespace().nth(1) == Some("0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_spam_reply_gives_score_threshold_and_rules() {
        let r = b"SPAMD/1.1 0 EX_OK\r\nContent-length: 22\r\nSpam: True ; 1002.5 / 5.0\r\n\r\nGTUBE,MISSING_DATE,X_Y";
        let v = parse_reply(r).unwrap();
        assert_eq!(v.score, 1002.5);
        assert_eq!(v.required, 5.0);
        assert!(v.is_spam);
        assert_eq!(v.tests, ["GTUBE", "MISSING_DATE", "X_Y"]);
        assert!(reply_complete(r));
        assert!(!reply_complete(&r[..r.len() - 1]));
    }

    #[test]
    fn a_ham_reply_with_no_rules_and_no_length_parses() {
        let v = parse_reply(b"SPAMD/1.1 0 EX_OK\r\nspam: false ; -0.1 / 5.0\r\n\r\n\r\n").unwrap();
        assert!(!v.is_spam);
        assert_eq!(v.score, -0.1);
        assert!(v.tests.is_empty());
    }

    #[test]
    fn error_codes_and_garbage_are_told_apart() {
        assert_eq!(
            parse_reply(b"SPAMD/1.0 76 Bad header line: X\r\n"),
            Err(ReplyError::Refused("SPAMD/1.0 76 Bad header line: X".into()))
        );
        assert_eq!(
            parse_reply(b"SPAMD/1.1 64 EX_USAGE\r\n\r\n"),
            Err(ReplyError::Refused("SPAMD/1.1 64 EX_USAGE".into()))
        );
        for bad in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"SPAMD/1.1 0 EX_OK\r\n\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; NaN / 5\r\n\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nSpam: Maybe ; 1 / 5\r\n\r\n",
            b"",
        ] {
            assert!(matches!(parse_reply(bad), Err(ReplyError::Garbage(_))), "{bad:?}");
        }
    }

    #[test]
    fn the_user_header_cannot_be_split() {
        assert_eq!(
            request_head(7, Some("ann\r\nX: y")),
            "SYMBOLS SPAMC/1.5\r\nContent-length: 7\r\nUser: annX:y\r\n\r\n"
        );
        assert_eq!(request_head(0, None), "SYMBOLS SPAMC/1.5\r\nContent-length: 0\r\n\r\n");
    }

    proptest! {
        #[test]
        fn any_reply_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_reply(&bytes);
            let _ = reply_complete(&bytes);
        }

        #[test]
        fn reply_like_text_parses_without_panic(
            code in "[0-9]{1,3}",
            len in "[0-9]{0,25}",
            spam in "[ -~]{0,30}",
            body in "[ -~\\r\\n]{0,60}",
        ) {
            let r = format!("SPAMD/1.1 {code} X\r\nContent-length: {len}\r\nSpam: {spam}\r\n\r\n{body}");
            let _ = parse_reply(r.as_bytes());
            let _ = reply_complete(r.as_bytes());
        }
    }
}
