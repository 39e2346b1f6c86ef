//! Command lines of avis-nanny and avis-agent (amavisd-nanny's and amavisd-agent's `-c`
//! and `-w`, plus ours), and the sampling loops of their batch modes. The loops read the
//! scoreboard with agent-mib's reader, format with [`crate::batch`], [`crate::agent`] and
//! [`crate::prom`], and write to the given output.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use agent_mib::{ReadError, Reader, Snapshot, now_ms};
use clap::Parser;

use crate::bar::Histories;
use crate::error::Error;
use crate::{agent, batch, prom};

/// avis-nanny: the worker slots of a running avisd, live (a terminal UI) or for scripts.
#[derive(Debug, Parser)]
#[command(
    name = "avis-nanny",
    version,
    about = "Watch avisd's workers: a terminal UI, or amavisd-nanny's text / JSON for scripts.",
    after_help = "Batch text (with -c, --text, or when stdout is not a terminal) keeps amavisd-nanny's layout:\n  PID <slot>: <task-id or state> <elapsed> <bar>\n\"PID\" is the worker slot number as %05d (all workers are tasks of one avisd process; its\nreal pid is in --json as writer_pid). Every line goes to stdout. Nothing is ever killed.\n\nIn the terminal UI: ? help, s sort, f filter (all, busy, stuck), arrows scroll, q quit. NO_COLOR=1\ndraws without colours."
)]
pub struct NannyArgs {
    /// Take N samples, then exit (batch mode).
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,
    /// Seconds between samples (default 2 in batch mode, 1 in the terminal UI).
    #[arg(short = 'w', long = "wait", value_name = "SECONDS")]
    pub wait: Option<f64>,
    /// One JSON document per sample, one per line (batch mode).
    #[arg(long, conflicts_with = "text")]
    pub json: bool,
    /// amavisd-nanny's text even on a terminal (batch mode).
    #[arg(long)]
    pub text: bool,
    /// Same as `-c 1`.
    #[arg(long, conflicts_with = "count")]
    pub once: bool,
    /// Busy longer than this many seconds is stuck (shown apart; in JSON `"stuck": true`).
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub stuck: u64,
    /// The scoreboard file (default: $AVIS_SCOREBOARD, else avis-state/scoreboard).
    #[arg(long, value_name = "PATH")]
    pub scoreboard: Option<PathBuf>,
}

impl NannyArgs {
    /// Samples to take in batch mode (`None`: until interrupted).
    pub fn samples(&self) -> Option<u64> {
        if self.once { Some(1) } else { self.count }
    }

    /// Whether to run the batch mode rather than the terminal UI.
    pub fn batch(&self, stdout_is_terminal: bool) -> bool {
        self.samples().is_some() || self.json || self.text || !stdout_is_terminal
    }

    /// The wait between samples.
    pub fn interval(&self, batch: bool) -> Duration {
        seconds(self.wait.unwrap_or(if batch { 2.0 } else { 1.0 }))
    }

    /// The scoreboard path.
    pub fn scoreboard(&self) -> PathBuf {
        self.scoreboard.clone().unwrap_or_else(agent_mib::default_scoreboard)
    }
}

/// avis-agent: avisd's counters the way amavisd-agent prints them, or as JSON or OpenMetrics.
#[derive(Debug, Parser)]
#[command(
    name = "avis-agent",
    version,
    about = "avisd's counters: amavisd-agent's columns (name, value, rate per hour, % of total), JSON, or OpenMetrics.",
    after_help = "Text keeps amavisd-agent's layout for the munin and Diamond collectors: every counter under amavisd's\nkey name, sorted, `%-35s %6d %6.0f/h %7.1f % (<TotalKey>)`; sizes in MB; TimeElapsed* in seconds with\ns/msg; then virus.byname.* by count. Rates cover the last 5 minutes of samples once they span 150 s,\nelse the time since the counters started. Output goes to stdout, each sample followed by two empty lines."
)]
pub struct AgentArgs {
    /// Take N samples, then exit (default: 1 with --prometheus, else until interrupted).
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,
    /// Seconds between samples.
    #[arg(short = 'w', long = "wait", value_name = "SECONDS", default_value_t = 10.0)]
    pub wait: f64,
    /// One JSON document per sample, one per line.
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,
    /// OpenMetrics text of one snapshot, ending with `# EOF`.
    #[arg(long)]
    pub prometheus: bool,
    /// The scoreboard file (default: $AVIS_SCOREBOARD, else avis-state/scoreboard).
    #[arg(long, value_name = "PATH")]
    pub scoreboard: Option<PathBuf>,
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.01)).unwrap_or(Duration::from_secs(2))
}

