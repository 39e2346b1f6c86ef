//! The outbound ESMTP/LMTP client. Ours, because no crate pipelines and reads LMTP's
//! per-recipient replies correctly (see the research notes): with PIPELINING, MAIL, every
//! RCPT and DATA go out in one write and their replies are matched in order; after the
//! final dot, SMTP gives one reply and LMTP one per accepted recipient. Replies are read
//! from our own buffer, so bytes after a reply are never lost, and every read is bounded
//! in size and time.

use std::io::Read;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::Outgoing;
use super::dotstuff::DotStuffer;
use crate::config::target::Protocol;
use crate::message::{Body, Envelope, Recipient, Reply, Ret, xtext_encode};

/// Why a transaction with the back end failed as a whole (every one is temporary).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, reading or writing failed.
    #[error("{stage}: {source}")]
    Io {
        /// What we were doing.
        stage: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("{0}: timed out")]
    Timeout(&'static str),
    /// The back end closed the connection.
    #[error("{0}: connection closed by the back end")]
    Closed(&'static str),
    /// The back end spoke something that is not SMTP.
    #[error("{stage}: bad reply from the back end: {detail}")]
    Protocol {
        /// What we were doing.
        stage: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The back end answered out of step: a reply that cannot answer the command it was
    /// paired with, or one nobody asked for. Its replies can no longer be trusted.
    #[error("{stage}: back end out of step: {detail}")]
    OutOfStep {
        /// What we were doing.
        stage: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A command would have been more than one line (a value with CR, LF or NUL).
    #[error("refusing to send a command that is not one line: {0}")]
    Unsendable(String),
    /// The back end refused the session (greeting or EHLO not 2xx).
    #[error("{stage}: back end answered {reply}")]
    Refused {
        /// What we were doing.
        stage: &'static str,
        /// Its reply.
        reply: Reply,
    },
}

/// A byte stream to a back end.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// What the back end said to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptOutcome {
    /// Its final reply (from RCPT, DATA or the end of data).
    pub reply: Reply,
}

/// An open session with a back end, after the greeting and EHLO/LHLO.
pub struct Connection {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    protocol: Protocol,
    caps: Capabilities,
    timeout: Duration,
    /// Set once a transaction completed, so the cache may keep it.
    pub reusable: bool,
    /// Set when a read found the connection closed or broken.
    broken: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("protocol", &self.protocol)
            .field("caps", &self.caps)
            .finish()
    }
}

/// What the back end offered in its EHLO/LHLO answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// PIPELINING.
    pub pipelining: bool,
    /// 8BITMIME.
    pub eight_bit: bool,
    /// SMTPUTF8.
    pub smtputf8: bool,
    /// DSN.
    pub dsn: bool,
    /// SIZE.
    pub size: bool,
    /// XFORWARD attribute names.
    pub xforward: Vec<String>,
}

const MAX_REPLY_LINE: usize = 4096;
const MAX_REPLY_LINES: usize = 200;
const BODY_CHUNK: usize = 256 * 1024;

impl Connection {
    /// Reads the greeting and says EHLO (LHLO for LMTP) as `helo_name`.
    pub async fn open(
        stream: Box<dyn Stream>,
        protocol: Protocol,
        helo_name: &str,
        timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let mut c = Connection {
            stream,
            buf: Vec::new(),
            protocol,
            caps: Capabilities::default(),
            timeout,
            reusable: false,
            broken: false,
        };
        let greeting = c.read_reply("greeting").await?;
        if !greeting.0.is_positive() {
            return Err(ClientError::Refused {
                stage: "greeting",
                reply: greeting.0,
            });
        }
        let verb = match protocol {
            Protocol::Smtp => "EHLO",
            Protocol::Lmtp => "LHLO",
        };
        c.write(format!("{verb} {helo_name}\r\n").as_bytes(), "EHLO").await?;
        let (reply, lines) = c.read_reply("EHLO").await?;
        if !reply.is_positive() {
            return Err(ClientError::Refused { stage: "EHLO", reply });
        }
        for line in lines.iter().skip(1) {
            let upper = line.to_ascii_uppercase();
            let mut words = upper.split_whitespace();
            match words.next() {
                Some("PIPELINING") => c.caps.pipelining = true,
                Some("8BITMIME") => c.caps.eight_bit = true,
                Some("SMTPUTF8") => c.caps.smtputf8 = true,
                Some("DSN") => c.caps.dsn = true,
                Some("SIZE") => c.caps.size = true,
                Some("XFORWARD") => c.caps.xforward = words.map(str::to_string).collect(),
                _ => {}
            }
        }
        Ok(c)
    }

