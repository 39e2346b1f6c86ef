//! record: what a processed message leaves behind. One call, [`record_message`], both
//! counts (the AMAVIS-MIB counters amavisd bumps for it, the ledger, the latency
//! histograms) and logs (one JSON event), so a call site cannot do one without the other.

pub mod event;
pub mod sink;

use std::time::Duration;

use agent_mib::families::{self, ContentCategory, Direction, Status};
use agent_mib::{Counter, Outcome, Stage, WorkerSlot};

use crate::message::{
    ConnUse, Delivery, DeliveryKind, Envelope, HeaderFacts, Ids, Peer, Quarantined, RecipientResult, Reply,
};

/// What the checks found, for the event.
#[derive(Debug, Clone, Default)]
pub struct CheckSummary {
    /// amavisd's checks_performed letters.
    pub performed: String,
    /// Virus names found.
    pub virus_names: Vec<String>,
    /// Spam score and rule names.
    pub spam: Option<(f64, Vec<String>)>,
    /// Decoded Subject.
    pub subject: Option<String>,
    /// From addresses.
    pub from: Vec<String>,
    /// Message-ID.
    pub message_id: Option<String>,
    /// Declared names of the top-level parts.
    pub file_names: Vec<String>,
    /// To, Cc, Sender, references, user agent.
    pub headers: HeaderFacts,
    /// Decoding time.
    pub decoding: Option<Duration>,
    /// Virus scanning time.
    pub virus: Option<Duration>,
    /// Spam scanning time.
    pub spam_time: Option<Duration>,
}

/// Everything known about a processed message.
#[derive(Debug, Clone)]
pub struct MessageSummary {
    /// Ids.
    pub ids: Ids,
    /// Unix ms of MAIL FROM.
    pub received_at_ms: u64,
    /// The envelope.
    pub envelope: Envelope,
    /// Body size in bytes.
    pub size: u64,
    /// Originating per policy.
    pub originating: bool,
    /// The policy bank.
    pub policy: String,
    /// The host name we announce.
    pub host: String,
    /// The connection.
    pub peer: Peer,
    /// Per recipient, in envelope order.
    pub recipients: Vec<RecipientResult>,
    /// The message's content category.
    pub content: ContentCategory,
    /// Its display name with the minor (`Spammy3`, `BadHdrDupl`…).
    pub content_name: String,
    /// What the checks found.
    pub checks: CheckSummary,
    /// Quarantine copies written.
    pub quarantined: Vec<Quarantined>,
    /// Quarantine copies that could not be written (the message was tempfailed).
    pub quarantine_failures: usize,
    /// Forwarding transactions.
    pub deliveries: Vec<Delivery>,
    /// A DSN was sent.
    pub dsn_sent: bool,
    /// The answer(s) the client got.
    pub client_replies: Vec<Reply>,
    /// The ledger outcome.
    pub outcome: Outcome,
    /// MAIL FROM to the end of DATA.
    pub receiving: Duration,
    /// Forwarding and DSNs.
    pub sending: Duration,
    /// MAIL FROM to the answer.
    pub total: Duration,
}

