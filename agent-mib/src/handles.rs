//! The typed handles the writer's callers use beside the counters: a ledger outcome, a
//! timed stage with its histogram, an external back end with its health counters. Each
//! maps to counters of the table by exhaustive `match`, so a new variant cannot be
//! forgotten.

use crate::{Counter, Gauge, LATENCY};

/// How a message received by avisd was finally answered: one ledger outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx after the back end accepted it.
    Relayed,
    /// 5xx.
    Rejected,
    /// 2xx, dropped by policy.
    Discarded,
    /// 2xx, returned to the sender with a DSN.
    Bounced,
    /// 2xx, kept in quarantine only.
    Quarantined,
    /// 4xx, or never answered.
    TempFailed,
}

impl Outcome {
    pub(crate) const fn counter(self) -> Counter {
        match self {
            Outcome::Relayed => Counter::LedgerRelayed,
            Outcome::Rejected => Counter::LedgerRejected,
            Outcome::Discarded => Counter::LedgerDiscarded,
            Outcome::Bounced => Counter::LedgerBounced,
            Outcome::Quarantined => Counter::LedgerQuarantined,
            Outcome::TempFailed => Counter::LedgerTempFailed,
        }
    }
}

/// A timed stage of the latency histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// MAIL FROM to the end of DATA.
    Receive,
    /// MIME and archive decoding.
    Decode,
    /// Virus scanning.
    Virus,
    /// Spam scanning.
    Spam,
    /// Forwarding until the back end answered.
    Forward,
    /// The whole message.
    Total,
}

/// Upper bounds of the latency buckets in milliseconds; the last bucket is unbounded.
pub const LATENCY_BOUNDS_MS: [u64; 12] = [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000];

impl Stage {
    /// Every stage, in table order.
    pub const ALL: [Stage; 6] = [
        Stage::Receive,
        Stage::Decode,
        Stage::Virus,
        Stage::Spam,
        Stage::Forward,
        Stage::Total,
    ];

    const fn index(self) -> usize {
        match self {
            Stage::Receive => 0,
            Stage::Decode => 1,
            Stage::Virus => 2,
            Stage::Spam => 3,
            Stage::Forward => 4,
            Stage::Total => 5,
        }
    }

    /// The count, sum and bucket counters of this stage.
    pub fn counters(self) -> (Counter, Counter, [Counter; 13]) {
        LATENCY[self.index()]
    }

    /// Lower-case name, for logs and columns.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Receive => "receive",
            Stage::Decode => "decode",
            Stage::Virus => "virus",
            Stage::Spam => "spam",
            Stage::Forward => "forward",
            Stage::Total => "total",
        }
    }
}

/// An external back end whose health is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanner {
    /// The primary clamd.
    Clamd,
    /// The backup clamd list.
    ClamdBackup,
    /// SpamAssassin spamd.
    Spamd,
    /// rspamd.
    Rspamd,
    /// The back-end MTA avisd forwards to.
    Backend,
}

/// How one request to a back end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanResult {
    /// Answered.
    Ok,
    /// Failed (refused, protocol error, error reply).
    Error,
    /// Timed out.
    Timeout,
}

impl Scanner {
    /// Requests, errors, timeouts and the last-latency gauge of this back end.
    pub const fn handles(self) -> (Counter, Counter, Counter, Gauge) {
        match self {
            Scanner::Clamd => (
                Counter::ScannerClamdRequests,
                Counter::ScannerClamdErrors,
                Counter::ScannerClamdTimeouts,
                Gauge::ScannerClamdLastLatencyMs,
            ),
            Scanner::ClamdBackup => (
                Counter::ScannerClamdBackupRequests,
                Counter::ScannerClamdBackupErrors,
                Counter::ScannerClamdBackupTimeouts,
                Gauge::ScannerClamdBackupLastLatencyMs,
            ),
            Scanner::Spamd => (
                Counter::ScannerSpamdRequests,
                Counter::ScannerSpamdErrors,
                Counter::ScannerSpamdTimeouts,
                Gauge::ScannerSpamdLastLatencyMs,
            ),
            Scanner::Rspamd => (
                Counter::ScannerRspamdRequests,
                Counter::ScannerRspamdErrors,
                Counter::ScannerRspamdTimeouts,
                Gauge::ScannerRspamdLastLatencyMs,
            ),
            Scanner::Backend => (
                Counter::ScannerBackendRequests,
                Counter::ScannerBackendErrors,
                Counter::ScannerBackendTimeouts,
                Gauge::ScannerBackendLastLatencyMs,
            ),
        }
    }
}
