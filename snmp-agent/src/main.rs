//! avis-snmp-agent: serves the AMAVIS-MIB (and our amavis.4 subtree) read from avisd's
//! scoreboard, over SNMP v1/v2c/v3 on UDP and/or as an AgentX subagent of net-snmp's
//! snmpd. It reads the scoreboard and nothing else (plus Postfix's queue directories
//! for amavisMta); avisd never talks SNMP. This file wires the pieces: flags and the
//! config file → [`config::Config`]; bind sockets; drop root; start the front ends.

mod access;
mod agentx;
mod config;
mod datagram;
mod engine;
mod logging;
mod mta;
mod pdu;
mod privs;
mod source;
mod udp;
mod usm;
mod view;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Parser;

use crate::config::{Config, QueueSource, RawConfig};

/// Command line; every flag overrides the config file's key of the same meaning.
#[derive(Debug, Parser)]
#[command(
    name = "avis-snmp-agent",
    version,
    about = "Serves the AMAVIS-MIB from avis's scoreboard over SNMP and AgentX"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Scoreboard file (default: $AVIS_SCOREBOARD or avis-state/scoreboard).
    #[arg(long, value_name = "PATH")]
    scoreboard: Option<PathBuf>,
    /// UDP address to serve SNMP on, e.g. 127.0.0.1:161 or [::1]:161 (repeatable; none by default).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
    /// AgentX master: tcp:HOST:PORT, a Unix socket path, or `off` (default /var/agentx/master).
    #[arg(long, value_name = "SOCKET")]
    agentx: Option<String>,
    /// Seconds between AgentX pings (default 5).
    #[arg(long, value_name = "SECS")]
    agentx_ping: Option<u64>,
    /// v1/v2c community, optionally with networks: NAME[@CIDR,CIDR] (repeatable; default public@loopback; `off` disables v1/v2c).
    #[arg(long, value_name = "NAME[@NETS]")]
    community: Vec<String>,
    /// SNMPv3 user NAME:AUTH:AUTHPASS[:PRIV:PRIVPASS], AUTH sha1|sha256, PRIV aes128|aes256 (repeatable).
    /// Every local user can read a command line: give pass phrases in the config file or in
    /// $AVIS_SNMP_V3_USER (the same specs, one a line) instead.
    #[arg(long, value_name = "SPEC")]
    v3_user: Vec<String>,
    /// File keeping the SNMPv3 engine ID and boots (default: snmp-engine beside the scoreboard).
    #[arg(long, value_name = "PATH")]
    engine_state: Option<PathBuf>,
    /// Postfix queue directory for amavisMta, `postconf` (default) or `off`.
    #[arg(long, value_name = "DIR")]
    queue_directory: Option<String>,
    /// User to become after binding.
    #[arg(long)]
    user: Option<String>,
    /// Group to become after binding.
    #[arg(long)]
    group: Option<String>,
    /// Largest response in octets (484..=65507; default 65507). A GETBULK answer
    /// beyond it is truncated; any other becomes tooBig.
    #[arg(long, value_name = "OCTETS")]
    max_message_size: Option<usize>,
    /// Log to syslog (facility mail) instead of stderr.
    #[arg(long)]
    syslog: bool,
    /// The syslog socket (default /dev/log).
    #[arg(long, value_name = "PATH")]
    syslog_socket: Option<PathBuf>,
}

/// The environment variable holding `--v3-user` specs, one a line: unlike the command line,
/// a process's environment is readable by its owner only.
const V3_USER_ENV: &str = "AVIS_SNMP_V3_USER";

/// Reads the config file and the flags; also returns the warnings to log once logging is up.
fn load(cli: Cli) -> anyhow::Result<(Config, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut raw: RawConfig = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => RawConfig::default(),
    };
    raw.scoreboard = cli.scoreboard.or(raw.scoreboard);
    if !cli.listen.is_empty() {
        raw.listen = cli.listen;
    }
    raw.agentx = cli.agentx.or(raw.agentx);
    raw.agentx_ping_secs = cli.agentx_ping.or(raw.agentx_ping_secs);
    if cli.community.iter().any(|c| c == "off") {
        raw.community = Some(Vec::new());
    } else if !cli.community.is_empty() {
        raw.community = Some(cli.community.iter().map(|c| config::community_flag(c)).collect());
    }
    for u in &cli.v3_user {
        let user = config::user_flag(u).map_err(|e| anyhow::anyhow!("--v3-user: {e}"))?;
        if user.auth_password.is_some() || user.priv_password.is_some() {
            warnings.push(format!(
                "--v3-user {}: pass phrases on the command line are readable by every local user \
                 (/proc/PID/cmdline); put them in the config file (mode 0600) or in ${V3_USER_ENV}",
                user.name
            ));
        }
        raw.v3_user.push(user);
    }
    if let Ok(specs) = std::env::var(V3_USER_ENV) {
        for u in specs.lines().map(str::trim).filter(|l| !l.is_empty()) {
            raw.v3_user
                .push(config::user_flag(u).map_err(|e| anyhow::anyhow!("{V3_USER_ENV}: {e}"))?);
        }
    }
    raw.engine_state = cli.engine_state.or(raw.engine_state);
    raw.queue_directory = cli.queue_directory.or(raw.queue_directory);
    raw.user = cli.user.or(raw.user);
    raw.group = cli.group.or(raw.group);
    raw.max_message_size = cli.max_message_size.or(raw.max_message_size);
    raw.syslog_socket = cli.syslog_socket.or(raw.syslog_socket);
    if cli.syslog {
        raw.log = Some("syslog".into());
    }
    Ok((Config::build(raw)?, warnings))
}

