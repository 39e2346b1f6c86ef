//! accept: the listeners (TCP v4/v6 and Unix sockets, each bound to a policy bank), the
//! worker slots (at most `max_servers` sessions run, as amavisd's children; a client
//! beyond them is accepted and told 421 at once, counted, never left in the backlog),
//! accept back-off, the drain on SIGTERM and the reload on SIGHUP.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use agent_mib::{Counter, Outcome, Scoreboard, WorkerSlot, WorkerState};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};

use crate::config::{Config, ListenAddress, Policy};
use crate::forward::Forwarder;
use crate::message::spool::SpoolConfig;
use crate::message::{Ids, Reply};
use crate::pipeline::{self, Context, TxMeta};
use crate::receive::conn::{self, ConnSettings, Handler};
use crate::receive::session::{Limits, Refused, Transaction};
use crate::record::Peer;
use crate::record::sink::EventLog;
use crate::replies;

/// Bytes per second a DATA phase must average to keep going: Postfix's
/// `smtpd_min_data_rate` default. A local MTA sends megabytes per second.
const MIN_DATA_RATE: u64 = 500;

/// The longest one DATA phase may hold a worker, whatever the rate (without a message size
/// limit, the minimum rate alone would not bound it).
const DATA_PHASE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// How long a client beyond `max_servers` waits for a worker before it hears 421.
const BUSY_GRACE: Duration = Duration::from_secs(1);

/// How long telling a client "all workers busy" may take before its socket is dropped.
const BUSY_REPLY_LIMIT: Duration = Duration::from_secs(5);

/// Clients waiting for a worker or being told "busy", at most: beyond, a flood is closed
/// without a word rather than holding a task and a descriptor each.
const BUSY_REPLIES_MAX: usize = 256;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// Where.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The scoreboard could not be opened.
    #[error(transparent)]
    Scoreboard(#[from] agent_mib::ScoreboardError),
    /// The event log could not be opened.
    #[error("cannot open the JSON event log: {0}")]
    Events(std::io::Error),
    /// The privilege drop after binding failed (main's `after_bind`).
    #[error("cannot drop privileges: {0}")]
    Privileges(String),
}

/// The parts of the configuration a reload replaces.
#[derive(Debug)]
struct Runtime {
    config: Config,
    policies: BTreeMap<String, (Arc<Policy>, Arc<Forwarder>)>,
}

impl Runtime {
    fn new(config: Config) -> Runtime {
        let policies = config
            .policies
            .iter()
            .map(|(name, p)| {
                let fw = Forwarder::new(p.forward.clone(), &config.hostname, p.forward_timeout);
                (name.clone(), (Arc::new(p.clone()), Arc::new(fw)))
            })
            .collect();
        Runtime { config, policies }
    }
}

enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
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

/// The running daemon.
pub struct Daemon {
    board: Arc<Scoreboard>,
    runtime: RwLock<Arc<Runtime>>,
    events: Arc<EventLog>,
    config_path: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    permits: Arc<Semaphore>,
    busy_replies: Arc<Semaphore>,
    pool: SlotPool,
    max_servers: usize,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("max_servers", &self.max_servers)
            .finish()
    }
}

struct PipelineHandler {
    ctx: Context,
    peer: Peer,
}

impl Handler for PipelineHandler {
    fn refused(&self, slot: &WorkerSlot, refused: Refused, ids: Ids, mail_at: Instant, mail_ms: u64) -> Outcome {
        let meta = TxMeta {
            ids,
            received_at_ms: mail_ms,
            mail_at,
            peer: self.peer.clone(),
        };
        pipeline::refused(&self.ctx, slot, refused, meta)
    }

    async fn handle(
        &self,
        slot: &WorkerSlot,
        tx: Transaction,
        ids: Ids,
        mail_at: Instant,
        mail_ms: u64,
    ) -> (Vec<Reply>, Outcome) {
        let meta = TxMeta {
            ids,
            received_at_ms: mail_ms,
            mail_at,
            peer: self.peer.clone(),
        };
        pipeline::process(&self.ctx, slot, tx, meta).await
    }
}

/// Logs what [`Scoreboard::check_file`] finds once per change, so a disk that stays full
/// writes one line, not one a second.
#[derive(Debug, Default)]
struct FileCheckLog {
    failing: Option<String>,
}

impl FileCheckLog {
    fn note(&mut self, check: agent_mib::FileCheck) {
        match &check {
            agent_mib::FileCheck::Fine => {
                if self.failing.take().is_some() {
                    tracing::info!("the scoreboard is back");
                }
            }
            agent_mib::FileCheck::Recreated(_) => {
                self.failing = None;
                tracing::warn!("{check}");
            }
            agent_mib::FileCheck::Failed(..) => {
                let text = check.to_string();
                if self.failing.as_deref() != Some(text.as_str()) {
                    tracing::error!("{text}");
                    self.failing = Some(text);
                }
            }
        }
    }
}

