//! The fuzz targets' bodies: each feeds arbitrary bytes to the very function the daemons
//! call on untrusted input, set up as the daemons set it up (their limits, a real
//! scoreboard behind the SNMP front ends). A target must never panic, hang or blow its
//! memory on any input; libFuzzer reports each of those as a crash. The binaries in
//! `fuzz_targets/` are one line each; scripts/fuzz.sh builds and runs them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use filter::decode;
use filter::forward::Outgoing;
use filter::forward::client::Connection;
use filter::forward::target::Protocol;
use filter::message::{Body, Envelope, Notify, Recipient, XForward};
use filter::receive::session::{Limits, Output, Session};
use filter::receive::spool::{Spool, SpoolConfig};
use snmp_agent::access::Community;
use snmp_agent::agentx::{codec, session as agentx_session};
use snmp_agent::source::Source;
use snmp_agent::udp::{Agent, Stats};
use snmp_agent::usm::{AuthProtocol, PrivProtocol, User, Usm};
use snmp_agent::view::MibView;

/// A directory of this process for spool and scoreboard files, under `$TMPDIR` (the
/// script points it at a directory it removes afterwards).
fn scratch() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("avis-fuzz-{}", std::process::id()));
        // If it cannot be made, the spool (kept in memory here) and the reader (which
        // answers a missing scoreboard with zeros) still work.
        let _ = std::fs::create_dir_all(&dir);
        dir
    })
    .clone()
}

/// With `AVIS_FUZZ_SHOW=1`, prints what the code under test made of an input: to check
/// that seeds reach deep (`<target binary> fuzz/seeds/<target>/*`) and to study a finding.
fn show(what: &dyn std::fmt::Debug) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("AVIS_FUZZ_SHOW").is_some_and(|v| v == "1")) {
        eprintln!("{what:#?}");
    }
}

/// Splits `data` into a chunk size (from its first byte, 1..=256) and the rest, so the
/// protocol targets also see every way a peer's bytes can be cut into reads.
fn chunked(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&first, rest)) => (usize::from(first) + 1, rest),
        None => (1, data),
    }
}

// ---------------------------------------------------------------------------------------
// avisd: receive

