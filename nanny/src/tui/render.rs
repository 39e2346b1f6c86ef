//! Draws the TUI from an `&App`, changing nothing: a title line, the worker table (slot,
//! task or mail id, state letter and meaning, time in state, time busy, the elapsed bar),
//! four panels (workers and throughput, latency quantiles, content categories, scanners
//! and the ledger), a two-line legend, and the help overlay. Fits 80×24; wider terminals
//! give the meaning column and the bar more room. Colour by state unless `NO_COLOR`;
//! stuck workers are bold and reversed, which shows without colour too.

use agent_mib::{ContentCategory, Counter, Direction, LedgerKey, ProcKey, Scanner, Snapshot, Stage, WorkerState};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Sparkline, Table};

use super::app::{App, Status};
use crate::bar::{self, BAR_WIDTH};
use crate::stats;
use crate::{batch, fmt};

/// Colour of a state letter (its activity group), or plain without colour.
pub fn state_style(state: WorkerState, color: bool) -> Style {
    if !color {
        return Style::new();
    }
    let c = match state {
        WorkerState::Unused | WorkerState::Idle | WorkerState::Done => Color::DarkGray,
        WorkerState::Accepted | WorkerState::Begin | WorkerState::Mail | WorkerState::Data => Color::Cyan,
        WorkerState::Forward => Color::Green,
        WorkerState::Check | WorkerState::MailId | WorkerState::Decide | WorkerState::PenPals => Color::Blue,
        WorkerState::Decode => Color::Magenta,
        WorkerState::Virus => Color::Red,
        WorkerState::Spam => Color::Yellow,
        WorkerState::Quarantine => Color::LightRed,
    };
    Style::new().fg(c)
}

fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

fn alarm(color: bool) -> Style {
    let s = bold().add_modifier(Modifier::REVERSED);
    if color { s.fg(Color::Red) } else { s }
}

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    let [title, workers, panels, legend] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(9),
        Constraint::Length(2),
    ])
    .areas(frame.area());
    frame.render_widget(title_line(app), title);
    match (&app.status, &app.snapshot) {
        (Status::Running, Some(snap)) => worker_table(app, snap, frame, workers),
        (Status::Running, None) | (Status::Starting | Status::Stopped | Status::Missing | Status::Unreadable(_), _) => {
            not_running(app, frame, workers);
        }
    }
    if let Some(snap) = &app.snapshot {
        draw_panels(app, snap, frame, panels);
    }
    frame.render_widget(legend_lines(app), legend);
    if app.help {
        help_overlay(app, frame);
    }
}

fn title_line(app: &App) -> Paragraph<'static> {
    let mut spans = vec![Span::styled(" avis-nanny ", bold().add_modifier(Modifier::REVERSED))];
    match (&app.status, &app.snapshot) {
        (Status::Running, Some(snap)) => {
            let host = snap.text(agent_mib::TextField::Name);
            let stuck = snap.workers().filter(|s| app.stuck(s)).count();
            spans.push(Span::raw(format!(
                " {host} pid {} up {} {} UTC ",
                snap.writer_pid(),
                fmt::duration(snap.uptime_ticks() / 100),
                clock(snap.taken_ms())
            )));
            if stuck > 0 {
                spans.push(Span::styled(format!(" {stuck} STUCK "), alarm(app.color)));
            }
        }
        (Status::Starting, _) => spans.push(Span::raw(" reading the scoreboard…")),
        (Status::Unreadable(_), _) => spans.push(Span::styled(" scoreboard unreadable ", alarm(app.color))),
        (Status::Running, None) | (Status::Stopped | Status::Missing, _) => {
            spans.push(Span::styled(" filter not running ", alarm(app.color)));
        }
    }
    Paragraph::new(Line::from(spans))
}

/// `HH:MM:SS` of unix milliseconds (UTC).
fn clock(ms: u64) -> String {
    let s = ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

fn not_running(app: &App, frame: &mut Frame, area: Rect) {
    let (head, detail) = match &app.status {
        Status::Starting => ("reading the scoreboard…".to_string(), String::new()),
        Status::Missing => (
            "filter not running".to_string(),
            format!("no scoreboard at {}", app.path.display()),
        ),
        Status::Stopped => (
            "filter not running".to_string(),
            format!(
                "avisd (pid {}) has stopped; {}",
                app.snapshot.as_ref().map_or(0, Snapshot::writer_pid),
                app.path.display()
            ),
        ),
        Status::Unreadable(why) => ("cannot read the scoreboard".to_string(), why.clone()),
        Status::Running => (String::new(), String::new()),
    };
    let lines = vec![
        Line::raw(""),
        Line::styled(head, alarm(app.color)).centered(),
        Line::raw(detail).centered(),
        Line::raw("waiting; re-attaches by itself when avisd starts").centered(),
    ];
    frame.render_widget(Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: true }), area);
}

