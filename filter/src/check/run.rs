//! Runs every enabled check on one message, once, whatever the number of recipients:
//! decoding on a blocking thread (a panic there is contained and tempfails the message),
//! header and banned checks, then the external virus scanners (always, even past a
//! decoding limit), then the spam scanner
//! unless every recipient is blocked already (amavisd's order and shortcut). Moves the
//! worker slot through D, V and S and records each stage's time.

use std::time::{Duration, Instant};

use agent_mib::{Counter, ScanResult, Scanner, Stage, WorkerSlot, WorkerState};

use super::endpoint::ScanError;
use super::{Outcomes, SpamOutcome, Unchecked, VirusOutcome, headers};
use super::{clamd, rspamd, spamd};
use crate::config::Policy;
use crate::config::checks::Scanners;
use crate::config::recipient::RecipientPolicy;
use crate::decode::{self, Decoded};
use crate::message::Envelope;
use crate::message::spool::Spool;

/// A check stage that failed in a way that must tempfail the message.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Decoding panicked or its thread was lost.
    #[error("decoding failed: {0}")]
    Decoding(String),
    /// The spool could not be read.
    #[error("reading the message: {0}")]
    Spool(#[from] std::io::Error),
}

/// What the checks found and how long they took.
#[derive(Debug)]
pub struct CheckRun {
    /// Outcomes for decide.
    pub outcomes: Outcomes,
    /// The decoded parts tree (None when decoding was not needed).
    pub decoded: Option<Decoded>,
    /// Letters of the checks that ran, amavisd's `checks_performed` order (V S H B).
    pub performed: String,
    /// Decoding time.
    pub decoding: Option<Duration>,
    /// Virus scanning time.
    pub virus: Option<Duration>,
    /// Spam scanning time.
    pub spam: Option<Duration>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs the checks. Gives the spool back (decoding borrows it on another thread).
/// `spam_can_matter` tells, from the outcomes so far, whether a spam verdict could change
/// anything for any recipient (the caller asks decide; check does not).
pub async fn run(
    policy: &Policy,
    slot: &WorkerSlot,
    envelope: &Envelope,
    spool: Spool,
    recipients: &[RecipientPolicy],
    spam_can_matter: &(dyn Fn(&Outcomes) -> bool + Sync),
) -> (Spool, Result<CheckRun, CheckError>) {
    let checks = &policy.checks;
    let all = |f: fn(&RecipientPolicy) -> bool| !recipients.is_empty() && recipients.iter().all(f);
    let mut outcomes = Outcomes {
        oversized: checks.oversize_limit > 0 && spool.len() > checks.oversize_limit,
        ..Outcomes::default()
    };
    let mut performed = String::new();

    // Decode: always (cheap next to scanning, and the event log wants subject and names).
    slot.set_state(WorkerState::Decode);
    let started = Instant::now();
    let size = spool.len();
    let joined = tokio::task::spawn_blocking(move || {
        let decoded = spool
            .bytes()
            .map(|b| decode::decode(&b, decode::Limits::for_size(size)));
        (spool, decoded)
    })
    .await;
    let (spool, decoded) = match joined {
        Ok((spool, Ok(d))) => (spool, d),
        Ok((spool, Err(e))) => return (spool, Err(CheckError::Spool(e))),
        Err(e) => {
            // The spool went down with the thread; the client gets a 4xx and retries.
            let empty = Spool::new(
                crate::message::spool::SpoolConfig {
                    dir: std::env::temp_dir(),
                    memory_threshold: 0,
                },
                "lost",
            );
            return (empty, Err(CheckError::Decoding(e.to_string())));
        }
    };
    let decoding = started.elapsed();
    slot.bump(Counter::OpsDec, 1);
    slot.bump(Counter::TimeElapsedDecoding, ms(decoding));
    slot.observe(Stage::Decode, decoding);
    if decoded.encrypted {
        outcomes.unchecked = Some(Unchecked::Encrypted);
    }
    if let Some(h) = decoded.hold {
        outcomes.unchecked = Some(Unchecked::OverLimits);
        outcomes.hold = Some(h.reason());
    }

    if checks.bad_header_checks && !all(|r| r.bypass_header) {
        let head = spool.head(256 * 1024).unwrap_or_default();
        outcomes.bad_headers = headers::check(&head, envelope.smtputf8, decoded.mime_error);
        performed.push('H');
    }
    if !checks.banned.is_empty() && !all(|r| r.bypass_banned) {
        outcomes.banned = checks.banned.check(&decoded.parts);
        performed.push('B');
    }

    let mut virus_time = None;
    let s = &checks.scanners;
    // The scanners see the message even when a decoding limit tripped: clamd decodes on
    // its own, and a small bomb beside a virus must not buy the virus a pass. The limit
    // marks the message unchecked in addition; decide ranks a virus above unchecked.
    if !s.virus_primary.is_empty() && !all(|r| r.bypass_virus) {
        slot.set_state(WorkerState::Virus);
        let started = Instant::now();
        outcomes.virus = virus_scan(policy, slot, &spool).await;
        let took = started.elapsed();
        slot.bump(Counter::OpsVirusCheck, 1);
        slot.bump(Counter::TimeElapsedVirusCheck, ms(took));
        slot.observe(Stage::Virus, took);
        virus_time = Some(took);
        performed.insert(0, 'V');
    }

    let mut spam_time = None;
    // As amavisd: no spam scan when it could change nothing for anyone.
    let wants_spam = (s.spamd.is_some() || s.rspamd.is_some()) && !all(|r| r.bypass_spam) && spam_can_matter(&outcomes);
    if wants_spam && spool.len() <= s.spam_max_size {
        slot.set_state(WorkerState::Spam);
        let started = Instant::now();
        outcomes.spam = spam_scan(policy, slot, envelope, &spool).await;
        let took = started.elapsed();
        slot.bump(Counter::OpsSpamCheck, 1);
        slot.bump(Counter::TimeElapsedSpamCheck, ms(took));
        slot.observe(Stage::Spam, took);
        spam_time = Some(took);
        let at = usize::from(performed.starts_with('V'));
        performed.insert(at, 'S');
    }
    let run = CheckRun {
        outcomes,
        decoded: Some(decoded),
        performed,
        decoding: Some(decoding),
        virus: virus_time,
        spam: spam_time,
    };
    (spool, Ok(run))
}

async fn virus_scan(policy: &Policy, slot: &WorkerSlot, spool: &Spool) -> VirusOutcome {
    let s = &policy.checks.scanners;
    let cfg = clamd::ClamdConfig {
        primary: s.virus_primary.clone(),
        backup: s.virus_backup.clone(),
        timeout: s.timeout,
        scan_timeout: s.timeout,
    };
    let health = |role: clamd::ScannerRole, result: Result<(), &ScanError>, took: Duration| {
        let scanner = match role {
            clamd::ScannerRole::Primary => Scanner::Clamd,
            clamd::ScannerRole::Backup => Scanner::ClamdBackup,
        };
        let r = match result {
            Ok(()) => ScanResult::Ok,
            Err(e) if e.is_timeout() => ScanResult::Timeout,
            Err(_) => ScanResult::Error,
        };
        slot.scanner(scanner, r, took);
    };
    let verdict = clamd::scan(&cfg, spool, &health).await;
    match verdict {
        Ok(clamd::VirusVerdict::Clean) => VirusOutcome::Clean,
        Ok(clamd::VirusVerdict::Infected(names)) => VirusOutcome::Infected(names),
        Err(e) => {
            tracing::warn!(error = %e, "every virus scanner failed");
            VirusOutcome::Failed(e.to_string())
        }
    }
}

/// The spam scanners in one shape: which one, the counter it reports under, and how it
/// is asked. A new spam scanner is a variant here and a client module beside spamd and
/// rspamd. When both are configured, spamd is asked (the first, as before).
enum SpamScanner {
    Spamd(spamd::SpamdConfig),
    Rspamd(rspamd::RspamdConfig),
}

impl SpamScanner {
    /// The bank's spam scanner, if any.
    fn of(s: &Scanners) -> Option<SpamScanner> {
        if let Some(ep) = &s.spamd {
            return Some(SpamScanner::Spamd(spamd::SpamdConfig {
                endpoint: ep.clone(),
                timeout: s.timeout,
                max_size: s.spam_max_size,
                user: None,
            }));
        }
        s.rspamd.as_ref().map(|ep| {
            SpamScanner::Rspamd(rspamd::RspamdConfig {
                endpoint: ep.clone(),
                timeout: s.timeout,
                max_size: s.spam_max_size,
            })
        })
    }

