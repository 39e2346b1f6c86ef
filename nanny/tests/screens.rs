//! Whole-screen tests of avis-nanny's TUI with ratatui's TestBackend: hand-built
//! snapshots with a fixed clock go through `App::handle` like the poller's, the screen
//! is rendered at 80×24 (and wider), and the text must equal the golden screen in
//! `tests/screens/<name>.txt`. On a mismatch the actual screen is written beside it as
//! `<name>.txt.failed`; `AVIS_UPDATE_SCREENS=1` rewrites the golden files (review them!).
// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use agent_mib::{
    Counter, Gauge, LATENCY_BOUNDS_MS, ReadError, Scanner, SlotView, Snapshot, SnapshotParts, Stage, WorkerState,
};
use nanny::tui::render::render;
use nanny::tui::{App, Event};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::style::{Color, Modifier};

/// 2026-11-29 06:00:00 UTC.
const T0: u64 = 1_795_932_000_000;
const START: u64 = T0 - 26 * 3_600_000 - 125_000;

fn slot(index: usize, state: WorkerState, busy_for_s: u64, in_state_s: u64, mail_id: &str) -> SlotView {
    SlotView {
        index,
        state,
        state_since_ms: T0 - in_state_s * 1000,
        busy_since_ms: T0 - busy_for_s * 1000,
        msgs_done: 10 + index as u64,
        generation: 1,
        in_flight: u64::from(!mail_id.is_empty()),
        connections: 5,
        mail_id: mail_id.into(),
        queue_id: String::new(),
    }
}

/// A snapshot at `T0 + dt_ms` of a filter that has processed `msgs` messages.
fn snapshot(dt_ms: u64, msgs: u64, slots: Vec<SlotView>, alive: bool) -> Snapshot {
    let mut counters = vec![0u64; agent_mib::COUNTER_COUNT];
    let mut set = |c: Counter, v: u64| counters[c as usize] = v;
    set(Counter::InMsgs, msgs);
    set(Counter::ContentCleanMsgs, msgs * 8 / 10);
    set(Counter::ContentSpamMsgs, msgs / 10);
    set(Counter::ContentSpammyMsgs, msgs / 20);
    set(Counter::ContentVirusMsgs, msgs / 50);
    set(Counter::ContentBannedMsgs, msgs / 100);
    for stage in Stage::ALL {
        let (count, sum, buckets) = stage.counters();
        // Spread over the buckets around 100–500 ms, with a tail.
        let spread = [0, 0, 1, 3, 6, 3, 1, 1, 0, 0, 0, 0, 0];
        let n: u64 = spread.iter().sum();
        for (b, w) in buckets.iter().zip(spread) {
            set(*b, msgs * w / n);
        }
        set(count, msgs);
        set(sum, msgs * LATENCY_BOUNDS_MS[4]);
    }
    let (req, err, to, _) = Scanner::Clamd.handles();
    set(req, msgs);
    set(err, 2);
    set(to, 1);
    let (req, _, _, _) = Scanner::Spamd.handles();
    set(req, msgs);
    let (req, _, _, _) = Scanner::Backend.handles();
    set(req, msgs);
    let in_flight: u64 = slots.iter().map(|s| s.in_flight).sum();
    set(Counter::LedgerReceived, msgs + in_flight);
    set(Counter::LedgerRelayed, msgs);
    let mut gauges = vec![0u64; agent_mib::GAUGE_COUNT];
    gauges[Gauge::ScannerClamdLastLatencyMs as usize] = 14;
    gauges[Gauge::ScannerSpamdLastLatencyMs as usize] = 1_250;
    gauges[Gauge::ScannerBackendLastLatencyMs as usize] = 3;
    Snapshot::new(SnapshotParts {
        taken_ms: T0 + dt_ms,
        started_ms: START,
        writer_pid: 4242,
        generation: 3,
        heartbeat_ms: T0 + dt_ms,
        writer_alive: alive,
        texts: [
            "avis 0.1.0".into(),
            "mx1.example.org".into(),
            String::new(),
            String::new(),
        ],
        counters,
        gauges,
        slots,
    })
}

