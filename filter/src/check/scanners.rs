//! check: the clients of external scanners (clamd for viruses; spamd and rspamd for spam),
//! each turning one spooled message into a verdict or a [`endpoint::ScanError`], never a
//! panic. They share endpoint parsing, time-bounded connections and chunked streaming
//! (`endpoint`); policy (what a failure means for the message) is the pipeline's.

// The files sit beside this one in `check/`, not in `check/scanners/`: the `path`
// attributes keep that true whether this module is declared from `lib.rs` (now) or from
// `check/mod.rs` (later), since a `path` is relative to this file's directory either way.
#[path = "clamd.rs"]
pub mod clamd;
#[path = "endpoint.rs"]
pub mod endpoint;
#[path = "rspamd.rs"]
pub mod rspamd;
#[path = "spamd.rs"]
pub mod spamd;
