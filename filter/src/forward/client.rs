//! The outbound ESMTP/LMTP client. Ours, because no crate pipelines and reads LMTP's
//! per-recipient replies correctly (see the research notes): with PIPELINING, MAIL, every
//! RCPT and DATA go out in one write and their replies are matched in order; after the
//! final dot, SMTP gives one reply and LMTP one per accepted recipient. Replies are read
//! from our own buffer, so bytes after a reply are never lost, and every read is bounded
//! in size and time.

use std::io::Read;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Outgoing;
use super::target::Protocol;
use crate::message::{Body, Envelope, Reply, Ret};

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
    pub async fn transaction(
        &mut self,
        envelope: &Envelope,
        out: &Outgoing<'_>,
    ) -> Result<Vec<RcptOutcome>, ClientError> {
        self.reusable = false;
        let size = out.len();
        let mut commands: Vec<String> = Vec::new();
        let xforward = self.xforward_commands(envelope);
        let n_xforward = xforward.len();
        commands.extend(xforward);
        commands.push(self.mail_command(envelope, size));
        for r in &envelope.recipients {
            let mut cmd = format!("RCPT TO:<{}>", r.address);
            if self.caps.dsn {
                if let Some(n) = r.notify.param() {
                    cmd.push_str(&format!(" NOTIFY={n}"));
                }
                if let Some(o) = &r.orcpt {
                    cmd.push_str(&format!(" ORCPT=rfc822;{}", xtext_encode(o)));
                }
            }
            commands.push(cmd + "\r\n");
        }
        commands.push("DATA\r\n".into());

        // Without PIPELINING each command waits for its reply; with it, all go at once.
        let mut replies: Vec<Reply> = Vec::with_capacity(commands.len());
        if self.caps.pipelining {
            self.write(commands.concat().as_bytes(), "MAIL").await?;
            for _ in 0..commands.len() {
                replies.push(self.read_reply("MAIL/RCPT/DATA").await?.0);
            }
        } else {
            for (i, cmd) in commands.iter().enumerate() {
                self.write(cmd.as_bytes(), "MAIL").await?;
                let reply = self.read_reply("MAIL/RCPT/DATA").await?.0;
                let stop = i == n_xforward && !reply.is_positive();
                replies.push(reply);
                if stop {
                    break;
                }
            }
        }

        let mail_reply = replies.get(n_xforward).cloned().ok_or(ClientError::Closed("MAIL"))?;
        if !mail_reply.is_positive() {
            self.reset().await;
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
        let data_reply = replies.get(n_xforward + 1 + envelope.recipients.len()).cloned();
        let accepted: Vec<usize> = (0..rcpt_replies.len())
            .filter(|&i| rcpt_replies[i].is_positive())
            .collect();
        let mut outcomes: Vec<RcptOutcome> = rcpt_replies.iter().map(|r| RcptOutcome { reply: r.clone() }).collect();

        match data_reply {
            Some(r) if r.code == 354 && !accepted.is_empty() => {}
            Some(r) if r.code == 354 => {
                // A server that says 354 with no recipient: end the empty data, deliver nothing.
                self.write(b".\r\n", "DATA").await?;
                let _ = self.read_reply("DATA").await?;
                self.reusable = true;
                return Ok(outcomes);
            }
            Some(r) => {
                for &i in &accepted {
                    outcomes[i].reply = r.clone();
                }
                self.reset().await;
                return Ok(outcomes);
            }
            None => return Err(ClientError::Closed("DATA")),
        }

        self.send_body(out).await?;
        match self.protocol {
            Protocol::Smtp => {
                let r = self.read_reply("end of data").await?.0;
                for &i in &accepted {
                    outcomes[i].reply = r.clone();
                }
            }
            Protocol::Lmtp => {
                for &i in &accepted {
                    outcomes[i].reply = self.read_reply("end of data").await?.0;
                }
            }
        }
        self.reusable = true;
        Ok(outcomes)
    }

    /// Says QUIT (best effort).
    pub async fn quit(mut self) {
        if self.write(b"QUIT\r\n", "QUIT").await.is_ok() {
            let _ = self.read_reply("QUIT").await;
        }
    }

    async fn reset(&mut self) {
        if self.write(b"RSET\r\n", "RSET").await.is_ok() {
            self.reusable = matches!(self.read_reply("RSET").await, Ok((r, _)) if r.is_positive());
        }
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
                cmd.push_str(&format!(" ENVID={e}"));
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

/// xtext (RFC 1891) for XFORWARD values.
fn xtext_encode(s: &str) -> String {
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

/// Dot-stuffs a byte stream across chunk boundaries and ends it with CRLF.CRLF.
#[derive(Debug)]
struct DotStuffer {
    at_line_start: bool,
    last: u8,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            last: b'\n',
        }
    }
}

impl DotStuffer {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if self.at_line_start && b == b'.' {
                out.extend_from_slice(&bytes[start..i]);
                out.push(b'.');
                start = i;
            }
            self.at_line_start = b == b'\n';
        }
        out.extend_from_slice(&bytes[start..]);
        if let Some(&l) = bytes.last() {
            self.last = l;
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.last != b'\n' {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_at_line_starts_are_doubled_across_chunks() {
        let mut s = DotStuffer::default();
        let mut out = Vec::new();
        s.push(b".first\r\nmid", &mut out);
        s.push(b"dle\r\n", &mut out);
        s.push(b".\r\nend", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b"..first\r\nmiddle\r\n..\r\nend\r\n.\r\n");
    }

    #[test]
    fn replies_split_their_enhanced_code() {
        assert_eq!(parse_text(250, "2.0.0 Ok: queued as X").enhanced, Some((2, 0, 0)));
        assert_eq!(parse_text(250, "2.0.0 Ok: queued as X").text, "Ok: queued as X");
        assert_eq!(parse_text(250, "Ok").enhanced, None);
        assert_eq!(parse_text(550, "2.0.0 mismatched class").enhanced, None);
    }

    #[test]
    fn xforward_values_are_xtext() {
        assert_eq!(xtext_encode("mail.example [1.2.3.4]"), "mail.example+20[1.2.3.4]");
        assert_eq!(xtext_encode("a+b=c"), "a+2Bb+3Dc");
    }
}