/// The inbound ESMTP/LMTP session fed the client's bytes, driven as
/// `filter::receive::conn::serve` drives it: every complete transaction is answered at
/// once, then the buffered pipelined input is fed again.
pub fn smtp_session(data: &[u8]) {
    let (chunk, input) = chunked(data);
    let limits = Limits {
        hostname: "fuzz.example".into(),
        // Small, so the oversized paths are reached; the rest as `accept` sets them.
        max_message_size: 16 * 1024,
        max_recipients: 8,
        max_line: 4096,
        spool: SpoolConfig {
            dir: scratch(),
            memory_threshold: 4096,
        },
    };
    let mut session = Session::new(limits, "00000-01");
    let _ = session.greeting().to_wire();
    let mut outputs = Vec::new();
    for piece in input.chunks(chunk) {
        session.feed(piece, &mut outputs);
        while !outputs.is_empty() {
            let mut answered = false;
            for o in std::mem::take(&mut outputs) {
                match o {
                    Output::Reply(r) => show(&r.to_wire()),
                    Output::Close => return,
                    Output::MailStarted | Output::DataStarted => {}
                    Output::Refused(r) => show(&r.reply.to_wire()),
                    Output::Message(tx) => {
                        show(&(&tx.envelope, tx.spool.len()));
                        session.answered();
                        answered = true;
                    }
                }
            }
            if answered {
                session.feed(&[], &mut outputs);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// avisd: forward

/// The back end as the fuzzer plays it: reads return the input in chunks, then EOF;
/// writes are kept, to check what the client claims against what it sent.
struct Backend {
    input: Vec<u8>,
    at: usize,
    chunk: usize,
    written: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Backend {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let rest = self.input.get(self.at..).unwrap_or_default();
        let n = self.chunk.min(rest.len()).min(buf.remaining());
        buf.put_slice(rest.get(..n).unwrap_or_default());
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Backend {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if let Ok(mut w) = self.written.lock() {
            w.extend_from_slice(buf);
        }
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(rt) => rt,
            // Not an input path: the target cannot run at all without a runtime.
            Err(e) => panic!("no tokio runtime: {e}"),
        }
    })
}

/// The forward client reading the back end's replies: the greeting, EHLO/LHLO, then one
/// transaction of three recipients (pipelined if offered, per-recipient replies for LMTP),
/// then QUIT. The first byte picks SMTP or LMTP (its low bit) and the read size.
///
/// Beyond not panicking, the client must keep the rule that no mail is lost: a recipient
/// it reports delivered (2xx) must have had the whole body sent (the end-of-data dot
/// written), and every final reply must be a success or a failure (2xx, 4xx, 5xx) that the
/// pipeline can act on. A breach panics, so libFuzzer reports it as a crash.
pub fn forward_reply(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let protocol = if mode & 1 == 0 { Protocol::Smtp } else { Protocol::Lmtp };
    let chunk = usize::from(mode >> 1) + 1;
    let recipient = |a: &str| Recipient {
        address: a.into(),
        orcpt: None,
        notify: Notify::default(),
    };
    let envelope = Envelope {
        mail_from: "sender@example.org".into(),
        recipients: vec![
            recipient("a@example.com"),
            recipient("b@example.com"),
            recipient("c@example.com"),
        ],
        body: Body::EightBitMime,
        smtputf8: false,
        ret: None,
        envid: None,
        declared_size: None,
        xforward: XForward {
            name: Some("client.example.org".into()),
            addr: Some("192.0.2.1".into()),
            ..XForward::default()
        },
        helo: "client.example.org".into(),
        lmtp: matches!(protocol, Protocol::Lmtp),
    };
    let mut spool = Spool::new(
        SpoolConfig {
            dir: scratch(),
            memory_threshold: 1 << 20,
        },
        "fuzz",
    );
    if spool.write(b"Subject: x\r\n\r\n.leading dot\r\nbody\r\n").is_err() || spool.finish().is_err() {
        return;
    }
    let out = Outgoing {
        prepend: b"X-Fuzz: 1\r\n",
        skip: 0,
        spool: &spool,
    };
    let written = Arc::new(Mutex::new(Vec::new()));
    let backend = Backend {
        input: rest.to_vec(),
        at: 0,
        chunk,
        written: Arc::clone(&written),
    };
    runtime().block_on(async {
        let mut conn = match Connection::open(Box::new(backend), protocol, "avis.fuzz", Duration::from_secs(5)).await {
            Ok(c) => c,
            Err(e) => return show(&e),
        };
        let outcome = conn.transaction(&envelope, &out).await;
        show(&outcome);
        if let Ok(outcomes) = &outcome {
            // The spooled body ends in "body\r\n"; the dot after it ends the data.
            const END: &[u8] = b"body\r\n.\r\n";
            let body_sent = written.lock().is_ok_and(|w| w.windows(END.len()).any(|x| x == END));
            for o in outcomes {
                let code = o.reply.code;
                assert!(
                    (200..300).contains(&code) || (400..600).contains(&code),
                    "a recipient's final reply is {code}, neither success nor failure"
                );
                assert!(
                    body_sent || !o.reply.is_positive(),
                    "a recipient is reported delivered ({code}) but the body was never sent"
                );
            }
        }
        if outcome.is_ok() {
            conn.quit().await;
        }
    });
}

// ---------------------------------------------------------------------------------------
// avisd: decode

/// The whole message decoded as the check stage does, with its limits for this size.
pub fn mime(data: &[u8]) {
    show(&decode::decode(data, decode::Limits::for_size(data.len() as u64)));
}

/// One archive reader (`zip`, `gz`, `bz2`, `xz`, `tar`, `7z`) on the input, with the
/// limits of a message of that size; what it finds inside is decoded on as usual.
pub fn archive(kind: &str, data: &[u8]) {
    show(&decode::decode_container(
        kind,
        data,
        decode::Limits::for_size(data.len() as u64),
    ));
}

// ---------------------------------------------------------------------------------------
// avisd: config

/// The configuration parser (both phases) on arbitrary text.
pub fn filter_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        show(&filter::config::Config::parse(text, "fuzz.toml").map(|_| "valid"));
    }
}

// ---------------------------------------------------------------------------------------
// avis-snmp-agent

/// A scoreboard with some counts in it, written once per process, and a source on it.
fn source() -> Source {
    static SOURCE: OnceLock<(Option<Arc<agent_mib::Scoreboard>>, Source)> = OnceLock::new();
    SOURCE
        .get_or_init(|| {
            let path = scratch().join("scoreboard");
            let info = agent_mib::WriterInfo {
                descr: "avisd fuzz".into(),
                workers: 4,
                ..agent_mib::WriterInfo::default()
            };
            let board = agent_mib::Scoreboard::open(&path, &info).ok();
            if let Some(b) = &board {
                for (i, c) in agent_mib::Counter::ALL.iter().enumerate() {
                    b.bump(*c, i as u64 * 1_000_003);
                }
                b.count_virus("Eicar-Test-Signature");
            }
            let source = Source::new(agent_mib::Reader::new(path), Arc::new(Mutex::new(None)));
            (board, source)
        })
        .1
        .clone()
}

/// The v3 engine as `main` builds it: users without auth, with auth, and with privacy.
const ENGINE_ID: &[u8] = b"\x80\x00\x1f\x88\x80avis-fuzz";

fn agent(v3: bool) -> &'static Agent {
    static PLAIN: OnceLock<Agent> = OnceLock::new();
    static V3: OnceLock<Agent> = OnceLock::new();
    let make = |v3: bool| {
        let usm = v3.then(|| {
            let users = vec![
                User::new("noauth", None, None, ENGINE_ID),
                User::new("authonly", Some((AuthProtocol::Sha1, "authpassword")), None, ENGINE_ID),
                User::new(
                    "authpriv",
                    Some((AuthProtocol::Sha256, "authpassword")),
                    Some((PrivProtocol::Aes128, "privpassword")),
                    ENGINE_ID,
                ),
            ];
            Usm::new(ENGINE_ID.to_vec(), 7, users, 42)
        });
        Agent {
            view: MibView::new(),
            source: source(),
            communities: vec![Community {
                name: b"public".to_vec(),
                networks: "127.0.0.0/8".parse().into_iter().collect(),
            }],
            usm,
            max_message_size: snmp_agent::udp::MAX_DATAGRAM,
            stats: Stats::default(),
        }
    };
    if v3 {
        V3.get_or_init(|| make(true))
    } else {
        PLAIN.get_or_init(|| make(false))
    }
}

