//! forward: hands a message on to the back end (an SMTP/LMTP server or a program) and
//! returns what it said to each recipient. Keeps a small cache of idle connections per
//! target, reused while they are fresh, as amavisd does.

pub mod client;
mod dotstuff;
pub mod pipe;
/// The target lives in `config` (which parses it); this path stays for its users.
pub use crate::config::target;

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::config::target::{Address, Target};
use client::{ClientError, Connection, RcptOutcome, Stream};

pub use crate::message::ConnUse;
use crate::message::spool::Spool;
use crate::message::{Envelope, Reply};

/// A message as it goes out: `prepend` (trace and added header fields, or a whole
/// rewritten header section), then the spool from byte `skip` on.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Bytes sent first.
    pub prepend: &'a [u8],
    /// Spool bytes replaced by `prepend` (0: nothing replaced).
    pub skip: u64,
    /// The received message.
    pub spool: &'a Spool,
}

impl Outgoing<'_> {
    /// Bytes that go out.
    pub fn len(&self) -> u64 {
        self.prepend.len() as u64 + self.spool.len().saturating_sub(self.skip)
    }

    /// Whether nothing goes out.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Idle connections older than this are closed instead of reused (amavisd: 18 s).
const REUSE_RECENT: Duration = Duration::from_secs(15);
/// Idle connections kept per target.
const CACHE_SIZE: usize = 8;

/// The back end's answer to a whole transaction.
#[derive(Debug)]
pub struct Forwarded {
    /// One reply per recipient, in envelope order.
    pub replies: Vec<Reply>,
    /// How the connection was obtained.
    pub conn: ConnUse,
    /// Whether a stale cached connection failed first (and a new one was used).
    pub reuse_failed: bool,
}

/// A forwarding method with its connection cache.
#[derive(Debug)]
pub struct Forwarder {
    target: Target,
    helo: String,
    timeout: Duration,
    cache: Mutex<Vec<(Connection, Instant)>>,
}

impl Forwarder {
    /// A forwarder to `target`, greeting as `helo`, each read or write bounded by `timeout`.
    pub fn new(target: Target, helo: &str, timeout: Duration) -> Forwarder {
        Forwarder {
            target,
            helo: helo.to_string(),
            timeout,
            cache: Mutex::new(Vec::new()),
        }
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends the message. An `Err` means nothing can be said of any recipient: the
    /// whole message is temporarily failed.
    pub async fn forward(&self, envelope: &Envelope, out: &Outgoing<'_>) -> Result<Forwarded, ClientError> {
        let (protocol, address) = match &self.target {
            Target::Pipe(argv) => {
                let replies = pipe::deliver(argv, envelope, out, self.timeout).await;
                return Ok(Forwarded {
                    replies,
                    conn: ConnUse::None,
                    reuse_failed: false,
                });
            }
            Target::Mta(p, a) => (*p, a),
        };
        let mut reuse_failed = false;
        if let Some(mut conn) = self.cached().await {
            match conn.transaction(envelope, out).await {
                Ok(outcomes) => {
                    self.put_back(conn).await;
                    return Ok(done(outcomes, ConnUse::ReuseRecent, false));
                }
                // A cached connection the back end closed meanwhile fails before the body
                // went out: nothing was delivered, so a new connection may safely retry.
                // So may one that held a reply nobody asked for (a 421 on idle timeout).
                Err(
                    ClientError::Closed(stage) | ClientError::Io { stage, .. } | ClientError::OutOfStep { stage, .. },
                ) if stage != "sending the body" && stage != "end of data" => {
                    reuse_failed = true;
                }
                Err(e) => return Err(e),
            }
        }
        let stream = connect(address, self.timeout).await?;
        let mut conn = Connection::open(stream, protocol, &self.helo, self.timeout).await?;
        let outcomes = conn.transaction(envelope, out).await?;
        self.put_back(conn).await;
        Ok(done(outcomes, ConnUse::New, reuse_failed))
    }

    async fn cached(&self) -> Option<Connection> {
        let mut cache = self.cache.lock().await;
        while let Some((mut conn, since)) = cache.pop() {
            // One the back end closed, or that holds a reply nobody asked for, is dropped
            // here rather than have that reply taken for the next transaction's.
            if since.elapsed() <= REUSE_RECENT && conn.idle_and_quiet().await {
                return Some(conn);
            }
            drop(conn);
        }
        None
    }

    async fn put_back(&self, conn: Connection) {
        if !conn.reusable {
            return;
        }
        let mut cache = self.cache.lock().await;
        if cache.len() < CACHE_SIZE {
            cache.push((conn, Instant::now()));
        }
    }

    /// Closes every cached connection with QUIT (at shutdown).
    pub async fn close_idle(&self) -> usize {
        let conns: Vec<_> = self.cache.lock().await.drain(..).collect();
        let n = conns.len();
        for (c, _) in conns {
            c.quit().await;
        }
        n
    }
}

fn done(outcomes: Vec<RcptOutcome>, conn: ConnUse, reuse_failed: bool) -> Forwarded {
    Forwarded {
        replies: outcomes.into_iter().map(|o| o.reply).collect(),
        conn,
        reuse_failed,
    }
}

async fn connect(address: &Address, timeout: Duration) -> Result<Box<dyn Stream>, ClientError> {
    let stage = "connect";
    let fut = async {
        match address {
            Address::Tcp(host, port) => {
                let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                s.set_nodelay(true)?;
                Ok::<Box<dyn Stream>, std::io::Error>(Box::new(s))
            }
            Address::Unix(path) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?) as Box<dyn Stream>),
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(source)) => Err(ClientError::Io { stage, source }),
        Err(_) => Err(ClientError::Timeout(stage)),
    }
}