/// Writes `text`; a closed pipe (`| head`) is not an error worth a message.
fn emit(out: &mut impl Write, text: &str) -> Result<bool, Error> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::Output(e)),
    }
}

/// Takes `count` samples (forever if `None`) every `interval`, calling `each` with every
/// snapshot or read error; stops early when `each` says so. Returns the last sample's error.
fn sample_loop(
    reader: &mut Reader,
    count: Option<u64>,
    interval: Duration,
    mut each: impl FnMut(&Result<Snapshot, ReadError>) -> Result<bool, Error>,
) -> Result<Option<ReadError>, Error> {
    let mut taken = 0u64;
    loop {
        let r = reader.snapshot();
        if !each(&r)? {
            return Ok(None);
        }
        taken += 1;
        if count.is_some_and(|c| taken >= c) {
            return Ok(r.err());
        }
        std::thread::sleep(interval);
    }
}

fn final_status(last: Option<ReadError>) -> Result<(), Error> {
    match last {
        None => Ok(()),
        Some(ReadError::Missing(p)) => Err(Error::NotRunning(p)),
        Some(e) => Err(Error::Read(e)),
    }
}

/// avis-nanny's batch mode: text or JSON per sample on `out`, problems on `err`.
pub fn run_nanny_batch(args: &NannyArgs, out: &mut impl Write, err: &mut impl Write) -> Result<(), Error> {
    let mut reader = Reader::new(args.scoreboard());
    let mut histories = Histories::default();
    let stuck_ms = args.stuck.saturating_mul(1000);
    if !args.json && !emit(out, batch::HEADER)? {
        return Ok(());
    }
    let last = sample_loop(&mut reader, args.samples(), args.interval(true), |r| match r {
        Ok(snap) => {
            histories.observe(snap);
            let text = if args.json {
                format!("{}\n", batch::json(snap, &histories, stuck_ms))
            } else {
                batch::text(snap, &histories)
            };
            emit(out, &text)
        }
        Err(e) => {
            histories.clear();
            if args.json {
                emit(out, &format!("{}\n", batch::json_missing(now_ms(), &e.to_string())))?;
            }
            emit(err, &format!("{e}; waiting...\n"))
        }
    })?;
    final_status(last)
}

/// avis-agent: text, JSON or OpenMetrics per sample on `out`, problems on `err`.
pub fn run_agent(args: &AgentArgs, out: &mut impl Write, err: &mut impl Write) -> Result<(), Error> {
    let mut reader = Reader::new(args.scoreboard.clone().unwrap_or_else(agent_mib::default_scoreboard));
    let mut rates = agent::Rates::default();
    let count = args.count.or(args.prometheus.then_some(1));
    let last = sample_loop(&mut reader, count, seconds(args.wait), |r| match r {
        Ok(snap) => {
            let entries = agent::entries(snap);
            rates.push(snap, &entries);
            let text = if args.prometheus {
                prom::openmetrics(snap)
            } else if args.json {
                format!("{}\n", agent::json(snap, &entries, &rates))
            } else {
                agent::text(snap, &entries, &rates)
            };
            emit(out, &text)
        }
        Err(e) => emit(err, &format!("{e}\n")),
    })?;
    final_status(last)
}
