//! The writer side of the scoreboard, used by avisd only.
//!
//! avisd creates the file or re-attaches to a compatible one (counters go on counting
//! across restarts), holds an exclusive lock on it while it runs (a second avisd on the
//! same file refuses to start), and hands one [`WorkerSlot`] to each worker. A worker
//! bumps counters in its own shard, so workers never contend on a cache line.
//!
//! The file itself (creation, modes, planted symlinks, a full disk) is `file`'s business;
//! avisd calls [`Scoreboard::check_file`] on its one-second tick, which notices a file
//! truncated, removed or replaced under it and puts a fresh one with the current figures
//! in its place.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::file::{self, Access, FileError, Fresh, Identity};
use crate::handles::{LATENCY_BOUNDS_MS, Outcome, ScanResult, Scanner, Stage};
use crate::layout::{self, MAGIC, Regions, TEXT_WORDS, header, slot};
use crate::map::Words;
use crate::{Counter, Gauge, TABLE_HASH, TextField, WorkerState, now_ms};

/// Why the scoreboard could not be opened for writing.
#[derive(Debug, thiserror::Error)]
pub enum ScoreboardError {
    /// Another live avisd holds the file.
    #[error(
        "scoreboard {path} is held by another running avisd (pid {pid}); stop it first or use another --scoreboard"
    )]
    Busy {
        /// The file.
        path: PathBuf,
        /// The pid the header names.
        pid: u64,
    },
    /// More workers were asked for than the layout has slots.
    #[error("max_servers {asked} exceeds the scoreboard's {max} worker slots")]
    TooManyWorkers {
        /// Requested.
        asked: usize,
        /// Available.
        max: usize,
    },
    /// The filesystem would not reserve the file's blocks: most often a full disk.
    #[error("cannot reserve the scoreboard's blocks at {path}: {source}; free space on its filesystem")]
    Allocate {
        /// The file.
        path: PathBuf,
        /// The cause (ENOSPC on a full disk).
        source: std::io::Error,
    },
    /// Creating, locking or mapping failed.
    #[error("scoreboard {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What avisd writes into the header when it attaches.
#[derive(Debug, Clone, Default)]
pub struct WriterInfo {
    /// sysDescr: program and version.
    pub descr: String,
    /// sysName.
    pub name: String,
    /// sysContact.
    pub contact: String,
    /// sysLocation.
    pub location: String,
    /// Worker slots to mark idle (`max_servers`).
    pub workers: usize,
}

/// The scoreboard as avisd holds it: mapped read-write and locked.
#[derive(Debug)]
pub struct Scoreboard {
    words: Words,
    regions: Regions,
    taken: Vec<AtomicBool>,
    // Serialises inserting a new virus name; counting a known one takes no lock.
    virus_insert: std::sync::Mutex<()>,
    generation: u64,
    path: PathBuf,
    access: Access,
    texts: [String; 4],
    held: Mutex<Held>,
}

/// The file behind the mapping, as the writer last made sure of it.
#[derive(Debug)]
struct Held {
    // Held for the flock; closing the file would drop the lock.
    file: File,
    id: Identity,
    faults_seen: u64,
}

/// What [`Scoreboard::check_file`] found.
#[derive(Debug)]
pub enum FileCheck {
    /// The path still names the file we map, whole.
    Fine,
    /// The file was damaged or taken away; a fresh one holds the current figures now.
    Recreated(Damage),
    /// The file was damaged or taken away and could not be recreated (tried again at the
    /// next check); counting goes on in memory.
    Failed(Damage, String),
}

/// What happened to the file under the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// It shrank (pages mapped past its end read as zeros from then on: those counters
    /// restarted).
    Truncated,
    /// The path names another file (replaced by rename).
    Replaced,
    /// The path names nothing.
    Removed,
}

