//! The shared types of a message's life in avisd: the envelope as received (with its
//! DSN and XFORWARD parameters), replies, and ids, and the spooled body ([`spool`]).
//! Every stage depends downwards on this module, and it on none of them. No I/O here,
//! except the spool's own files.

mod outcome;
pub mod spool;

pub use outcome::{ConnUse, Delivery, DeliveryKind, HeaderFacts, Quarantined, RecipientResult};

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// An SMTP reply: code, optional enhanced status code, text (one line; multi-line text
/// is kept with `\n` between lines and written out as continuation lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code (RFC 3463), e.g. `(2, 0, 0)`.
    pub enhanced: Option<(u8, u16, u16)>,
    /// The text after the codes.
    pub text: String,
}

impl Reply {
    /// A reply with an enhanced status code.
    pub fn new(code: u16, enhanced: (u8, u16, u16), text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            text: text.into(),
        }
    }

    /// Positive completion (2xx).
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// Transient failure (4xx).
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// Permanent failure (5xx).
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The reply in wire form, CRLF-terminated, continuation lines for `\n` in the text.
    /// Every reply avisd sends passes here, so this is where RFC 5321's limit holds: each
    /// line at most [`MAX_REPLY_LINE`] octets with its CRLF, control characters escaped
    /// (a CR or LF from a hostile file name must not end the line early), over-long
    /// text cut with `...`.
    pub fn to_wire(&self) -> String {
        let lines: Vec<&str> = self.text.split('\n').collect();
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let head = match self.enhanced {
                Some((a, b, c)) => format!("{}{sep}{a}.{b}.{c} ", self.code),
                None => format!("{}{sep}", self.code),
            };
            out.push_str(&head);
            let room = MAX_REPLY_LINE.saturating_sub(head.len() + 2);
            out.push_str(&cut_with_ellipsis(&escape_controls(line), room));
            out.push_str("\r\n");
        }
        out
    }
}

/// RFC 5321 4.5.3.1.5: a reply line is at most 512 octets including the code and CRLF.
pub const MAX_REPLY_LINE: usize = 512;

/// Replaces each ASCII control character (CR, LF, NUL, DEL...) with '?'.
pub fn mask_controls(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_control() { '?' } else { c }).collect()
}

/// Escapes control characters as amavisd sanitises its log text: CR, LF and TAB as `\r`,
/// `\n`, `\t`, any other C0 control and DEL as `\xHH`. (Unlike the log, a backslash
/// stays single: reply texts are read by people and matched by checks, not parsed back.)
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(|c| c.is_ascii_control()) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// `s` cut to at most `max` octets (on a character boundary), ending in `...` when cut.
pub fn cut_with_ellipsis(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// xtext (RFC 3461 4): the encoding of ENVID, ORCPT and XFORWARD values on the wire.
/// avisd keeps those values decoded, so each goes out encoded again: every octet outside
/// `!`..`~`, and `+` and `=`, becomes `+XX`. The result is one word of printable ASCII,
/// so no value can add a parameter, a command or a line.
pub fn xtext_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.enhanced {
            Some((a, b, c)) => write!(f, "{} {a}.{b}.{c} {}", self.code, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

/// DSN RET (RFC 3461).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// Return the full message.
    Full,
    /// Return headers only.
    Hdrs,
}

/// BODY= of MAIL FROM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// 7BIT (or not given).
    SevenBit,
    /// 8BITMIME.
    EightBitMime,
}

/// DSN NOTIFY of one recipient (RFC 3461).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    /// NOTIFY=NEVER.
    pub never: bool,
    /// SUCCESS.
    pub success: bool,
    /// FAILURE.
    pub failure: bool,
    /// DELAY.
    pub delay: bool,
}

impl Notify {
    /// Whether a failure DSN may be sent (NOTIFY absent means failure and delay).
    pub fn wants_failure(&self) -> bool {
        !self.never && (self.failure || !(self.success || self.delay))
    }

    /// The NOTIFY parameter value, if any was given.
    pub fn param(&self) -> Option<String> {
        if self.never {
            return Some("NEVER".into());
        }
        let parts: Vec<&str> = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        (!parts.is_empty()).then(|| parts.join(","))
    }
}

