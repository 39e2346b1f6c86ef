//! accept: the listeners (TCP v4/v6 and Unix sockets, each bound to a policy bank), the
//! worker slots (at most `max_servers` sessions run, as amavisd's children; a client
//! beyond them is accepted, waits a short grace for a worker, then is told 421, counted,
//! never left in the backlog),
//! accept back-off and the drain on SIGTERM. What a connection is served with is the
//! daemon's wiring ([`crate::daemon`]), reached through [`Serve`]: accept knows no stage.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_mib::{Counter, Scoreboard, WorkerSlot, WorkerState};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};

use crate::config::{ListenAddress, Listener};
use crate::message::Peer;
use crate::message::Reply;

/// How long a client beyond `max_servers` waits for a worker before it hears 421. Longer
/// than Postfix keeps an idle connection in its cache (smtp_connection_cache_time_limit,
/// 2 s), with room for a loaded machine: at 1 s, Postfix's avis-filter transport, at
/// max_servers processes, was deferred under load (its own cached connections held the
/// workers). Far below any client's greeting timeout (RFC 5321: 5 minutes).
const BUSY_GRACE: Duration = Duration::from_secs(5);

/// How long telling a client "all workers busy" may take before its socket is dropped.
const BUSY_REPLY_LIMIT: Duration = Duration::from_secs(5);

/// Clients waiting for a worker or being told "busy", at most: beyond, a flood is closed
/// without a word rather than holding a task and a descriptor each.
const BUSY_REPLIES_MAX: usize = 256;

/// A listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address}: {source}")]
pub struct BindError {
    /// Where.
    pub address: String,
    /// The cause.
    pub source: std::io::Error,
}

/// What serves an accepted connection in its worker slot (the daemon: a session wired to
/// the pipeline).
pub trait Serve: Send + Sync + 'static {
    /// Serves one connection to its end, for the listener's policy bank.
    fn connection(
        &self,
        stream: Stream,
        peer: Peer,
        slot: &WorkerSlot,
        conn_number: u64,
        policy: &str,
    ) -> impl Future<Output = ()> + Send;

    /// The 421 a client hears when every worker is busy.
    fn all_workers_busy(&self) -> Reply;
}

/// A bound listener.
#[derive(Debug)]
pub enum Bound {
    /// A TCP socket.
    Tcp(TcpListener),
    /// A Unix socket, removed again when dropped.
    Unix(UnixListener, PathBuf),
}

/// Binds every listener, each with its policy bank's name.
pub async fn bind(listeners: &[Listener]) -> Result<Vec<(Bound, String)>, BindError> {
    let mut bound = Vec::new();
    for l in listeners {
        let b = match &l.address {
            ListenAddress::Tcp(a) => Bound::Tcp(TcpListener::bind(a).await.map_err(|source| BindError {
                address: a.to_string(),
                source,
            })?),
            ListenAddress::Unix(p) => {
                let _ = std::fs::remove_file(p);
                let u = UnixListener::bind(p).map_err(|source| BindError {
                    address: format!("unix:{}", p.display()),
                    source,
                })?;
                Bound::Unix(u, p.clone())
            }
        };
        tracing::info!(listen = %l.address, policy = %l.policy, "listening");
        bound.push((b, l.policy.clone()));
    }
    Ok(bound)
}

/// Free worker slots, handed out after a permit of the `max_servers` semaphore.
struct SlotPool {
    free: Mutex<Vec<usize>>,
    conns: Mutex<Vec<u64>>,
}

impl SlotPool {
    fn take(&self, board: &Arc<Scoreboard>) -> Option<(WorkerSlot, u64)> {
        let idx = self.free.lock().ok()?.pop()?;
        let slot = board.take_slot(idx)?;
        let n = self.conns.lock().ok().map_or(1, |mut c| {
            c[idx] += 1;
            c[idx]
        });
        Some((slot, n))
    }

    fn give_back(&self, slot: WorkerSlot) {
        let idx = slot.index();
        drop(slot);
        if let Ok(mut f) = self.free.lock() {
            f.push(idx);
        }
    }
}

/// The worker slots and the `max_servers` permits that guard them.
pub struct Workers {
    board: Arc<Scoreboard>,
    permits: Arc<Semaphore>,
    busy_replies: Arc<Semaphore>,
    pool: SlotPool,
    max_servers: usize,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("max_servers", &self.max_servers)
            .finish()
    }
}

impl Workers {
    /// `max_servers` free slots of `board`.
    pub fn new(board: Arc<Scoreboard>, max_servers: usize) -> Workers {
        Workers {
            board,
            permits: Arc::new(Semaphore::new(max_servers)),
            busy_replies: Arc::new(Semaphore::new(BUSY_REPLIES_MAX)),
            pool: SlotPool {
                free: Mutex::new((0..max_servers).rev().collect()),
                conns: Mutex::new(vec![0; max_servers]),
            },
            max_servers,
        }
    }

