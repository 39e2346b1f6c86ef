//! The inbound ESMTP/LMTP protocol as a sans-IO state machine: bytes in, replies and
//! complete transactions out. Commands are parsed by smtp-proto (XFORWARD, which it
//! does not know, by us); the body is dot-unstuffed by smtp-proto's `DataReceiver` and
//! spooled. PIPELINING works by construction: every complete command in the input is
//! answered in order, and input after a message's final dot waits in the buffer until
//! that message has been answered.

use std::borrow::Cow;

use smtp_proto::{
    Error as ProtoError, MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8,
    RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS, Request,
};

use super::dot::DotReceiver;
use super::spool::{Spool, SpoolConfig};
use crate::message::{Body, Envelope, Notify, Recipient, Reply, Ret, XForward, mask_controls};
use crate::replies;

/// Limits of one session (from the listener's policy bank).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Host name in the greeting and EHLO.
    pub hostname: String,
    /// Largest message in bytes; 0 = no limit.
    pub max_message_size: u64,
    /// Most recipients per transaction.
    pub max_recipients: usize,
    /// Longest command line, CRLF included.
    pub max_line: usize,
    /// Where bodies go.
    pub spool: SpoolConfig,
}

/// What the session asks its driver to do.
#[derive(Debug)]
pub enum Output {
    /// Send this reply.
    Reply(Reply),
    /// A complete transaction: process it, then call [`Session::answered`] with the replies.
    Message(Box<Transaction>),
    /// Close the connection after the replies before it.
    Close,
    /// MAIL FROM was accepted: a transaction started (the nanny's `m`).
    MailStarted,
    /// DATA was accepted: the body comes now (the nanny's `d`).
    DataStarted,
    /// A message refused after its DATA (too big, or the spool failed): send the reply,
    /// and account for the message (it was received, and answered).
    Refused(Box<Refused>),
}

/// A message refused by the protocol layer after its DATA.
#[derive(Debug)]
pub struct Refused {
    /// Its envelope.
    pub envelope: Envelope,
    /// Bytes received.
    pub size: u64,
    /// The reply it got.
    pub reply: Reply,
}

/// A received message waiting for its answer.
#[derive(Debug)]
pub struct Transaction {
    /// The envelope.
    pub envelope: Envelope,
    /// The body.
    pub spool: Spool,
    /// Transaction number in the session (1-based).
    pub number: u32,
}

#[derive(Debug)]
enum State {
    /// Before HELO/EHLO/LHLO.
    Fresh,
    /// Greeted; no transaction.
    Ready,
    /// MAIL accepted; collecting recipients.
    Envelope(Box<Envelope>),
    /// Receiving the body.
    Data {
        envelope: Box<Envelope>,
        receiver: DotReceiver,
        spool: Spool,
        pending: Vec<u8>,
    },
    /// Receiving and discarding a body that is too big, or that the spool could not take.
    Draining {
        envelope: Box<Envelope>,
        receiver: DotReceiver,
        size: u64,
        reply: Reply,
    },
    /// A transaction was handed out and is not answered yet.
    Processing,
    /// QUIT or a fatal error: nothing more is read.
    Closed,
}

/// One inbound SMTP/LMTP session.
#[derive(Debug)]
pub struct Session {
    state: State,
    limits: Limits,
    buf: Vec<u8>,
    helo: String,
    lmtp: bool,
    xforward: XForward,
    transactions: u32,
    /// A command line overflowed: skip input up to the next LF.
    skipping_line: bool,
    id_seed: String,
    data_announced: bool,
}

/// Bytes moved from the DATA receiver to the spool at once: large chunks, few writes.
const SPOOL_CHUNK: usize = 256 * 1024;

impl Session {
    /// A new session; `id_seed` names spool files (the connection's log id).
    pub fn new(limits: Limits, id_seed: &str) -> Session {
        Session {
            state: State::Fresh,
            limits,
            buf: Vec::new(),
            helo: String::new(),
            lmtp: false,
            xforward: XForward::default(),
            transactions: 0,
            skipping_line: false,
            id_seed: id_seed.to_string(),
            data_announced: false,
        }
    }

    /// The greeting to send first.
    pub fn greeting(&self) -> Reply {
        replies::greeting(&self.limits.hostname)
    }

    /// Whether the client switched to LMTP with LHLO.
    pub fn is_lmtp(&self) -> bool {
        self.lmtp
    }

    /// Whether a transaction is open (MAIL given, not finished): a drain waits for it.
    pub fn in_transaction(&self) -> bool {
        matches!(
            self.state,
            State::Envelope(_) | State::Data { .. } | State::Draining { .. } | State::Processing
        )
    }

