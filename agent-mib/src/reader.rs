//! The reader side of the scoreboard, for avis-snmp-agent, avis-nanny and avis-agent.
//!
//! Maps the file read-only, validates the header (a reader built from another table
//! refuses with a clear message), re-attaches when avisd recreates the file, and
//! reports "no filter running" when it is missing. Never blocks the writer: slots are
//! read under their seqlock with a bounded number of retries, counters with plain
//! relaxed loads.
//!
//! Never trusts the file either: the header is validated at every snapshot, every word
//! read is checked against what the writer can have written (a known state letter,
//! counts and times in range), and a file that shrank is let go; a damaged file is served
//! as nothing ([`ReadError::Damaged`]) rather than as garbage.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{Ordering, fence};

use crate::layout::{self, MAGIC, Regions, TEXT_WORDS, header, slot};
use crate::map::Words;
use crate::snapshot::{SlotView, Snapshot};
use crate::{Counter, TABLE_HASH, TextField, WorkerState, now_ms};

/// Why no snapshot could be taken.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file does not exist: avisd has never run here, or the path is wrong.
    #[error("no filter running: scoreboard {0} does not exist")]
    Missing(PathBuf),
    /// The file was written by an incompatible build.
    #[error("scoreboard {path} is incompatible with this program: {why}")]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// What differs.
        why: String,
    },
    /// The file holds what no writer writes: truncated, or overwritten by someone else.
    #[error("scoreboard {path} is damaged: {why}; serving nothing until avisd recreates it")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Opening or mapping failed.
    #[error("scoreboard {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct Attached {
    // Kept open to see its size shrink.
    file: File,
    words: Words,
    regions: Regions,
    dev: u64,
    ino: u64,
}

/// A read-only view of a scoreboard file that follows the file across recreation.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    attached: Option<Attached>,
    reattached: u64,
}

/// Seqlock retries of one snapshot (all slots together) before slots are taken as they
/// are. A worker's update lasts nanoseconds, so a reader only gets this far when a writer
/// thread was descheduled mid-update, or when the file is not a live scoreboard.
const SLOT_RETRIES: usize = 100_000;

