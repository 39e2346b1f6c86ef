//! avis-nanny's batch modes for scripts: amavisd-nanny's text layout and a JSON document
//! per sample.
//!
//! Text: the two-line header once, then per sample an empty line and one line per worker
//! slot in use, sorted by slot: `PID <slot %05d>: <task-id or state %-11s> <elapsed> <bar>`.
//! Our "PID" is the worker slot (every worker is a task of one avisd process, whose pid
//! the JSON carries); the task id is the worker's mail id, else its MTA queue id, else its
//! state letter. Unlike amavisd-nanny, every line goes to stdout (amavisd-nanny printed
//! worker lines on stderr; munin plugins ran it with `2>&1`, which still works), and
//! nothing is ever killed: avisd enforces its own timeouts. Pure formatting; no I/O.

use agent_mib::{ProcKey, SlotView, Snapshot};
use serde_json::{Value as Json, json};

use crate::bar::{self, BAR_WIDTH, Histories};
use crate::fmt;

/// amavisd-nanny's header, printed once.
pub const HEADER: &str =
    "process-id task-id     elapsed in    elapsed-bar (dots indicate idle)\n           or state   idle or busy\n";

/// What the task column shows: the mail id, else the queue id, else the state letter.
pub fn task(slot: &SlotView) -> String {
    if !slot.mail_id.is_empty() {
        slot.mail_id.clone()
    } else if !slot.queue_id.is_empty() {
        slot.queue_id.clone()
    } else {
        slot.state.letter().to_string()
    }
}

/// Whole seconds since the nanny timestamp, as amavisd-nanny shows them.
pub fn elapsed_secs(slot: &SlotView, now_ms: u64) -> u64 {
    slot.busy_age_ms(now_ms) / 1000
}

/// Whether `slot` has been busy longer than `stuck_ms`.
pub fn is_stuck(slot: &SlotView, now_ms: u64, stuck_ms: u64) -> bool {
    slot.is_busy() && slot.busy_age_ms(now_ms) > stuck_ms
}

/// One worker's line, without the newline.
pub fn line(slot: &SlotView, histories: &Histories, now_ms: u64) -> String {
    let bar = bar::render(slot, histories.letters(slot.index), now_ms, BAR_WIDTH);
    format!(
        "PID {:05}: {:<11} {} {bar}",
        slot.index,
        task(slot),
        fmt::elapsed(elapsed_secs(slot, now_ms))
    )
}

/// One sample: an empty line, then a line per worker in use.
pub fn text(snap: &Snapshot, histories: &Histories) -> String {
    let mut out = String::from("\n");
    for slot in snap.workers() {
        out.push_str(&line(slot, histories, snap.taken_ms()));
        out.push('\n');
    }
    out
}

/// One sample as a JSON document.
pub fn json(snap: &Snapshot, histories: &Histories, stuck_ms: u64) -> Json {
    let now = snap.taken_ms();
    let workers: Vec<Json> = snap
        .workers()
        .map(|s| {
            json!({
                "slot": s.index,
                "pid": format!("{:05}", s.index),
                "state": s.state.letter().to_string(),
                "meaning": s.state.meaning(),
                "busy": s.is_busy(),
                "task": task(s),
                "mail_id": s.mail_id,
                "queue_id": s.queue_id,
                "elapsed_s": elapsed_secs(s, now),
                "in_state_s": now.saturating_sub(s.state_since_ms) / 1000,
                "bar": bar::render(s, histories.letters(s.index), now, BAR_WIDTH),
                "stuck": is_stuck(s, now, stuck_ms),
                "msgs_done": s.msgs_done,
                "connections": s.connections,
            })
        })
        .collect();
    json!({
        "taken_ms": now,
        "running": snap.writer_alive(),
        "writer_pid": snap.writer_pid(),
        "generation": snap.generation(),
        "totals": {
            "all": snap.proc(ProcKey::All),
            "idle": snap.proc(ProcKey::Idle),
            "busy": snap.proc(ProcKey::Busy),
            "busy_transfer": snap.proc(ProcKey::BusyTransfer),
            "busy_decode": snap.proc(ProcKey::BusyDecode),
            "busy_virus": snap.proc(ProcKey::BusyVirus),
            "busy_spam": snap.proc(ProcKey::BusySpam),
            "busy_other": snap.proc(ProcKey::BusyOther),
            "stuck": snap.workers().filter(|s| is_stuck(s, now, stuck_ms)).count(),
        },
        "workers": workers,
    })
}

/// The JSON document of a sample that found no scoreboard (or an unreadable one).
pub fn json_missing(now_ms: u64, why: &str) -> Json {
    json!({ "taken_ms": now_ms, "running": false, "error": why, "workers": [] })
}