    /// Sends one transaction: XFORWARD, MAIL, RCPTs, DATA, `prepend` then the spooled
    /// body (dot-stuffed). Returns one outcome per recipient, in envelope order.
    ///
    /// Replies are paired with commands by position, so the pairing is guarded: each
    /// command is one line whatever the envelope holds (its values re-encoded as
    /// xtext), each reply must be of a kind that can answer its command (DATA: 354 or a
    /// refusal; the others: 2xx, 4xx or 5xx), and at each point where the back end must
    /// be waiting for us, nothing more may have come. A back end out of step fails the
    /// whole transaction (temporary) rather than have a stale reply taken for a later one.
    pub async fn transaction(
        &mut self,
        envelope: &Envelope,
        out: &Outgoing<'_>,
    ) -> Result<Vec<RcptOutcome>, ClientError> {
        self.reusable = false;
        let mut commands = self.xforward_commands(envelope);
        let n_xforward = commands.len();
        commands.push(self.mail_command(envelope, out.len()));
        commands.extend(envelope.recipients.iter().map(|r| self.rcpt_command(r)));
        commands.push("DATA\r\n".into());
        for c in &commands {
            one_line(c)?;
        }
        let data_index = commands.len() - 1;
        let expect = |i: usize| {
            if i == data_index {
                Expect::StartData
            } else {
                Expect::Completion
            }
        };

        // Without PIPELINING each command waits for its reply; with it, all go at once.
        let mut replies: Vec<Reply> = Vec::with_capacity(commands.len());
        if self.caps.pipelining {
            self.await_turn("MAIL").await?;
            self.write(commands.concat().as_bytes(), "MAIL").await?;
            for i in 0..commands.len() {
                replies.push(self.read_answer("MAIL/RCPT/DATA", expect(i)).await?);
            }
        } else {
            for (i, cmd) in commands.iter().enumerate() {
                self.await_turn("MAIL").await?;
                self.write(cmd.as_bytes(), "MAIL").await?;
                let reply = self.read_answer("MAIL/RCPT/DATA", expect(i)).await?;
                let stop = i == n_xforward && !reply.is_positive();
                replies.push(reply);
                if stop {
                    break;
                }
            }
        }

        let mail_reply = replies.get(n_xforward).cloned().ok_or(ClientError::Closed("MAIL"))?;
        if !mail_reply.is_positive() {
            self.reset().await?;
            return Ok(envelope
                .recipients
                .iter()
                .map(|_| RcptOutcome {
                    reply: mail_reply.clone(),
                })
                .collect());
        }
        let rcpt_replies: Vec<Reply> = replies
            .iter()
            .skip(n_xforward + 1)
            .take(envelope.recipients.len())
            .cloned()
            .collect();
        let data_reply = replies.get(data_index).cloned();
        let accepted: Vec<usize> = (0..rcpt_replies.len())
            .filter(|&i| rcpt_replies[i].is_positive())
            .collect();
        let mut outcomes: Vec<RcptOutcome> = rcpt_replies.iter().map(|r| RcptOutcome { reply: r.clone() }).collect();

        match data_reply {
            Some(r) if r.code == 354 && !accepted.is_empty() => {}
            Some(r) if r.code == 354 => {
                // A server that says 354 with no recipient: end the empty data, deliver nothing.
                self.await_turn("DATA").await?;
                self.write(b".\r\n", "DATA").await?;
                self.read_answer("DATA", Expect::Completion).await?;
                self.finish("DATA").await?;
                return Ok(outcomes);
            }
            Some(r) => {
                for &i in &accepted {
                    outcomes[i].reply = r.clone();
                }
                self.reset().await?;
                return Ok(outcomes);
            }
            None => return Err(ClientError::Closed("DATA")),
        }

        // After 354 the back end waits for the body: anything it said meanwhile means the
        // replies above were not the ones they seemed.
        self.await_turn("DATA").await?;
        self.send_body(out).await?;
        match self.protocol {
            Protocol::Smtp => {
                let r = self.read_answer("end of data", Expect::Completion).await?;
                for &i in &accepted {
                    outcomes[i].reply = r.clone();
                }
            }
            Protocol::Lmtp => {
                for &i in &accepted {
                    outcomes[i].reply = self.read_answer("end of data", Expect::Completion).await?;
                }
            }
        }
        self.finish("end of data").await?;
        Ok(outcomes)
    }

