//! amavisd-nanny's elapsed bar and the per-worker state history behind it.
//!
//! The bar is 35 columns: nine fill characters and a `:` three times, then five, so a
//! `:` marks every ten seconds. An idle worker's bar is dots, one per second idle. A
//! busy worker's bar is its history: one character per second since the nanny
//! timestamp (accept or MAIL FROM), each the state letter seen then. amavisd-nanny only
//! learns states when it polls; we also know when the current state began
//! (`state_since_ms`), so the seconds since then carry the current letter even on the
//! first poll. A history longer than the bar is cut and ends in `>`.
//! Input: snapshots; output: strings. No I/O.

use std::collections::HashMap;

use agent_mib::{SlotView, Snapshot};

/// The width of amavisd-nanny's bar.
pub const BAR_WIDTH: usize = 35;

/// The bar template for `fill`: `fill` everywhere but a `:` after every nine.
fn template(fill: char, i: usize) -> char {
    if i % 10 == 9 { ':' } else { fill }
}

/// One busy worker's history: the nanny timestamp it belongs to and one letter a second.
#[derive(Debug, Clone, PartialEq, Eq)]
struct History {
    busy_since_ms: u64,
    letters: Vec<char>,
}

/// The histories of every busy worker, kept for as long as the nanny runs.
#[derive(Debug, Clone, Default)]
pub struct Histories {
    by_slot: HashMap<usize, History>,
}

impl Histories {
    /// Records what `snap` shows: histories of idle or vanished workers are dropped,
    /// a new nanny timestamp (a new connection or transaction) starts a new history.
    pub fn observe(&mut self, snap: &Snapshot) {
        let now = snap.taken_ms();
        let busy: Vec<&SlotView> = snap.workers().filter(|s| s.is_busy()).collect();
        self.by_slot.retain(|slot, _| busy.iter().any(|s| s.index == *slot));
        for slot in busy {
            let h = self.by_slot.entry(slot.index).or_insert_with(|| History {
                busy_since_ms: slot.busy_since_ms,
                letters: Vec::new(),
            });
            if h.busy_since_ms != slot.busy_since_ms {
                h.busy_since_ms = slot.busy_since_ms;
                h.letters.clear();
            }
            extend(&mut h.letters, slot, now);
        }
    }

    /// Forgets everything (the scoreboard went away or was recreated).
    pub fn clear(&mut self) {
        self.by_slot.clear();
    }

    /// The history of `slot`, if it is busy.
    pub fn letters(&self, slot: usize) -> Option<&[char]> {
        self.by_slot.get(&slot).map(|h| h.letters.as_slice())
    }
}

/// Seconds rounded to the nearest whole one, as amavisd-nanny rounds the age.
fn round_secs(ms: u64) -> usize {
    usize::try_from(ms.saturating_add(500) / 1000).unwrap_or(usize::MAX)
}

/// amavisd-nanny's update, refined by `state_since_ms`: the history grows to the age in
/// seconds (at least 1) by repeating its last letter (`=` at first), and every second
/// since the current state began carries the current letter.
fn extend(letters: &mut Vec<char>, slot: &SlotView, now_ms: u64) {
    // A week of seconds is more than any bar needs; it bounds memory for a stuck worker.
    const MAX_LETTERS: usize = 7 * 86_400;
    let len = round_secs(slot.busy_age_ms(now_ms)).clamp(1, MAX_LETTERS);
    let last = letters.last().copied().unwrap_or('=');
    letters.resize(len, last);
    let in_state = round_secs(now_ms.saturating_sub(slot.state_since_ms.max(slot.busy_since_ms)));
    let from = len.saturating_sub(in_state.max(1));
    let letter = slot.state.letter();
    for c in &mut letters[from..] {
        *c = letter;
    }
}

/// The bar of `slot` at `now_ms`, at most `width` columns, from its history (or, for a
/// worker seen for the first time, the history one poll would give).
pub fn render(slot: &SlotView, history: Option<&[char]>, now_ms: u64, width: usize) -> String {
    if !slot.is_busy() {
        let secs = usize::try_from(slot.busy_age_ms(now_ms) / 1000).unwrap_or(usize::MAX);
        return (0..secs.min(width).min(BAR_WIDTH)).map(|i| template('.', i)).collect();
    }
    let fresh;
    let letters = match history {
        Some(h) => h,
        None => {
            let mut v = Vec::new();
            extend(&mut v, slot, now_ms);
            fresh = v;
            &fresh
        }
    };
    let width = width.min(BAR_WIDTH);
    let overlay = |i: usize, c: char| if template('=', i) == ':' { ':' } else { c };
    if letters.len() <= width {
        return letters.iter().enumerate().map(|(i, &c)| overlay(i, c)).collect();
    }
    let keep = width.saturating_sub(2);
    let mut bar: String = letters[..keep]
        .iter()
        .enumerate()
        .map(|(i, &c)| overlay(i, c))
        .collect();
    if width >= 2 {
        bar.push(letters.last().copied().unwrap_or('='));
    }
    if width >= 1 {
        bar.push('>');
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_mib::WorkerState;

    fn slot(state: WorkerState, busy_since: u64, state_since: u64, mail_id: &str) -> SlotView {
        SlotView {
            state,
            state_since_ms: state_since,
            busy_since_ms: busy_since,
            mail_id: mail_id.into(),
            ..SlotView::idle(1, 0)
        }
    }

    #[test]
    fn idle_bar_is_one_dot_a_second_with_a_colon_every_ten() {
        let s = SlotView::idle(0, 1_000);
        assert_eq!(render(&s, None, 1_000 + 12_400, 35), ".........:..");
        assert_eq!(
            render(&s, None, 1_000 + 600_000, 35),
            ".........:.........:.........:....."
        );
    }

    #[test]
    fn first_sight_of_a_busy_worker_shows_its_current_state_since_it_began() {
        let s = slot(WorkerState::Virus, 0, 2_000, "01234-05");
        assert_eq!(render(&s, None, 5_000, 35), "==VVV");
    }

    #[test]
    fn history_keeps_the_states_seen_at_each_poll() {
        let mut letters = Vec::new();
        extend(&mut letters, &slot(WorkerState::Mail, 0, 0, "x"), 1_000);
        extend(&mut letters, &slot(WorkerState::Mail, 0, 0, "x"), 2_000);
        extend(&mut letters, &slot(WorkerState::Virus, 0, 2_600, "x"), 3_000);
        assert_eq!(letters.iter().collect::<String>(), "mmV");
    }

    #[test]
    fn a_long_history_is_cut_and_ends_with_its_last_letter_and_an_arrow() {
        let s = slot(WorkerState::Spam, 0, 50_000, "x");
        let bar = render(&s, None, 60_000, 35);
        assert_eq!(bar.chars().count(), 35);
        assert!(bar.ends_with("S>"), "{bar}");
        assert_eq!(bar.chars().nth(9), Some(':'));
    }
}
