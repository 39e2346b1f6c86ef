//! check: the spam check's client of rspamd's normal worker (`POST /checkv2`). It sends the
//! spooled message with the envelope as rspamd's request headers (`From`, one `Rcpt` per
//! recipient, `IP`) and reads the JSON verdict: score, required score, action and symbol
//! names. Messages above `max_size` are not sent. It reads the spool and opens one socket.
//!
//! The HTTP/1.1 exchange is written here on tokio rather than with an HTTP crate: it is one
//! POST per message on a fresh connection (`Connection: close`) with a bounded reply, so
//! the whole client is a request head and a small reply parser, while hyper would add a
//! connection pool and body types we do not use, and the official `rspamd-client` pulls
//! reqwest and C zstd.

use std::time::Duration;

use serde_json::Value;

use super::endpoint::{Endpoint, ScanError, Session, excerpt, header, split_head};
use super::spamd::SpamVerdict;
use crate::message::spool::Spool;

/// The most an rspamd reply may hold: the JSON lists every symbol with its options
/// (URLs, addresses), which can run to tens of kilobytes on a large message.
const MAX_REPLY: usize = 1024 * 1024;

/// Where rspamd listens and how it is used.
#[derive(Debug, Clone)]
pub struct RspamdConfig {
    /// The normal worker's socket (port 11333 by default).
    pub endpoint: Endpoint,
    /// Bounds the whole exchange (and so each step of it).
    pub timeout: Duration,
    /// Messages larger than this are not sent ([`ScanError::TooLarge`]).
    pub max_size: u64,
}

/// Asks rspamd about the message with its envelope. The whole exchange is bounded by
/// `cfg.timeout`.
pub async fn check(
    cfg: &RspamdConfig,
    spool: &Spool,
    envelope_from: &str,
    rcpts: &[String],
    client_ip: Option<&str>,
) -> Result<SpamVerdict, ScanError> {
    if spool.len() > cfg.max_size {
        return Err(ScanError::TooLarge {
            endpoint: cfg.endpoint.to_string(),
            size: spool.len(),
            limit: Some(cfg.max_size),
        });
    }
    let head = request_head(&cfg.endpoint, spool.len(), envelope_from, rcpts, client_ip);
    match tokio::time::timeout(cfg.timeout, exchange(cfg, spool, &head)).await {
        Ok(result) => result,
        Err(_) => Err(ScanError::Timeout {
            endpoint: cfg.endpoint.to_string(),
            stage: "scan",
        }),
    }
}

async fn exchange(cfg: &RspamdConfig, spool: &Spool, head: &str) -> Result<SpamVerdict, ScanError> {
    let mut s = Session::open(&cfg.endpoint, cfg.timeout).await?;
    s.write("send", head.as_bytes()).await?;
    s.send_spool(spool, None).await?;
    let reply = s.read_reply(MAX_REPLY, reply_complete).await?;
    match parse_reply(&reply) {
        Ok(verdict) => Ok(verdict),
        Err(ReplyError::Refused(why)) => Err(ScanError::Scanner {
            endpoint: s.endpoint().to_string(),
            reply: why,
        }),
        Err(ReplyError::Garbage(why)) => Err(s.protocol(why)),
    }
}

/// The request line and headers. Envelope values come from the SMTP client, so anything
/// that could end a header line is dropped from them.
fn request_head(endpoint: &Endpoint, len: u64, from: &str, rcpts: &[String], ip: Option<&str>) -> String {
    let host = match endpoint {
        Endpoint::Tcp(host, _) if host.contains(':') => format!("[{host}]"),
        Endpoint::Tcp(host, _) => host.clone(),
        Endpoint::Unix(_) => "localhost".to_string(),
    };
    let clean = |v: &str| v.chars().filter(|c| !c.is_control()).collect::<String>();
    let from = if from.is_empty() { "<>".to_string() } else { clean(from) };
    let mut head = format!(
        "POST /checkv2 HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len}\r\nConnection: close\r\nFrom: {from}\r\n"
    );
    for rcpt in rcpts {
        head.push_str(&format!("Rcpt: {}\r\n", clean(rcpt)));
    }
    if let Some(ip) = ip {
        head.push_str(&format!("IP: {}\r\n", clean(ip)));
    }
    head.push_str("\r\n");
    head
}

