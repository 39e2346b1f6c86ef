//! Every built-in default of the configuration, with the bounds of each number, in one
//! table (Postfix's habit): a key left out of the file takes its value from here, and
//! nowhere else. The per-recipient defaults and the destinies are the `Default` impls of
//! [`super::recipient::RecipientPolicy`] and [`super::recipient::Destinies`]. The
//! embedded `default.toml` writes many of these out for the reader; a test keeps the two
//! in agreement.

/// A number's default and the range a written value must fall in.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Taken when the key is absent.
    pub default: i64,
    /// Smallest accepted value.
    pub min: i64,
    /// Largest accepted value.
    pub max: i64,
}

const fn param(default: i64, min: i64, max: i64) -> Param {
    Param { default, min, max }
}

// [daemon]
/// Bytes of a body kept in memory before it is spooled to a file.
pub const SPOOL_MEMORY_THRESHOLD: Param = param(1 << 20, 0, 1 << 30);
/// Seconds SIGTERM waits for transactions in flight.
pub const DRAIN_TIMEOUT: Param = param(60, 1, 3600);
/// amavisd's default: nothing for others, no writing for the group.
pub const UMASK: Param = param(0o027, 0, 0o777);
/// Where the per-message JSON events go.
pub const EVENTS: &str = "stdout";

// [[listen]]
/// The policy bank a listener applies when it names none.
pub const POLICY_NAME: &str = "default";

// [policy.NAME]
/// Largest message in bytes; 0: none (Postfix enforces its own).
pub const MESSAGE_SIZE_LIMIT: Param = param(0, 0, i64::MAX);
/// amavisd's `$smtpd_recipient_limit`.
pub const RECIPIENT_LIMIT: Param = param(1100, 1, 100_000);
/// Seconds a client may be silent between commands (below Postfix's 300 s).
pub const IDLE_TIMEOUT: Param = param(240, 1, 3600);
/// Seconds the DATA phase starts with.
pub const DATA_TIMEOUT: Param = param(150, 1, 3600);
/// Seconds per read or write with the back end (below Postfix's 300 s).
pub const FORWARD_TIMEOUT: Param = param(240, 1, 3600);

// [policy.NAME.checks]
/// Seconds per scanner request; below the 300 s Postfix waits for the whole transaction.
pub const SCANNER_TIMEOUT: Param = param(60, 1, 290);
/// Messages larger are not given to the spam scanner (spamc's habit).
pub const SPAM_MAX_SIZE: Param = param(512_000, 1, i64::MAX);
/// Messages larger are Oversized; 0: never.
pub const OVERSIZE_LIMIT: Param = param(0, 0, i64::MAX);
/// Every virus scanner failed: tempfail (amavisd's default) rather than pass unchecked.
pub const VIRUS_SCANNERS_FAILURE_IS_FATAL: bool = true;
/// Header checks on.
pub const BAD_HEADER_CHECKS: bool = true;
/// Categories quarantined. Bad-header mail is mostly legitimate mail from sloppy
/// software; amavisd can quarantine it too, but a copy of each would fill the disk: opt in.
pub const QUARANTINE: [agent_mib::ContentCategory; 3] = [
    agent_mib::ContentCategory::Virus,
    agent_mib::ContentCategory::Banned,
    agent_mib::ContentCategory::Spam,
];
/// amavisd's (Debian's) default banned names.
pub const BANNED_NAMES: [&str; 2] = [
    r"(?i).\.(pif|scr)$",
    r"(?i)\.[^./]*[A-Za-z][^./]*\.\s*(exe|vbs|pif|scr|bat|cmd|com|cpl|dll)[.\s]*$",
];
/// Banned types by content.
pub const BANNED_TYPES: [&str; 1] = ["exe-ms"];
/// Banned declared MIME types.
pub const BANNED_MIME_TYPES: [&str; 3] = [
    "application/x-msdownload",
    "application/x-msdos-program",
    "application/hta",
];