impl MessageSummary {
    /// The directions the message counts in (besides All).
    pub fn directions(&self) -> Vec<Direction> {
        let has_local = self.recipients.iter().any(|r| r.local);
        let has_remote = self.recipients.iter().any(|r| !r.local);
        Direction::of(self.originating, has_local, has_remote)
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Counts the message in the scoreboard and writes its event. Its ledger entry closes
/// when the answer has reached the client (receive's connection driver).
pub fn record_message(slot: &WorkerSlot, summary: &MessageSummary, events: &sink::EventLog) {
    count_intake(slot, summary);
    count_content(slot, summary);
    for d in &summary.deliveries {
        count_delivery(slot, d);
    }
    count_quarantine(slot, summary);
    count_status(slot, summary);
    slot.bump(Counter::TimeElapsedReceiving, ms(summary.receiving));
    slot.bump(Counter::TimeElapsedSending, ms(summary.sending));
    slot.bump(Counter::TimeElapsedTotal, ms(summary.total));
    slot.observe(Stage::Receive, summary.receiving);
    slot.observe(Stage::Forward, summary.sending);
    slot.observe(Stage::Total, summary.total);
    slot.bump(Counter::LogEntries, 1);
    slot.bump(Counter::LogEntriesInfo, 1);
    slot.bump(Counter::LogEntriesNotice, 1);
    slot.bump(Counter::LogEntriesDebug, 1);
    slot.bump(Counter::LogEntriesLevel0, 1);
    slot.bump(Counter::LogLines, 1);
    for name in &summary.checks.virus_names {
        slot.board().count_virus(name);
    }
    let lost = events.write(&event::build(summary));
    if lost > 0 {
        slot.bump(Counter::EventsDropped, lost);
    }
}

fn count_intake(slot: &WorkerSlot, s: &MessageSummary) {
    let n_loc = s.recipients.iter().filter(|r| r.local).count() as u64;
    let n_rem = s.recipients.len() as u64 - n_loc;
    slot.bump(Counter::InMsgs, 1);
    slot.bump(Counter::InMsgsRecips, n_loc + n_rem);
    slot.bump(Counter::InMsgsSize, s.size);
    if s.envelope.mail_from.is_empty() {
        slot.bump(Counter::InMsgsBounceNullRPath, 1);
    }
    if s.originating {
        slot.bump(families::in_msgs(Direction::Originating), 1);
        slot.bump(families::in_msgs_recips(Direction::Originating), n_loc + n_rem);
        slot.bump(families::in_msgs_size(Direction::Originating), s.size);
    }
    if n_loc > 0 {
        let d = if s.originating {
            Direction::Internal
        } else {
            Direction::Inbound
        };
        slot.bump(families::in_msgs(d), 1);
        slot.bump(families::in_msgs_recips(d), n_loc);
        slot.bump(Counter::InMsgsRecipsLocal, n_loc);
        slot.bump(families::in_msgs_size(d), s.size);
    }
    if n_rem > 0 {
        let d = if s.originating {
            Direction::Outbound
        } else {
            Direction::OpenRelay
        };
        slot.bump(families::in_msgs(d), 1);
        slot.bump(families::in_msgs_recips(d), n_rem);
        slot.bump(families::in_msgs_size(d), s.size);
    }
}

fn count_quarantine(slot: &WorkerSlot, s: &MessageSummary) {
    let attempts = s.quarantined.len() + s.quarantine_failures;
    if attempts == 0 {
        return;
    }
    slot.bump(Counter::QuarMsgs, attempts as u64);
    slot.bump(Counter::QuarMsgsSize, s.size * attempts as u64);
    slot.bump(Counter::QuarAttemptTempFails, s.quarantine_failures as u64);
    for q in &s.quarantined {
        let (msgs, size) = match q.category {
            ContentCategory::Virus => (Counter::QuarMsgsVirus, Counter::QuarMsgsSizeVirus),
            ContentCategory::Banned => (Counter::QuarMsgsBanned, Counter::QuarMsgsSizeBanned),
            ContentCategory::Spam => (Counter::QuarMsgsSpam, Counter::QuarMsgsSizeSpam),
            ContentCategory::Spammy => (Counter::QuarMsgsSpammy, Counter::QuarMsgsSizeSpammy),
            ContentCategory::BadHdr => (Counter::QuarMsgsBadHdr, Counter::QuarMsgsSizeBadHdr),
            ContentCategory::Unchecked => (Counter::QuarMsgsUnchecked, Counter::QuarMsgsSizeUnchecked),
            ContentCategory::Oversized => (Counter::QuarMsgsOversized, Counter::QuarMsgsSizeOversized),
            ContentCategory::MtaFailed => (Counter::QuarMsgsMtaFailed, Counter::QuarMsgsSizeMtaFailed),
            ContentCategory::Clean => (Counter::QuarMsgsClean, Counter::QuarMsgsSizeClean),
        };
        slot.bump(msgs, 1);
        slot.bump(size, s.size);
    }
}

fn count_content(slot: &WorkerSlot, s: &MessageSummary) {
    slot.bump(s.content.counter(Direction::All), 1);
    for d in s.directions() {
        slot.bump(s.content.counter(d), 1);
    }
}

fn count_delivery(slot: &WorkerSlot, d: &Delivery) {
    match d.conn {
        ConnUse::New => slot.bump(Counter::OutConnNew, 1),
        ConnUse::ReuseRecent => slot.bump(Counter::OutConnReuseRecent, 1),
        ConnUse::None => {}
    }
    if d.reuse_failed {
        slot.bump(Counter::OutConnReuseFail, 1);
        slot.bump(Counter::OutConnNew, 1);
    }
    if d.conn != ConnUse::None {
        slot.bump(Counter::OutConnTransact, 1);
    }
    let submitted = d.kind != DeliveryKind::Relay;
    let kind = if submitted {
        Counter::OutMsgsSubmit
    } else {
        Counter::OutMsgsRelay
    };
    let (proto, proto_relay, proto_submit) = match d.protocol {
        "LMTP" => (
            Counter::OutMsgsProtoLMTP,
            Counter::OutMsgsProtoLMTPRelay,
            Counter::OutMsgsProtoLMTPSubmit,
        ),
        "Pipe" => (
            Counter::OutMsgsProtoPipe,
            Counter::OutMsgsProtoPipeRelay,
            Counter::OutMsgsProtoPipeSubmit,
        ),
        "Local" => (
            Counter::OutMsgsProtoLocal,
            Counter::OutMsgsProtoLocalRelay,
            Counter::OutMsgsProtoLocalSubmit,
        ),
        _ => (
            Counter::OutMsgsProtoSMTP,
            Counter::OutMsgsProtoSMTPRelay,
            Counter::OutMsgsProtoSMTPSubmit,
        ),
    };
    let proto_kind = if submitted { proto_submit } else { proto_relay };
    let mut bumped = vec![Counter::OutMsgs, kind, proto, proto_kind];
    match d.kind {
        DeliveryKind::Relay => {}
        DeliveryKind::Dsn => bumped.push(Counter::OutMsgsSubmitDsn),
        DeliveryKind::Quarantine => bumped.push(Counter::OutMsgsSubmitQuar),
    }
    for c in &bumped {
        slot.bump(*c, 1);
    }
    let replies = d.replies.as_deref().unwrap_or_default();
    if replies.iter().any(Reply::is_positive) {
        slot.bump(Counter::OutMsgsDelivers, 1);
        for c in bumped {
            if let Some(size) = size_counter(c) {
                slot.bump(size, d.size);
            }
        }
    } else if replies.is_empty() || replies.iter().any(Reply::is_transient) {
        slot.bump(Counter::OutMsgsAttemptFails, 1);
    } else {
        slot.bump(Counter::OutMsgsRejects, 1);
    }
}

/// The OutMsgsSize* counter matching an OutMsgs* counter.
fn size_counter(c: Counter) -> Option<Counter> {
    Some(match c {
        Counter::OutMsgs => Counter::OutMsgsSize,
        Counter::OutMsgsRelay => Counter::OutMsgsSizeRelay,
        Counter::OutMsgsSubmit => Counter::OutMsgsSizeSubmit,
        Counter::OutMsgsSubmitDsn => Counter::OutMsgsSizeSubmitDsn,
        Counter::OutMsgsSubmitQuar => Counter::OutMsgsSizeSubmitQuar,
        Counter::OutMsgsProtoLocal => Counter::OutMsgsSizeProtoLocal,
        Counter::OutMsgsProtoLocalRelay => Counter::OutMsgsSizeProtoLocalRelay,
        Counter::OutMsgsProtoLocalSubmit => Counter::OutMsgsSizeProtoLocalSubmit,
        Counter::OutMsgsProtoSMTP => Counter::OutMsgsSizeProtoSMTP,
        Counter::OutMsgsProtoSMTPRelay => Counter::OutMsgsSizeProtoSMTPRelay,
        Counter::OutMsgsProtoSMTPSubmit => Counter::OutMsgsSizeProtoSMTPSubmit,
        Counter::OutMsgsProtoLMTP => Counter::OutMsgsSizeProtoLMTP,
        Counter::OutMsgsProtoLMTPRelay => Counter::OutMsgsSizeProtoLMTPRelay,
        Counter::OutMsgsProtoLMTPSubmit => Counter::OutMsgsSizeProtoLMTPSubmit,
        Counter::OutMsgsProtoPipe => Counter::OutMsgsSizeProtoPipe,
        Counter::OutMsgsProtoPipeRelay => Counter::OutMsgsSizeProtoPipeRelay,
        Counter::OutMsgsProtoPipeSubmit => Counter::OutMsgsSizeProtoPipeSubmit,
        _ => return None,
    })
}

fn count_status(slot: &WorkerSlot, s: &MessageSummary) {
    let mut seen: Vec<Counter> = Vec::new();
    let mut once = |c: Counter| {
        if !seen.contains(&c) {
            seen.push(c);
            slot.bump(c, 1);
        }
    };
    for r in &s.recipients {
        once(r.status.counter(Direction::All));
        if matches!(r.status, Status::RelayedTagged | Status::RelayedUntagged) {
            once(Counter::InMsgsStatusRelayed);
        }
        once(r.status.counter(Direction::of_recipient(s.originating, r.local)));
        if s.originating {
            once(r.status.counter(Direction::Originating));
        }
    }
}

/// The actions_performed entries: status + direction per recipient, unique, in order.
pub fn actions_performed(s: &MessageSummary) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in &s.recipients {
        let word = match r.status {
            Status::RelayedUntagged => "Relayed",
            other => other.name(),
        };
        let entry = format!("{word}{}", Direction::of_recipient(s.originating, r.local).suffix());
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    if !s.quarantined.is_empty() {
        out.push("Quarantined".to_string());
    }
    out
}