impl Reader {
    /// A reader of `path`; nothing is opened until the first snapshot.
    pub fn new(path: impl Into<PathBuf>) -> Reader {
        Reader {
            path: path.into(),
            attached: None,
            reattached: 0,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times the reader mapped a new file (1 after the first snapshot).
    pub fn attach_count(&self) -> u64 {
        self.reattached
    }

    /// Takes a snapshot, mapping the file first if it is new or was recreated.
    pub fn snapshot(&mut self) -> Result<Snapshot, ReadError> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.attached = None;
                return Err(ReadError::Missing(self.path.clone()));
            }
            Err(source) => {
                return Err(ReadError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let same = self
            .attached
            .as_ref()
            .is_some_and(|a| a.dev == meta.dev() && a.ino == meta.ino());
        if !same {
            self.attached = None;
            self.attached = Some(self.attach()?);
            self.reattached += 1;
        }
        let checked = match &self.attached {
            Some(a) => check(a).and_then(|()| read(a)),
            None => return Err(ReadError::Missing(self.path.clone())),
        };
        checked.map_err(|why| {
            // Map it afresh next time: avisd may have repaired it in place.
            self.attached = None;
            ReadError::Damaged {
                path: self.path.clone(),
                why,
            }
        })
    }

    fn attach(&self) -> Result<Attached, ReadError> {
        let io = |source| ReadError::Io {
            path: self.path.clone(),
            source,
        };
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Missing(self.path.clone())),
            Err(e) => return Err(io(e)),
        };
        let meta = file.metadata().map_err(io)?;
        let words = Words::map_ro(&file).map_err(io)?;
        let regions = validate(&words).map_err(|why| ReadError::Incompatible {
            path: self.path.clone(),
            why,
        })?;
        Ok(Attached {
            file,
            words,
            regions,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

fn validate(words: &Words) -> Result<Regions, String> {
    let h = |i: usize| words.get(i).map_or(0, |w| w.load(Ordering::Relaxed));
    if words.len() < layout::HEADER_WORDS || h(header::MAGIC) != MAGIC {
        return Err("not an avis scoreboard (bad magic or too short)".into());
    }
    if h(header::LAYOUT_VERSION) != layout::LAYOUT_VERSION {
        return Err(format!(
            "layout version {} but this program reads {}; upgrade avisd and the monitors together",
            h(header::LAYOUT_VERSION),
            layout::LAYOUT_VERSION
        ));
    }
    if h(header::TABLE_HASH) != TABLE_HASH {
        return Err(format!(
            "MIB table hash {:#018x} but this program was built from {:#018x}; the writer and this reader come from different builds",
            h(header::TABLE_HASH),
            TABLE_HASH
        ));
    }
    let size = |i: usize| usize::try_from(h(i)).unwrap_or(usize::MAX);
    let regions = Regions::new(
        size(header::N_COUNTERS),
        size(header::COUNTER_STRIDE),
        size(header::N_GAUGES),
        size(header::N_SLOTS),
        size(header::SLOT_WORDS),
        size(header::VIRUS_ENTRIES),
    )
    .ok_or("header sizes overflow")?;
    if regions.n_counters != crate::COUNTER_COUNT || regions.n_gauges != crate::GAUGE_COUNT {
        return Err("counter or gauge count differs from the table".into());
    }
    if regions.slot_words < layout::SLOT_WORDS || regions.counter_stride < regions.n_counters {
        return Err("slot or shard size smaller than this program expects".into());
    }
    if words.len() < regions.total_words {
        return Err(format!(
            "file holds {} words, header needs {}",
            words.len(),
            regions.total_words
        ));
    }
    Ok(regions)
}

/// The attached file is still whole and its header still the one we validated.
fn check(a: &Attached) -> Result<(), String> {
    let len = a.file.metadata().map_err(|e| e.to_string())?.len();
    let wanted = (a.regions.total_words * 8) as u64;
    if len < wanted || a.words.faults() > 0 {
        return Err(format!(
            "it shrank to {len} bytes, {wanted} expected (truncated under us)"
        ));
    }
    match validate(&a.words) {
        Ok(r) if r == a.regions => Ok(()),
        Ok(_) => Err("its header changed in place".into()),
        Err(why) => Err(format!("its header was overwritten: {why}")),
    }
}

/// No counter of a real filter gets near this (an exabyte, or 36 million years in ms);
/// random bytes exceed it with probability 15/16 per word.
const COUNT_LIMIT: u64 = 1 << 60;
/// How far in the future a time may lie (clock steps) before it reads as garbage.
const FUTURE_SLACK_MS: u64 = 366 * 86_400_000;

fn in_range(what: &str, v: u64, max: u64) -> Result<u64, String> {
    if v <= max {
        Ok(v)
    } else {
        Err(format!("{what} holds {v:#x}, beyond anything avisd writes"))
    }
}

fn load(words: &Words, i: usize) -> u64 {
    words.get(i).map_or(0, |w| w.load(Ordering::Relaxed))
}

fn read_text(words: &Words, base: usize, n: usize) -> String {
    let mut bytes = Vec::with_capacity(n * 8);
    for i in 0..n {
        bytes.extend_from_slice(&load(words, base + i).to_le_bytes());
    }
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Received, then every outcome: what is read inside a slot's seqlock.
const LEDGER: [Counter; 7] = {
    let o = crate::snapshot::LEDGER_OUTCOMES;
    [Counter::LedgerReceived, o[0], o[1], o[2], o[3], o[4], o[5]]
};

fn read(a: &Attached) -> Result<Snapshot, String> {
    let (w, r) = (&a.words, &a.regions);
    let count = |what: &str, i: usize| in_range(what, load(w, i), COUNT_LIMIT);
    let latest = now_ms().saturating_add(FUTURE_SLACK_MS);
    let generation = count("the writer generation", header::GENERATION)?;
    let limits = Limits { latest, generation };
    let mut counters = vec![0u64; r.n_counters];
    for shard in 0..=r.n_slots {
        for (c, total) in counters.iter_mut().enumerate() {
            *total = total.wrapping_add(count("a counter", r.counter(shard, c))?);
        }
    }
    let gauges = (0..r.n_gauges).map(|g| load(w, r.gauges + g)).collect();

    // The ledger is read per slot inside the slot's seqlock, together with the slot's
    // in-flight count, so received = outcomes + in flight holds in every snapshot.
    let mut ledger = [0u64; LEDGER.len()];
    for (i, c) in LEDGER.iter().enumerate() {
        ledger[i] = load(w, r.counter(0, *c as usize));
    }
    let mut slots = Vec::with_capacity(r.n_slots);
    let mut budget = SLOT_RETRIES;
    for s in 0..r.n_slots {
        let (view, shard_ledger) = read_slot(w, r, s, &limits, &mut budget)?;
        for (total, v) in ledger.iter_mut().zip(shard_ledger) {
            *total = total.wrapping_add(v);
        }
        slots.push(view);
    }
    for (i, c) in LEDGER.iter().enumerate() {
        counters[*c as usize] = ledger[i];
    }

    let mut viruses = Vec::new();
    for e in 0..r.n_viruses {
        let n = count("a virus count", r.virus(e, layout::VIRUS_ENTRY_WORDS - 1))?;
        fence(Ordering::Acquire);
        if n > 0 {
            viruses.push((read_text(w, r.virus(e, 0), layout::VIRUS_ENTRY_WORDS - 1), n));
        }
    }
    let pid = in_range("the writer pid", load(w, header::WRITER_PID), u64::from(u32::MAX))?;
    let attached = in_range("the attached flag", load(w, header::ATTACHED), 1)? == 1;
    let texts = TextField::ALL.map(|f| read_text(w, header::TEXT + f as usize * TEXT_WORDS, TEXT_WORDS));
    Ok(Snapshot::new(crate::snapshot::SnapshotParts {
        taken_ms: now_ms(),
        started_ms: in_range("the start time", load(w, header::STARTED_MS), latest)?,
        writer_pid: u32::try_from(pid).unwrap_or(0),
        generation,
        heartbeat_ms: in_range("the heartbeat", load(w, header::HEARTBEAT_MS), latest)?,
        writer_alive: attached && pid != 0 && Path::new(&format!("/proc/{pid}")).exists(),
        texts,
        counters,
        gauges,
        slots,
    })
    .with_viruses(viruses))
}

/// What a slot's words may hold.
struct Limits {
    latest: u64,
    generation: u64,
}

/// Reads slot `s` under its seqlock. Every word is checked at every attempt: the writer
/// stores whole valid words even mid-update, so an invalid one is damage, not a race.
/// `budget` bounds the retries of the whole snapshot.
fn read_slot(
    w: &Words,
    r: &Regions,
    s: usize,
    limits: &Limits,
    budget: &mut usize,
) -> Result<(SlotView, [u64; LEDGER.len()]), String> {
    let word = |i: usize| load(w, r.slot(s, i));
    let count = |what: &str, i: usize| in_range(what, word(i), COUNT_LIMIT);
    let time = |what: &str, i: usize| in_range(what, word(i), limits.latest);
    loop {
        let seq = word(slot::SEQ);
        fence(Ordering::Acquire);
        let code = in_range("a worker state", word(slot::STATE), u64::from(u8::MAX))?;
        let state = u8::try_from(code)
            .ok()
            .and_then(WorkerState::from_code)
            .ok_or_else(|| format!("slot {s} holds the unknown state {code:#x}"))?;
        let view = SlotView {
            index: s,
            state,
            state_since_ms: time("a state time", slot::STATE_SINCE_MS)?,
            busy_since_ms: time("a busy time", slot::BUSY_SINCE_MS)?,
            msgs_done: count("a message count", slot::MSGS_DONE)?,
            generation: in_range("a slot generation", word(slot::GENERATION), limits.generation)?,
            in_flight: in_range("an in-flight count", word(slot::IN_FLIGHT), MAX_IN_FLIGHT)?,
            connections: count("a connection count", slot::CONNECTIONS)?,
            mail_id: read_text(w, r.slot(s, slot::MAIL_ID), slot::ID_WORDS),
            queue_id: read_text(w, r.slot(s, slot::QUEUE_ID), slot::ID_WORDS),
        };
        let ledger = LEDGER.map(|c| load(w, r.counter(s + 1, c as usize)));
        fence(Ordering::Acquire);
        if (seq % 2 == 0 && word(slot::SEQ) == seq) || *budget == 0 {
            return Ok((view, ledger));
        }
        *budget -= 1;
        if (*budget).is_multiple_of(64) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// A worker holds one message at a time; a reconciled slot may briefly show a few more.
const MAX_IN_FLIGHT: u64 = 1 << 16;