/// One envelope recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address without angle brackets.
    pub address: String,
    /// DSN ORCPT address (smtp-proto strips the `rfc822;` type), passed on.
    pub orcpt: Option<String>,
    /// DSN NOTIFY.
    pub notify: Notify,
}

/// The original client, as Postfix passes it with XFORWARD.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XForward {
    /// NAME.
    pub name: Option<String>,
    /// ADDR.
    pub addr: Option<String>,
    /// PORT.
    pub port: Option<String>,
    /// PROTO.
    pub proto: Option<String>,
    /// HELO.
    pub helo: Option<String>,
    /// IDENT (Postfix's queue id).
    pub ident: Option<String>,
    /// SOURCE (LOCAL or REMOTE).
    pub source: Option<String>,
}

impl XForward {
    /// Whether nothing was forwarded.
    pub fn is_empty(&self) -> bool {
        self.attributes().next().is_none()
    }

    /// The attributes that were given, as (NAME, value).
    pub fn attributes(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("NAME", &self.name),
            ("ADDR", &self.addr),
            ("PORT", &self.port),
            ("PROTO", &self.proto),
            ("HELO", &self.helo),
            ("IDENT", &self.ident),
            ("SOURCE", &self.source),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    }
}

/// The envelope of one transaction as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// MAIL FROM address without brackets; empty for the null sender.
    pub mail_from: String,
    /// Recipients in RCPT order.
    pub recipients: Vec<Recipient>,
    /// BODY=.
    pub body: Body,
    /// SMTPUTF8 given.
    pub smtputf8: bool,
    /// DSN RET.
    pub ret: Option<Ret>,
    /// DSN ENVID.
    pub envid: Option<String>,
    /// SIZE= declared.
    pub declared_size: Option<usize>,
    /// XFORWARD attributes of the session.
    pub xforward: XForward,
    /// The client's HELO/EHLO/LHLO name.
    pub helo: String,
    /// Whether the client spoke LMTP.
    pub lmtp: bool,
}

/// The per-transaction ids: amavisd's log id and mail id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// `SS-CC[-T]`: worker slot, connection count in that slot, transaction in the session.
    pub log_id: String,
    /// 12 characters of base64url, random.
    pub mail_id: String,
}

static ID_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Ids {
    /// Ids for transaction `txn` (1-based) of connection `conn` in worker slot `slot`.
    pub fn new(slot: usize, conn: u64, txn: u32) -> Ids {
        let log_id = if txn > 1 {
            format!("{slot:05}-{conn:02}-{txn}")
        } else {
            format!("{slot:05}-{conn:02}")
        };
        Ids {
            log_id,
            mail_id: random_mail_id(),
        }
    }
}

/// 12 base64url characters (72 bits) from the standard library's randomly seeded hasher.
pub fn random_mail_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(ID_COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let mut bits = h.finish();
    let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
    h2.write_u64(bits);
    let more = h2.finish();
    let mut out = String::with_capacity(12);
    for i in 0..12 {
        if i == 10 {
            bits = more;
        }
        out.push(char::from(ALPHABET[(bits & 63) as usize]));
        bits >>= 6;
    }
    out
}

/// Facts about a transaction that the protocol layer knows, handed with it to the
/// pipeline (and to the ledger when the protocol layer refused it).
#[derive(Debug, Clone)]
pub struct TxMeta {
    /// Ids.
    pub ids: Ids,
    /// Unix ms of MAIL FROM.
    pub received_at_ms: u64,
    /// When MAIL FROM came.
    pub mail_at: Instant,
    /// The connection.
    pub peer: Peer,
}

/// Where the connection came from.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The MTA's address (`src_ip`).
    pub src_ip: Option<IpAddr>,
    /// Our socket address (`dst_ip`).
    pub dst_ip: Option<IpAddr>,
    /// Our port (`dst_port`).
    pub dst_port: Option<u16>,
}

/// Where per-message JSON events go: read by `config`, opened by `record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSink {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A file, appended to and reopened on SIGHUP.
    File(PathBuf),
    /// The local syslog (facility mail, ident avisd).
    Syslog,
    /// Nowhere.
    None,
}