fn worker_table(app: &App, snap: &Snapshot, frame: &mut Frame, area: Rect) {
    let now = snap.taken_ms();
    // Slot, task (a 12-character mail id), letter, in state, busy: fixed; the meaning
    // gets 14 to 32 columns and the bar what is left, up to amavisd-nanny's 35.
    let width = usize::from(area.width);
    let fixed = 5 + 12 + 1 + 8 + 8 + 6;
    let bar_w = width.saturating_sub(fixed + 14).clamp(10, BAR_WIDTH);
    let meaning_w = width.saturating_sub(fixed + bar_w).clamp(8, 32);
    let len = |n: usize| Constraint::Length(u16::try_from(n).unwrap_or(u16::MAX));
    let widths = [len(5), len(12), len(1), len(meaning_w), len(8), len(8), len(bar_w)];
    let header = Row::new([
        "PID",
        "task",
        "S",
        "state",
        "in state",
        "busy",
        "elapsed bar (dots: idle)",
    ])
    .style(bold().add_modifier(Modifier::UNDERLINED));
    let listed = app.rows();
    let below = listed.len().saturating_sub(app.scroll);
    let stuck_of = |rows: &[&agent_mib::SlotView]| rows.iter().filter(|s| app.stuck(s)).count();
    // One line for the header; when the rest does not fit, the last line says so.
    let room = usize::from(area.height).saturating_sub(1);
    let shown = if below > room { room.saturating_sub(1) } else { below };
    // Stuck workers scrolled out of sight are counted on the "more" line.
    let hidden_stuck = stuck_of(&listed[..app.scroll.min(listed.len())])
        + stuck_of(listed.get(app.scroll + shown..).unwrap_or_default());
    let rows: Vec<Row> = listed
        .into_iter()
        .skip(app.scroll)
        .take(shown)
        .map(|s| {
            // A stuck row is red and reversed from end to end, state colours included.
            let stuck = app.stuck(s);
            let st = if stuck {
                alarm(app.color)
            } else {
                state_style(s.state, app.color)
            };
            let busy = if s.is_busy() {
                fmt::duration(s.busy_age_ms(now) / 1000)
            } else {
                String::new()
            };
            let row = Row::new([
                Span::raw(format!("{:05}", s.index)),
                Span::raw(batch::task(s)),
                Span::styled(s.state.letter().to_string(), st.add_modifier(Modifier::BOLD)),
                Span::styled(s.state.meaning(), st),
                Span::raw(fmt::duration(now.saturating_sub(s.state_since_ms) / 1000)),
                Span::raw(busy),
                Span::styled(bar::render(s, app.histories.letters(s.index), now, bar_w), st),
            ]);
            if stuck { row.style(alarm(app.color)) } else { row }
        })
        .collect();
    let empty = rows.is_empty();
    frame.render_widget(Table::new(rows, widths).header(header).column_spacing(1), area);
    if below > shown && area.height > 1 {
        let line = Rect::new(area.x, area.y + area.height - 1, area.width, 1);
        let mut spans = vec![Span::styled(format!("… {} more", below - shown), bold())];
        if hidden_stuck > 0 {
            spans.push(Span::styled(format!(" {hidden_stuck} STUCK "), alarm(app.color)));
        }
        spans.push(Span::raw(" (↑↓ to scroll, f to filter)"));
        frame.render_widget(Line::from(spans), line);
    }
    if empty {
        let msg = format!("no workers to show (filter: {})", app.filter.label());
        let [_, line] = Layout::vertical([Constraint::Length(2), Constraint::Length(1)]).areas(area);
        frame.render_widget(Line::raw(msg).centered(), line);
    }
}

fn draw_panels(app: &App, snap: &Snapshot, frame: &mut Frame, area: Rect) {
    let [load, latency, content, scanners] = Layout::horizontal([
        Constraint::Length(19),
        Constraint::Length(24),
        Constraint::Length(14),
        Constraint::Min(20),
    ])
    .spacing(1)
    .areas(area);
    load_panel(app, snap, frame, load);
    frame.render_widget(latency_panel(app), latency);
    frame.render_widget(content_panel(snap), content);
    frame.render_widget(scanner_panel(app, snap), scanners);
}

