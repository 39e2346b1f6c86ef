//! Where frames come from: the scoreboard reader with a short-lived snapshot cache (so a
//! walk sees one instant, like amavisd-snmp-subagent's fast-poll rule), and the MTA
//! figures that a background thread refreshes. Both front ends ask [`Source::frame`];
//! it never blocks for longer than one mmap read.
//!
//! Cache rule: a snapshot is reused while it is younger than [`FRESH`], and also while
//! requests keep arriving less than [`WALK_GAP`] apart (a walk in progress), up to
//! [`WALK_MAX`]. While no scoreboard exists the walk rule is off, so a filter that
//! starts is seen within [`FRESH`]. sysUpTime belongs to the snapshot (it is the
//! instant the snapshot was taken), so it too stands still during a walk. The reader logs once when the filter appears, disappears or the file
//! is recreated (avisd restarted with a new scoreboard).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_mib::{ReadError, Reader, Snapshot, now_ms};

use crate::view::{Frame, MtaValues};

/// A snapshot younger than this is served as is.
pub const FRESH: Duration = Duration::from_secs(1);
/// Requests closer than this keep the snapshot (a walk).
pub const WALK_GAP: Duration = Duration::from_millis(1500);
/// ... but never longer than this.
pub const WALK_MAX: Duration = Duration::from_secs(5);

/// What the reader last saw, so each change is logged once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nothing,
    Missing,
    Incompatible,
    Damaged,
    Io,
    Attached { attach_count: u64, generation: u64 },
}

/// The scoreboard side of the source.
#[derive(Debug)]
struct Cache {
    reader: Reader,
    current: Option<(Arc<Snapshot>, Instant)>,
    last_request: Option<Instant>,
    seen: Seen,
}

/// The shared source of frames.
#[derive(Debug, Clone)]
pub struct Source {
    cache: Arc<Mutex<Cache>>,
    mta: Arc<Mutex<Option<MtaValues>>>,
}

impl Source {
    /// A source reading `reader`; `mta` is shared with the queue scanner (or stays `None`).
    pub fn new(reader: Reader, mta: Arc<Mutex<Option<MtaValues>>>) -> Source {
        Source {
            cache: Arc::new(Mutex::new(Cache {
                reader,
                current: None,
                last_request: None,
                seen: Seen::Nothing,
            })),
            mta,
        }
    }

    /// The frame to answer the current request from.
    pub fn frame(&self) -> Frame {
        let now = Instant::now();
        let snapshot = match self.cache.lock() {
            Ok(mut c) => c.snapshot(now),
            // A panic elsewhere poisoned the lock: serve zeros rather than die.
            Err(_) => Arc::new(Snapshot::empty(now_ms())),
        };
        let mta = self.mta.lock().map_or(None, |m| *m);
        Frame { snapshot, mta }
    }
}

impl Cache {
    fn snapshot(&mut self, now: Instant) -> Arc<Snapshot> {
        let walking = self.last_request.is_some_and(|t| now.duration_since(t) < WALK_GAP);
        self.last_request = Some(now);
        if let Some((snap, taken)) = &self.current {
            let age = now.duration_since(*taken);
            let attached = matches!(self.seen, Seen::Attached { .. });
            if age < FRESH || (walking && attached && age < WALK_MAX) {
                return Arc::clone(snap);
            }
        }
        let snap = Arc::new(self.read());
        self.current = Some((Arc::clone(&snap), now));
        snap
    }

    fn read(&mut self) -> Snapshot {
        let result = self.reader.snapshot();
        let seen = match &result {
            Ok(s) => Seen::Attached {
                attach_count: self.reader.attach_count(),
                generation: s.generation(),
            },
            Err(ReadError::Missing(_)) => Seen::Missing,
            Err(ReadError::Incompatible { .. }) => Seen::Incompatible,
            Err(ReadError::Damaged { .. }) => Seen::Damaged,
            Err(ReadError::Io { .. }) => Seen::Io,
        };
        if seen != self.seen {
            log_change(self.seen, seen, &result, self.reader.path());
            self.seen = seen;
        }
        result.unwrap_or_else(|_| Snapshot::empty(now_ms()))
    }
}

fn log_change(before: Seen, after: Seen, result: &Result<Snapshot, ReadError>, path: &std::path::Path) {
    match (result, after) {
        (
            Ok(s),
            Seen::Attached {
                attach_count,
                generation,
            },
        ) => {
            let what = match before {
                Seen::Attached { attach_count: a, .. } if a != attach_count => {
                    "scoreboard recreated: re-attached; counters and sysUpTime start again"
                }
                Seen::Attached { .. } => "avisd restarted (new writer generation): counters and sysUpTime continue",
                Seen::Nothing | Seen::Missing | Seen::Incompatible | Seen::Damaged | Seen::Io => {
                    "attached to the scoreboard"
                }
            };
            tracing::info!(
                scoreboard = %path.display(),
                writer_pid = s.writer_pid(),
                generation,
                counters_since_ms = s.started_ms(),
                "{what}"
            );
        }
        (Err(e), _) => match after {
            Seen::Missing => tracing::warn!("{e}; serving every object as 0 until it appears"),
            Seen::Incompatible => tracing::error!("{e}; serving every object as 0"),
            // Garbage is never served: every object reads 0 until avisd recreates the file.
            Seen::Damaged => tracing::error!("{e}; every object reads 0 meanwhile"),
            Seen::Io | Seen::Nothing | Seen::Attached { .. } => tracing::warn!("{e}"),
        },
        (Ok(_), Seen::Nothing | Seen::Missing | Seen::Incompatible | Seen::Damaged | Seen::Io) => {}
    }
}

#[cfg(test)]
mod tests {
    use agent_mib::{Counter, Scoreboard, WriterInfo};

    use super::*;

    fn in_msgs(s: &Snapshot) -> u64 {
        s.counter(Counter::InMsgs)
    }

    #[test]
    fn a_walk_sees_one_snapshot_and_a_pause_sees_a_new_one() {
        let path = std::env::temp_dir().join(format!("avis-source-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let info = WriterInfo {
            descr: "t".into(),
            name: "t".into(),
            contact: "t".into(),
            location: "t".into(),
            workers: 1,
        };
        let board = Scoreboard::open(&path, &info).unwrap();
        let mut cache = Cache {
            reader: Reader::new(&path),
            current: None,
            last_request: None,
            seen: Seen::Nothing,
        };
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert_eq!(in_msgs(&cache.snapshot(t0)), 0);
        board.bump(Counter::InMsgs, 1);
        // Requests 400 ms apart: a walk, served from the first instant past FRESH.
        for t in [400, 800, 1200, 1600, 2000] {
            assert_eq!(in_msgs(&cache.snapshot(ms(t))), 0, "at {t} ms");
        }
        // A pause longer than WALK_GAP: the next request sees the new value.
        assert_eq!(in_msgs(&cache.snapshot(ms(3700))), 1);
        // A walk never holds a snapshot longer than WALK_MAX.
        board.bump(Counter::InMsgs, 1);
        let mut t = 3700;
        while t < 3700 + WALK_MAX.as_millis() as u64 + 500 {
            t += 400;
            let _ = cache.snapshot(ms(t));
        }
        assert_eq!(in_msgs(&cache.snapshot(ms(t + 400))), 2);
        drop(board);
        let _ = std::fs::remove_file(&path);
    }
}
