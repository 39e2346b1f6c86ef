//! avis-nanny in a real terminal: tmux runs it at 80×24, `capture-pane` shows what an
//! operator would see. It waits while no filter runs, attaches when the scoreboard
//! appears, shows busy workers with their state letters, answers the help, sort and quit
//! keys, and leaves the terminal as it found it (main screen, cooked mode, echo on).
//!
//! The first test drives the scoreboard with agent-mib's writer, to hold workers in
//! states a relay cannot reach on demand; the second runs a real avisd under load.
// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod nanny_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use agent_mib::WorkerState;
use nanny_support::Filter;
use tests::{TempDir, bin, require_tool, wait_for};

/// A private tmux server on its own socket, killed by its PID when dropped (with the
/// programs in its pane).
struct Tmux {
    tmux: PathBuf,
    socket: PathBuf,
    server_pid: String,
    pane_pid: String,
}

impl Tmux {
    fn start(socket: &Path, command: &str) -> Tmux {
        let mut t = Tmux {
            tmux: require_tool("tmux"),
            socket: socket.to_path_buf(),
            server_pid: String::new(),
            pane_pid: String::new(),
        };
        let status = t
            .cmd()
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "80",
                "-y",
                "24",
                "-s",
                "nanny",
                command,
            ])
            .env("TERM", "xterm-256color")
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        t.server_pid = t.var("pid");
        t.pane_pid = t.var("pane_pid");
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.tmux);
        c.arg("-S").arg(&self.socket);
        c
    }

    /// The visible pane, as text.
    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "nanny"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A tmux format variable of the pane, e.g. `alternate_on`.
    fn var(&self, name: &str) -> String {
        let out = self
            .cmd()
            .args(["display-message", "-p", "-t", "nanny", &format!("#{{{name}}}")])
            .output()
            .expect("display-message");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn keys(&self, keys: &str) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", "nanny", keys])
            .status()
            .expect("send-keys");
        assert!(status.success());
    }

    /// Waits until the screen satisfies `pred`, panicking with the last screen.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for(what, tests::PATIENCE, || {
                last = self.screen();
                pred(&last).then(|| last.clone())
            })
        }));
        found.unwrap_or_else(|_| panic!("timed out waiting for {what}; screen:\n{last}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // The pane's shell (and what it runs), then the server, each by its own PID.
        for pid in [&self.pane_pid, &self.server_pid] {
            if !pid.is_empty() {
                let _ = Command::new("kill").arg(pid).status();
            }
        }
    }
}

