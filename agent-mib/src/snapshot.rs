//! One instant of the scoreboard as the readers see it, and every MIB object's value
//! derived from it: counters summed over the shards, the amavisProc gauges from the
//! worker slots, the ledger, uptime. Pure data, no I/O, so the agent can serve a whole
//! walk from one snapshot and tests can build snapshots by hand.

use crate::state::Activity;
use crate::{
    BUSY_AGE_THRESHOLDS_MS, COUNTER_COUNT, Counter, Feed, GAUGE_COUNT, Gauge, LedgerKey, MibObject, ProcKey, Syntax,
    TextField, WorkerState,
};

/// The ledger's outcome counters: received = these + in flight.
pub(crate) const LEDGER_OUTCOMES: [Counter; 6] = [
    Counter::LedgerRelayed,
    Counter::LedgerRejected,
    Counter::LedgerDiscarded,
    Counter::LedgerBounced,
    Counter::LedgerQuarantined,
    Counter::LedgerTempFailed,
];

/// A worker slot as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    /// Slot number.
    pub index: usize,
    /// Current state.
    pub state: WorkerState,
    /// Unix ms when the state was entered.
    pub state_since_ms: u64,
    /// Unix ms of the nanny timestamp (reset at start, A and m).
    pub busy_since_ms: u64,
    /// Messages finished by this slot.
    pub msgs_done: u64,
    /// Writer generation that last wrote it.
    pub generation: u64,
    /// Messages received and not yet answered.
    pub in_flight: u64,
    /// Connections accepted by this slot.
    pub connections: u64,
    /// Current task id (avisd writes its log id, as amavisd-nanny shows), empty when none.
    pub mail_id: String,
    /// Current MTA queue id, empty when none.
    pub queue_id: String,
}

impl SlotView {
    /// An idle slot with nothing in it.
    pub fn idle(index: usize, since_ms: u64) -> SlotView {
        SlotView {
            index,
            state: WorkerState::Idle,
            state_since_ms: since_ms,
            busy_since_ms: since_ms,
            msgs_done: 0,
            generation: 0,
            in_flight: 0,
            connections: 0,
            mail_id: String::new(),
            queue_id: String::new(),
        }
    }

    /// In use (a worker of the running daemon).
    pub fn in_use(&self) -> bool {
        self.state != WorkerState::Unused
    }

    /// Idle as amavisd's tools define it: no mail id, state ' ' or '.'.
    pub fn is_idle(&self) -> bool {
        self.mail_id.is_empty() && self.state.is_idle_letter()
    }

    /// Busy: in use and not idle.
    pub fn is_busy(&self) -> bool {
        self.in_use() && !self.is_idle()
    }

    /// Milliseconds since the nanny timestamp, at `now_ms`.
    pub fn busy_age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.busy_since_ms)
    }
}

/// A value as an SNMP agent serves it, already wrapped or clamped to its SMI type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Counter32, modulo 2^32.
    Counter32(u32),
    /// Counter64.
    Counter64(u64),
    /// Gauge32, latched at 2^32-1.
    Gauge32(u32),
    /// INTEGER / Integer32 / TimeInterval.
    Integer32(i32),
    /// TimeTicks, modulo 2^32.
    TimeTicks(u32),
    /// OCTET STRING.
    Text(String),
    /// OBJECT IDENTIFIER.
    Oid(Vec<u32>),
}

/// Everything a snapshot is built from (the reader fills it; tests may too).
#[derive(Debug, Clone)]
pub struct SnapshotParts {
    /// When it was taken, unix ms.
    pub taken_ms: u64,
    /// When the counters started, unix ms.
    pub started_ms: u64,
    /// The writer's pid.
    pub writer_pid: u32,
    /// The writer's generation.
    pub generation: u64,
    /// The writer's last heartbeat, unix ms.
    pub heartbeat_ms: u64,
    /// Whether the writer is alive.
    pub writer_alive: bool,
    /// Header strings in `TextField::ALL` order.
    pub texts: [String; 4],
    /// Counter values indexed by `Counter as usize`.
    pub counters: Vec<u64>,
    /// Gauge values indexed by `Gauge as usize`.
    pub gauges: Vec<u64>,
    /// Every slot.
    pub slots: Vec<SlotView>,
}