    /// Whether the body is being received (the data timeout applies).
    pub fn in_data(&self) -> bool {
        matches!(self.state, State::Data { .. } | State::Draining { .. })
    }

    /// Feeds received bytes (may be empty, to continue with buffered input after an
    /// answer) and appends what to do to `out`. Stops after a complete transaction.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Output>) {
        self.buf.extend_from_slice(input);
        let mut pos = 0;
        while pos < self.buf.len() {
            match &mut self.state {
                State::Closed | State::Processing => break,
                State::Data { .. } | State::Draining { .. } => {
                    pos += self.ingest_data(pos, out);
                    if matches!(self.state, State::Processing) {
                        break;
                    }
                }
                State::Fresh | State::Ready | State::Envelope(_) => {
                    let rest = &self.buf[pos..];
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() >= self.limits.max_line {
                            if !self.skipping_line {
                                out.push(Output::Reply(replies::line_too_long()));
                            }
                            self.skipping_line = true;
                            pos = self.buf.len();
                        }
                        break;
                    };
                    let line = rest[..=nl].to_vec();
                    pos += nl + 1;
                    if self.skipping_line {
                        self.skipping_line = false;
                        continue;
                    }
                    if line.len() > self.limits.max_line {
                        out.push(Output::Reply(replies::line_too_long()));
                        continue;
                    }
                    self.command(&line, out);
                }
            }
        }
        self.buf.drain(..pos);
    }

    /// The transaction handed out has been answered; the session is ready again.
    pub fn answered(&mut self) {
        if matches!(self.state, State::Processing) {
            self.state = State::Ready;
        }
    }

    /// Consumes body bytes from `self.buf[pos..]`; returns how many.
    fn ingest_data(&mut self, pos: usize, out: &mut Vec<Output>) -> usize {
        let input = &self.buf[pos..];
        let limit = self.limits.max_message_size;
        let state = std::mem::replace(&mut self.state, State::Closed);
        let (next, consumed) = match state {
            State::Data {
                envelope,
                mut receiver,
                mut spool,
                mut pending,
            } => {
                let (consumed, done) = receiver.ingest(input, &mut pending);
                let size = spool.len() + pending.len() as u64;
                // The body goes to the spool in large chunks.
                let flush = done || pending.len() > SPOOL_CHUNK;
                let written = if flush {
                    let r = spool.write(&pending);
                    pending.clear();
                    r
                } else {
                    Ok(())
                };
                let refusal = if limit > 0 && size > limit {
                    Some(replies::message_too_big(size))
                } else if receiver.saw_bare_line_ending() {
                    // Strict, as RFC 5321 2.3.8 wants: such a message is never stored or
                    // forwarded, so nothing smuggled in it can reach the back end.
                    Some(replies::bare_line_ending_in_data())
                } else if let Err(e) = written.and_then(|()| if done { spool.finish() } else { Ok(()) }) {
                    Some(replies::tempfail(&self.id_seed, "spooling", &e.to_string()))
                } else {
                    None
                };
                if let Some(reply) = refusal {
                    (
                        self.drain_or_finish(envelope, receiver, size, reply, done, out),
                        consumed,
                    )
                } else if done {
                    self.transactions += 1;
                    let tx = Transaction {
                        envelope: *envelope,
                        spool,
                        number: self.transactions,
                    };
                    out.push(Output::Message(Box::new(tx)));
                    (State::Processing, consumed)
                } else {
                    (
                        State::Data {
                            envelope,
                            receiver,
                            spool,
                            pending,
                        },
                        consumed,
                    )
                }
            }
            State::Draining {
                envelope,
                mut receiver,
                size,
                reply,
            } => {
                let mut scratch = Vec::new();
                let (consumed, done) = receiver.ingest(input, &mut scratch);
                let size = size + scratch.len() as u64;
                (
                    self.drain_or_finish(envelope, receiver, size, reply, done, out),
                    consumed,
                )
            }
            other => (other, 0),
        };
        self.state = next;
        consumed
    }

    fn drain_or_finish(
        &mut self,
        envelope: Box<Envelope>,
        receiver: DotReceiver,
        size: u64,
        reply: Reply,
        done: bool,
        out: &mut Vec<Output>,
    ) -> State {
        if done {
            self.transactions += 1;
            out.push(Output::Refused(Box::new(Refused {
                envelope: *envelope,
                size,
                reply,
            })));
            State::Ready
        } else {
            State::Draining {
                envelope,
                receiver,
                size,
                reply,
            }
        }
    }

    fn command(&mut self, line: &[u8], out: &mut Vec<Output>) {
        // RFC 5321 2.3.8: a line ends with CRLF and nothing else. A bare LF is refused
        // (Postfix's smtpd_forbid_bare_newline), and so is any other control character
        // (a NUL, a lone CR...): the HELO name and XFORWARD values go into the Received
        // field and the logs, where a CR or LF would start a line of the client's choosing.
        let Some(text) = line.strip_suffix(b"\r\n") else {
            out.push(Output::Reply(replies::bare_lf_in_command()));
            return;
        };
        if text.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
            out.push(Output::Reply(replies::control_in_command()));
            return;
        }
        if is_xforward(line) {
            let reply = self.xforward_command(line);
            out.push(Output::Reply(reply));
            return;
        }
        let request = Request::parse(&mut line.iter());
        let was_ready = matches!(self.state, State::Ready);
        let reply = match request {
            Ok(req) => self.request(req, out),
            Err(e) => Some(error_reply(&e)),
        };
        if let Some(r) = reply {
            out.push(Output::Reply(r));
        }
        if was_ready && matches!(self.state, State::Envelope(_)) {
            out.push(Output::MailStarted);
        }
        if matches!(self.state, State::Data { .. }) && !self.data_announced {
            self.data_announced = true;
            out.push(Output::DataStarted);
        }
    }

    fn request(&mut self, req: Request<Cow<'_, str>>, out: &mut Vec<Output>) -> Option<Reply> {
        let greeted = !matches!(self.state, State::Fresh);
        let reply = match req {
            Request::Ehlo { host } => self.greet(&host, false, true),
            Request::Lhlo { host } => self.greet(&host, true, true),
            Request::Helo { host } => self.greet(&host, false, false),
            Request::Quit => {
                self.state = State::Closed;
                out.push(Output::Reply(replies::bye(&self.limits.hostname)));
                out.push(Output::Close);
                return None;
            }
            Request::Noop { .. } => replies::ok(),
            Request::Rset => {
                if greeted {
                    self.state = State::Ready;
                }
                replies::ok()
            }
            Request::Vrfy { .. } => replies::vrfy(),
            _ if !greeted => replies::need_helo(),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            other @ (Request::Bdat { .. }
            | Request::Auth { .. }
            | Request::Expn { .. }
            | Request::Help { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. }
            | Request::StartTls) => replies::not_offered(other.name()),
        };
        Some(reply)
    }

    fn greet(&mut self, host: &str, lmtp: bool, extended: bool) -> Reply {
        self.helo = host.to_string();
        self.lmtp = lmtp;
        self.state = State::Ready;
        if extended {
            replies::ehlo(&self.limits.hostname, self.limits.max_message_size)
        } else {
            replies::helo(&self.limits.hostname)
        }
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<Cow<'_, str>>) -> Reply {
        if !matches!(self.state, State::Ready) {
            return replies::nested_mail();
        }
        if from.flags & MAIL_BODY_BINARYMIME != 0 {
            return replies::unsupported_parameter("BODY=BINARYMIME");
        }
        let limit = self.limits.max_message_size;
        if limit > 0 && from.size as u64 > limit {
            return replies::declared_too_big(from.size);
        }
        let ret = if from.flags & MAIL_RET_FULL != 0 {
            Some(Ret::Full)
        } else if from.flags & MAIL_RET_HDRS != 0 {
            Some(Ret::Hdrs)
        } else {
            None
        };
        let envelope = Envelope {
            mail_from: from.address.to_string(),
            recipients: Vec::new(),
            body: if from.flags & MAIL_BODY_8BITMIME != 0 {
                Body::EightBitMime
            } else {
                Body::SevenBit
            },
            smtputf8: from.flags & MAIL_SMTPUTF8 != 0,
            ret,
            envid: from.env_id.map(|e| e.to_string()),
            declared_size: (from.size > 0).then_some(from.size),
            xforward: self.xforward.clone(),
            helo: self.helo.clone(),
            lmtp: self.lmtp,
        };
        let reply = replies::sender_ok(&envelope.mail_from);
        self.state = State::Envelope(Box::new(envelope));
        reply
    }

    fn rcpt(&mut self, to: smtp_proto::RcptTo<Cow<'_, str>>) -> Reply {
        let State::Envelope(envelope) = &mut self.state else {
            return replies::need_mail();
        };
        if envelope.recipients.len() >= self.limits.max_recipients {
            return replies::too_many_recipients();
        }
        if to.address.is_empty() {
            return replies::bad_address("recipient");
        }
        let notify = Notify {
            never: to.flags & RCPT_NOTIFY_NEVER != 0,
            success: to.flags & RCPT_NOTIFY_SUCCESS != 0,
            failure: to.flags & RCPT_NOTIFY_FAILURE != 0,
            delay: to.flags & RCPT_NOTIFY_DELAY != 0,
        };
        let address = to.address.to_string();
        let reply = replies::recipient_ok(&address);
        envelope.recipients.push(Recipient {
            address,
            orcpt: to.orcpt.map(|o| o.to_string()),
            notify,
        });
        reply
    }

    fn data(&mut self) -> Reply {
        let state = std::mem::replace(&mut self.state, State::Closed);
        match state {
            State::Envelope(envelope) if !envelope.recipients.is_empty() => {
                let name = format!("{}-{}", self.id_seed, self.transactions + 1);
                let spool = Spool::new(self.limits.spool.clone(), &name);
                self.state = State::Data {
                    envelope,
                    receiver: DotReceiver::new(),
                    spool,
                    pending: Vec::new(),
                };
                self.data_announced = false;
                replies::start_data()
            }
            State::Envelope(envelope) => {
                self.state = State::Envelope(envelope);
                replies::no_valid_recipients()
            }
            other => {
                self.state = other;
                replies::need_mail()
            }
        }
    }

    fn xforward_command(&mut self, line: &[u8]) -> Reply {
        if matches!(self.state, State::Fresh) {
            return replies::need_helo();
        }
        if !matches!(self.state, State::Ready) {
            return replies::xforward_in_transaction();
        }
        let text = String::from_utf8_lossy(line);
        let attrs = text.trim_end().get(8..).unwrap_or("").trim();
        if attrs.is_empty() {
            return replies::syntax("XFORWARD attribute=value...");
        }
        for pair in attrs.split_ascii_whitespace() {
            let Some((name, value)) = pair.split_once('=') else {
                return replies::syntax("XFORWARD attribute=value...");
            };
            // Postfix's smtpd refuses an over-long value and masks every non-printable
            // character of the decoded value with '?' (its printable()), so a CR, LF or
            // NUL smuggled in as +0D, +0A or +00 can never reach a header field or a log.
            if value.len() > XFORWARD_VALUE_MAX {
                return replies::xforward_value_too_long();
            }
            let value = mask_controls(&xtext_decode(value));
            let value = (!value.eq_ignore_ascii_case("[UNAVAILABLE]") && !value.is_empty()).then_some(value);
            let slot = match name.to_ascii_uppercase().as_str() {
                "NAME" => &mut self.xforward.name,
                "ADDR" => &mut self.xforward.addr,
                "PORT" => &mut self.xforward.port,
                "PROTO" => &mut self.xforward.proto,
                "HELO" => &mut self.xforward.helo,
                "IDENT" => &mut self.xforward.ident,
                "SOURCE" => &mut self.xforward.source,
                _ => return replies::syntax("XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE"),
            };
            *slot = value;
        }
        replies::ok()
    }
}

