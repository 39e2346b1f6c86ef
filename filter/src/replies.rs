//! Every reply string avisd sends, in one place, with its code and enhanced status code:
//! the protocol's, the pipeline's, decide's verdicts and the pipe delivery's. Texts
//! follow amavisd-new's where checks and log parsers match them.

use crate::message::{Ids, Reply};

/// `220 <host> ESMTP avis service ready`.
pub fn greeting(host: &str) -> Reply {
    Reply {
        code: 220,
        enhanced: None,
        text: format!("{host} ESMTP avis service ready"),
    }
}

/// The EHLO/LHLO answer: host name, then the extensions offered.
pub fn ehlo(host: &str, size_limit: u64) -> Reply {
    let size = if size_limit > 0 {
        format!("SIZE {size_limit}")
    } else {
        "SIZE".into()
    };
    let lines = [
        host.to_string(),
        "PIPELINING".into(),
        size,
        "8BITMIME".into(),
        "SMTPUTF8".into(),
        "DSN".into(),
        "ENHANCEDSTATUSCODES".into(),
        "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE".into(),
    ];
    Reply {
        code: 250,
        enhanced: None,
        text: lines.join("\n"),
    }
}

/// `250 <host>` for HELO.
pub fn helo(host: &str) -> Reply {
    Reply {
        code: 250,
        enhanced: None,
        text: host.to_string(),
    }
}

/// MAIL FROM accepted.
pub fn sender_ok(addr: &str) -> Reply {
    Reply::new(250, (2, 1, 0), format!("Sender <{addr}> OK"))
}

/// RCPT TO accepted.
pub fn recipient_ok(addr: &str) -> Reply {
    Reply::new(250, (2, 1, 5), format!("Recipient <{addr}> OK"))
}

/// DATA accepted, send the body.
pub fn start_data() -> Reply {
    Reply {
        code: 354,
        enhanced: None,
        text: "End data with <CR><LF>.<CR><LF>".into(),
    }
}

/// RSET, NOOP and XFORWARD.
pub fn ok() -> Reply {
    Reply::new(250, (2, 0, 0), "Ok")
}

/// VRFY: we do not verify addresses.
pub fn vrfy() -> Reply {
    Reply::new(252, (2, 0, 0), "Argument not checked")
}

/// QUIT.
pub fn bye(host: &str) -> Reply {
    Reply::new(221, (2, 0, 0), format!("{host} avis closing transmission channel"))
}

/// A command before HELO/EHLO/LHLO.
pub fn need_helo() -> Reply {
    Reply::new(503, (5, 5, 1), "Error: send HELO/EHLO first")
}

/// MAIL inside a transaction.
pub fn nested_mail() -> Reply {
    Reply::new(503, (5, 5, 1), "Error: nested MAIL command")
}

/// XFORWARD after MAIL (Postfix sends it before MAIL).
pub fn xforward_in_transaction() -> Reply {
    Reply::new(503, (5, 5, 1), "Error: XFORWARD inside a transaction")
}

/// A command line ended by a bare LF instead of CRLF (RFC 5321 2.3.8; Postfix's
/// `smtpd_forbid_bare_newline` words).
pub fn bare_lf_in_command() -> Reply {
    Reply::new(500, (5, 5, 2), "Error: bare <LF> received")
}

/// A command line with a control character in it (a NUL, a lone CR...).
pub fn control_in_command() -> Reply {
    Reply::new(501, (5, 5, 2), "Syntax: control characters refused in a command")
}

/// An XFORWARD attribute value longer than Postfix allows (255).
pub fn xforward_value_too_long() -> Reply {
    Reply::new(501, (5, 5, 4), "Error: XFORWARD attribute value too long")
}

/// RCPT or DATA without MAIL.
pub fn need_mail() -> Reply {
    Reply::new(503, (5, 5, 1), "Error: need MAIL command")
}

/// DATA without any accepted recipient.
pub fn no_valid_recipients() -> Reply {
    Reply::new(554, (5, 1, 1), "Error (DATA): no valid recipients")
}

