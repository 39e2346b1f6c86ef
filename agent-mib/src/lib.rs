//! The contract between avisd (the only writer) and the monitors (the readers).
//!
//! - [`table`]: every object of the AMAVIS-MIB (and our `avis` subtree) once, generated
//!   from `mib/objects.tsv`, with the typed [`Counter`] and [`Gauge`] handles derived
//!   from it, so a misspelt counter is a compile error.
//! - [`Scoreboard`] / [`WorkerSlot`]: the writer side of the memory-mapped scoreboard.
//! - [`Reader`] / [`Snapshot`]: the reader side, and every object's value.
//! - [`mib_text`]: our AMAVIS-MIB module text.
//!
//! All `unsafe` of the workspace lives in the private `map` module.
#![deny(missing_docs)]

pub mod families;
mod file;
mod handles;
pub mod layout;
mod map;
mod mibfile;
mod reader;
pub mod snapshot;
mod state;
pub mod table;
mod writer;

pub use families::{ContentCategory, Direction, Status};
pub use handles::{LATENCY_BOUNDS_MS, Outcome, ScanResult, Scanner, Stage};
pub use map::map_immutable_file;
pub use mibfile::mib_text;
pub use reader::{ReadError, Reader};
pub use snapshot::{SlotView, Snapshot, SnapshotParts, Value};
pub use state::{Activity, WorkerState};
pub use table::*;
pub use writer::{Damage, FileCheck, Scoreboard, ScoreboardError, WorkerSlot, WriterInfo};

use std::path::PathBuf;

/// The scoreboard path every avis program uses when neither `--scoreboard` nor
/// `AVIS_SCOREBOARD` says otherwise: relative to the working directory, like the state
/// directory of avisd's embedded default configuration. Packaged installs pass
/// `--scoreboard /var/lib/avis/scoreboard` to all programs.
pub const DEFAULT_SCOREBOARD: &str = "avis-state/scoreboard";

/// The environment variable that overrides [`DEFAULT_SCOREBOARD`] for every program.
pub const SCOREBOARD_ENV: &str = "AVIS_SCOREBOARD";

/// The default scoreboard path: `$AVIS_SCOREBOARD`, else [`DEFAULT_SCOREBOARD`].
pub fn default_scoreboard() -> PathBuf {
    std::env::var_os(SCOREBOARD_ENV).map_or_else(|| PathBuf::from(DEFAULT_SCOREBOARD), PathBuf::from)
}

/// Unix time in milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