fn idle_slots(n: usize) -> Vec<SlotView> {
    (0..n)
        .map(|i| slot(i, WorkerState::Idle, 3 + 7 * i as u64, 3 + 7 * i as u64, ""))
        .collect()
}

fn app() -> App {
    App::new(PathBuf::from("/var/lib/avis/scoreboard"), 600_000, true)
}

fn key(app: &mut App, c: char) {
    app.handle(Event::Key(KeyEvent::from(KeyCode::Char(c))));
}

fn screen(app: &App, w: u16, h: u16) -> (String, ratatui::buffer::Buffer) {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| render(app, f)).unwrap();
    let buf = terminal.backend().buffer().clone();
    let mut text = String::new();
    for y in 0..h {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    (text, buf)
}

fn assert_screen(name: &str, actual: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("screens");
    let golden = dir.join(format!("{name}.txt"));
    let failed = dir.join(format!("{name}.txt.failed"));
    if std::env::var_os("AVIS_UPDATE_SCREENS").is_some() {
        std::fs::write(&golden, actual).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    if want == actual {
        let _ = std::fs::remove_file(&failed);
        return;
    }
    std::fs::write(&failed, actual).unwrap();
    panic!(
        "screen {name} differs from {}; actual written to {}:\n{actual}",
        golden.display(),
        failed.display()
    );
}

/// Feeds snapshots every second for `secs` seconds, the last at `T0`, building the
/// bars' histories as a running nanny would.
fn feed(app: &mut App, secs: u64, at: impl Fn(u64) -> Snapshot) {
    for s in (0..=secs).rev() {
        let snap = at(s);
        app.handle(Event::Snapshot(Ok(snap)));
    }
}

fn busy_slots(back_s: u64) -> Vec<SlotView> {
    // Each worker as it was `back_s` seconds before T0.
    let at = |s: SlotView| SlotView {
        state_since_ms: s.state_since_ms.min(T0 - back_s * 1000),
        ..s
    };
    let virus_or_decode = if back_s >= 2 {
        WorkerState::Decode
    } else {
        WorkerState::Virus
    };
    let spam_or_mail = if back_s >= 4 {
        WorkerState::Data
    } else {
        WorkerState::Spam
    };
    vec![
        at(slot(0, virus_or_decode, 6, 2, "01234-05-2")),
        at(slot(1, spam_or_mail, 12, 4, "01234-06")),
        at(slot(2, WorkerState::Accepted, 1, 1, "")),
        at(slot(3, WorkerState::Forward, 3, 1, "qJ1nS-Ab3cdE")),
        slot(4, WorkerState::Idle, 41, 41, ""),
        slot(5, WorkerState::Done, 8, 2, ""),
        at(slot(6, WorkerState::Quarantine, 19, 3, "01240-01")),
        slot(7, WorkerState::Idle, 250, 250, ""),
    ]
}

fn shift(snap: Snapshot, back_s: u64) -> Snapshot {
    let mut parts = SnapshotParts {
        taken_ms: snap.taken_ms() - back_s * 1000,
        started_ms: snap.started_ms(),
        writer_pid: snap.writer_pid(),
        generation: snap.generation(),
        heartbeat_ms: snap.heartbeat_ms(),
        writer_alive: snap.writer_alive(),
        texts: Default::default(),
        counters: Counter::ALL.iter().map(|c| snap.counter(*c)).collect(),
        gauges: Gauge::ALL.iter().map(|g| snap.gauge(*g)).collect(),
        slots: snap.slots().to_vec(),
    };
    parts.texts[1] = "mx1.example.org".into();
    Snapshot::new(parts)
}

#[test]
fn idle_filter_at_80x24() {
    let mut app = app();
    feed(&mut app, 3, |s| {
        shift(snapshot(0, 5_000 - 2 * s, idle_slots(6), true), s)
    });
    let (text, _) = screen(&app, 80, 24);
    assert_screen("idle_80x24", &text);
}

#[test]
fn busy_workers_in_several_states_at_80x24() {
    let mut app = app();
    feed(&mut app, 6, |s| {
        shift(snapshot(0, 12_000 - 3 * s, busy_slots(s), true), s)
    });
    let (text, buf) = screen(&app, 80, 24);
    assert_screen("busy_80x24", &text);
    // The state letter of the virus-scanning worker is red and bold.
    let row = 2; // title, header, then slot 0
    let letter = (0..80).find(|&x| buf[(x, row)].symbol() == "V").unwrap();
    assert_eq!(buf[(letter, row)].fg, Color::Red);
    assert!(buf[(letter, row)].modifier.contains(Modifier::BOLD));
}

#[test]
fn busy_workers_on_a_wide_terminal_get_the_full_bar_and_meanings() {
    let mut app = app();
    feed(&mut app, 6, |s| {
        shift(snapshot(0, 12_000 - 3 * s, busy_slots(s), true), s)
    });
    let (text, _) = screen(&app, 120, 30);
    assert_screen("busy_120x30", &text);
}

#[test]
fn a_stuck_worker_stands_out() {
    let mut app = app();
    let mut slots = idle_slots(4);
    slots[2] = slot(2, WorkerState::Virus, 12 * 60 + 5, 11 * 60, "01300-01");
    app.handle(Event::Snapshot(Ok(snapshot(0, 900, slots, true))));
    let (text, buf) = screen(&app, 80, 24);
    assert_screen("stuck_80x24", &text);
    assert!(text.lines().next().unwrap().contains("1 STUCK"));
    // The stuck worker's row is reversed.
    let row = 4;
    assert!(buf[(0, row)].modifier.contains(Modifier::REVERSED), "{text}");
    assert!(!buf[(0, row - 1)].modifier.contains(Modifier::REVERSED));
    // All of it, the state letter too, is red and reversed.
    let letter = (0..80).find(|&x| buf[(x, row)].symbol() == "V").unwrap();
    assert_eq!(buf[(letter, row)].fg, Color::Red);
    assert!(buf[(letter, row)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn no_filter_running() {
    let mut app = app();
    app.handle(Event::Snapshot(Err(ReadError::Missing(PathBuf::from(
        "/var/lib/avis/scoreboard",
    )))));
    let (text, _) = screen(&app, 80, 24);
    assert_screen("missing_80x24", &text);
    assert!(text.contains("filter not running"));
}

#[test]
fn more_workers_than_fit_say_how_many_are_below_and_scroll() {
    let mut app = app();
    let mut slots = idle_slots(30);
    slots[27] = slot(27, WorkerState::Spam, 3_600, 3_000, "01300-01");
    app.handle(Event::Snapshot(Ok(snapshot(0, 100, slots, true))));
    let (text, _) = screen(&app, 80, 24);
    assert_screen("many_80x24", &text);
    assert!(text.contains("… 20 more 1 STUCK"), "{text}");
    for _ in 0..5 {
        app.handle(Event::Key(KeyEvent::from(KeyCode::Down)));
    }
    let (text, _) = screen(&app, 80, 24);
    assert!(text.contains("\n00005 "), "{text}");
    assert!(!text.contains("\n00004 "), "{text}");
    assert!(text.contains("… 15 more"), "{text}");
}

#[test]
fn an_incompatible_scoreboard_says_why() {
    let mut app = app();
    app.handle(Event::Snapshot(Err(ReadError::Incompatible {
        path: PathBuf::from("/var/lib/avis/scoreboard"),
        why: "layout version 9 but this program reads 1".into(),
    })));
    let (text, _) = screen(&app, 80, 24);
    assert!(text.contains("cannot read the scoreboard"), "{text}");
    assert!(text.contains("version 9 but this program reads 1"), "{text}");
    assert!(text.lines().next().unwrap().contains("scoreboard unreadable"), "{text}");
}

#[test]
fn a_stopped_filter_is_not_running() {
    let mut app = app();
    app.handle(Event::Snapshot(Ok(snapshot(0, 10, Vec::new(), false))));
    let (text, _) = screen(&app, 80, 24);
    assert!(text.lines().next().unwrap().contains("filter not running"), "{text}");
    assert!(text.contains("avisd (pid 4242) has stopped"), "{text}");
}

#[test]
fn a_recreated_scoreboard_is_picked_up_again() {
    let mut app = app();
    app.handle(Event::Snapshot(Ok(snapshot(0, 10, idle_slots(2), true))));
    app.handle(Event::Snapshot(Err(ReadError::Missing(PathBuf::from("/x")))));
    assert!(screen(&app, 80, 24).0.contains("filter not running"));
    app.handle(Event::Snapshot(Ok(snapshot(1_000, 0, idle_slots(3), true))));
    let (text, _) = screen(&app, 80, 24);
    assert!(!text.contains("filter not running"), "{text}");
    assert!(text.contains("00002"), "{text}");
}

#[test]
fn help_overlay_lists_every_state_and_the_keys() {
    let mut app = app();
    feed(&mut app, 2, |s| shift(snapshot(0, 12_000, busy_slots(s), true), s));
    key(&mut app, '?');
    let (text, _) = screen(&app, 80, 24);
    assert_screen("help_80x24", &text);
    for s in WorkerState::ALL {
        assert!(text.contains(s.meaning()), "{}", s.meaning());
    }
    key(&mut app, 'x');
    assert!(!app.help, "any key closes the help");
}

#[test]
fn sort_and_filter_keys_change_the_listed_workers() {
    let mut app = app();
    feed(&mut app, 1, |s| shift(snapshot(0, 12_000, busy_slots(s), true), s));
    let order = |app: &App| app.rows().iter().map(|s| s.index).collect::<Vec<_>>();
    assert_eq!(order(&app), [0, 1, 2, 3, 4, 5, 6, 7]);
    key(&mut app, 's'); // busy time, longest first; then idle, longest first
    assert_eq!(order(&app), [6, 1, 0, 3, 2, 7, 4, 5]);
    key(&mut app, 'f'); // busy only
    assert_eq!(order(&app), [6, 1, 0, 3, 2]);
    key(&mut app, 'f'); // stuck only: none
    assert!(order(&app).is_empty());
    assert!(screen(&app, 80, 24).0.contains("no workers to show (filter: stuck)"));
    key(&mut app, 'q');
    assert!(app.quit);
}

#[test]
fn no_color_draws_without_colours_but_stuck_still_shows() {
    let mut app = App::new(PathBuf::from("/sb"), 600_000, false);
    let mut slots = idle_slots(3);
    slots[1] = slot(1, WorkerState::Virus, 700, 600, "01300-01");
    app.handle(Event::Snapshot(Ok(snapshot(0, 900, slots, true))));
    let (_, buf) = screen(&app, 80, 24);
    for cell in buf.content() {
        assert_eq!(cell.fg, Color::Reset, "a coloured cell {:?}", cell.symbol());
    }
    assert!(buf[(0, 3)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn any_terminal_size_draws_without_panicking() {
    let mut app = app();
    feed(&mut app, 2, |s| shift(snapshot(0, 12_000, busy_slots(s), true), s));
    for (w, h) in [(1, 1), (10, 3), (40, 10), (79, 23), (200, 60)] {
        screen(&app, w, h);
        key(&mut app, '?');
        screen(&app, w, h);
        key(&mut app, 'x');
    }
}
