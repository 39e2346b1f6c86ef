//! The counter families amavisd bumps by direction, content category and status, as
//! typed indices into tables generated from the MIB's own arcs.

use crate::Counter;

/// A message's direction (amavisStats arc D): a message with local and non-local
/// recipients counts in two directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Every message.
    All,
    /// Not originating, local recipient.
    Inbound,
    /// Originating, non-local recipient.
    Outbound,
    /// Originating, local recipient.
    Internal,
    /// Originating.
    Originating,
    /// Not originating, non-local recipient.
    OpenRelay,
}

impl Direction {
    const fn index(self) -> usize {
        match self {
            Direction::All => 0,
            Direction::Inbound => 1,
            Direction::Outbound => 2,
            Direction::Internal => 3,
            Direction::Originating => 4,
            Direction::OpenRelay => 5,
        }
    }

    /// The name amavisd appends to keys and actions (`All` has none).
    pub const fn suffix(self) -> &'static str {
        match self {
            Direction::All => "",
            Direction::Inbound => "Inbound",
            Direction::Outbound => "Outbound",
            Direction::Internal => "Internal",
            Direction::Originating => "Originating",
            Direction::OpenRelay => "OpenRelay",
        }
    }

    /// The directions a message counts in, besides `All`: amavisd's rules.
    pub fn of(originating: bool, has_local: bool, has_remote: bool) -> Vec<Direction> {
        let mut d = Vec::with_capacity(3);
        if originating {
            d.push(Direction::Originating);
        }
        if has_local {
            d.push(if originating {
                Direction::Internal
            } else {
                Direction::Inbound
            });
        }
        if has_remote {
            d.push(if originating {
                Direction::Outbound
            } else {
                Direction::OpenRelay
            });
        }
        d
    }

    /// The direction of one recipient (not `Originating`).
    pub fn of_recipient(originating: bool, local: bool) -> Direction {
        match (originating, local) {
            (true, true) => Direction::Internal,
            (true, false) => Direction::Outbound,
            (false, true) => Direction::Inbound,
            (false, false) => Direction::OpenRelay,
        }
    }
}

/// amavisd's major content categories, in MIB order (amavisStats.10.C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ContentCategory {
    /// CC_CLEAN.
    Clean,
    /// CC_MTA.
    MtaFailed,
    /// CC_OVERSIZED.
    Oversized,
    /// CC_BADH.
    BadHdr,
    /// CC_SPAMMY.
    Spammy,
    /// CC_SPAM.
    Spam,
    /// CC_UNCHECKED.
    Unchecked,
    /// CC_BANNED.
    Banned,
    /// CC_VIRUS.
    Virus,
}

impl ContentCategory {
    /// Display name as in logs and counter keys.
    pub const fn name(self) -> &'static str {
        match self {
            ContentCategory::Clean => "Clean",
            ContentCategory::MtaFailed => "MtaFailed",
            ContentCategory::Oversized => "Oversized",
            ContentCategory::BadHdr => "BadHdr",
            ContentCategory::Spammy => "Spammy",
            ContentCategory::Spam => "Spam",
            ContentCategory::Unchecked => "Unchecked",
            ContentCategory::Banned => "Banned",
            ContentCategory::Virus => "Virus",
        }
    }

    /// The Content<Ccat>Msgs<Dir> counter.
    pub const fn counter(self, d: Direction) -> Counter {
        crate::CONTENT[self as usize][d.index()]
    }
}

/// A recipient's final status (amavisStats.19..26).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Delivery left to the MTA.
    Accepted,
    /// Forwarded, untagged.
    RelayedUntagged,
    /// Forwarded, tagged.
    RelayedTagged,
    /// Discarded.
    Discarded,
    /// Bounce suppressed.
    NoBounce,
    /// Bounced with a DSN.
    Bounced,
    /// Rejected with 5xx.
    Rejected,
    /// Answered 4xx.
    TempFailed,
}

impl Status {
    /// The key's status word (`RelayedUntagged`…).
    pub const fn name(self) -> &'static str {
        match self {
            Status::Accepted => "Accepted",
            Status::RelayedUntagged => "RelayedUntagged",
            Status::RelayedTagged => "RelayedTagged",
            Status::Discarded => "Discarded",
            Status::NoBounce => "NoBounce",
            Status::Bounced => "Bounced",
            Status::Rejected => "Rejected",
            Status::TempFailed => "TempFailed",
        }
    }

    /// The InMsgsStatus<Status><Dir> counter.
    pub const fn counter(self, d: Direction) -> Counter {
        crate::STATUS[self as usize][d.index()]
    }
}

/// InMsgs<Dir>.
pub const fn in_msgs(d: Direction) -> Counter {
    crate::IN_MSGS[d.index()]
}
/// InMsgsSize<Dir>.
pub const fn in_msgs_size(d: Direction) -> Counter {
    crate::IN_MSGS_SIZE[d.index()]
}
/// InMsgsRecips<Dir>.
pub const fn in_msgs_recips(d: Direction) -> Counter {
    crate::IN_MSGS_RECIPS[d.index()]
}