fn panel_block(title: &str) -> Block<'_> {
    Block::new().borders(Borders::TOP).title(Span::styled(title, bold()))
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

fn load_panel(app: &App, snap: &Snapshot, frame: &mut Frame, area: Rect) {
    let p = |k| snap.proc(k);
    let stuck = snap.workers().filter(|s| app.stuck(s)).count();
    let t = &app.throughput;
    let stuck_style = if stuck > 0 { alarm(app.color) } else { Style::new() };
    let lines = vec![
        Line::raw(format!("busy {} idle {}", p(ProcKey::Busy), p(ProcKey::Idle))),
        Line::raw(format!(
            "xfer {} dec {} vir {}",
            p(ProcKey::BusyTransfer),
            p(ProcKey::BusyDecode),
            p(ProcKey::BusyVirus)
        )),
        Line::raw(format!("spam {} other {}", p(ProcKey::BusySpam), p(ProcKey::BusyOther))),
        Line::styled(
            format!("stuck {stuck} (>{})", fmt::threshold(app.stuck_ms)),
            stuck_style,
        ),
        Line::raw(format!("msg/s now {}", rate(t.now()))),
        Line::raw(format!("1m {} 5m {}", rate(t.rate(60_000)), rate(t.rate(300_000)))),
        Line::raw(format!("15m {}", rate(t.rate(stats::HISTORY_MS)))),
    ];
    let block = panel_block("Workers  msg/s");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [text, spark] = Layout::vertical([Constraint::Length(7), Constraint::Length(1)]).areas(inner);
    frame.render_widget(Paragraph::new(lines), text);
    let data = t.deltas(usize::from(spark.width));
    frame.render_widget(Sparkline::default().data(&data), spark);
}

/// p50/p95/p99 per stage over the last five minutes (all since start until a second
/// snapshot arrives), and how many messages that covers.
fn latency_panel(app: &App) -> Paragraph<'static> {
    let short = |s: Stage| match s {
        Stage::Receive => "recv",
        Stage::Decode => "decode",
        Stage::Virus => "virus",
        Stage::Spam => "spam",
        Stage::Forward => "fwd",
        Stage::Total => "total",
    };
    let w = &app.latency;
    let mut lines: Vec<Line> = Stage::ALL
        .iter()
        .map(|&s| {
            let q = w.quantiles(s).map(|q| q.map_or_else(|| "-".to_string(), |v| v.text()));
            Line::raw(format!("{:<6}{:>6}{:>6}{:>6}", short(s), q[0], q[1], q[2]))
        })
        .collect();
    let n: u64 = w.counts(Stage::Total).iter().sum();
    let span = match w.span_ms() {
        Some(ms) if ms >= stats::LATENCY_WINDOW_MS => "in 5m".to_string(),
        Some(ms) => format!("in {}s", ms / 1000),
        None => "since start".to_string(),
    };
    lines.push(Line::raw(format!("{} msgs {span}", fmt::count(n, 7))));
    Paragraph::new(lines).block(panel_block("Latency  p50  p95  p99"))
}

const CATEGORIES: [ContentCategory; 9] = [
    ContentCategory::Clean,
    ContentCategory::Spam,
    ContentCategory::Spammy,
    ContentCategory::Virus,
    ContentCategory::Banned,
    ContentCategory::BadHdr,
    ContentCategory::Unchecked,
    ContentCategory::Oversized,
    ContentCategory::MtaFailed,
];

fn content_panel(snap: &Snapshot) -> Paragraph<'static> {
    let mut cats: Vec<(ContentCategory, u64)> = CATEGORIES
        .iter()
        .map(|&c| (c, snap.counter(c.counter(Direction::All))))
        .collect();
    // Busiest first; equal counts keep the order above.
    cats.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    let lines: Vec<Line> = cats
        .iter()
        .take(8)
        .map(|(c, n)| Line::raw(format!("{:<9}{:>5}", c.name(), fmt::count(*n, 5))))
        .collect();
    Paragraph::new(lines).block(panel_block("Content"))
}

