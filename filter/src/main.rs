//! `avisd`: the avis mail content filter daemon. Thin: parses the command line, loads
//! the configuration (reporting every problem with file, line and key), sets up
//! diagnostics, prepares the state directories and the privilege drop (`privs`) and
//! runs the daemon.

mod privs;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use filter::config::{Config, DEFAULT_TOML};
use filter::daemon::{Daemon, StartError};

/// avisd: a mail content filter between two MTAs, watched through the AMAVIS-MIB.
///
/// With no --config it runs the embedded default: listen on 127.0.0.1:10024, forward to
/// 127.0.0.1:10025, state (scoreboard, spool) in ./avis-state. SIGTERM drains, SIGHUP
/// reloads the configuration and reopens the event log.
#[derive(Debug, Parser)]
#[command(name = "avisd", version, about, long_about)]
struct Cli {
    /// Configuration file (TOML); without it the embedded default is used.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration and exit (0 valid, 78 invalid).
    #[arg(long)]
    check_config: bool,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Scoreboard file, overriding the configuration (also $AVIS_SCOREBOARD when the
    /// configuration names none).
    #[arg(long, value_name = "PATH")]
    scoreboard: Option<PathBuf>,
}

const EX_CONFIG: u8 = 78;
const EX_SOFTWARE: u8 = 70;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{DEFAULT_TOML}");
        return ExitCode::SUCCESS;
    }
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("avisd: configuration refused:\n{e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if let Some(sb) = cli.scoreboard.clone() {
        config.scoreboard = sb;
    } else if let Some(env) = std::env::var_os(agent_mib::SCOREBOARD_ENV)
        && cli.config.is_none()
    {
        config.scoreboard = PathBuf::from(env);
    }
    if cli.check_config {
        println!(
            "{}: ok ({} listener(s), {} policy bank(s), max_servers {}, scoreboard {})",
            config.source,
            config.listeners.len(),
            config.policies.len(),
            config.max_servers,
            config.scoreboard.display()
        );
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let embedded = cli.config.is_none();
    let target = match privs::plan(&config, embedded).and_then(|t| privs::prepare(&config, t.as_ref()).map(|()| t)) {
        Ok(t) => t,
        Err(e @ privs::PrivError::Root) => {
            eprintln!("avisd: {e}");
            return ExitCode::from(EX_CONFIG);
        }
        Err(e) => {
            eprintln!("avisd: {e}");
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("avisd: cannot start the runtime: {e}");
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    let result = runtime.block_on(async {
        let after_bind_config = config.clone();
        let daemon = Daemon::new(config, cli.config.clone())?;
        // Root is needed to bind (ports below 1024, socket directories) and to open the
        // state files; nothing after that needs it.
        daemon
            .run_after_bind(move || match &target {
                Some(t) => privs::drop_to(&after_bind_config, t).map_err(|e| StartError::Privileges(e.to_string())),
                None => Ok(()),
            })
            .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("avisd: {e}");
            ExitCode::from(EX_SOFTWARE)
        }
    }
}