/// One consistent reading of the scoreboard.
#[derive(Debug, Clone)]
pub struct Snapshot {
    parts: SnapshotParts,
    viruses: Vec<(String, u64)>,
}

impl Snapshot {
    /// Builds a snapshot, padding short counter or gauge vectors with zeros.
    pub fn new(mut parts: SnapshotParts) -> Snapshot {
        parts.counters.resize(COUNTER_COUNT, 0);
        parts.gauges.resize(GAUGE_COUNT, 0);
        Snapshot {
            parts,
            viruses: Vec::new(),
        }
    }

    /// The same snapshot with the per-virus-name counts.
    pub fn with_viruses(mut self, viruses: Vec<(String, u64)>) -> Snapshot {
        self.viruses = viruses;
        self
    }

    /// What the monitors show when no scoreboard exists: every object at 0 or "".
    pub fn empty(now_ms: u64) -> Snapshot {
        Snapshot::new(SnapshotParts {
            taken_ms: now_ms,
            started_ms: now_ms,
            writer_pid: 0,
            generation: 0,
            heartbeat_ms: 0,
            writer_alive: false,
            texts: Default::default(),
            counters: Vec::new(),
            gauges: Vec::new(),
            slots: Vec::new(),
        })
    }

    /// When it was taken, unix ms.
    pub fn taken_ms(&self) -> u64 {
        self.parts.taken_ms
    }
    /// When the counters started, unix ms.
    pub fn started_ms(&self) -> u64 {
        self.parts.started_ms
    }
    /// The writer's pid (0 if none ever wrote).
    pub fn writer_pid(&self) -> u32 {
        self.parts.writer_pid
    }
    /// The writer's generation.
    pub fn generation(&self) -> u64 {
        self.parts.generation
    }
    /// The writer's last heartbeat, unix ms.
    pub fn heartbeat_ms(&self) -> u64 {
        self.parts.heartbeat_ms
    }
    /// Whether avisd is running on this scoreboard.
    pub fn writer_alive(&self) -> bool {
        self.parts.writer_alive
    }
    /// A header string.
    pub fn text(&self, f: TextField) -> &str {
        &self.parts.texts[f as usize]
    }
    /// A counter's value (unbounded; wrapping happens in [`Snapshot::value`]).
    pub fn counter(&self, c: Counter) -> u64 {
        self.parts.counters.get(c as usize).copied().unwrap_or(0)
    }
    /// A stored gauge's value.
    pub fn gauge(&self, g: Gauge) -> u64 {
        self.parts.gauges.get(g as usize).copied().unwrap_or(0)
    }
    /// Messages per virus name (amavisd-agent's `virus.byname.*`), most frequent first.
    pub fn viruses(&self) -> Vec<(String, u64)> {
        let mut v = self.viruses.clone();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// Every slot, in use or not.
    pub fn slots(&self) -> &[SlotView] {
        &self.parts.slots
    }
    /// The slots of the running daemon's workers.
    pub fn workers(&self) -> impl Iterator<Item = &SlotView> {
        self.parts.slots.iter().filter(|s| s.in_use())
    }

    /// Hundredths of a second since the counters started.
    pub fn uptime_ticks(&self) -> u64 {
        self.parts.taken_ms.saturating_sub(self.parts.started_ms) / 10
    }

    /// An amavisProc gauge, as amavisd-snmp-subagent derives it from nanny.db.
    pub fn proc(&self, key: ProcKey) -> u64 {
        let now = self.parts.taken_ms;
        let busy = || self.workers().filter(|s| s.is_busy());
        let by = |a: Activity| busy().filter(|s| s.state.activity() == a).count() as u64;
        match key {
            ProcKey::All => self.workers().count() as u64,
            ProcKey::Idle => self.workers().filter(|s| s.is_idle()).count() as u64,
            ProcKey::Busy => busy().count() as u64,
            ProcKey::BusyTransfer => by(Activity::Transfer),
            ProcKey::BusyDecode => by(Activity::Decode),
            ProcKey::BusyVirus => by(Activity::Virus),
            ProcKey::BusySpam => by(Activity::Spam),
            ProcKey::BusyOther => by(Activity::Other),
            ProcKey::BusyAtLeast(n) => {
                let min = BUSY_AGE_THRESHOLDS_MS.get(usize::from(n)).copied().unwrap_or(u64::MAX);
                busy().filter(|s| s.busy_age_ms(now) >= min).count() as u64
            }
        }
    }

    /// Messages received and not yet answered.
    pub fn in_flight(&self) -> u64 {
        self.parts.slots.iter().map(|s| s.in_flight).sum()
    }

    /// A ledger figure. Unaccounted = received − outcomes − in flight.
    pub fn ledger(&self, key: LedgerKey) -> i64 {
        match key {
            LedgerKey::InFlight => i64::try_from(self.in_flight()).unwrap_or(i64::MAX),
            LedgerKey::Unaccounted => {
                let out = LEDGER_OUTCOMES
                    .iter()
                    .map(|c| i128::from(self.counter(*c)))
                    .sum::<i128>();
                let v = i128::from(self.counter(Counter::LedgerReceived)) - out - i128::from(self.in_flight());
                i64::try_from(v).unwrap_or(i64::MIN)
            }
        }
    }

    /// The value an SNMP agent serves for `obj`. `None` for the amavisMta objects,
    /// which the agent reads from the MTA's queue directories itself.
    pub fn value(&self, obj: &MibObject) -> Option<Value> {
        let raw: Raw = match obj.feed {
            Feed::Counter(c) => Raw::Unsigned(self.counter(c)),
            // amavisd stores milliseconds; the MIB says hundredths (floor, not Perl's fraction).
            Feed::ElapsedMs(c) => Raw::Unsigned(self.counter(c) / 10),
            Feed::Gauge(g) => Raw::Unsigned(self.gauge(g)),
            Feed::Uptime => Raw::Unsigned(self.uptime_ticks()),
            Feed::Text(f) => return Some(Value::Text(self.text(f).to_string())),
            Feed::ConstInt(v) => Raw::Signed(v),
            Feed::ConstOid(oid) => return Some(Value::Oid(oid.to_vec())),
            Feed::Proc(k) => Raw::Unsigned(self.proc(k)),
            Feed::Mta(_) => return None,
            Feed::Ledger(k) => Raw::Signed(self.ledger(k)),
            Feed::Since => return Some(Value::Text(iso8601_utc(self.parts.started_ms))),
            Feed::Running => Raw::Signed(if self.writer_alive() { 1 } else { 2 }),
            Feed::Generation => Raw::Unsigned(self.parts.generation),
        };
        Some(raw.typed(obj.syntax))
    }
}

/// A value before it is fitted to its SMI type.
#[derive(Debug, Clone, Copy)]
pub enum Raw {
    /// Unsigned source value.
    Unsigned(u64),
    /// Signed source value.
    Signed(i64),
}

impl Raw {
    /// Fits the value to `syntax`: Counter32 and TimeTicks wrap, Gauge32 latches,
    /// INTEGER wraps into 0..2^31 for counters (TimeInterval) and clamps for signed values.
    pub fn typed(self, syntax: Syntax) -> Value {
        let unsigned = match self {
            Raw::Unsigned(v) => v,
            Raw::Signed(v) => u64::try_from(v).unwrap_or(0),
        };
        match syntax {
            Syntax::Counter32 => Value::Counter32((unsigned & 0xFFFF_FFFF) as u32),
            Syntax::Counter64 => Value::Counter64(unsigned),
            Syntax::Gauge32 => Value::Gauge32(u32::try_from(unsigned).unwrap_or(u32::MAX)),
            Syntax::TimeTicks => Value::TimeTicks((unsigned & 0xFFFF_FFFF) as u32),
            Syntax::Integer32 | Syntax::TimeInterval => match self {
                Raw::Signed(v) => Value::Integer32(v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32),
                Raw::Unsigned(v) => Value::Integer32((v % (1 << 31)) as i32),
            },
            Syntax::DisplayString => Value::Text(unsigned.to_string()),
            Syntax::ObjectIdentifier => Value::Oid(vec![0, 0]),
        }
    }
}

/// Formats unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso8601_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), valid for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