impl Daemon {
    /// Opens the scoreboard and the event log. Listeners are bound by [`Daemon::run`].
    pub fn new(config: Config, config_path: Option<PathBuf>) -> Result<Arc<Daemon>, StartError> {
        let info = agent_mib::WriterInfo {
            descr: format!("avis-{} (avisd)", env!("CARGO_PKG_VERSION")),
            name: config.hostname.clone(),
            contact: config.snmp_contact.clone(),
            location: config.snmp_location.clone(),
            workers: config.max_servers,
        };
        let board = Scoreboard::open_with_group(&config.scoreboard, &info, config.scoreboard_group)?;
        let events = Arc::new(EventLog::open(&config.events).map_err(StartError::Events)?);
        let max_servers = config.max_servers;
        let pool = SlotPool {
            free: Mutex::new((0..max_servers).rev().collect()),
            conns: Mutex::new(vec![0; max_servers]),
        };
        let (shutdown, _) = watch::channel(false);
        Ok(Arc::new(Daemon {
            board,
            runtime: RwLock::new(Arc::new(Runtime::new(config))),
            events,
            config_path,
            shutdown,
            permits: Arc::new(Semaphore::new(max_servers)),
            busy_replies: Arc::new(Semaphore::new(BUSY_REPLIES_MAX)),
            pool,
            max_servers,
        }))
    }

    fn runtime(&self) -> Arc<Runtime> {
        self.runtime
            .read()
            .map_or_else(|p| Arc::clone(&p.into_inner()), |r| Arc::clone(&r))
    }

    /// Binds the listeners, serves until SIGTERM/SIGINT, then drains.
    pub async fn run(self: Arc<Self>) -> Result<(), StartError> {
        self.run_after_bind(|| Ok(())).await
    }

