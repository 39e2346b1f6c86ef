//! The AMAVIS-MIB as data: every object's OID, name, SMI type and how its value is fed.
//!
//! Generated at build time from `mib/objects.tsv` (see `build.rs`); everything else
//! that names an object (the counter handles, the agent's OID tree, the MIB text file,
//! the nanny and agent columns) is derived from this one list.

/// The OID of the `amavis` MODULE-IDENTITY node, 1.3.6.1.4.1.15312.2.1.
pub const AMAVIS_OID: &[u32] = &[1, 3, 6, 1, 4, 1, 15312, 2, 1];
/// Our extension subtree, `amavis.4`: latency histograms, scanner health, the ledger.
pub const AVIS_OID: &[u32] = &[1, 3, 6, 1, 4, 1, 15312, 2, 1, 4];

/// The SMI type of an object, as the MIB file declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Counter32: wraps modulo 2^32 on the wire.
    Counter32,
    /// Counter64.
    Counter64,
    /// Gauge32.
    Gauge32,
    /// Integer32 (INTEGER).
    Integer32,
    /// TimeTicks, hundredths of a second.
    TimeTicks,
    /// TimeInterval (SNMPv2-TC): INTEGER in hundredths of a second.
    TimeInterval,
    /// DisplayString (SNMPv2-TC): OCTET STRING of printable text.
    DisplayString,
    /// OBJECT IDENTIFIER.
    ObjectIdentifier,
}

impl Syntax {
    /// The type as written in a MIB module.
    pub const fn smi_name(self) -> &'static str {
        match self {
            Syntax::Counter32 => "Counter32",
            Syntax::Counter64 => "Counter64",
            Syntax::Gauge32 => "Gauge32",
            Syntax::Integer32 => "Integer32",
            Syntax::TimeTicks => "TimeTicks",
            Syntax::TimeInterval => "TimeInterval",
            Syntax::DisplayString => "DisplayString",
            Syntax::ObjectIdentifier => "OBJECT IDENTIFIER",
        }
    }
}

/// One of the strings avisd writes into the scoreboard header at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    /// sysDescr: program name and version.
    Descr,
    /// sysName: the host name avisd announces.
    Name,
    /// sysContact: from the configuration.
    Contact,
    /// sysLocation: from the configuration.
    Location,
}

impl TextField {
    /// Every field, in header order.
    pub const ALL: [TextField; 4] = [
        TextField::Descr,
        TextField::Name,
        TextField::Contact,
        TextField::Location,
    ];
}

/// A gauge derived from the worker slots, as amavisd-snmp-subagent derives it from nanny.db.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcKey {
    /// Worker slots in use (idle + busy).
    All,
    /// Idle: no mail id and state ' ' or '.'.
    Idle,
    /// Busy: not idle.
    Busy,
    /// Busy in m, d or F.
    BusyTransfer,
    /// Busy in D.
    BusyDecode,
    /// Busy in V.
    BusyVirus,
    /// Busy in S.
    BusySpam,
    /// Busy in any other state.
    BusyOther,
    /// Busy for at least `BUSY_AGE_THRESHOLDS_MS[n]` (0 = every busy worker).
    BusyAtLeast(u8),
}

/// Thresholds of procBusy0 … procBusy30h in milliseconds: cumulative "at least this old".
pub const BUSY_AGE_THRESHOLDS_MS: [u64; 22] = [
    0,
    100,
    200,
    500,
    1_000,
    2_000,
    4_000,
    8_000,
    15_000,
    30_000,
    60_000,
    120_000,
    240_000,
    480_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    14_400_000,
    28_800_000,
    54_000_000,
    108_000_000,
];

/// A gauge the SNMP agent reads from Postfix's queue directories, not from the scoreboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtaKey {
    /// Entries in `maildrop`.
    Maildrop,
    /// Entries in `incoming`.
    Incoming,
    /// Entries in `active`.
    Active,
    /// Entries in `deferred`.
    Deferred,
    /// Age in seconds of the oldest entry of `active` and `deferred`.
    OldestAge,
}

/// A figure of the mail ledger derived from one consistent reading of the slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerKey {
    /// Messages received and not yet answered.
    InFlight,
    /// Received − outcomes − in flight; 0 unless mail was lost track of.
    Unaccounted,
}

/// Where an object's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// A counter, summed over the shards.
    Counter(Counter),
    /// A counter of milliseconds, served in hundredths of a second (floor of ms / 10).
    ElapsedMs(Counter),
    /// A stored gauge.
    Gauge(Gauge),
    /// Hundredths of a second since the counters started.
    Uptime,
    /// A header string.
    Text(TextField),
    /// A constant integer.
    ConstInt(i64),
    /// A constant OID.
    ConstOid(&'static [u32]),
    /// Derived from the worker slots.
    Proc(ProcKey),
    /// Read from the MTA's queue by the agent.
    Mta(MtaKey),
    /// Derived from the ledger counters and the slots.
    Ledger(LedgerKey),
    /// When the counters started, as text.
    Since,
    /// 1 while the writer lives, 2 when not.
    Running,
    /// The writer generation.
    Generation,
}

/// One scalar object of the MIB (served at instance `.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MibObject {
    /// Object OID, without the `.0` instance.
    pub oid: &'static [u32],
    /// MIB descriptor, e.g. `inMsgs`.
    pub name: &'static str,
    /// SMI type.
    pub syntax: Syntax,
    /// How its value is read.
    pub feed: Feed,
    /// What it means, in our words.
    pub description: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/table.rs"));

/// Finds an object by its descriptor.
pub fn by_name(name: &str) -> Option<&'static MibObject> {
    OBJECTS.iter().find(|o| o.name == name)
}

/// Finds an object by its OID (without the instance).
pub fn by_oid(oid: &[u32]) -> Option<&'static MibObject> {
    OBJECTS.binary_search_by(|o| o.oid.cmp(oid)).ok().map(|i| &OBJECTS[i])
}

/// Formats an OID in dotted form.
pub fn dotted(oid: &[u32]) -> String {
    let parts: Vec<String> = oid.iter().map(u32::to_string).collect();
    parts.join(".")
}
