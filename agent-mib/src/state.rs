//! Worker states: amavisd-nanny's letters, so the tools keep their meaning.

/// What a worker slot is doing, as the one-letter code amavisd writes to nanny.db.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerState {
    /// The slot is not in use (beyond `max_servers`, or never started).
    Unused,
    /// Alive and idle, waiting for a connection (shown as a space).
    Idle,
    /// `A`: connection accepted, before the protocol starts.
    Accepted,
    /// `b`: protocol handling begins.
    Begin,
    /// `m`: MAIL FROM started a transaction.
    Mail,
    /// `d`: receiving DATA.
    Data,
    /// `=`: content check started.
    Check,
    /// `G`: generating the mail id.
    MailId,
    /// `D`: decoding MIME and archives.
    Decode,
    /// `V`: virus scanning.
    Virus,
    /// `S`: spam scanning.
    Spam,
    /// `P`: pen pals lookups.
    PenPals,
    /// `r`: deciding the destiny.
    Decide,
    /// `Q`: quarantine and notifications.
    Quarantine,
    /// `F`: forwarding to the back-end MTA.
    Forward,
    /// `.`: check finished, session still open (counts as idle).
    Done,
}

impl WorkerState {
    /// Every state, for legends.
    pub const ALL: [WorkerState; 16] = [
        WorkerState::Unused,
        WorkerState::Idle,
        WorkerState::Accepted,
        WorkerState::Begin,
        WorkerState::Mail,
        WorkerState::Data,
        WorkerState::Check,
        WorkerState::MailId,
        WorkerState::Decode,
        WorkerState::Virus,
        WorkerState::Spam,
        WorkerState::PenPals,
        WorkerState::Decide,
        WorkerState::Quarantine,
        WorkerState::Forward,
        WorkerState::Done,
    ];

    /// The byte stored in the slot (0 for unused).
    pub const fn code(self) -> u8 {
        match self {
            WorkerState::Unused => 0,
            WorkerState::Idle => b' ',
            WorkerState::Accepted => b'A',
            WorkerState::Begin => b'b',
            WorkerState::Mail => b'm',
            WorkerState::Data => b'd',
            WorkerState::Check => b'=',
            WorkerState::MailId => b'G',
            WorkerState::Decode => b'D',
            WorkerState::Virus => b'V',
            WorkerState::Spam => b'S',
            WorkerState::PenPals => b'P',
            WorkerState::Decide => b'r',
            WorkerState::Quarantine => b'Q',
            WorkerState::Forward => b'F',
            WorkerState::Done => b'.',
        }
    }

    /// The state for a stored byte; unknown bytes read as `None`.
    pub fn from_code(code: u8) -> Option<WorkerState> {
        WorkerState::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The letter as the nanny shows it (a space for idle, `-` for unused).
    pub const fn letter(self) -> char {
        match self {
            WorkerState::Unused => '-',
            other => other.code() as char,
        }
    }

    /// What the letter means, for legends.
    pub const fn meaning(self) -> &'static str {
        match self {
            WorkerState::Unused => "slot not in use",
            WorkerState::Idle => "idle, waiting for a connection",
            WorkerState::Accepted => "connection accepted",
            WorkerState::Begin => "protocol begins",
            WorkerState::Mail => "MAIL FROM: transaction started",
            WorkerState::Data => "receiving DATA",
            WorkerState::Check => "content check started",
            WorkerState::MailId => "generating mail id",
            WorkerState::Decode => "decoding MIME and archives",
            WorkerState::Virus => "virus scanning",
            WorkerState::Spam => "spam scanning",
            WorkerState::PenPals => "pen pals lookup",
            WorkerState::Decide => "deciding destiny",
            WorkerState::Quarantine => "quarantine and notifications",
            WorkerState::Forward => "forwarding to the back-end MTA",
            WorkerState::Done => "check done, session open",
        }
    }

    /// Idle as amavisd's tools define it: state ' ' or '.' (the caller also checks no mail id).
    pub const fn is_idle_letter(self) -> bool {
        matches!(self, WorkerState::Idle | WorkerState::Done)
    }

    /// The activity group of procBusyTransfer/Decode/Virus/Spam/Other.
    pub const fn activity(self) -> Activity {
        match self {
            WorkerState::Mail | WorkerState::Data | WorkerState::Forward => Activity::Transfer,
            WorkerState::Decode => Activity::Decode,
            WorkerState::Virus => Activity::Virus,
            WorkerState::Spam => Activity::Spam,
            WorkerState::Unused
            | WorkerState::Idle
            | WorkerState::Accepted
            | WorkerState::Begin
            | WorkerState::Check
            | WorkerState::MailId
            | WorkerState::PenPals
            | WorkerState::Decide
            | WorkerState::Quarantine
            | WorkerState::Done => Activity::Other,
        }
    }
}

/// What a busy worker is doing, in the groups of the amavisProc gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    /// m, d, F.
    Transfer,
    /// D.
    Decode,
    /// V.
    Virus,
    /// S.
    Spam,
    /// Everything else busy.
    Other,
}