/// An unknown command.
pub fn unknown_command() -> Reply {
    Reply::new(500, (5, 5, 2), "Error: command not recognized")
}

/// A command we know and do not offer (BDAT, AUTH, STARTTLS, ETRN...).
pub fn not_offered(command: &str) -> Reply {
    Reply::new(502, (5, 5, 1), format!("Error: {command} not offered"))
}

/// A syntax error, with the usage that explains it.
pub fn syntax(usage: &str) -> Reply {
    Reply::new(501, (5, 5, 4), format!("Syntax: {usage}"))
}

/// A bad address.
pub fn bad_address(which: &str) -> Reply {
    Reply::new(501, (5, 1, 7), format!("Bad {which} address syntax"))
}

/// A MAIL/RCPT parameter we do not support.
pub fn unsupported_parameter(param: &str) -> Reply {
    Reply::new(555, (5, 5, 4), format!("Unsupported parameter {param}"))
}

/// A command line longer than the limit.
pub fn line_too_long() -> Reply {
    Reply::new(500, (5, 5, 2), "Error: line too long")
}

/// A message whose data had a CR or an LF without the other (RFC 5321 2.3.8), refused
/// after its end: that is how SMTP smuggling hides a second message.
pub fn bare_line_ending_in_data() -> Reply {
    Reply::new(
        554,
        (5, 6, 0),
        "Error: bare <CR> or <LF> in message data, message refused (RFC 5321 2.3.8)",
    )
}

/// Recipient limit reached (amavisd's `$smtpd_recipient_limit`).
pub fn too_many_recipients() -> Reply {
    Reply::new(452, (4, 5, 3), "Too many recipients")
}

/// SIZE= above the limit.
pub fn declared_too_big(size: usize) -> Reply {
    Reply::new(
        552,
        (5, 3, 4),
        format!("Declared message size ({size} B) exceeds size limit"),
    )
}

/// The body grew beyond the limit (answered after the final dot).
pub fn message_too_big(size: u64) -> Reply {
    Reply::new(552, (5, 3, 4), format!("Message size ({size} B) exceeds size limit"))
}

/// avisd is stopping.
pub fn shutting_down() -> Reply {
    Reply::new(421, (4, 3, 2), "Service shutting down, closing channel")
}

/// Every worker is busy (`max_servers` sessions): the client is told within a few seconds rather than
/// left in the listen backlog until its own timeout, and its MTA retries later.
pub fn all_workers_busy(host: &str) -> Reply {
    Reply::new(
        421,
        (4, 3, 2),
        format!("{host} Service temporarily unavailable, all workers busy; try again later"),
    )
}

/// The client was silent too long.
pub fn timeout(host: &str) -> Reply {
    Reply::new(421, (4, 4, 2), format!("{host} Error: timeout exceeded"))
}

/// Anything inside avisd failed: the sender keeps the message and retries.
pub fn tempfail(log_id: &str, section: &str, error: &str) -> Reply {
    Reply::new(
        451,
        (4, 5, 0),
        format!("Error in processing, id={log_id}, {section} FAILED: {error}"),
    )
}

/// The back end's reply to one recipient, as avisd passes it on.
pub fn from_mta(method: &str, backend: &Reply) -> Reply {
    let enhanced = backend.enhanced.or(Some(default_enhanced(backend.code)));
    Reply {
        code: backend.code,
        enhanced,
        text: format!("from MTA({method}): {backend}"),
    }
}

/// The single ESMTP answer with what happened to the other recipients, as amavisd
/// words it: `…, but 1 BOUNCE, and 2 DISCARD` after a relayed reply.
pub fn with_notes(base: &Reply, notes: &str) -> Reply {
    Reply {
        code: base.code,
        enhanced: base.enhanced,
        text: format!("{}, but {notes}", base.text),
    }
}

/// The single ESMTP answer when nothing was relayed: `250 2.5.0 Ok, id=…` with what
/// happened (`BOUNCE` alone when every recipient was bounced).
pub fn ok_id(log_id: &str, notes: &str) -> Reply {
    let text = if notes.is_empty() {
        format!("Ok, id={log_id}")
    } else {
        format!("Ok, id={log_id}, {notes}")
    };
    Reply::new(250, (2, 5, 0), text)
}

