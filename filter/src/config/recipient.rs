//! config: what a recipient is entitled to (policy bank defaults with per-recipient
//! overrides) and the destinies per content category. Plain policy data, compiled by
//! [`super::checks`], read by check (bypasses), decide (destinies, lovers, levels) and act.

/// What happens to a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destiny {
    /// Deliver.
    Pass,
    /// Drop silently, answer 2xx.
    Discard,
    /// Answer 2xx and return it to the sender with a DSN.
    Bounce,
    /// Answer 5xx.
    Reject,
    /// Answer 4xx.
    Tempfail,
}

impl Destiny {
    /// Parses a configuration word.
    pub fn parse(s: &str) -> Option<Destiny> {
        Some(match s.to_ascii_lowercase().as_str() {
            "pass" => Destiny::Pass,
            "discard" => Destiny::Discard,
            "bounce" => Destiny::Bounce,
            "reject" => Destiny::Reject,
            "tempfail" => Destiny::Tempfail,
            _ => return None,
        })
    }
}

/// The policy bank's destinies per category (amavisd's `$final_*_destiny`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destinies {
    /// CC_VIRUS (amavisd: discard).
    pub virus: Destiny,
    /// CC_BANNED (discard).
    pub banned: Destiny,
    /// CC_UNCHECKED (pass).
    pub unchecked: Destiny,
    /// CC_SPAM (pass).
    pub spam: Destiny,
    /// CC_BADH (pass).
    pub bad_header: Destiny,
    /// CC_OVERSIZED (bounce).
    pub oversized: Destiny,
}

impl Default for Destinies {
    fn default() -> Self {
        Destinies {
            virus: Destiny::Discard,
            banned: Destiny::Discard,
            unchecked: Destiny::Pass,
            spam: Destiny::Pass,
            bad_header: Destiny::Pass,
            oversized: Destiny::Bounce,
        }
    }
}

/// What one recipient is entitled to (policy bank defaults with per-recipient overrides).
#[derive(Debug, Clone, PartialEq)]
pub struct RecipientPolicy {
    /// A local recipient (only those get spam headers, subject tags and extensions).
    pub local: bool,
    /// Skip the virus check for this recipient.
    pub bypass_virus: bool,
    /// Skip the spam check.
    pub bypass_spam: bool,
    /// Skip banned checks.
    pub bypass_banned: bool,
    /// Skip header checks.
    pub bypass_header: bool,
    /// virus_lovers.
    pub virus_lover: bool,
    /// banned_files_lovers.
    pub banned_lover: bool,
    /// unchecked_lovers.
    pub unchecked_lover: bool,
    /// spam_lovers (also spammy).
    pub spam_lover: bool,
    /// bad_header_lovers.
    pub bad_header_lover: bool,
    /// Spam headers at or above (None: always, when scored).
    pub tag_level: Option<f64>,
    /// Spammy at or above.
    pub tag2_level: Option<f64>,
    /// Spammy,1 at or above.
    pub tag3_level: Option<f64>,
    /// Spam at or above.
    pub kill_level: Option<f64>,
    /// No DSN at or above.
    pub dsn_cutoff_level: Option<f64>,
    /// Subject prefix for spammy mail.
    pub spam_subject_tag: Option<String>,
    /// `+` for address extensions, None to never add one.
    pub recipient_delimiter: Option<char>,
    /// Extension for spam and spammy mail.
    pub spam_extension: Option<String>,
    /// Extension for (loved) viruses.
    pub virus_extension: Option<String>,
    /// Extension for (loved) banned mail.
    pub banned_extension: Option<String>,
    /// Extension for bad headers.
    pub bad_header_extension: Option<String>,
}

impl Default for RecipientPolicy {
    fn default() -> Self {
        RecipientPolicy {
            local: true,
            bypass_virus: false,
            bypass_spam: false,
            bypass_banned: false,
            bypass_header: false,
            virus_lover: false,
            banned_lover: false,
            unchecked_lover: false,
            spam_lover: false,
            bad_header_lover: false,
            tag_level: Some(2.0),
            tag2_level: Some(6.31),
            tag3_level: None,
            kill_level: Some(6.31),
            dsn_cutoff_level: Some(10.0),
            spam_subject_tag: None,
            recipient_delimiter: None,
            spam_extension: Some("spam".into()),
            virus_extension: Some("virus".into()),
            banned_extension: Some("banned".into()),
            bad_header_extension: Some("badh".into()),
        }
    }
}