fn scanner_panel(app: &App, snap: &Snapshot) -> Paragraph<'static> {
    let scanners = [
        (Scanner::Clamd, "clamd"),
        (Scanner::ClamdBackup, "clamd2"),
        (Scanner::Spamd, "spamd"),
        (Scanner::Rspamd, "rspamd"),
        (Scanner::Backend, "mta"),
    ];
    let mut lines: Vec<Line> = scanners
        .iter()
        .map(|(s, name)| {
            let (req, err, to, last) = s.handles();
            let fails = snap.counter(err) + snap.counter(to);
            let last = if snap.counter(req) > 0 {
                fmt::latency_ms(snap.gauge(last) as f64)
            } else {
                "-".to_string()
            };
            let text = format!(
                "{name:<6} {:>4} {:>2} {last:>5}",
                fmt::count(snap.counter(req), 4),
                fmt::count(fails, 2)
            );
            if fails > 0 {
                Line::styled(text, if app.color { Style::new().fg(Color::Red) } else { bold() })
            } else {
                Line::raw(text)
            }
        })
        .collect();
    let unaccounted = snap.ledger(LedgerKey::Unaccounted);
    lines.push(Line::raw(format!(
        "in {} flight {}",
        fmt::count(snap.counter(Counter::LedgerReceived), 7),
        snap.ledger(LedgerKey::InFlight)
    )));
    let style = if unaccounted != 0 {
        alarm(app.color)
    } else {
        Style::new()
    };
    lines.push(Line::styled(format!("unaccounted {unaccounted}"), style));
    lines.insert(scanners.len(), Line::styled("Ledger", bold()));
    Paragraph::new(lines).block(panel_block("Scanner req er  last"))
}

/// The legend: every busy state's letter in its colour, then the keys.
fn legend_lines(app: &App) -> Paragraph<'static> {
    let short = |s: WorkerState| match s {
        WorkerState::Unused => "unused",
        WorkerState::Idle => "idle",
        WorkerState::Accepted => "accept",
        WorkerState::Begin => "begin",
        WorkerState::Mail => "mail",
        WorkerState::Data => "data",
        WorkerState::Check => "check",
        WorkerState::MailId => "id",
        WorkerState::Decode => "decode",
        WorkerState::Virus => "virus",
        WorkerState::Spam => "spam",
        WorkerState::PenPals => "penpal",
        WorkerState::Decide => "decide",
        WorkerState::Quarantine => "quar",
        WorkerState::Forward => "fwd",
        WorkerState::Done => "done",
    };
    let item = |s: WorkerState| {
        [
            Span::styled(
                s.letter().to_string(),
                state_style(s, app.color).add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!(" {} ", short(s))),
        ]
    };
    let busy: Vec<WorkerState> = WorkerState::ALL
        .into_iter()
        .filter(|s| !matches!(s, WorkerState::Unused | WorkerState::Idle))
        .collect();
    let (first, second) = busy.split_at(10);
    let line1: Vec<Span> = first.iter().flat_map(|&s| item(s)).collect();
    let mut line2: Vec<Span> = second.iter().flat_map(|&s| item(s)).collect();
    line2.push(Span::styled(
        format!(
            " ? help  s sort:{}  f filter:{}  q quit",
            app.sort.label(),
            app.filter.label()
        ),
        bold(),
    ));
    Paragraph::new(vec![Line::from(line1), Line::from(line2)])
}

fn help_overlay(app: &App, frame: &mut Frame) {
    let area = frame.area();
    let w = area.width.min(76);
    let h = area.height.min(21);
    let popup = Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h);
    let states: Vec<Line> = WorkerState::ALL
        .iter()
        .map(|&s| {
            Line::from(vec![
                Span::styled(
                    format!(" {} ", s.letter()),
                    state_style(s, app.color).add_modifier(Modifier::BOLD),
                ),
                Span::raw(s.meaning()),
            ])
        })
        .collect();
    let keys = vec![
        Line::styled("Keys", bold()),
        Line::raw("?  this help"),
        Line::raw("s  sort: slot, busy, state"),
        Line::raw("f  filter: all, busy, stuck"),
        Line::raw("↑↓ scroll   g top"),
        Line::raw("q  quit (also Esc, ^C)"),
        Line::raw(""),
        Line::styled("Columns", bold()),
        Line::raw("PID: worker slot"),
        Line::raw("busy: since accept or"),
        Line::raw("  MAIL FROM"),
        Line::raw("bar: 1 char/second,"),
        Line::raw("  letters as seen,"),
        Line::raw("  ':' every 10 s"),
        Line::raw(format!("stuck: busy > {}", fmt::threshold(app.stuck_ms))),
    ];
    let block = Block::bordered().title(Span::styled(" help: states and keys (any key closes) ", bold()));
    let inner = block.inner(popup);
    frame.render_widget(Clear, popup);
    frame.render_widget(block, popup);
    let [left, right] = Layout::horizontal([Constraint::Min(40), Constraint::Length(30)]).areas(inner);
    frame.render_widget(Paragraph::new(states), left);
    frame.render_widget(Paragraph::new(keys), right);
}