    /// Waits, at most `drain`, until every session has finished.
    pub async fn drain(&self, drain: Duration) {
        let all = u32::try_from(self.max_servers).unwrap_or(u32::MAX);
        match tokio::time::timeout(drain, self.permits.acquire_many(all)).await {
            Ok(_) => tracing::info!("all connections finished"),
            Err(_) => tracing::warn!(?drain, "drain timed out; in-flight messages stay with their senders"),
        }
    }

    /// Accepts connections on `listener` for `policy` until `stop` changes.
    pub async fn accept_loop<S: Serve>(
        self: Arc<Self>,
        serve: Arc<S>,
        listener: Bound,
        policy: String,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(10);
        loop {
            // Accept first, then look for a free worker: a client beyond max_servers hears
            // 421 at once instead of waiting unanswered in the listen backlog.
            let accepted = tokio::select! {
                a = accept(&listener) => a,
                _ = stop.changed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(x) => {
                    backoff = Duration::from_millis(10);
                    x
                }
                Err(e) => {
                    // EMFILE and friends: wait and retry rather than spin or die.
                    tracing::warn!(error = %e, ?backoff, "accept failed; backing off");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => self.start_session(&serve, stream, peer, permit, &policy),
                Err(TryAcquireError::NoPermits) => self.wait_or_turn_away(&serve, stream, peer, &policy),
                Err(TryAcquireError::Closed) => return,
            }
        }
    }

    /// Runs a session in a worker slot of its own, on a task of its own.
    fn start_session<S: Serve>(
        self: &Arc<Self>,
        serve: &Arc<S>,
        stream: Stream,
        peer: Peer,
        permit: OwnedSemaphorePermit,
        policy: &str,
    ) {
        let Some((slot, conn_number)) = self.pool.take(&self.board) else {
            tracing::error!("no free worker slot although a permit was granted");
            return;
        };
        slot.set_state_reset(WorkerState::Accepted);
        let w = Arc::clone(self);
        let serve = Arc::clone(serve);
        let policy = policy.to_string();
        tokio::spawn(async move {
            serve.connection(stream, peer, &slot, conn_number, &policy).await;
            w.pool.give_back(slot);
            drop(permit);
        });
    }

    /// Every worker is busy. A worker whose client just said QUIT frees its slot a moment
    /// after the client heard 221, and that client (smtp-source, Postfix's smtp) may
    /// connect again at once: so wait a short grace for a free worker, then tell the client
    /// 421 (counted) and close, off the accept loop and within a time limit.
    fn wait_or_turn_away<S: Serve>(self: &Arc<Self>, serve: &Arc<S>, stream: Stream, peer: Peer, policy: &str) {
        let Ok(waiting) = Arc::clone(&self.busy_replies).try_acquire_owned() else {
            // A flood: close without a word rather than hold a task and a socket each.
            self.board.bump(Counter::InConnBusyRefused, 1);
            return;
        };
        let w = Arc::clone(self);
        let serve = Arc::clone(serve);
        let policy = policy.to_string();
        tokio::spawn(async move {
            let permit = tokio::time::timeout(BUSY_GRACE, Arc::clone(&w.permits).acquire_owned()).await;
            if let Ok(Ok(permit)) = permit {
                drop(waiting);
                w.start_session(&serve, stream, peer, permit, &policy);
                return;
            }
            w.board.bump(Counter::InConnBusyRefused, 1);
            let reply = serve.all_workers_busy().to_wire();
            let write = async {
                match stream {
                    Stream::Tcp(mut s) => {
                        s.write_all(reply.as_bytes()).await?;
                        s.shutdown().await
                    }
                    Stream::Unix(mut s) => {
                        s.write_all(reply.as_bytes()).await?;
                        s.shutdown().await
                    }
                }
            };
            let _ = tokio::time::timeout(BUSY_REPLY_LIMIT, write).await;
            drop(waiting);
        });
    }
}

/// An accepted connection.
#[derive(Debug)]
pub enum Stream {
    /// Over TCP.
    Tcp(tokio::net::TcpStream),
    /// Over a Unix socket.
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Bound) -> std::io::Result<(Stream, Peer)> {
    match listener {
        Bound::Tcp(l) => {
            let (s, remote) = l.accept().await?;
            let local: Option<SocketAddr> = s.local_addr().ok();
            let _ = s.set_nodelay(true);
            let peer = Peer {
                src_ip: Some(remote.ip()),
                dst_ip: local.map(|a| a.ip()),
                dst_port: local.map(|a| a.port()),
            };
            Ok((Stream::Tcp(s), peer))
        }
        Bound::Unix(l, _) => {
            let (s, _) = l.accept().await?;
            Ok((Stream::Unix(s), Peer::default()))
        }
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Bound::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}
