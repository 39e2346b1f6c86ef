//! The plain outcomes of the stages that `record` reports: how the back-end connection was
//! obtained (forward), the header facts (decode), the quarantined copies (act). Plain data
//! here, so that `record` depends on `message` alone and never on a later stage.

use agent_mib::ContentCategory;

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