/// LMTP: a recipient whose rejection became a DSN.
pub fn lmtp_bounced(rcpt: &str, suppressed: bool) -> Reply {
    let what = if suppressed { "DSN suppressed" } else { "DSN was sent" };
    Reply::new(250, (2, 5, 0), format!("Ok <{rcpt}>, {what}"))
}

/// The enhanced code implied by a basic code when the peer sent none.
pub fn default_enhanced(code: u16) -> (u8, u16, u16) {
    match code / 100 {
        2 => (2, 0, 0),
        4 => (4, 0, 0),
        _ => (5, 0, 0),
    }
}

/// How a blocked recipient is answered (amavisd's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// 5xx, `Reject`.
    Reject,
    /// 5xx internally, `Bounce` (the client gets 2xx and the sender a DSN).
    Bounce,
    /// 2xx, `Ok, discarded`.
    Discard,
    /// 4xx, `Temporary failure`.
    Tempfail,
}

/// A recipient blocked by a content category: `<code> <enh> <Word>, id=<log_id> - <why>`,
/// with amavisd's D_DISCARD (2xx) and D_TEMPFAIL (4xx) overrides of the class.
/// `why` (a virus name, an archive member's path...) is cut to [`MAX_REASON`] characters
/// plus `...` and its control characters escaped, as amavisd cuts its reasons: the path of
/// a member deep in an archive can be kilobytes long and come from the attacker.
pub fn blocked(how: Blocked, code: u16, enhanced: (u8, u16, u16), log_id: &str, why: &str) -> Reply {
    let (_, b, c) = enhanced;
    let why = short_reason(why);
    match how {
        Blocked::Discard => Reply::new(250, (2, b, c), format!("Ok, discarded, id={log_id} - {why}")),
        Blocked::Tempfail => Reply::new(450, (4, b, c), format!("Temporary failure, id={log_id} - {why}")),
        Blocked::Bounce => Reply::new(code, enhanced, format!("Bounce, id={log_id} - {why}")),
        Blocked::Reject => Reply::new(code, enhanced, format!("Reject, id={log_id} - {why}")),
    }
}

/// How many characters of a blocking reason a reply carries (amavisd: 100, then `...`).
pub const MAX_REASON: usize = 100;

/// `why` with controls escaped, cut after [`MAX_REASON`] characters (with `...`).
fn short_reason(why: &str) -> String {
    let why = crate::message::escape_controls(why);
    match why.char_indices().nth(MAX_REASON) {
        Some((end, _)) if why.chars().count() > MAX_REASON + 3 => format!("{}...", &why[..end]),
        _ => why,
    }
}

/// Every virus scanner failed and the policy makes that fatal (amavisd's default).
pub fn virus_scanners_failed(log_id: &str, why: &str) -> Reply {
    tempfail(log_id, "virus_scan", &format!("AV: {why}"))
}

/// A delivery program's exit code, mapped as sendmail maps sysexits.
pub fn pipe_exit(prog: &str, code: Option<i32>) -> Reply {
    match code {
        Some(0) => Reply::new(250, (2, 6, 0), format!("Ok, delivered to {prog}")),
        Some(75) => Reply::new(450, (4, 3, 0), format!("{prog}: temporary failure (EX_TEMPFAIL)")),
        Some(c @ (64..=78)) => Reply::new(554, (5, 3, 0), format!("{prog}: failed with exit code {c}")),
        Some(c) => Reply::new(451, (4, 3, 0), format!("{prog}: unexpected exit code {c}")),
        None => Reply::new(451, (4, 3, 0), format!("{prog}: killed by a signal")),
    }
}

/// A delivery program that could not be run or finish.
pub fn pipe_failed(what: &str) -> Reply {
    Reply::new(451, (4, 3, 0), format!("pipe: {what}"))
}

/// A quarantine copy written (the internal status of that delivery).
pub fn quarantined(ids: &Ids) -> Reply {
    Reply::new(250, (2, 6, 0), format!("Ok, quarantined, id={}", ids.log_id))
}
