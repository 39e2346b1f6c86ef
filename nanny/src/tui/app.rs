//! The TUI's state and how events change it. [`App::handle`] is the only place that
//! changes anything: snapshots from the poller, keys and ticks all arrive as [`Event`]s
//! on one channel. Rendering (in `render`) only reads an `&App`. The clock the screen
//! shows is the snapshot's own `taken_ms`, so screens are reproducible in tests.

use std::path::PathBuf;

use agent_mib::{ReadError, SlotView, Snapshot};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::bar::Histories;
use crate::batch::is_stuck;
use crate::stats::{LatencyWindow, Throughput};

/// Everything the TUI reacts to, in arrival order.
// A few events a second go through the channel; boxing the snapshot would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Event {
    /// A reading of the scoreboard (or why there was none), from the poller thread.
    Snapshot(Result<Snapshot, ReadError>),
    /// A key press.
    Key(KeyEvent),
    /// The terminal was resized.
    Resize,
    /// Time passed without input.
    Tick,
}

/// What the scoreboard said last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Nothing read yet.
    Starting,
    /// avisd is running on the scoreboard.
    Running,
    /// The scoreboard exists but no avisd is attached (it stopped).
    Stopped,
    /// The scoreboard does not exist: no filter running.
    Missing,
    /// The scoreboard cannot be read (incompatible build, permissions): the reason.
    Unreadable(String),
}

/// Worker order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// By slot number.
    Slot,
    /// Longest busy first, then idle.
    Busy,
    /// By state letter, busy first.
    State,
}

impl SortBy {
    /// The next order (the `s` key).
    pub const fn next(self) -> SortBy {
        match self {
            SortBy::Slot => SortBy::Busy,
            SortBy::Busy => SortBy::State,
            SortBy::State => SortBy::Slot,
        }
    }

    /// Its name on screen.
    pub const fn label(self) -> &'static str {
        match self {
            SortBy::Slot => "slot",
            SortBy::Busy => "busy time",
            SortBy::State => "state",
        }
    }
}

/// Which workers are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Every worker in use.
    All,
    /// Busy workers only.
    Busy,
    /// Stuck workers only.
    Stuck,
}

impl Filter {
    /// The next filter (the `f` key).
    pub const fn next(self) -> Filter {
        match self {
            Filter::All => Filter::Busy,
            Filter::Busy => Filter::Stuck,
            Filter::Stuck => Filter::All,
        }
    }

    /// Its name on screen.
    pub const fn label(self) -> &'static str {
        match self {
            Filter::All => "all",
            Filter::Busy => "busy",
            Filter::Stuck => "stuck",
        }
    }
}

/// The TUI's state.
#[derive(Debug)]
pub struct App {
    /// The scoreboard watched.
    pub path: PathBuf,
    /// The last snapshot, while there is one.
    pub snapshot: Option<Snapshot>,
    /// What the last reading said.
    pub status: Status,
    /// Per-worker state histories for the bars.
    pub histories: Histories,
    /// InMsgs over time.
    pub throughput: Throughput,
    /// The latency histograms over the last minutes.
    pub latency: LatencyWindow,
    /// Worker order.
    pub sort: SortBy,
    /// Which workers are listed.
    pub filter: Filter,
    /// Whether the help overlay is open.
    pub help: bool,
    /// First listed worker (scrolling).
    pub scroll: usize,
    /// Busy longer than this is stuck.
    pub stuck_ms: u64,
    /// Colours on (off with `NO_COLOR`).
    pub color: bool,
    /// Set when the user asked to quit.
    pub quit: bool,
}

impl App {
    /// A fresh app watching `path`.
    pub fn new(path: PathBuf, stuck_ms: u64, color: bool) -> App {
        App {
            path,
            snapshot: None,
            status: Status::Starting,
            histories: Histories::default(),
            throughput: Throughput::default(),
            latency: LatencyWindow::default(),
            sort: SortBy::Slot,
            filter: Filter::All,
            help: false,
            scroll: 0,
            stuck_ms,
            color,
            quit: false,
        }
    }

    /// Applies one event.
    pub fn handle(&mut self, event: Event) {
        match event {
            Event::Snapshot(Ok(snap)) => self.observe(snap),
            Event::Snapshot(Err(e)) => self.lost(&e),
            Event::Key(key) => self.key(key),
            Event::Resize | Event::Tick => {}
        }
    }

    fn observe(&mut self, snap: Snapshot) {
        self.status = if snap.writer_alive() {
            Status::Running
        } else {
            Status::Stopped
        };
        self.histories.observe(&snap);
        self.throughput.push(&snap);
        self.latency.push(&snap);
        self.snapshot = Some(snap);
        self.scroll = self.scroll.min(self.rows().len().saturating_sub(1));
    }

    fn lost(&mut self, e: &ReadError) {
        self.status = match e {
            ReadError::Missing(_) => Status::Missing,
            ReadError::Incompatible { .. } | ReadError::Damaged { .. } | ReadError::Io { .. } => {
                Status::Unreadable(e.to_string())
            }
        };
        self.snapshot = None;
        self.histories.clear();
        self.throughput.clear();
        self.latency.clear();
        self.scroll = 0;
    }

    fn key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        if ctrl_c || key.code == KeyCode::Char('q') {
            self.quit = true;
            return;
        }
        if self.help {
            // Any other key closes the overlay.
            self.help = false;
            return;
        }
        match key.code {
            KeyCode::Esc => self.quit = true,
            KeyCode::Char('?') | KeyCode::Char('h') | KeyCode::F(1) => self.help = true,
            KeyCode::Char('s') => self.sort = self.sort.next(),
            KeyCode::Char('f') => {
                self.filter = self.filter.next();
                self.scroll = 0;
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.scroll = (self.scroll + 1).min(self.rows().len().saturating_sub(1));
            }
            KeyCode::Up | KeyCode::Char('k') => self.scroll = self.scroll.saturating_sub(1),
            KeyCode::Home | KeyCode::Char('g') => self.scroll = 0,
            _ => {}
        }
    }

    /// The snapshot's clock (0 without one).
    pub fn now_ms(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, Snapshot::taken_ms)
    }

    /// Whether `slot` is stuck now.
    pub fn stuck(&self, slot: &SlotView) -> bool {
        is_stuck(slot, self.now_ms(), self.stuck_ms)
    }

    /// The workers to list, filtered and sorted.
    pub fn rows(&self) -> Vec<&SlotView> {
        let Some(snap) = &self.snapshot else {
            return Vec::new();
        };
        let now = snap.taken_ms();
        let mut rows: Vec<&SlotView> = snap
            .workers()
            .filter(|s| match self.filter {
                Filter::All => true,
                Filter::Busy => s.is_busy(),
                Filter::Stuck => self.stuck(s),
            })
            .collect();
        match self.sort {
            SortBy::Slot => {}
            SortBy::Busy => rows.sort_by_key(|s| (!s.is_busy(), std::cmp::Reverse(s.busy_age_ms(now)), s.index)),
            SortBy::State => rows.sort_by_key(|s| (!s.is_busy(), s.state.letter(), s.index)),
        }
        rows
    }
}
