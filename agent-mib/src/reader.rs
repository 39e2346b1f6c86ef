//! The reader side of the scoreboard, for avis-snmp-agent, avis-nanny and avis-agent.
//!
//! Maps the file read-only, validates the header (a reader built from another table
//! refuses with a clear message), re-attaches when avisd recreates the file, and
//! reports "no filter running" when it is missing. Never blocks the writer: slots are
//! read under their seqlock with a bounded number of retries, counters with plain
//! relaxed loads.

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

/// Seqlock retries before a slot is taken as it is. A worker's update lasts nanoseconds,
/// so a reader only gets this far when a writer thread was descheduled mid-update.
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
        match &self.attached {
            Some(a) => Ok(read(a)),
            None => Err(ReadError::Missing(self.path.clone())),
        }
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

fn read(a: &Attached) -> Snapshot {
    let (w, r) = (&a.words, &a.regions);
    let mut counters = vec![0u64; r.n_counters];
    for shard in 0..=r.n_slots {
        for (c, total) in counters.iter_mut().enumerate() {
            *total = total.wrapping_add(load(w, r.counter(shard, c)));
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
    for s in 0..r.n_slots {
        let (view, shard_ledger) = read_slot(w, r, s);
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
        let count = load(w, r.virus(e, layout::VIRUS_ENTRY_WORDS - 1));
        fence(Ordering::Acquire);
        if count > 0 {
            viruses.push((read_text(w, r.virus(e, 0), layout::VIRUS_ENTRY_WORDS - 1), count));
        }
    }
    let pid = load(w, header::WRITER_PID);
    let attached = load(w, header::ATTACHED) == 1;
    let texts = TextField::ALL.map(|f| read_text(w, header::TEXT + f as usize * TEXT_WORDS, TEXT_WORDS));
    Snapshot::new(crate::snapshot::SnapshotParts {
        taken_ms: now_ms(),
        started_ms: load(w, header::STARTED_MS),
        writer_pid: u32::try_from(pid).unwrap_or(0),
        generation: load(w, header::GENERATION),
        heartbeat_ms: load(w, header::HEARTBEAT_MS),
        writer_alive: attached && pid != 0 && Path::new(&format!("/proc/{pid}")).exists(),
        texts,
        counters,
        gauges,
        slots,
    })
    .with_viruses(viruses)
}

fn read_slot(w: &Words, r: &Regions, s: usize) -> (SlotView, [u64; LEDGER.len()]) {
    let word = |i: usize| load(w, r.slot(s, i));
    let mut attempt = 0;
    loop {
        let seq = word(slot::SEQ);
        fence(Ordering::Acquire);
        let state_code = word(slot::STATE) as u8;
        let view = SlotView {
            index: s,
            state: WorkerState::from_code(state_code).unwrap_or(WorkerState::Unused),
            state_since_ms: word(slot::STATE_SINCE_MS),
            busy_since_ms: word(slot::BUSY_SINCE_MS),
            msgs_done: word(slot::MSGS_DONE),
            generation: word(slot::GENERATION),
            in_flight: word(slot::IN_FLIGHT),
            connections: word(slot::CONNECTIONS),
            mail_id: read_text(w, r.slot(s, slot::MAIL_ID), slot::ID_WORDS),
            queue_id: read_text(w, r.slot(s, slot::QUEUE_ID), slot::ID_WORDS),
        };
        let ledger = LEDGER.map(|c| load(w, r.counter(s + 1, c as usize)));
        fence(Ordering::Acquire);
        attempt += 1;
        if (seq % 2 == 0 && word(slot::SEQ) == seq) || attempt >= SLOT_RETRIES {
            return (view, ledger);
        }
        if attempt % 64 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}
