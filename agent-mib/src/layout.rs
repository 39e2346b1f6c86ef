//! The scoreboard file's layout: every word is a `u64` accessed only as an atomic.
//!
//! ```text
//! header   HEADER_WORDS words
//! counters (n_slots + 1) shards × counter_stride words   shard 0: the daemon; shard i+1: slot i
//! gauges   gauge_stride words
//! slots    n_slots × SLOT_WORDS words
//! ```
//! Readers compute every offset from the header, never from these constants alone.
//! A change to a word's meaning bumps `LAYOUT_VERSION`.

/// `AVISSCB1` in little-endian: the first word of every scoreboard.
pub const MAGIC: u64 = u64::from_le_bytes(*b"AVISSCB1");
/// Bumped whenever a word changes meaning.
pub const LAYOUT_VERSION: u64 = 2;
/// Worker slots in every scoreboard; `max_servers` may not exceed it.
pub const MAX_SLOTS: usize = 256;
/// Words in the header.
pub const HEADER_WORDS: usize = 128;
/// Words per worker slot (two cache lines).
pub const SLOT_WORDS: usize = 16;
/// Words of one header string.
pub const TEXT_WORDS: usize = 16;
/// Entries of the per-virus-name table (amavisd's `virus.byname.*` keys); when full,
/// further names are counted in the last entry, `(other)`.
pub const VIRUS_ENTRIES: usize = 64;
/// Words per virus entry: 7 words of name (NUL padded), then the count.
pub const VIRUS_ENTRY_WORDS: usize = 8;

/// Header word indices.
pub mod header {
    /// [`super::MAGIC`].
    pub const MAGIC: usize = 0;
    /// [`super::LAYOUT_VERSION`].
    pub const LAYOUT_VERSION: usize = 1;
    /// The table hash of the writer's build.
    pub const TABLE_HASH: usize = 2;
    /// Counters per shard.
    pub const N_COUNTERS: usize = 3;
    /// Gauges.
    pub const N_GAUGES: usize = 4;
    /// Worker slots.
    pub const N_SLOTS: usize = 5;
    /// Words per slot.
    pub const SLOT_WORDS: usize = 6;
    /// Unix milliseconds when the counters started (the file was created).
    pub const STARTED_MS: usize = 7;
    /// Pid of the writer that last attached.
    pub const WRITER_PID: usize = 8;
    /// How many times a writer attached.
    pub const GENERATION: usize = 9;
    /// Unix milliseconds of the writer's last heartbeat.
    pub const HEARTBEAT_MS: usize = 10;
    /// 1 while a writer is attached, 0 after a clean detach.
    pub const ATTACHED: usize = 11;
    /// Words between two counter shards.
    pub const COUNTER_STRIDE: usize = 12;
    /// Entries of the virus-name table.
    pub const VIRUS_ENTRIES: usize = 13;
    /// First word of the strings: `TEXT_WORDS` per [`crate::TextField`], in `ALL` order.
    pub const TEXT: usize = 16;
}

/// Slot word indices.
pub mod slot {
    /// Seqlock sequence: odd while the writer changes the slot.
    pub const SEQ: usize = 0;
    /// State code ([`crate::WorkerState::code`]).
    pub const STATE: usize = 1;
    /// Unix ms when the state was entered.
    pub const STATE_SINCE_MS: usize = 2;
    /// Unix ms of the nanny timestamp: reset at start, accept (A) and MAIL FROM (m).
    pub const BUSY_SINCE_MS: usize = 3;
    /// Messages this slot finished.
    pub const MSGS_DONE: usize = 4;
    /// Writer generation that last wrote the slot.
    pub const GENERATION: usize = 5;
    /// Messages received and not yet answered (0 or 1).
    pub const IN_FLIGHT: usize = 6;
    /// Connections this slot accepted.
    pub const CONNECTIONS: usize = 7;
    /// Task id, 32 bytes of ASCII, NUL padded: avisd writes its log id here (`00003-12`),
    /// what amavisd-nanny shows as the task of a busy child.
    pub const MAIL_ID: usize = 8;
    /// MTA queue id, 32 bytes of ASCII, NUL padded.
    pub const QUEUE_ID: usize = 12;
    /// Words of each id.
    pub const ID_WORDS: usize = 4;
}

/// Rounds a word count up to whole cache lines, so shards never share one.
pub const fn cache_aligned(words: usize) -> usize {
    words.div_ceil(8) * 8
}

/// Where each region starts, from the header's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regions {
    /// Counters per shard.
    pub n_counters: usize,
    /// Words between shards.
    pub counter_stride: usize,
    /// Gauges.
    pub n_gauges: usize,
    /// Worker slots.
    pub n_slots: usize,
    /// Words per slot.
    pub slot_words: usize,
    /// First counter word.
    pub counters: usize,
    /// First gauge word.
    pub gauges: usize,
    /// First slot word.
    pub slots: usize,
    /// First word of the virus-name table.
    pub viruses: usize,
    /// Its entries.
    pub n_viruses: usize,
    /// Words in the file.
    pub total_words: usize,
}

impl Regions {
    /// Computes the regions; `None` when the sizes overflow.
    pub fn new(
        n_counters: usize,
        counter_stride: usize,
        n_gauges: usize,
        n_slots: usize,
        slot_words: usize,
        n_viruses: usize,
    ) -> Option<Regions> {
        let counters = HEADER_WORDS;
        let gauges = counters.checked_add(counter_stride.checked_mul(n_slots.checked_add(1)?)?)?;
        let slots = gauges.checked_add(cache_aligned(n_gauges))?;
        let viruses = slots.checked_add(n_slots.checked_mul(slot_words)?)?;
        let total_words = viruses.checked_add(n_viruses.checked_mul(VIRUS_ENTRY_WORDS)?)?;
        Some(Regions {
            n_counters,
            counter_stride,
            n_gauges,
            n_slots,
            slot_words,
            counters,
            gauges,
            slots,
            viruses,
            n_viruses,
            total_words,
        })
    }

    /// The regions of a scoreboard written by this build.
    pub fn current() -> Regions {
        let n = crate::COUNTER_COUNT;
        // Sizes are compile-time constants well below overflow.
        Regions::new(
            n,
            cache_aligned(n),
            crate::GAUGE_COUNT,
            MAX_SLOTS,
            SLOT_WORDS,
            VIRUS_ENTRIES,
        )
        .unwrap_or(Regions {
            n_counters: 0,
            counter_stride: 0,
            n_gauges: 0,
            n_slots: 0,
            slot_words: 0,
            counters: 0,
            gauges: 0,
            slots: 0,
            viruses: 0,
            n_viruses: 0,
            total_words: HEADER_WORDS,
        })
    }

    /// Word index of counter `c` in shard `shard`.
    pub const fn counter(&self, shard: usize, c: usize) -> usize {
        self.counters + shard * self.counter_stride + c
    }

    /// Word index of word `w` of virus entry `e`.
    pub const fn virus(&self, e: usize, w: usize) -> usize {
        self.viruses + e * VIRUS_ENTRY_WORDS + w
    }

    /// Word index of word `w` of slot `s`.
    pub const fn slot(&self, s: usize, w: usize) -> usize {
        self.slots + s * self.slot_words + w
    }
}

const _: () = assert!(
    header::TEXT + 4 * TEXT_WORDS <= HEADER_WORDS,
    "header strings overrun the header"
);
