//! check: one module per check, each producing a typed outcome; the pipeline runs them
//! and `decide` turns their outcomes into per-recipient verdicts. A failed or slow
//! external scanner yields an *unchecked* outcome (or a tempfail, by policy), never a
//! panic. The clients of the external scanners (clamd for viruses; spamd and rspamd for
//! spam) share endpoint parsing, time-bounded connections and chunked streaming
//! (`endpoint`); what a failure means for the message is the pipeline's policy.

pub mod banned;
pub mod clamd;
pub mod endpoint;
pub mod headers;
pub mod rspamd;
pub mod run;
pub mod spamd;

use banned::BannedHit;
use headers::HeaderProblem;

/// What the virus check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VirusOutcome {
    /// No virus scanner is configured, or every recipient bypasses it.
    NotScanned,
    /// Scanned, nothing found.
    Clean,
    /// Scanned: these virus names.
    Infected(Vec<String>),
    /// Every scanner failed (reason); the policy says whether that tempfails.
    Failed(String),
}

/// What the spam check concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum SpamOutcome {
    /// No spam scanner configured, all recipients bypass, or the message was too big.
    NotScanned,
    /// A score and the rules that made it.
    Scored {
        /// The score.
        score: f64,
        /// Rule names.
        tests: Vec<String>,
    },
    /// The scanner failed (reason).
    Failed(String),
}

/// Why the message counts as unchecked (CC_UNCHECKED minors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unchecked {
    /// 1: an encrypted part.
    Encrypted,
    /// 2: decoding limits hit.
    OverLimits,
    /// 3: ambiguous MIME.
    Ambiguous,
    /// 0: the virus scanners failed and the policy lets it pass as unchecked.
    ScannerFailed,
}

/// Every check's outcome for one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcomes {
    /// Virus.
    pub virus: VirusOutcome,
    /// Spam.
    pub spam: SpamOutcome,
    /// Banned parts.
    pub banned: Vec<BannedHit>,
    /// Bad header problems.
    pub bad_headers: Vec<HeaderProblem>,
    /// Over the policy's oversize limit.
    pub oversized: bool,
    /// Why it is unchecked, if it is.
    pub unchecked: Option<Unchecked>,
    /// The hold reason of decoding, if any.
    pub hold: Option<&'static str>,
}

impl Default for Outcomes {
    fn default() -> Self {
        Outcomes {
            virus: VirusOutcome::NotScanned,
            spam: SpamOutcome::NotScanned,
            banned: Vec::new(),
            bad_headers: Vec::new(),
            oversized: false,
            unchecked: None,
            hold: None,
        }
    }
}