#[test]
fn nanny_in_tmux_shows_busy_workers_answers_keys_and_restores_the_terminal() {
    let dir = TempDir::new("nanny-tmux");
    let scoreboard = dir.join("scoreboard");
    let socket = dir.join("tmux.sock");
    // After avis-nanny exits: its status and the terminal modes, then wait for the kill.
    let command = format!(
        "{} --scoreboard {} -w 0.2; echo NANNY-EXIT=$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo; exec cat",
        bin("avis-nanny").display(),
        scoreboard.display()
    );
    let tmux = Tmux::start(&socket, &command);

    // No scoreboard yet: the nanny says so and keeps waiting.
    tmux.wait("\"filter not running\"", |s| s.contains("filter not running"));
    assert_eq!(tmux.var("alternate_on"), "1", "the TUI runs on the alternate screen");

    // avisd (the writer) starts: the nanny attaches by itself and shows the workers.
    let f = Filter::start_in(dir, 4);
    f.busy(0, "01234-05-2", WorkerState::Virus);
    f.busy(1, "01234-06", WorkerState::Spam);
    f.accepted(2);
    let row = |s: &str, pid: &str| s.lines().find(|l| l.starts_with(pid)).unwrap_or_default().to_string();
    // Each wait asks for all it then checks: a capture can catch the terminal half redrawn.
    let screen = tmux.wait("busy workers", |s| {
        s.contains("virus scanning")
            && s.contains("spam scanning")
            && s.contains("busy 3 idle 1")
            && row(s, "00003").contains("idle")
    });
    assert!(row(&screen, "00000").contains(" V virus scanning"), "{screen}");
    assert!(row(&screen, "00000").contains("01234-05-2"), "{screen}");
    assert!(row(&screen, "00001").contains(" S spam scanning"), "{screen}");
    assert!(row(&screen, "00002").contains(" A connection acc"), "{screen}");
    assert!(row(&screen, "00003").contains("idle"), "{screen}");
    assert!(screen.contains("busy 3 idle 1"), "{screen}");
    assert!(screen.contains("V virus"), "legend: {screen}");

    // A state change shows up at the next poll.
    f.slots[0].set_state(WorkerState::Forward);
    tmux.wait("slot 0 forwarding", |s| row(s, "00000").contains(" F forwarding"));

    // `?` opens the help, any key closes it.
    tmux.keys("?");
    // Wait for the whole overlay: a capture can catch the terminal half redrawn.
    let help = tmux.wait("the help overlay", |s| {
        s.contains("help: states and keys") && s.contains("pen pals lookup")
    });
    assert!(
        help.contains("pen pals lookup") && help.contains("sort: slot, busy, state"),
        "{help}"
    );
    tmux.keys("x");
    tmux.wait("the help to close", |s| !s.contains("help: states and keys"));

    // `s` sorts by busy time, busy workers first. The three busy workers started within
    // milliseconds of each other, so only the idle worker's place is certain: last.
    tmux.keys("s");
    let pid_rows = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.len() > 5 && l[..5].chars().all(|c| c.is_ascii_digit()))
            .map(|l| l[..5].to_string())
            .collect()
    };
    let sorted = tmux.wait("sort by busy time", |s| {
        s.contains("sort:busy time") && pid_rows(s).len() == 4
    });
    let pids = pid_rows(&sorted);
    assert_eq!(pids.len(), 4, "{sorted}");
    assert_eq!(pids[3], "00003", "the idle worker sorts last: {sorted}");
    tmux.keys("f");
    let busy_only = tmux.wait("filter busy", |s| s.contains("filter:busy"));
    assert!(!busy_only.contains("00003"), "{busy_only}");

    // `q` quits: status 0, back on the main screen, cooked mode and echo restored.
    tmux.keys("q");
    let after = tmux.wait("avis-nanny to exit", |s| s.contains("NANNY-EXIT="));
    assert!(after.contains("NANNY-EXIT=0"), "{after}");
    let modes = tmux.wait("the terminal modes", |s| s.contains("icanon"));
    assert!(
        modes.contains("icanon") && !modes.contains("-icanon"),
        "raw mode left on: {modes}"
    );
    assert!(!modes.contains("-echo"), "echo left off: {modes}");
    assert_eq!(tmux.var("alternate_on"), "0", "still on the alternate screen");
    assert!(!after.contains("elapsed bar"), "TUI left on the main screen: {after}");
    drop(tmux);
    drop(f);
}

#[test]
fn nanny_in_tmux_shows_avisd_workers_forwarding_under_load_and_quits_cleanly() {
    use tests::avisd::{Avisd, config_text};
    use tests::mta::{Behaviour, FakeMta, send};
    let dir = TempDir::new("nanny-tmux-avisd");
    // A back end that holds `slow-*` messages until the test has seen them forwarded
    // (avisd's forward timeout raised to match), however long a busy machine takes.
    let backend = FakeMta::start(Behaviour {
        slow: tests::PATIENCE,
        ..Behaviour::default()
    });
    let port = tests::free_tcp_port();
    let cfg = config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", backend.port), 4, "").replace(
        "forward_timeout = 20",
        &format!("forward_timeout = {}", tests::PATIENCE.as_secs() + 30),
    );
    let avisd = Avisd::start(dir.path(), &cfg, port);
    let command = format!(
        "{} --scoreboard {} -w 0.2; echo NANNY-EXIT=$?; exec cat",
        bin("avis-nanny").display(),
        avisd.scoreboard.display()
    );
    let tmux = Tmux::start(&dir.join("tmux.sock"), &command);
    // The nanny is up and shows avisd's four idle workers before the load starts.
    tmux.wait("avisd's idle workers", |s| {
        s.contains("00003") && !s.contains("filter not running")
    });
    let clients: Vec<_> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                send(
                    port,
                    false,
                    "a@example.org",
                    &[&format!("slow-{i}@example.com")],
                    "From: a@example.org\r\n\r\nx\r\n",
                )
            })
        })
        .collect();
    let screen = tmux.wait("avisd's workers forwarding", |s| {
        s.matches(" F forwarding").count() == 2 && s.contains("busy 2 idle 2")
    });
    assert!(screen.contains("busy 2 idle 2"), "{screen}");
    backend.release();
    tmux.keys("q");
    let after = tmux.wait("avis-nanny to exit", |s| s.contains("NANNY-EXIT="));
    assert!(after.contains("NANNY-EXIT=0"), "{after}");
    for c in clients {
        let r = c.join().unwrap().unwrap();
        assert!(r.final_replies[0].starts_with("250"));
    }
    drop(tmux);
    drop(avisd);
}
