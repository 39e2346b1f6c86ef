//! The daemon's wiring, on top of every stage: the runtime a reload replaces (the
//! configuration, a forwarder per policy bank), the start (scoreboard, event log,
//! listeners, heartbeat), the signals (SIGTERM drains, SIGHUP reloads), and the handler
//! that hands each transaction a session completes to the pipeline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use agent_mib::{Outcome, Scoreboard, WorkerSlot, WorkerState};
use tokio::sync::watch;

use crate::accept::{self, BindError, Serve, Stream, Workers};
use crate::config::{Config, Policy};
use crate::forward::Forwarder;
use crate::message::spool::SpoolConfig;
use crate::message::{Peer, Reply, TxMeta};
use crate::pipeline::{self, Context};
use crate::receive::conn::{self, ConnSettings, Handler};
use crate::receive::session::{Limits, Refused, Transaction};
use crate::record::sink::EventLog;
use crate::replies;

/// Bytes per second a DATA phase must average to keep going: Postfix's
/// `smtpd_min_data_rate` default. A local MTA sends megabytes per second.
const MIN_DATA_RATE: u64 = 500;

/// The longest one DATA phase may hold a worker, whatever the rate (without a message size
/// limit, the minimum rate alone would not bound it).
const DATA_PHASE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
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

/// The running daemon.
pub struct Daemon {
    board: Arc<Scoreboard>,
    runtime: RwLock<Arc<Runtime>>,
    events: Arc<EventLog>,
    config_path: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    workers: Arc<Workers>,
    max_servers: usize,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("max_servers", &self.max_servers)
            .finish()
    }
}

/// Hands each transaction a session completes to the pipeline.
struct PipelineHandler {
    ctx: Context,
}

impl Handler for PipelineHandler {
    fn refused(&self, slot: &WorkerSlot, refused: Refused, meta: TxMeta) -> Outcome {
        pipeline::refused(&self.ctx, slot, refused, meta)
    }

    async fn handle(&self, slot: &WorkerSlot, tx: Transaction, meta: TxMeta) -> (Vec<Reply>, Outcome) {
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
        let workers = Arc::new(Workers::new(Arc::clone(&board), max_servers));
        let (shutdown, _) = watch::channel(false);
        Ok(Arc::new(Daemon {
            board,
            runtime: RwLock::new(Arc::new(Runtime::new(config))),
            events,
            config_path,
            shutdown,
            workers,
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
        let bound = accept::bind(&self.runtime().config.listeners).await?;
        after_bind()?;
        let mut tasks = tokio::task::JoinSet::new();
        for (b, policy) in bound {
            let workers = Arc::clone(&self.workers);
            let serve = Arc::clone(&self);
            let stop = self.shutdown.subscribe();
            tasks.spawn(async move { workers.accept_loop(serve, b, policy, stop).await });
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
        self.workers.drain(self.runtime().config.drain_timeout).await;
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
}

impl Serve for Daemon {
    fn all_workers_busy(&self) -> Reply {
        replies::all_workers_busy(&self.runtime().config.hostname)
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
            peer,
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
        let handler = PipelineHandler { ctx };
        let stop = self.shutdown.subscribe();
        let ending = match stream {
            Stream::Tcp(s) => conn::serve(s, &settings, slot, conn_number, &handler, stop).await,
            Stream::Unix(s) => conn::serve(s, &settings, slot, conn_number, &handler, stop).await,
        };
        tracing::debug!(slot = slot.index(), ?ending, "connection ended");
        slot.set_state(WorkerState::Idle);
    }
}
