//! avis-nanny and avis-agent: what an operator watches in a terminal and what scripts
//! read, from avisd's scoreboard only (read-only; never needs root).
//!
//! - [`batch`]: amavisd-nanny's text layout and JSON, for `avis-nanny -c N`.
//! - [`agent`]: amavisd-agent's columns and JSON; [`prom`]: OpenMetrics.
//! - [`tui`]: the terminal UI (poller thread → one event channel → [`tui::App`] → render).
//! - [`bar`], [`stats`], [`fmt`]: the elapsed bar, throughput and latency figures, text.
//! - [`cli`]: command lines and the batch sampling loops.

pub mod agent;
pub mod bar;
pub mod batch;
pub mod cli;
pub mod error;
pub mod fmt;
pub mod prom;
pub mod stats;
pub mod tui;

pub use error::Error;