fn is_chunked(head: &str) -> bool {
    header(head, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

/// Complete once the body is: `Content-Length` bytes, or a chunked body's last chunk;
/// otherwise the server's closing the connection (we asked for `Connection: close`) ends it.
fn reply_complete(reply: &[u8]) -> bool {
    let Some((head, body)) = split_head(reply) else {
        return false;
    };
    if is_chunked(head) {
        return dechunk(body).is_some();
    }
    match header(head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => body.len() >= len,
        None => false,
    }
}

/// Decodes a chunked body; `None` while it is incomplete or when it is malformed.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n")?;
        let size_line = std::str::from_utf8(&body[..eol]).ok()?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        body = &body[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        let end = size.checked_add(2)?;
        let chunk = body.get(..size)?;
        if body.get(size..end)? != b"\r\n" {
            return None;
        }
        out.extend_from_slice(chunk);
        body = &body[end..];
    }
}

/// Why a reply gave no verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReplyError {
    /// rspamd answered, but with an HTTP error or an `error` field.
    Refused(String),
    /// Not an rspamd reply.
    Garbage(String),
}

/// The actions that mean rspamd considers the message spam ("soft reject" is rate
/// limiting or greylisting, not a judgement of content).
const SPAM_ACTIONS: [&str; 3] = ["reject", "add header", "rewrite subject"];