fn client() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

/// One datagram to the UDP front end serving v1/v2c (community `public`, any source).
pub fn snmp_message(data: &[u8]) {
    show(&agent(false).handle(data, client()).map(|r| r.len()));
}

/// One datagram to the UDP front end with SNMPv3 users: USM discovery, authentication,
/// privacy, time window and reports.
pub fn snmp_usm(data: &[u8]) {
    show(&agent(true).handle(data, client()).map(|r| r.len()));
}

/// A stream from the AgentX master: every whole frame is decoded and answered as a
/// registered session answers it.
pub fn agentx_frame(data: &[u8]) {
    static VIEW: OnceLock<MibView> = OnceLock::new();
    let view = VIEW.get_or_init(MibView::new);
    let source = source();
    let mut buf = data;
    while let Ok(Some((header, pdu, used))) = codec::decode(buf) {
        show(&(&header, &pdu));
        match agentx_session::answer_frame(&header, pdu, &source, view) {
            Ok(reply) => show(&reply.map(|r| r.len())),
            Err(e) => return show(&e),
        }
        match buf.get(used..) {
            Some(rest) if used > 0 => buf = rest,
            _ => return,
        }
    }
}

/// The agent's configuration file on arbitrary text: TOML, then validation.
pub fn snmp_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(raw) = toml::from_str::<snmp_agent::config::RawConfig>(text)
    {
        show(&snmp_agent::config::Config::build(raw).map(|_| "valid"));
    }
}
