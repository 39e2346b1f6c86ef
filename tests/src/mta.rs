//! A scriptable back-end MTA and a plain SMTP/LMTP client, for the relay tests.
//!
//! The back end (like Postfix's smtp-sink, but with per-recipient fault injection)
//! keeps every message it accepted, so a test can count what arrived against what was
//! sent. Recipients choose their fate by their local part: `reject-*` is refused at RCPT
//! with 550, `defer-*` with 450, `lmtpreject-*` and `lmtpdefer-*` after DATA (LMTP);
//! `slow-*` makes the final reply wait [`Behaviour::slow`], or until the test calls
//! [`FakeMta::release`]: a test that must see such a message in flight holds it with a
//! long `slow` and releases it once it has seen what it wanted, so a busy machine
//! cannot close the window before the test looks.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A message the back end accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// MAIL FROM.
    pub from: String,
    /// Accepted recipients.
    pub rcpts: Vec<String>,
    /// The body as it came (still dot-stuffed lines joined, final dot removed).
    pub data: String,
    /// The MAIL FROM line as sent.
    pub mail_line: String,
    /// XFORWARD lines seen in the session.
    pub xforward: Vec<String>,
}

/// How the back end behaves.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Speak LMTP (one reply per recipient after DATA).
    pub lmtp: bool,
    /// Delay of the final reply for `slow-*` recipients (cut short by [`FakeMta::release`]).
    pub slow: Duration,
    /// Offer XFORWARD.
    pub xforward: bool,
    /// Delay of every final reply (a back end that takes a moment to commit).
    pub commit_delay: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            lmtp: false,
            slow: Duration::from_secs(3),
            xforward: true,
            commit_delay: Duration::ZERO,
        }
    }
}