    /// The scanner its health is counted under.
    fn id(&self) -> Scanner {
        match self {
            SpamScanner::Spamd(_) => Scanner::Spamd,
            SpamScanner::Rspamd(_) => Scanner::Rspamd,
        }
    }

    async fn check(&self, envelope: &Envelope, spool: &Spool) -> Result<spamd::SpamVerdict, ScanError> {
        match self {
            SpamScanner::Spamd(cfg) => spamd::check(cfg, spool).await,
            SpamScanner::Rspamd(cfg) => {
                // rspamd scores with the envelope too (SPF, per-recipient settings).
                let rcpts: Vec<String> = envelope.recipients.iter().map(|r| r.address.clone()).collect();
                let client = envelope.xforward.addr.as_deref();
                rspamd::check(cfg, spool, &envelope.mail_from, &rcpts, client).await
            }
        }
    }
}

async fn spam_scan(policy: &Policy, slot: &WorkerSlot, envelope: &Envelope, spool: &Spool) -> SpamOutcome {
    let Some(scanner) = SpamScanner::of(&policy.checks.scanners) else {
        return SpamOutcome::NotScanned;
    };
    let started = Instant::now();
    let result = scanner.check(envelope, spool).await;
    let health = match &result {
        Ok(_) => ScanResult::Ok,
        Err(e) if e.is_timeout() => ScanResult::Timeout,
        Err(_) => ScanResult::Error,
    };
    slot.scanner(scanner.id(), health, started.elapsed());
    match result {
        Ok(v) => SpamOutcome::Scored {
            score: v.score,
            tests: v.tests,
        },
        Err(e) => {
            tracing::warn!(error = %e, "spam scanner failed; the message is not spam-scored");
            SpamOutcome::Failed(e.to_string())
        }
    }
}
