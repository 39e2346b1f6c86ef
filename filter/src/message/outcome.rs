//! The plain outcomes of the stages that `record` reports: what happened to each
//! recipient, each delivery and how its back-end connection was obtained (pipeline,
//! forward), the header facts (decode), the quarantined copies (act). Plain data here, so
//! that `record` depends on `message` alone and never on a later stage.

use agent_mib::ContentCategory;
use agent_mib::families::Status;

use super::Reply;

/// How a connection was obtained, for the OutConn* counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnUse {
    /// A new connection.
    New,
    /// A cached idle connection.
    ReuseRecent,
    /// No connection (pipe delivery).
    None,
}

/// Header facts beyond subject, From and Message-ID.
#[derive(Debug, Clone, Default)]
pub struct HeaderFacts {
    /// To addresses.
    pub to: Vec<String>,
    /// Cc addresses.
    pub cc: Vec<String>,
    /// Sender address.
    pub sender: Option<String>,
    /// In-Reply-To and References ids.
    pub references: Vec<String>,
    /// User-Agent or X-Mailer.
    pub user_agent: Option<String>,
}

/// One quarantined copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The category it was kept for.
    pub category: ContentCategory,
    /// Its path relative to the quarantine directory (`V/virus-V0Ab…`).
    pub relative: String,
    /// amavisd's quarantine type: `F` file, `Z` gzipped file.
    pub quar_type: &'static str,
    /// Bytes written (before compression).
    pub size: u64,
}

/// What happened to one recipient.
#[derive(Debug, Clone)]
pub struct RecipientResult {
    /// Envelope address.
    pub address: String,
    /// DSN ORCPT, if given.
    pub orcpt: Option<String>,
    /// Local per the policy's local domains.
    pub local: bool,
    /// Final status.
    pub status: Status,
    /// avisd's internal status line for this recipient (logged as smtp_response).
    pub response: Reply,
    /// Queue id parsed from the back end's reply.
    pub queued_as: Option<String>,
    /// The category that blocked it (display name), if one did.
    pub blocking: Option<String>,
    /// Its spam score, when it was scored for it.
    pub spam_score: Option<f64>,
}

impl RecipientResult {
    /// amavisd's per-recipient action word.
    pub fn action(&self) -> &'static str {
        match self.status {
            Status::TempFailed => "TEMPFAIL",
            Status::Bounced | Status::NoBounce => "BOUNCE",
            Status::Rejected => "REJECT",
            Status::Discarded => "DISCARD",
            Status::Accepted | Status::RelayedTagged | Status::RelayedUntagged => "PASS",
        }
    }
}

/// One forwarding transaction (the message itself or a generated one).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `SMTP`, `LMTP`, `Pipe` or `Local`.
    pub protocol: &'static str,
    /// What was handed on.
    pub kind: DeliveryKind,
    /// How the connection was obtained.
    pub conn: ConnUse,
    /// A cached connection failed before a new one was used.
    pub reuse_failed: bool,
    /// The transaction's replies (None: it failed as a whole).
    pub replies: Option<Vec<Reply>>,
    /// Bytes sent.
    pub size: u64,
}

/// What a delivery carried (amavisd's relayed vs. submitted mail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// The message itself, forwarded.
    Relay,
    /// A DSN avisd generated.
    Dsn,
    /// A quarantine copy.
    Quarantine,
}