    /// After the last expected reply: a back end that says more answered something we did
    /// not send, so the replies we took may be shifted; one that is quiet may be reused.
    async fn finish(&mut self, stage: &'static str) -> Result<(), ClientError> {
        match self.await_turn(stage).await {
            Ok(()) => self.reusable = !self.broken,
            // A 421 after the last reply is the back end closing (RFC 5321 3.8), not a
            // reply to anything: what it said before stands.
            Err(ClientError::Closed(_)) => self.reusable = false,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Fails when the back end has said something we have not asked for yet (bytes
    /// buffered or already waiting on the socket): the next reply would be stale.
    async fn await_turn(&mut self, stage: &'static str) -> Result<(), ClientError> {
        if self.spoke_unasked().await {
            let line = self.buf.split(|&b| b == b'\n').next().unwrap_or_default();
            if line.starts_with(b"421") {
                // The one reply a server may send unasked: it is closing the connection.
                self.broken = true;
                return Err(ClientError::Closed(stage));
            }
            return Err(ClientError::OutOfStep {
                stage,
                detail: format!("unsolicited {:?}", String::from_utf8_lossy(line).trim_end()),
            });
        }
        Ok(())
    }

    /// Whether bytes from the back end are buffered or already readable (one poll of
    /// the read, no waiting: a timer, even of zero, would wait for the next tick). A
    /// connection found closed or broken is marked so, and is not reused.
    async fn spoke_unasked(&mut self) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        if self.broken {
            return false;
        }
        let mut chunk = [0u8; 4096];
        let stream = &mut self.stream;
        let polled = std::future::poll_fn(|cx| {
            let mut rb = ReadBuf::new(&mut chunk);
            let p = Pin::new(&mut *stream).poll_read(cx, &mut rb);
            Poll::Ready(p.map(|r| r.map(|()| rb.filled().len())))
        })
        .await;
        match polled {
            Poll::Pending => false,
            Poll::Ready(Ok(0) | Err(_)) => {
                self.broken = true;
                false
            }
            Poll::Ready(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Whether a cached connection can take another transaction: not closed by the
    /// back end meanwhile and with nothing unsolicited waiting.
    pub async fn idle_and_quiet(&mut self) -> bool {
        // A task that yields runs again only after the reactor has polled for I/O, so
        // what arrived while the connection sat idle (a 421 on the back end's idle
        // timeout) is seen by the read polled once that follows.
        tokio::task::yield_now().await;
        !self.spoke_unasked().await && !self.broken
    }

    /// Says QUIT (best effort).
    pub async fn quit(mut self) {
        if self.write(b"QUIT\r\n", "QUIT").await.is_ok() {
            let _ = self.read_reply("QUIT").await;
        }
    }

    /// Ends a refused transaction. A back end that answers RSET with anything but 2xx
    /// is not where we thought (it may be reading our RSET as message data): the
    /// refusal we took from it is then suspect too. A connection lost here keeps the
    /// refusal (it was read in step) and is not reused.
    async fn reset(&mut self) -> Result<(), ClientError> {
        self.await_turn("RSET").await?;
        if self.write(b"RSET\r\n", "RSET").await.is_err() {
            return Ok(());
        }
        match self.read_reply("RSET").await {
            Ok((r, _)) if r.is_positive() => self.finish("RSET").await,
            Ok((r, _)) => Err(ClientError::OutOfStep {
                stage: "RSET",
                detail: format!("RSET answered {r}"),
            }),
            Err(_) => Ok(()),
        }
    }

    fn rcpt_command(&self, r: &Recipient) -> String {
        let mut cmd = format!("RCPT TO:<{}>", r.address);
        if self.caps.dsn {
            if let Some(n) = r.notify.param() {
                cmd.push_str(&format!(" NOTIFY={n}"));
            }
            if let Some(o) = &r.orcpt {
                cmd.push_str(&format!(" ORCPT=rfc822;{}", xtext_encode(o)));
            }
        }
        cmd + "\r\n"
    }

    fn xforward_commands(&self, envelope: &Envelope) -> Vec<String> {
        if self.caps.xforward.is_empty() {
            return Vec::new();
        }
        envelope
            .xforward
            .attributes()
            .filter(|(name, _)| self.caps.xforward.iter().any(|a| a == name))
            .map(|(name, value)| format!("XFORWARD {name}={}\r\n", xtext_encode(value)))
            .collect()
    }

    fn mail_command(&self, envelope: &Envelope, size: u64) -> String {
        let mut cmd = format!("MAIL FROM:<{}>", envelope.mail_from);
        if self.caps.size {
            cmd.push_str(&format!(" SIZE={size}"));
        }
        if envelope.body == Body::EightBitMime && self.caps.eight_bit {
            cmd.push_str(" BODY=8BITMIME");
        }
        if envelope.smtputf8 && self.caps.smtputf8 {
            cmd.push_str(" SMTPUTF8");
        }
        if self.caps.dsn {
            match envelope.ret {
                Some(Ret::Full) => cmd.push_str(" RET=FULL"),
                Some(Ret::Hdrs) => cmd.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(e) = &envelope.envid {
                cmd.push_str(&format!(" ENVID={}", xtext_encode(e)));
            }
        }
        cmd + "\r\n"
    }

    async fn send_body(&mut self, msg: &Outgoing<'_>) -> Result<(), ClientError> {
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::with_capacity(BODY_CHUNK + BODY_CHUNK / 8);
        stuffer.push(msg.prepend, &mut out);
        let mut reader = msg.spool.reader_at(msg.skip).map_err(|source| ClientError::Io {
            stage: "reading the spool",
            source,
        })?;
        let mut chunk = vec![0u8; BODY_CHUNK];
        loop {
            let n = reader.read(&mut chunk).map_err(|source| ClientError::Io {
                stage: "reading the spool",
                source,
            })?;
            if n == 0 {
                break;
            }
            stuffer.push(&chunk[..n], &mut out);
            if out.len() >= BODY_CHUNK {
                self.write(&out, "sending the body").await?;
                out.clear();
            }
        }
        stuffer.finish(&mut out);
        self.write(&out, "sending the body").await
    }

    async fn write(&mut self, bytes: &[u8], stage: &'static str) -> Result<(), ClientError> {
        match tokio::time::timeout(self.timeout, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ClientError::Io { stage, source }),
            Err(_) => Err(ClientError::Timeout(stage)),
        }
    }

    /// Reads the reply to a command and checks that it is of a kind that can answer it.
    async fn read_answer(&mut self, stage: &'static str, expect: Expect) -> Result<Reply, ClientError> {
        let (reply, _) = self.read_reply(stage).await?;
        if !expect.admits(reply.code) {
            return Err(ClientError::OutOfStep {
                stage,
                detail: format!("{reply} cannot answer this command"),
            });
        }
        Ok(reply)
    }

    /// Reads one complete (possibly multi-line) reply; returns it and its lines' texts.
    async fn read_reply(&mut self, stage: &'static str) -> Result<(Reply, Vec<String>), ClientError> {
        let mut lines: Vec<String> = Vec::new();
        loop {
            let line = self.read_line(stage).await?;
            let bad = || ClientError::Protocol {
                stage,
                detail: format!("{:?}", String::from_utf8_lossy(&line)),
            };
            let code: u16 = std::str::from_utf8(line.get(..3).ok_or_else(bad)?)
                .ok()
                .and_then(|c| c.parse().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(bad)?;
            let sep = line.get(3).copied().unwrap_or(b' ');
            let text = String::from_utf8_lossy(line.get(4..).unwrap_or_default()).into_owned();
            lines.push(text);
            if lines.len() > MAX_REPLY_LINES {
                return Err(ClientError::Protocol {
                    stage,
                    detail: "reply has too many lines".into(),
                });
            }
            if sep != b'-' {
                let last = lines.last().cloned().unwrap_or_default();
                return Ok((parse_text(code, &last), lines));
            }
        }
    }

    async fn read_line(&mut self, stage: &'static str) -> Result<Vec<u8>, ClientError> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_REPLY_LINE {
                return Err(ClientError::Protocol {
                    stage,
                    detail: "reply line too long".into(),
                });
            }
            let mut chunk = [0u8; 4096];
            let n = match tokio::time::timeout(self.timeout, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) => return Err(ClientError::Closed(stage)),
                Ok(Ok(n)) => n,
                Ok(Err(source)) => return Err(ClientError::Io { stage, source }),
                Err(_) => return Err(ClientError::Timeout(stage)),
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Splits `d.d.d text` into the enhanced code and the text, when present.
fn parse_text(code: u16, text: &str) -> Reply {
    let (first, rest) = text.split_once(' ').unwrap_or((text, ""));
    let parts: Vec<&str> = first.split('.').collect();
    if parts.len() == 3
        && parts[0].len() == 1
        && Some(code / 100) == parts[0].parse().ok()
        && let (Ok(a), Ok(b), Ok(c)) = (parts[0].parse::<u8>(), parts[1].parse::<u16>(), parts[2].parse::<u16>())
    {
        return Reply {
            code,
            enhanced: Some((a, b, c)),
            text: rest.to_string(),
        };
    }
    Reply {
        code,
        enhanced: None,
        text: text.to_string(),
    }
}

/// What kind of reply can answer a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// MAIL, RCPT, XFORWARD, the end of data: 2xx, 4xx or 5xx.
    Completion,
    /// DATA: 354, 4xx or 5xx.
    StartData,
}

impl Expect {
    fn admits(self, code: u16) -> bool {
        match self {
            Expect::Completion => matches!(code / 100, 2 | 4 | 5),
            Expect::StartData => code == 354 || matches!(code / 100, 4 | 5),
        }
    }
}

/// A command must be exactly one line: its values can never add a line of their own.
fn one_line(cmd: &str) -> Result<(), ClientError> {
    let body = cmd.strip_suffix("\r\n").unwrap_or(cmd);
    if body.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(ClientError::Unsendable(
            crate::message::escape_controls(body).chars().take(200).collect(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_split_their_enhanced_code() {
        assert_eq!(parse_text(250, "2.0.0 Ok: queued as X").enhanced, Some((2, 0, 0)));
        assert_eq!(parse_text(250, "2.0.0 Ok: queued as X").text, "Ok: queued as X");
        assert_eq!(parse_text(250, "Ok").enhanced, None);
        assert_eq!(parse_text(550, "2.0.0 mismatched class").enhanced, None);
    }

    #[test]
    fn xforward_values_are_xtext() {
        use crate::message::xtext_encode;
        assert_eq!(xtext_encode("mail.example [1.2.3.4]"), "mail.example+20[1.2.3.4]");
        assert_eq!(xtext_encode("a+b=c"), "a+2Bb+3Dc");
    }
}
