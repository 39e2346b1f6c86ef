//! avis-nanny's terminal UI, arranged as bottom and ratatui's examples are: a poller
//! thread reads the scoreboard every interval and an input thread reads keys (and sends
//! a tick when none came), both into one channel; the main loop hands each event to
//! [`App::handle`] and draws with [`render::render`], which only reads the app. The
//! terminal is restored when the loop ends, on error, and by a panic hook on panic.

pub mod app;
pub mod render;

use std::io::{Stdout, stdout};
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use agent_mib::Reader;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::event::{self, Event as TermEvent};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};

pub use app::{App, Event, Filter, SortBy, Status};

use crate::cli::NannyArgs;
use crate::error::Error;

/// How often the input thread sends a tick when no key came.
const TICK: Duration = Duration::from_millis(250);

/// Whether colours are wanted: not when `NO_COLOR` is set to anything non-empty.
pub fn colour_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Runs the TUI until the user quits.
pub fn run(args: &NannyArgs) -> Result<(), Error> {
    let path = args.scoreboard();
    let mut app = App::new(path.clone(), args.stuck.saturating_mul(1000), colour_wanted());
    let (tx, rx) = mpsc::channel();
    spawn_poller(path, args.interval(false), tx.clone())?;
    let mut tui = Tui::enter().map_err(Error::Terminal)?;
    spawn_input(tx)?;
    loop {
        tui.terminal
            .draw(|frame| render::render(&app, frame))
            .map_err(Error::Terminal)?;
        let first = rx.recv().map_err(|_| Error::Thread("event"))?;
        app.handle(first);
        // Apply whatever else is queued before drawing again.
        while let Ok(more) = rx.try_recv() {
            app.handle(more);
        }
        if app.quit {
            return Ok(());
        }
    }
}

fn spawn_poller(path: PathBuf, interval: Duration, tx: Sender<Event>) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("poller".into())
        .spawn(move || {
            let mut reader = Reader::new(path);
            while tx.send(Event::Snapshot(reader.snapshot())).is_ok() {
                std::thread::sleep(interval);
            }
        })
        .map(drop)
        .map_err(|_| Error::Thread("poller"))
}

fn spawn_input(tx: Sender<Event>) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            loop {
                let ev = match event::poll(TICK) {
                    Ok(true) => match event::read() {
                        Ok(TermEvent::Key(key)) => Event::Key(key),
                        Ok(TermEvent::Resize(..)) => Event::Resize,
                        Ok(_) => continue,
                        Err(_) => return,
                    },
                    Ok(false) => Event::Tick,
                    Err(_) => return,
                };
                if tx.send(ev).is_err() {
                    return;
                }
            }
        })
        .map(drop)
        .map_err(|_| Error::Thread("input"))
}

/// The terminal in raw mode on the alternate screen; restored when dropped.
struct Tui {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Tui {
    fn enter() -> std::io::Result<Tui> {
        install_panic_hook();
        enable_raw_mode()?;
        let tui = execute!(stdout(), EnterAlternateScreen, Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(stdout())))
            .map(|terminal| Tui { terminal });
        if tui.is_err() {
            restore();
        }
        tui
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves raw mode and the alternate screen and shows the cursor; safe to call twice.
fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(stdout(), LeaveAlternateScreen, Show);
}

/// Restores the terminal before the default hook prints a panic, so the message is
/// readable and the shell usable.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}
