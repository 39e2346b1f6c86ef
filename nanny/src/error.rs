//! The errors of avis-nanny and avis-agent. A missing scoreboard is not among them: it
//! is the normal "no filter running" state, shown and polled through.

use std::path::PathBuf;

/// Why a program stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scoreboard could not be read (incompatible build, I/O).
    #[error(transparent)]
    Read(#[from] agent_mib::ReadError),
    /// No scoreboard at the last sample of a counted run.
    #[error("no filter running: scoreboard {0} does not exist")]
    NotRunning(PathBuf),
    /// Writing the output failed (a closed pipe ends the program quietly).
    #[error("writing output: {0}")]
    Output(#[source] std::io::Error),
    /// The terminal could not be set up or drawn.
    #[error("terminal: {0}")]
    Terminal(#[source] std::io::Error),
    /// A thread of the TUI died.
    #[error("the {0} thread stopped unexpectedly")]
    Thread(&'static str),
}