/// A running fake back end.
#[derive(Debug)]
pub struct FakeMta {
    /// Its port on 127.0.0.1.
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    released: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl FakeMta {
    /// Starts a back end on a free port.
    pub fn start(b: Behaviour) -> FakeMta {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake MTA");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, c, s) = (Arc::clone(&received), Arc::clone(&connections), Arc::clone(&stop));
        let a = Arc::clone(&active);
        let released = Arc::new(AtomicBool::new(false));
        let rel = Arc::clone(&released);
        listener.set_nonblocking(true).expect("nonblocking");
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        a.fetch_add(1, Ordering::SeqCst);
                        let (r, b, a, rel) = (Arc::clone(&r), b.clone(), Arc::clone(&a), Arc::clone(&rel));
                        let _ = stream.set_nonblocking(false);
                        thread::spawn(move || {
                            let _ = session(stream, &b, &r, &rel);
                            a.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeMta {
            port,
            received,
            connections,
            active,
            released,
            stop,
        }
    }

    /// Messages accepted so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Ends the wait of every `slow-*` message, held now or later: their final replies go
    /// out at once.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    /// Sessions still open: once 0, every message a client had started here is either
    /// stored or abandoned, so [`FakeMta::received`] is final until the next connection.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

impl Drop for FakeMta {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn fate(rcpt: &str) -> &str {
    rcpt.split('-').next().unwrap_or("")
}

/// Waits `slow`, or less once `released` is set.
fn hold(slow: Duration, released: &AtomicBool) {
    let until = std::time::Instant::now() + slow;
    while !released.load(Ordering::SeqCst) && std::time::Instant::now() < until {
        thread::sleep(Duration::from_millis(10));
    }
}

fn session(
    stream: TcpStream,
    b: &Behaviour,
    store: &Mutex<Vec<Received>>,
    released: &AtomicBool,
) -> std::io::Result<()> {
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    w.write_all(b"220 fake.test ESMTP\r\n")?;
    let (mut from, mut mail_line, mut rcpts, mut xforward) =
        (String::new(), String::new(), Vec::<String>::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("LHLO") {
            let xf = if b.xforward {
                "250-XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n"
            } else {
                ""
            };
            w.write_all(format!("250-fake.test\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-DSN\r\n{xf}250 ENHANCEDSTATUSCODES\r\n").as_bytes())?;
        } else if upper.starts_with("HELO") {
            w.write_all(b"250 fake.test\r\n")?;
        } else if upper.starts_with("XFORWARD") {
            xforward.push(cmd.clone());
            w.write_all(b"250 2.0.0 Ok\r\n")?;
        } else if upper.starts_with("MAIL FROM:") {
            from = cmd[10..]
                .split('>')
                .next()
                .unwrap_or("")
                .trim_start_matches('<')
                .to_string();
            mail_line = cmd.clone();
            rcpts.clear();
            w.write_all(b"250 2.1.0 Ok\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            let addr = cmd[8..]
                .split('>')
                .next()
                .unwrap_or("")
                .trim_start_matches('<')
                .to_string();
            match fate(&addr) {
                "reject" => w.write_all(b"550 5.1.1 No such user\r\n")?,
                "defer" => w.write_all(b"450 4.2.0 Try later\r\n")?,
                _ => {
                    rcpts.push(addr);
                    w.write_all(b"250 2.1.5 Ok\r\n")?;
                }
            }
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                w.write_all(b"554 5.5.1 No valid recipients\r\n")?;
                continue;
            }
            w.write_all(b"354 go ahead\r\n")?;
            // Bytes, not lines of UTF-8: a message may carry any octet (kept lossily).
            let mut data = String::new();
            let mut raw = Vec::new();
            loop {
                raw.clear();
                if r.read_until(b'\n', &mut raw)? == 0 {
                    return Ok(());
                }
                if raw == b".\r\n" {
                    break;
                }
                data.push_str(&String::from_utf8_lossy(&raw));
            }
            if rcpts.iter().any(|a| fate(a) == "slow") {
                hold(b.slow, released);
            }
            thread::sleep(b.commit_delay);
            let id = format!("Q{}", store.lock().map(|s| s.len()).unwrap_or(0));
            let mut accepted = Vec::new();
            let mut replies = String::new();
            for a in &rcpts {
                match (b.lmtp, fate(a)) {
                    (true, "lmtpreject") => replies.push_str(&format!("550 5.1.1 <{a}> mailbox unavailable\r\n")),
                    (true, "lmtpdefer") => replies.push_str(&format!("452 4.2.2 <{a}> mailbox full\r\n")),
                    (true, _) => {
                        accepted.push(a.clone());
                        replies.push_str(&format!("250 2.0.0 <{a}> Ok: queued as {id}\r\n"));
                    }
                    (false, _) => accepted.push(a.clone()),
                }
            }
            if !b.lmtp {
                replies = format!("250 2.0.0 Ok: queued as {id}\r\n");
            }
            if !accepted.is_empty()
                && let Ok(mut s) = store.lock()
            {
                {
                    s.push(Received {
                        from: from.clone(),
                        rcpts: accepted,
                        data,
                        mail_line: mail_line.clone(),
                        xforward: xforward.clone(),
                    });
                }
            }
            w.write_all(replies.as_bytes())?;
        } else if upper == "RSET" || upper.starts_with("NOOP") {
            w.write_all(b"250 2.0.0 Ok\r\n")?;
        } else if upper == "QUIT" {
            w.write_all(b"221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else {
            w.write_all(b"502 5.5.2 Unknown\r\n")?;
        }
    }
}

/// What a client saw.
#[derive(Debug, Clone, Default)]
pub struct ClientResult {
    /// The replies to the end of DATA (one for SMTP, per recipient for LMTP).
    pub final_replies: Vec<String>,
    /// The RCPT replies.
    pub rcpt_replies: Vec<String>,
}

/// Sends one message over SMTP (or LMTP) and returns the replies; an `Err` means the
/// connection broke before the final reply (or a reply took longer than twice
/// [`crate::PATIENCE`], more than any message a test holds in flight).
pub fn send(port: u16, lmtp: bool, from: &str, rcpts: &[&str], body: &str) -> std::io::Result<ClientResult> {
    send_bytes(port, lmtp, from, rcpts, body.as_bytes())
}

/// `send` for a message of any octets (dot-stuffed here; a final CRLF added if missing).
pub fn send_bytes(port: u16, lmtp: bool, from: &str, rcpts: &[&str], body: &[u8]) -> std::io::Result<ClientResult> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(crate::PATIENCE * 2))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let mut reply = || -> std::io::Result<String> {
        loop {
            let mut l = String::new();
            if r.read_line(&mut l)? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
            }
            if l.as_bytes().get(3) != Some(&b'-') {
                return Ok(l.trim_end().to_string());
            }
        }
    };
    reply()?;
    w.write_all(if lmtp {
        b"LHLO client.test\r\n"
    } else {
        b"EHLO client.test\r\n"
    })?;
    reply()?;
    w.write_all(format!("MAIL FROM:<{from}>\r\n").as_bytes())?;
    reply()?;
    let mut out = ClientResult::default();
    for rc in rcpts {
        w.write_all(format!("RCPT TO:<{rc}>\r\n").as_bytes())?;
        out.rcpt_replies.push(reply()?);
    }
    w.write_all(b"DATA\r\n")?;
    let d = reply()?;
    if !d.starts_with("354") {
        out.final_replies.push(d);
        return Ok(out);
    }
    let mut stuffed = Vec::with_capacity(body.len() + 2);
    for (i, &b) in body.iter().enumerate() {
        stuffed.push(b);
        if b == b'\n' && body.get(i + 1) == Some(&b'.') {
            stuffed.push(b'.');
        }
    }
    if !stuffed.ends_with(b"\r\n") {
        stuffed.extend_from_slice(b"\r\n");
    }
    w.write_all(&stuffed)?;
    w.write_all(b".\r\n")?;
    let n = if lmtp {
        out.rcpt_replies.iter().filter(|r| r.starts_with('2')).count()
    } else {
        1
    };
    for _ in 0..n {
        out.final_replies.push(reply()?);
    }
    w.write_all(b"QUIT\r\n")?;
    let _ = reply();
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    Ok(out)
}
