//! The amavisMta gauges: entries in Postfix's maildrop, incoming, active and deferred
//! queues, counted as amavisd-snmp-subagent counts them (recursing only into the
//! one-character hashed subdirectories, every other entry counts 1), plus our own
//! oldest-message age (seconds since the oldest file in active + deferred was modified).
//!
//! A background thread scans every [`REFRESH`] with a time bound of [`DEADLINE`] per
//! scan (a partial count is published, with a warning), so no request ever waits for a
//! disk. If the queue directory cannot be read at start, the subtree is not served at
//! all (amavisd does the same: it does not register it), and the agent says so once.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::view::MtaValues;

/// How often the queues are counted (amavisd's TTL for them).
pub const REFRESH: Duration = Duration::from_secs(18);
/// Time bound of one scan.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// The queues, in MIB order.
pub const QUEUES: [&str; 4] = ["maildrop", "incoming", "active", "deferred"];

/// Why the MTA subtree is not served.
#[derive(Debug, thiserror::Error)]
pub enum MtaError {
    /// `postconf` could not tell us the queue directory.
    #[error("cannot run `postconf -h queue_directory`: {0}")]
    Postconf(String),
    /// The queue is not readable (Postfix queues are mode 0700 for user postfix).
    #[error("queue directory {path} is not readable: {source}")]
    Unreadable {
        /// The directory tried.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Asks Postfix where its queue lives, as amavisd does.
pub fn postconf_queue_directory() -> Result<PathBuf, MtaError> {
    for dir in ["/usr/sbin", "/usr/local/sbin", "/opt/postfix/sbin"] {
        let exe = Path::new(dir).join("postconf");
        if !exe.is_file() {
            continue;
        }
        let out = std::process::Command::new(&exe)
            .args(["-h", "queue_directory"])
            .output()
            .map_err(|e| MtaError::Postconf(e.to_string()))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !text.is_empty() {
            return Ok(PathBuf::from(text));
        }
        return Err(MtaError::Postconf(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Err(MtaError::Postconf("postconf not found".to_string()))
}

/// Checks that the queue can be read (the `active` queue is opened, as amavisd tests).
pub fn check_readable(qdir: &Path) -> Result<(), MtaError> {
    let active = qdir.join("active");
    fs::read_dir(&active)
        .map(|_| ())
        .map_err(|source| MtaError::Unreadable { path: active, source })
}

/// One scan of the four queues, bounded by `deadline`; `true` in the second field when
/// the scan ran out of time and the counts are partial.
pub fn scan(qdir: &Path, deadline: Duration) -> (MtaValues, bool) {
    let until = Instant::now() + deadline;
    let now = SystemTime::now();
    let mut values = MtaValues::default();
    let mut oldest: Option<SystemTime> = None;
    let mut partial = false;
    for (i, q) in QUEUES.iter().enumerate() {
        let track_age = i >= 2;
        let mut n = 0u64;
        partial |= count(&qdir.join(q), true, until, &mut n, track_age.then_some(&mut oldest));
        values.entries[i] = n;
    }
    values.oldest_age_s = oldest
        .and_then(|t| now.duration_since(t).ok())
        .map_or(0, |d| d.as_secs());
    (values, partial)
}

/// Counts entries under `dir`; returns `true` when the deadline cut it short.
fn count(dir: &Path, top: bool, until: Instant, n: &mut u64, mut oldest: Option<&mut Option<SystemTime>>) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    for entry in entries.flatten() {
        if Instant::now() >= until {
            return true;
        }
        let name = entry.file_name();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if top && is_dir && name.len() == 1 {
            // Postfix's hashed queue: one level of one-character subdirectories (or more).
            if count(&entry.path(), true, until, n, oldest.as_deref_mut()) {
                return true;
            }
            continue;
        }
        *n += 1;
        if let Some(o) = oldest.as_deref_mut()
            && let Ok(m) = entry.metadata().and_then(|m| m.modified())
        {
            *o = Some(o.map_or(m, |old| old.min(m)));
        }
    }
    false
}

/// Starts the scanner thread; the returned slot holds the latest figures.
pub fn start(qdir: PathBuf) -> Arc<Mutex<Option<MtaValues>>> {
    let (first, _) = scan(&qdir, DEADLINE);
    let slot = Arc::new(Mutex::new(Some(first)));
    let shared = Arc::clone(&slot);
    let spawned = std::thread::Builder::new().name("mta-scan".into()).spawn(move || {
        loop {
            std::thread::sleep(REFRESH);
            let (v, partial) = scan(&qdir, DEADLINE);
            if partial {
                tracing::warn!(queue = %qdir.display(), "queue scan ran past {DEADLINE:?}; publishing partial counts");
            }
            if let Ok(mut s) = shared.lock() {
                *s = Some(v);
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the queue scanner: {e}; queue gauges stay at their first values");
    }
    slot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_subdirectories_are_recursed_and_other_entries_count_once() {
        let root = std::env::temp_dir().join(format!("avis-mta-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for q in QUEUES {
            fs::create_dir_all(root.join(q)).unwrap();
        }
        fs::create_dir_all(root.join("deferred/A")).unwrap();
        fs::write(root.join("deferred/A/1234ABC"), b"x").unwrap();
        fs::write(root.join("deferred/A/1234ABD"), b"x").unwrap();
        fs::create_dir_all(root.join("active/longname")).unwrap();
        fs::write(root.join("active/1234ABE"), b"x").unwrap();
        fs::write(root.join("maildrop/x"), b"x").unwrap();
        check_readable(&root).unwrap();
        let (v, partial) = scan(&root, DEADLINE);
        assert!(!partial);
        assert_eq!(v.entries, [1, 0, 2, 2]);
        fs::remove_dir_all(&root).unwrap();
    }
}