impl std::fmt::Display for FileCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = |d: &Damage| match d {
            Damage::Truncated => "the scoreboard was truncated under avisd (counters on the lost pages restarted)",
            Damage::Replaced => "the scoreboard was replaced by another file under avisd",
            Damage::Removed => "the scoreboard was removed under avisd",
        };
        match self {
            FileCheck::Fine => f.write_str("the scoreboard is intact"),
            FileCheck::Recreated(d) => write!(f, "{}; recreated it with the current figures", what(d)),
            FileCheck::Failed(d, e) => write!(
                f,
                "{}; cannot recreate it ({e}); counting in memory, monitors see nothing until it is back",
                what(d)
            ),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ScoreboardError + '_ {
    move |source| ScoreboardError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn file_err(path: &Path, file: Option<&File>) -> impl FnOnce(FileError) -> ScoreboardError {
    let pid = file.map_or(0, held_by);
    let path = path.to_path_buf();
    move |e| match e {
        FileError::Locked => ScoreboardError::Busy { path, pid },
        FileError::Allocate(source) => ScoreboardError::Allocate { path, source },
        FileError::Io(source) => ScoreboardError::Io { path, source },
    }
}

impl Scoreboard {
    /// Creates the file at `path`, or re-attaches to a compatible one so counters keep
    /// counting. Refuses while another live avisd holds it. Clears the worker slots,
    /// counting what the previous writer left in flight as temp-failed (the sender never
    /// got a 2xx for it and will retry) and its busy workers as gone.
    pub fn open(path: &Path, info: &WriterInfo) -> Result<Arc<Scoreboard>, ScoreboardError> {
        Scoreboard::open_with_group(path, info, None)
    }

    /// [`Scoreboard::open`], with the file in the monitoring group `group` (a gid; `None`
    /// keeps the daemon's group). Either way the file is mode 0640.
    pub fn open_with_group(
        path: &Path,
        info: &WriterInfo,
        group: Option<u32>,
    ) -> Result<Arc<Scoreboard>, ScoreboardError> {
        let regions = Regions::current();
        let access = Access { group };
        if info.workers > regions.n_slots {
            return Err(ScoreboardError::TooManyWorkers {
                asked: info.workers,
                max: regions.n_slots,
            });
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io_err(path))?;
        }
        let (file, words) = match file::open_existing(path).map_err(io_err(path))? {
            Some(file) => {
                file::lock(&file).map_err(file_err(path, Some(&file)))?;
                let words = Words::map_rw(&file).map_err(io_err(path))?;
                if compatible(&words, &regions) {
                    file::prepare(&file, byte_len(&regions), access).map_err(file_err(path, None))?;
                    (file, words)
                } else {
                    // Keep the old file locked until the new one is in place.
                    let fresh = create(path, &regions, access)?;
                    drop((file, words));
                    fresh
                }
            }
            None => create(path, &regions, access)?,
        };
        let w = |i: usize| words.get(i);
        let generation = w(header::GENERATION).map_or(0, |g| g.load(Ordering::Relaxed)) + 1;
        let board = Scoreboard {
            taken: (0..regions.n_slots).map(|_| AtomicBool::new(false)).collect(),
            virus_insert: std::sync::Mutex::new(()),
            words,
            regions,
            generation,
            path: path.to_path_buf(),
            access,
            texts: [&info.descr, &info.name, &info.contact, &info.location].map(|t| t.clone()),
            held: Mutex::new(Held {
                id: file::Identity::of(&file).map_err(io_err(path))?,
                file,
                faults_seen: 0,
            }),
        };
        board.reconcile_previous_writer();
        board.set_header(header::WRITER_PID, u64::from(std::process::id()));
        board.set_header(header::GENERATION, generation);
        board.set_header(header::HEARTBEAT_MS, now_ms());
        for (field, text) in TextField::ALL.into_iter().zip(&board.texts) {
            board.set_text(field, text);
        }
        let now = now_ms();
        for s in 0..board.regions.n_slots {
            let state = if s < info.workers {
                WorkerState::Idle
            } else {
                WorkerState::Unused
            };
            board.write_slot(s, |b| {
                b.slot_word(s, slot::STATE)
                    .store(u64::from(state.code()), Ordering::Relaxed);
                b.slot_word(s, slot::STATE_SINCE_MS).store(now, Ordering::Relaxed);
                b.slot_word(s, slot::BUSY_SINCE_MS).store(now, Ordering::Relaxed);
                b.slot_word(s, slot::GENERATION).store(generation, Ordering::Relaxed);
                b.clear_ids(s);
            });
        }
        board.set_header(header::ATTACHED, 1);
        Ok(Arc::new(board))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This writer's generation (attach count).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Unix ms when the counters started.
    pub fn started_ms(&self) -> u64 {
        self.word(header::STARTED_MS).load(Ordering::Relaxed)
    }

    /// Tells readers the writer is alive; call about once a second.
    pub fn heartbeat(&self) {
        self.set_header(header::HEARTBEAT_MS, now_ms());
    }

    /// Adds `n` to a daemon-level counter (shard 0), for events outside any worker.
    pub fn bump(&self, c: Counter, n: u64) {
        self.counter_word(0, c).fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a stored gauge.
    pub fn set_gauge(&self, g: Gauge, v: u64) {
        if let Some(w) = self.words.get(self.regions.gauges + g as usize) {
            w.store(v, Ordering::Relaxed);
        }
    }

    /// Counts one message in which `name` was found (amavisd's `virus.byname.<name>`).
    pub fn count_virus(&self, name: &str) {
        let r = &self.regions;
        let name_words = layout::VIRUS_ENTRY_WORDS - 1;
        let mut wanted = vec![0u8; name_words * 8];
        let n = name.len().min(wanted.len() - 1);
        wanted[..n].copy_from_slice(&name.as_bytes()[..n]);
        let entry_is = |e: usize, bytes: &[u8]| {
            (0..name_words).all(|i| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
                self.word(r.virus(e, i)).load(Ordering::Relaxed) == u64::from_le_bytes(b)
            })
        };
        let count = |e: usize| self.word(r.virus(e, name_words));
        for e in 0..r.n_viruses {
            if count(e).load(Ordering::Acquire) > 0 && entry_is(e, &wanted) {
                count(e).fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let _guard = self.virus_insert.lock();
        let last = r.n_viruses.saturating_sub(1);
        for e in 0..r.n_viruses {
            let used = count(e).load(Ordering::Acquire) > 0;
            if used && entry_is(e, &wanted) {
                count(e).fetch_add(1, Ordering::Relaxed);
                return;
            }
            if !used {
                let text = if e == last { b"(other)".as_slice() } else { &wanted[..n] };
                store_bytes(|i| self.word(r.virus(e, i)), name_words, text);
                count(e).store(1, Ordering::Release);
                return;
            }
        }
        count(last).fetch_add(1, Ordering::Relaxed);
    }

    /// Takes worker slot `index` for the caller alone; `None` if out of range or taken.
    pub fn take_slot(self: &Arc<Self>, index: usize) -> Option<WorkerSlot> {
        let flag = self.taken.get(index)?;
        if flag.swap(true, Ordering::AcqRel) {
            return None;
        }
        let slot = WorkerSlot {
            board: Arc::clone(self),
            index,
        };
        slot.set_state_reset(WorkerState::Idle);
        Some(slot)
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        // Indices are computed from our own regions, always in bounds of our own file.
        self.words.get(i).unwrap_or(&DUMMY)
    }

    fn set_header(&self, i: usize, v: u64) {
        self.word(i).store(v, Ordering::Relaxed);
    }

    fn counter_word(&self, shard: usize, c: Counter) -> &AtomicU64 {
        self.word(self.regions.counter(shard, c as usize))
    }

    fn slot_word(&self, s: usize, w: usize) -> &AtomicU64 {
        self.word(self.regions.slot(s, w))
    }

    fn set_text(&self, field: TextField, text: &str) {
        let base = header::TEXT + field as usize * TEXT_WORDS;
        store_bytes(|i| self.word(base + i), TEXT_WORDS, text.as_bytes());
    }

    fn clear_ids(&self, s: usize) {
        for i in 0..slot::ID_WORDS {
            self.slot_word(s, slot::MAIL_ID + i).store(0, Ordering::Relaxed);
            self.slot_word(s, slot::QUEUE_ID + i).store(0, Ordering::Relaxed);
        }
    }

    /// Changes slot `s` inside its seqlock, so readers see all of the change or none.
    fn write_slot(&self, s: usize, f: impl FnOnce(&Self)) {
        let seq = self.slot_word(s, slot::SEQ);
        let start = seq.load(Ordering::Relaxed);
        seq.store(start.wrapping_add(1) | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        f(self);
        seq.store((start | 1).wrapping_add(1), Ordering::Release);
    }

    fn reconcile_previous_writer(&self) {
        for s in 0..self.regions.n_slots {
            let in_flight = self.slot_word(s, slot::IN_FLIGHT).load(Ordering::Relaxed);
            let state = WorkerState::from_code(self.slot_word(s, slot::STATE).load(Ordering::Relaxed) as u8);
            let busy = state.is_some_and(|st| st != WorkerState::Unused && !st.is_idle_letter());
            if busy {
                self.bump(Counter::ProcGone, 1);
            }
            if in_flight > 0 {
                self.write_slot(s, |b| {
                    b.counter_word(s + 1, Counter::LedgerTempFailed)
                        .fetch_add(in_flight, Ordering::Relaxed);
                    b.slot_word(s, slot::IN_FLIGHT).store(0, Ordering::Relaxed);
                });
            }
        }
    }
}

impl Drop for Scoreboard {
    fn drop(&mut self) {
        let now = now_ms();
        for s in 0..self.regions.n_slots {
            self.write_slot(s, |b| {
                b.slot_word(s, slot::STATE)
                    .store(u64::from(WorkerState::Unused.code()), Ordering::Relaxed);
                b.slot_word(s, slot::STATE_SINCE_MS).store(now, Ordering::Relaxed);
            });
        }
        self.set_header(header::ATTACHED, 0);
    }
}

static DUMMY: AtomicU64 = AtomicU64::new(0);

fn store_bytes<'a>(word: impl Fn(usize) -> &'a AtomicU64, words: usize, bytes: &[u8]) {
    let max = words * 8 - 1; // keep a NUL at the end
    let mut cut = bytes.len().min(max);
    while cut > 0 && cut < bytes.len() && (bytes[cut] & 0xC0) == 0x80 {
        cut -= 1; // never split a UTF-8 sequence
    }
    let mut buf = vec![0u8; words * 8];
    buf[..cut].copy_from_slice(&bytes[..cut]);
    for (i, chunk) in buf.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        word(i).store(u64::from_le_bytes(b), Ordering::Relaxed);
    }
}

/// The pid the header of a locked file names, for the "held by" message.
fn held_by(file: &File) -> u64 {
    Words::map_ro(file)
        .ok()
        .and_then(|w| w.get(header::WRITER_PID).map(|p| p.load(Ordering::Relaxed)))
        .unwrap_or(0)
}

fn byte_len(regions: &Regions) -> u64 {
    (regions.total_words * 8) as u64
}

fn compatible(words: &Words, regions: &Regions) -> bool {
    let h = |i: usize| words.get(i).map(|w| w.load(Ordering::Relaxed));
    words.len() >= regions.total_words
        && h(header::MAGIC) == Some(MAGIC)
        && h(header::LAYOUT_VERSION) == Some(layout::LAYOUT_VERSION)
        && h(header::TABLE_HASH) == Some(TABLE_HASH)
        && h(header::N_COUNTERS) == Some(regions.n_counters as u64)
        && h(header::COUNTER_STRIDE) == Some(regions.counter_stride as u64)
        && h(header::N_GAUGES) == Some(regions.n_gauges as u64)
        && h(header::N_SLOTS) == Some(regions.n_slots as u64)
        && h(header::SLOT_WORDS) == Some(regions.slot_words as u64)
        && h(header::VIRUS_ENTRIES) == Some(regions.n_viruses as u64)
}

/// The header words that describe the layout (all but the magic and the writer's own).
fn layout_words(regions: &Regions) -> [(usize, u64); 8] {
    [
        (header::LAYOUT_VERSION, layout::LAYOUT_VERSION),
        (header::TABLE_HASH, TABLE_HASH),
        (header::N_COUNTERS, regions.n_counters as u64),
        (header::COUNTER_STRIDE, regions.counter_stride as u64),
        (header::N_GAUGES, regions.n_gauges as u64),
        (header::N_SLOTS, regions.n_slots as u64),
        (header::SLOT_WORDS, regions.slot_words as u64),
        (header::VIRUS_ENTRIES, regions.n_viruses as u64),
    ]
}

/// Builds a new file beside `path`, fills the header (magic last) and renames it into
/// place, so a reader never sees a half-made header.
fn create(path: &Path, regions: &Regions, access: Access) -> Result<(File, Words), ScoreboardError> {
    let fresh = Fresh::create(path, byte_len(regions), access).map_err(file_err(path, None))?;
    let words = Words::map_rw(&fresh.file).map_err(io_err(path))?;
    let set = |i: usize, v: u64| {
        if let Some(w) = words.get(i) {
            w.store(v, Ordering::Relaxed);
        }
    };
    for (i, v) in layout_words(regions) {
        set(i, v);
    }
    set(header::STARTED_MS, now_ms());
    fence(Ordering::Release);
    set(header::MAGIC, MAGIC);
    let file = fresh.install(path).map_err(io_err(path))?;
    Ok((file, words))
}

impl Scoreboard {
    /// Makes sure the path still names the whole file we map; avisd calls it once a second.
    /// When the file was truncated, removed or replaced, writes a fresh one with the
    /// current figures and moves the mapping onto it.
    pub fn check_file(&self) -> FileCheck {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let len = byte_len(&self.regions);
        let shrank = held.file.metadata().is_ok_and(|m| m.len() < len);
        let damage = if shrank || self.words.faults() != held.faults_seen {
            Damage::Truncated
        } else {
            match Identity::at(&self.path) {
                Ok(Some(id)) if id == held.id => return FileCheck::Fine,
                Ok(Some(_)) => Damage::Replaced,
                Ok(None) => Damage::Removed,
                Err(e) => return FileCheck::Failed(Damage::Removed, e.to_string()),
            }
        };
        if damage == Damage::Replaced {
            // Another avisd's file is not ours to replace.
            if let Ok(Some(other)) = file::open_existing(&self.path)
                && matches!(file::lock(&other), Err(FileError::Locked))
            {
                let pid = held_by(&other);
                return FileCheck::Failed(damage, format!("another avisd (pid {pid}) holds the new file"));
            }
        }
        match self.recreate(&mut held) {
            Ok(()) => FileCheck::Recreated(damage),
            Err(e) => FileCheck::Failed(damage, file_err(&self.path, None)(e).to_string()),
        }
    }

    /// Copies the mapping into a fresh file, restores the header, renames the file into
    /// place and maps it at the same address. Bumps between the copy and the remap are lost.
    fn recreate(&self, held: &mut Held) -> Result<(), FileError> {
        let r = &self.regions;
        let fresh = Fresh::create(&self.path, byte_len(r), self.access)?;
        let mut words: Vec<u64> = (0..r.total_words)
            .map(|i| self.word(i).load(Ordering::Relaxed))
            .collect();
        let mut set = |i: usize, v: u64| {
            if let Some(w) = words.get_mut(i) {
                *w = v;
            }
        };
        for (i, v) in layout_words(r) {
            set(i, v);
        }
        set(header::MAGIC, MAGIC);
        let started = self.started_ms();
        set(header::STARTED_MS, if started == 0 { now_ms() } else { started });
        set(header::WRITER_PID, u64::from(std::process::id()));
        set(header::GENERATION, self.generation);
        set(header::HEARTBEAT_MS, now_ms());
        set(header::ATTACHED, 1);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        fresh.file.write_all_at(&bytes, 0)?;
        let file = fresh.install(&self.path)?;
        self.words.remap_rw(&file)?;
        for (field, text) in TextField::ALL.into_iter().zip(&self.texts) {
            self.set_text(field, text);
        }
        *held = Held {
            id: Identity::of(&file)?,
            file,
            faults_seen: self.words.faults(),
        };
        Ok(())
    }
}

/// One worker's slot and counter shard. Only its owner writes them, so bumps never
/// contend with other workers. Dropping it returns the slot to idle; a message still in
/// flight then is counted as temp-failed, because its sender never got an answer.
#[derive(Debug)]
pub struct WorkerSlot {
    board: Arc<Scoreboard>,
    index: usize,
}

impl WorkerSlot {
    /// The slot number.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The scoreboard the slot belongs to.
    pub fn board(&self) -> &Arc<Scoreboard> {
        &self.board
    }

    /// Adds `n` to a counter in this worker's shard.
    #[inline]
    pub fn bump(&self, c: Counter, n: u64) {
        self.board
            .counter_word(self.index + 1, c)
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Enters `state`, keeping the busy timestamp.
    pub fn set_state(&self, state: WorkerState) {
        let (b, s) = (&self.board, self.index);
        b.write_slot(s, |b| {
            b.slot_word(s, slot::STATE)
                .store(u64::from(state.code()), Ordering::Relaxed);
            b.slot_word(s, slot::STATE_SINCE_MS).store(now_ms(), Ordering::Relaxed);
        });
    }

    /// Enters `state` and resets the busy timestamp, as amavisd does at A and m.
    pub fn set_state_reset(&self, state: WorkerState) {
        let (b, s) = (&self.board, self.index);
        let now = now_ms();
        b.write_slot(s, |b| {
            b.slot_word(s, slot::STATE)
                .store(u64::from(state.code()), Ordering::Relaxed);
            b.slot_word(s, slot::STATE_SINCE_MS).store(now, Ordering::Relaxed);
            b.slot_word(s, slot::BUSY_SINCE_MS).store(now, Ordering::Relaxed);
            if state == WorkerState::Accepted {
                b.slot_word(s, slot::CONNECTIONS).fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// Shows the current task id (avisd passes its log id) and MTA queue id (each cut to
    /// 31 bytes).
    pub fn set_ids(&self, mail_id: &str, queue_id: &str) {
        let (b, s) = (&self.board, self.index);
        b.write_slot(s, |b| {
            store_bytes(
                |i| b.slot_word(s, slot::MAIL_ID + i),
                slot::ID_WORDS,
                mail_id.as_bytes(),
            );
            store_bytes(
                |i| b.slot_word(s, slot::QUEUE_ID + i),
                slot::ID_WORDS,
                queue_id.as_bytes(),
            );
        });
    }

    /// Clears the ids (the message is done).
    pub fn clear_ids(&self) {
        let (b, s) = (&self.board, self.index);
        b.write_slot(s, |b| b.clear_ids(s));
    }

    /// Ledger: avisd took a message (its DATA completed) and owes its sender an answer.
    pub fn message_received(&self) {
        let (b, s) = (&self.board, self.index);
        b.write_slot(s, |b| {
            b.counter_word(s + 1, Counter::LedgerReceived)
                .fetch_add(1, Ordering::Relaxed);
            b.slot_word(s, slot::IN_FLIGHT).fetch_add(1, Ordering::Relaxed);
        });
    }

    /// Ledger: the message was answered with `outcome`. Ignored when none is in flight.
    pub fn message_answered(&self, outcome: Outcome) {
        let (b, s) = (&self.board, self.index);
        if b.slot_word(s, slot::IN_FLIGHT).load(Ordering::Relaxed) == 0 {
            return;
        }
        b.write_slot(s, |b| {
            b.counter_word(s + 1, outcome.counter()).fetch_add(1, Ordering::Relaxed);
            b.slot_word(s, slot::IN_FLIGHT).fetch_sub(1, Ordering::Relaxed);
            b.slot_word(s, slot::MSGS_DONE).fetch_add(1, Ordering::Relaxed);
        });
    }

    /// Records how long `stage` took, in its histogram.
    pub fn observe(&self, stage: Stage, took: Duration) {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        let (count, sum, buckets) = stage.counters();
        let i = LATENCY_BOUNDS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.bump(count, 1);
        self.bump(sum, ms);
        self.bump(buckets[i], 1);
    }

    /// Records one request to a back end: its result and how long it took.
    pub fn scanner(&self, scanner: Scanner, result: ScanResult, took: Duration) {
        let (requests, errors, timeouts, last) = scanner.handles();
        self.bump(requests, 1);
        match result {
            ScanResult::Ok => {}
            ScanResult::Error => self.bump(errors, 1),
            ScanResult::Timeout => self.bump(timeouts, 1),
        }
        self.board
            .set_gauge(last, u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
    }
}

impl Drop for WorkerSlot {
    fn drop(&mut self) {
        let (b, s) = (&self.board, self.index);
        let in_flight = b.slot_word(s, slot::IN_FLIGHT).load(Ordering::Relaxed);
        let now = now_ms();
        b.write_slot(s, |b| {
            if in_flight > 0 {
                b.counter_word(s + 1, Counter::LedgerTempFailed)
                    .fetch_add(in_flight, Ordering::Relaxed);
                b.slot_word(s, slot::IN_FLIGHT).store(0, Ordering::Relaxed);
            }
            b.slot_word(s, slot::STATE)
                .store(u64::from(WorkerState::Idle.code()), Ordering::Relaxed);
            b.slot_word(s, slot::STATE_SINCE_MS).store(now, Ordering::Relaxed);
            b.clear_ids(s);
        });
        if let Some(flag) = b.taken.get(s) {
            flag.store(false, Ordering::Release);
        }
    }
}