    /// As [`Daemon::run`], calling `after_bind` once every listener is bound and before
    /// the first connection is accepted: main drops root there.
    pub async fn run_after_bind(
        self: Arc<Self>,
        after_bind: impl FnOnce() -> Result<(), StartError>,
    ) -> Result<(), StartError> {
        let rt = self.runtime();
        let mut bound = Vec::new();
        for l in &rt.config.listeners {
            let b = match &l.address {
                ListenAddress::Tcp(a) => Bound::Tcp(TcpListener::bind(a).await.map_err(|source| StartError::Bind {
                    address: a.to_string(),
                    source,
                })?),
                ListenAddress::Unix(p) => {
                    let _ = std::fs::remove_file(p);
                    let u = UnixListener::bind(p).map_err(|source| StartError::Bind {
                        address: format!("unix:{}", p.display()),
                        source,
                    })?;
                    Bound::Unix(u, p.clone())
                }
            };
            tracing::info!(listen = %l.address, policy = %l.policy, "listening");
            bound.push((b, l.policy.clone()));
        }
        after_bind()?;
        let mut tasks = tokio::task::JoinSet::new();
        for (b, policy) in bound {
            let d = Arc::clone(&self);
            tasks.spawn(async move { d.accept_loop(b, policy).await });
        }
        let hb = Arc::clone(&self);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut stop = hb.shutdown.subscribe();
            let mut file_check = FileCheckLog::default();
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        hb.board.heartbeat();
                        file_check.note(hb.board.check_file());
                    }
                    _ = stop.changed() => break,
                }
            }
        });
        self.signals(|| {
            tracing::info!(max_servers = self.max_servers, scoreboard = %self.board.path().display(), "avisd ready");
        })
        .await;
        let _ = self.shutdown.send(true);
        tracing::info!("draining: finishing transactions in flight, accepting nothing new");
        let drain = self.runtime().config.drain_timeout;
        let all = u32::try_from(self.max_servers).unwrap_or(u32::MAX);
        match tokio::time::timeout(drain, self.permits.acquire_many(all)).await {
            Ok(_) => tracing::info!("all connections finished"),
            Err(_) => tracing::warn!(?drain, "drain timed out; in-flight messages stay with their senders"),
        }
        while tasks.join_next().await.is_some() {}
        for (_, fw) in self.runtime().policies.values() {
            fw.close_idle().await;
        }
        Ok(())
    }

    /// Installs the signal handlers, then calls `ready`: "ready" is said only once a
    /// SIGTERM or SIGHUP would be handled, not kill the daemon.
    async fn signals(&self, ready: impl FnOnce()) {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        ready();
        loop {
            tokio::select! {
                _ = term.recv() => return,
                _ = int.recv() => return,
                _ = hup.recv() => self.reload(),
            }
        }
    }

    /// SIGHUP: re-reads the configuration (policy banks, forward targets, the event log)
    /// and reopens the event log. A bad file keeps the running configuration.
    pub fn reload(&self) {
        let loaded = Config::load(self.config_path.as_deref());
        match loaded {
            Ok(config) => {
                let old = self.runtime();
                let listeners_changed = format!("{:?}", old.config.listeners) != format!("{:?}", config.listeners);
                if listeners_changed || config.max_servers != old.config.max_servers {
                    tracing::warn!("listener or max_servers changes take effect at the next restart");
                }
                if let Err(e) = self.events.reopen(&config.events) {
                    tracing::error!(error = %e, "cannot reopen the JSON event log; keeping the old one");
                }
                if let Ok(mut w) = self.runtime.write() {
                    *w = Arc::new(Runtime::new(config));
                }
                tracing::info!("configuration reloaded");
            }
            Err(e) => tracing::error!(error = %e, "reload refused; the running configuration stays"),
        }
    }

    async fn accept_loop(self: Arc<Self>, listener: Bound, policy: String) {
        let mut stop = self.shutdown.subscribe();
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
                Ok(permit) => self.start_session(stream, peer, permit, &policy),
                Err(TryAcquireError::NoPermits) => self.wait_or_turn_away(stream, peer, &policy),
                Err(TryAcquireError::Closed) => return,
            }
        }
    }

    /// Runs a session in a worker slot of its own, on a task of its own.
    fn start_session(self: &Arc<Self>, stream: Stream, peer: Peer, permit: OwnedSemaphorePermit, policy: &str) {
        let Some((slot, conn_number)) = self.pool.take(&self.board) else {
            tracing::error!("no free worker slot although a permit was granted");
            return;
        };
        slot.set_state_reset(WorkerState::Accepted);
        let d = Arc::clone(self);
        let policy = policy.to_string();
        tokio::spawn(async move {
            d.connection(stream, peer, &slot, conn_number, &policy).await;
            d.pool.give_back(slot);
            drop(permit);
        });
    }

    /// Every worker is busy. A worker whose client just said QUIT frees its slot a moment
    /// after the client heard 221, and that client (smtp-source, Postfix's smtp) may
    /// connect again at once: so wait a short grace for a free worker, then tell the client
    /// 421 (counted) and close, off the accept loop and within a time limit.
    fn wait_or_turn_away(self: &Arc<Self>, stream: Stream, peer: Peer, policy: &str) {
        let Ok(waiting) = Arc::clone(&self.busy_replies).try_acquire_owned() else {
            // A flood: close without a word rather than hold a task and a socket each.
            self.board.bump(Counter::InConnBusyRefused, 1);
            return;
        };
        let d = Arc::clone(self);
        let policy = policy.to_string();
        tokio::spawn(async move {
            let permit = tokio::time::timeout(BUSY_GRACE, Arc::clone(&d.permits).acquire_owned()).await;
            if let Ok(Ok(permit)) = permit {
                drop(waiting);
                d.start_session(stream, peer, permit, &policy);
                return;
            }
            d.board.bump(Counter::InConnBusyRefused, 1);
            let reply = replies::all_workers_busy(&d.runtime().config.hostname).to_wire();
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

    async fn connection(&self, stream: Stream, peer: Peer, slot: &WorkerSlot, conn_number: u64, policy_name: &str) {
        let rt = self.runtime();
        let Some((policy, forwarder)) = rt.policies.get(policy_name).cloned() else {
            tracing::error!(
                policy = policy_name,
                "listener names a policy bank that no longer exists"
            );
            return;
        };
        let settings = ConnSettings {
            limits: Limits {
                hostname: rt.config.hostname.clone(),
                max_message_size: policy.message_size_limit,
                max_recipients: policy.recipient_limit,
                max_line: 4096,
                spool: SpoolConfig {
                    dir: rt.config.state_dir.join("spool"),
                    memory_threshold: rt.config.spool_memory_threshold,
                },
            },
            idle_timeout: policy.idle_timeout,
            data_timeout: policy.data_timeout,
            min_data_rate: MIN_DATA_RATE,
            data_phase_limit: DATA_PHASE_LIMIT,
        };
        let ctx = Context {
            policy,
            forwarder,
            events: Arc::clone(&self.events),
            hostname: rt.config.hostname.clone(),
            quarantine_dir: rt.config.quarantine_dir.clone(),
        };
        let handler = PipelineHandler { ctx, peer };
        let stop = self.shutdown.subscribe();
        let ending = match stream {
            Stream::Tcp(s) => conn::serve(s, &settings, slot, conn_number, &handler, stop).await,
            Stream::Unix(s) => conn::serve(s, &settings, slot, conn_number, &handler, stop).await,
        };
        tracing::debug!(slot = slot.index(), ?ending, "connection ended");
        slot.set_state(WorkerState::Idle);
    }
}

enum Stream {
    Tcp(tokio::net::TcpStream),
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