fn main() -> anyhow::Result<()> {
    let (cfg, warnings) = load(Cli::parse())?;
    logging::init(cfg.log, &cfg.syslog_socket)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(cfg))
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    // Bind first (port 161 needs root), read the engine state while we may, then drop.
    let mut sockets = Vec::new();
    for addr in &cfg.listen {
        let s = tokio::net::UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding udp {addr}"))?;
        let versions = match (cfg.communities.is_empty(), cfg.users.is_empty()) {
            (false, false) => "v1/v2c/v3",
            (false, true) => "v1/v2c",
            (true, false) => "v3",
            (true, true) => "nothing (no community, no v3 user)",
        };
        tracing::info!(%addr, "serving SNMP {versions} on UDP");
        sockets.push(s);
    }
    let usm = if cfg.users.is_empty() {
        None
    } else {
        let state = engine::load_and_boot(&cfg.engine_state)?;
        tracing::info!(engine_id = %engine::hex(&state.engine_id), boots = state.boots, "SNMPv3 engine");
        let users = cfg
            .users
            .iter()
            .map(|u| {
                usm::User::new(
                    &u.name,
                    u.auth.as_ref().map(|(p, pw)| (*p, pw.as_str())),
                    u.privacy.as_ref().map(|(p, pw)| (*p, pw.as_str())),
                    &state.engine_id,
                )
            })
            .collect();
        Some(usm::Usm::new(
            state.engine_id,
            state.boots,
            users,
            u64::from_be_bytes(engine::random8()),
        ))
    };
    privs::drop_to(cfg.user.as_deref(), cfg.group.as_deref())?;

    let mta_slot = match &cfg.queue {
        QueueSource::Off => Arc::new(Mutex::new(None)),
        QueueSource::Postconf | QueueSource::Dir(_) => {
            let dir = match &cfg.queue {
                QueueSource::Dir(d) => Ok(d.clone()),
                QueueSource::Postconf | QueueSource::Off => mta::postconf_queue_directory(),
            };
            match dir.and_then(|d| mta::check_readable(&d).map(|()| d)) {
                Ok(d) => {
                    tracing::info!(queue = %d.display(), "serving amavisMta from the Postfix queue");
                    mta::start(d)
                }
                Err(e) => {
                    tracing::warn!("{e}; the amavisMta objects are not served (as amavisd-snmp-subagent does)");
                    Arc::new(Mutex::new(None))
                }
            }
        }
    };
    let source = source::Source::new(agent_mib::Reader::new(&cfg.scoreboard), mta_slot);
    // Attach now, so the log says at start whether a filter is there.
    let _ = source.frame();
    let view = view::MibView::new();
    tracing::info!(instances = view.instances(), scoreboard = %cfg.scoreboard.display(), "MIB view ready");
    let agent = Arc::new(udp::Agent {
        view: view.clone(),
        source: source.clone(),
        communities: cfg.communities.clone(),
        usm,
        max_message_size: cfg.max_message_size,
        stats: udp::Stats::default(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for s in sockets {
        tasks.spawn(udp::serve(s, Arc::clone(&agent)));
    }
    if let Some(master) = cfg.agentx.clone() {
        tracing::info!(?master, "AgentX subagent");
        let settings = agentx::session::Settings { master, ping: cfg.ping };
        tasks.spawn(agentx::session::run(settings, source.clone(), view));
    }
    if tasks.is_empty() {
        anyhow::bail!("nothing to do: no --listen address and AgentX is off");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let signalled = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted",
            _ = term.recv() => "terminated",
        }
    };
    supervise(tasks, signalled).await
}

/// Serves until `signalled` or until a front end stops. The front ends never end on their
/// own, so one that stops (it returned, or panicked) is a failure: the process exits
/// non-zero, and systemd's `Restart=on-failure` starts it again.
async fn supervise(
    mut tasks: tokio::task::JoinSet<()>,
    signalled: impl std::future::Future<Output = &'static str>,
) -> anyhow::Result<()> {
    tokio::select! {
        ended = tasks.join_next() => {
            let why = match ended {
                Some(Err(e)) if e.is_panic() => "panicked",
                Some(Err(_)) => "was cancelled",
                Some(Ok(())) | None => "returned",
            };
            tracing::error!("a front end {why}; exiting with an error so that it is restarted");
            anyhow::bail!("a front end {why}")
        }
        how = signalled => {
            tracing::info!("{how}; exiting");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    async fn never() -> &'static str {
        std::future::pending().await
    }

    #[tokio::test]
    async fn a_front_end_that_panics_makes_the_agent_exit_with_an_error() {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async { panic!("front end bug") });
        tasks.spawn(std::future::pending::<()>());
        let err = supervise(tasks, never()).await.expect_err("must fail");
        assert!(err.to_string().contains("panicked"), "{err}");
    }

    #[tokio::test]
    async fn a_front_end_that_returns_makes_the_agent_exit_with_an_error() {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async {});
        assert!(supervise(tasks, never()).await.is_err());
    }

    #[tokio::test]
    async fn a_signal_ends_the_agent_cleanly() {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(std::future::pending::<()>());
        assert!(supervise(tasks, async { "terminated" }).await.is_ok());
    }
}