/// Parses an HTTP reply whose body is rspamd's `/checkv2` JSON.
fn parse_reply(reply: &[u8]) -> Result<SpamVerdict, ReplyError> {
    let garbage = |why: &str| ReplyError::Garbage(format!("{why}: {}", excerpt(reply)));
    let (head, body) = split_head(reply).ok_or_else(|| garbage("no complete HTTP header section"))?;
    let status = head.split("\r\n").next().unwrap_or_default();
    let mut words = status.split_whitespace();
    let (Some(version), Some(code)) = (words.next(), words.next()) else {
        return Err(garbage("bad HTTP status line"));
    };
    if !version.starts_with("HTTP/1.") || code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(garbage("bad HTTP status line"));
    }
    let decoded;
    let body = if is_chunked(head) {
        decoded = dechunk(body).ok_or_else(|| garbage("bad chunked body"))?;
        &decoded[..]
    } else {
        match header(head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
            Some(len) => body
                .get(..len)
                .ok_or_else(|| garbage("body shorter than Content-Length"))?,
            None => body,
        }
    };
    if code != "200" {
        return Err(ReplyError::Refused(format!("{status}: {}", excerpt(body))));
    }
    let json: Value = serde_json::from_slice(body).map_err(|e| garbage(&format!("bad JSON ({e})")))?;
    if let Some(err) = json.get("error") {
        return Err(ReplyError::Refused(excerpt(err.to_string().as_bytes())));
    }
    let number = |key: &str| json.get(key).and_then(Value::as_f64).filter(|f| f.is_finite());
    let score = number("score").ok_or_else(|| garbage("no score"))?;
    let required = number("required_score").ok_or_else(|| garbage("no required_score"))?;
    let action = json.get("action").and_then(Value::as_str).map(str::to_string);
    let is_spam = match &action {
        Some(a) => SPAM_ACTIONS.contains(&a.as_str()),
        None => score >= required,
    };
    let tests = match json.get("symbols") {
        Some(Value::Object(map)) => map.keys().cloned().collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(_) => return Err(garbage("symbols is not an object")),
    };
    Ok(SpamVerdict {
        score,
        required,
        is_spam,
        tests,
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn http(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn a_reject_verdict_is_spam_with_its_symbols() {
        let r = http(
            r#"{"is_skipped":false,"score":15.5,"required_score":15.0,"action":"reject","symbols":{"GTUBE":{"name":"GTUBE","score":0},"R_DKIM_NA":{"name":"R_DKIM_NA","score":0}},"message-id":"x"}"#,
        );
        assert!(reply_complete(&r));
        let v = parse_reply(&r).unwrap();
        assert_eq!((v.score, v.required, v.is_spam), (15.5, 15.0, true));
        assert_eq!(v.tests, ["GTUBE", "R_DKIM_NA"]);
        assert_eq!(v.action.as_deref(), Some("reject"));
    }

    #[test]
    fn no_action_is_ham_and_greylist_is_not_spam() {
        for action in ["no action", "greylist", "soft reject"] {
            let r = http(&format!(
                r#"{{"score":1.0,"required_score":15.0,"action":"{action}","symbols":{{}}}}"#
            ));
            let v = parse_reply(&r).unwrap();
            assert!(!v.is_spam, "{action}");
            assert!(v.tests.is_empty());
        }
    }

    #[test]
    fn a_chunked_reply_is_decoded() {
        let json = r#"{"score":6.0,"required_score":15.0,"action":"add header","symbols":{"A":{}}}"#;
        let (a, b) = json.split_at(10);
        let r = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        );
        assert!(reply_complete(r.as_bytes()));
        assert!(!reply_complete(&r.as_bytes()[..r.len() - 5]));
        let v = parse_reply(r.as_bytes()).unwrap();
        assert!(v.is_spam);
        assert_eq!(v.tests, ["A"]);
    }

    #[test]
    fn http_errors_and_error_fields_are_refusals() {
        let r = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}";
        assert!(matches!(parse_reply(r), Err(ReplyError::Refused(m)) if m.starts_with("HTTP/1.1 500")));
        let r = http(r#"{"error":"cannot parse input"}"#);
        assert!(matches!(parse_reply(&r), Err(ReplyError::Refused(m)) if m.contains("cannot parse")));
        for bad in [
            &b"SPAMD/1.1 0 EX_OK\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\nnot json",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\n\r\n{\"score\":1}",
            b"HTTP/1.1 200 OK\r\n\r\n{\"score\":1,\"required_score\":2,\"symbols\":[]}",
        ] {
            assert!(matches!(parse_reply(bad), Err(ReplyError::Garbage(_))), "{bad:?}");
        }
    }

    #[test]
    fn the_envelope_becomes_request_headers_without_injection() {
        let ep = Endpoint::Tcp("::1".into(), 11333);
        let head = request_head(&ep, 5, "", &["a@x\r\nEvil: 1".into(), "b@y".into()], Some("192.0.2.1"));
        assert_eq!(
            head,
            "POST /checkv2 HTTP/1.1\r\nHost: [::1]\r\nContent-Length: 5\r\nConnection: close\r\nFrom: <>\r\nRcpt: a@xEvil: 1\r\nRcpt: b@y\r\nIP: 192.0.2.1\r\n\r\n"
        );
    }

    proptest! {
        #[test]
        fn any_reply_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_reply(&bytes);
            let _ = reply_complete(&bytes);
        }

        #[test]
        fn any_chunked_body_decodes_without_panic(body in "([0-9a-fA-F]{1,3}(;x)?\\r\\n[ -~]{0,20}\\r\\n){0,4}(0\\r\\n\\r\\n)?") {
            let _ = dechunk(body.as_bytes());
            let r = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
            let _ = parse_reply(r.as_bytes());
        }

        #[test]
        fn json_like_bodies_parse_without_panic(score in any::<f64>(), req in any::<f64>(), action in "[ -~]{0,12}") {
            let r = http(&format!(r#"{{"score":{score},"required_score":{req},"action":"{action}","symbols":{{"S":1}}}}"#));
            let _ = parse_reply(&r);
        }
    }
}
