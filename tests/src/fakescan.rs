//! Minimal fake clamd and spamd for end-to-end tests of avisd's checks (the real daemons
//! are tested in scanners_real.rs): clamd reports `Fake.Virus` when the stream contains
//! `VIRUS-MARKER` or the EICAR test string (undecoded, as it travels), spamd scores 15 when the message contains `SPAM-MARKER`, else 1. Each
//! can also be slow or answer with an error, for the failure policies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

/// How a fake scanner answers once it has read the whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// At once, with a verdict.
    Normal,
    /// With a verdict, after this long.
    Slow(Duration),
    /// At once, with the daemon's error reply.
    Error,
}

/// Starts a fake clamd; returns its port.
pub fn clamd() -> u16 {
    clamd_with(Mode::Normal)
}

/// Starts a fake spamd; returns its port.
pub fn spamd() -> u16 {
    spamd_with(Mode::Normal)
}

/// Starts a fake clamd answering in `mode`; returns its port.
pub fn clamd_with(mode: Mode) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind clamd");
    let port = l.local_addr().expect("addr").port();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            thread::spawn(move || {
                let mut s = s;
                let mut cmd = Vec::new();
                let mut b = [0u8; 1];
                while s.read_exact(&mut b).is_ok() && b[0] != 0 {
                    cmd.push(b[0]);
                }
                let mut data = Vec::new();
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).is_err() {
                        return;
                    }
                    let n = u32::from_be_bytes(len) as usize;
                    if n == 0 {
                        break;
                    }
                    let mut chunk = vec![0u8; n];
                    if s.read_exact(&mut chunk).is_err() {
                        return;
                    }
                    data.extend_from_slice(&chunk);
                }
                if let Mode::Slow(d) = mode {
                    thread::sleep(d);
                }
                let eicar = crate::scanners::eicar();
                let infected = data.windows(12).any(|w| w == b"VIRUS-MARKER")
                    || data.windows(eicar.len()).any(|w| w == eicar.as_bytes());
                let reply: &[u8] = if mode == Mode::Error {
                    b"stream: Can't allocate memory ERROR\0"
                } else if infected {
                    b"stream: Fake.Virus FOUND\0"
                } else {
                    b"stream: OK\0"
                };
                let _ = s.write_all(reply);
            });
        }
    });
    port
}

/// Starts a fake spamd answering in `mode`; returns its port.
pub fn spamd_with(mode: Mode) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind spamd");
    let port = l.local_addr().expect("addr").port();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            thread::spawn(move || {
                let mut w = match s.try_clone() {
                    Ok(w) => w,
                    Err(_) => return,
                };
                let mut r = BufReader::new(s);
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                if let Mode::Slow(d) = mode {
                    thread::sleep(d);
                }
                if mode == Mode::Error {
                    let _ = w.write_all(b"SPAMD/1.0 76 Bad header line: (EX_PROTOCOL)\r\n\r\n");
                    return;
                }
                let spam = body.windows(11).any(|w| w == b"SPAM-MARKER");
                let (flag, score, rules) = if spam {
                    ("True", "15.0", "FAKE_SPAM,BAYES_99")
                } else {
                    ("False", "1.0", "BAYES_00")
                };
                let reply = format!(
                    "SPAMD/1.1 0 EX_OK\r\nContent-length: {}\r\nSpam: {flag} ; {score} / 5.0\r\n\r\n{rules}",
                    rules.len()
                );
                let _ = w.write_all(reply.as_bytes());
            });
        }
    });
    port
}