/// The longest XFORWARD attribute value, as Postfix's smtpd (`501 ... too long` beyond).
const XFORWARD_VALUE_MAX: usize = 255;

fn is_xforward(line: &[u8]) -> bool {
    line.len() >= 9 && line[..8].eq_ignore_ascii_case(b"XFORWARD") && line[8].is_ascii_whitespace()
}

/// Decodes xtext (RFC 1891): `+XX` is a hex-encoded byte.
fn xtext_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Exactly two hex digits: from_str_radix alone would take "+1" as a number.
        if b[i] == b'+'
            && let Some(h) = b.get(i + 1..i + 3)
            && h.iter().all(u8::is_ascii_hexdigit)
            && let Some(v) = std::str::from_utf8(h).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn error_reply(e: &ProtoError) -> Reply {
    match e {
        ProtoError::UnknownCommand | ProtoError::NeedsMoreData { .. } => replies::unknown_command(),
        ProtoError::InvalidSenderAddress => replies::bad_address("sender"),
        ProtoError::InvalidRecipientAddress => replies::bad_address("recipient"),
        ProtoError::SyntaxError { syntax } => replies::syntax(syntax),
        ProtoError::InvalidParameter { param } => replies::syntax(&format!("invalid parameter {param}")),
        ProtoError::UnsupportedParameter { param } => replies::unsupported_parameter(param),
        ProtoError::ResponseTooLong => replies::line_too_long(),
        ProtoError::InvalidResponse { .. } => replies::unknown_command(),
    }
}
