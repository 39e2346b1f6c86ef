//! Support for the end-to-end tests in `tests/tests/`: finding the workspace's binaries,
//! private temporary directories, free loopback ports, and child processes that are
//! killed (by their own PID) when a test ends, however it ends.
//!
//! Test support panics on purpose: a failed setup is a failed test.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod avisd;
pub mod corpus;
pub mod fakescan;
pub mod mta;
pub mod postfix;
pub mod scanners;

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The path of a binary of this workspace (built by `cargo test --workspace`).
/// Panics with a clear message when it is missing: an end-to-end test never passes
/// without the thing it tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} not built; run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

/// Panics unless an external program is on PATH (or in /usr/sbin); tests that need a
/// Debian package fail loudly without it. `scripts/install-test-deps.sh` installs them.
pub fn require_tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/lib/postfix/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("`{name}` is not installed; run scripts/install-test-deps.sh"))
}

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory under the system temp dir, named after `tag` and this process.
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("avis-e2e-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("AVIS_KEEP_TEMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A free TCP port on 127.0.0.1 for a daemon the test starts (see [`free_port`]).
pub fn free_tcp_port() -> u16 {
    free_port(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

/// A free UDP port on 127.0.0.1 for a daemon the test starts (see [`free_port`]).
pub fn free_udp_port() -> u16 {
    free_port(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok())
}

/// Test ports come from 20000–32767, below Linux's ephemeral range (32768–60999): a port
/// taken with bind(0) and released is an ephemeral port, which any outgoing connection on
/// the machine may take before the daemon binds it (seen under load: "Address already in
/// use"). Each port is handed out once per process, starting at an offset drawn from the
/// pid, so concurrent test binaries rarely meet; `is_free` checks it is unbound now.
fn free_port(is_free: impl Fn(u16) -> bool) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_768;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(2_654_435_761) % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(FIRST + n % COUNT).unwrap_or(0);
        if is_free(port) {
            return port;
        }
    }
    0
}

/// A child process killed and reaped when dropped.
#[derive(Debug)]
pub struct Proc {
    /// The child.
    pub child: Child,
    /// What it is, for messages.
    pub name: String,
}

impl Proc {
    /// Spawns `cmd`, panicking with its name when it cannot start.
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.to_string(),
        }
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by PID (`kill -SIG pid`).
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status();
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a test waits for something it can observe (a log line, a counter, a file, a
/// listener) before calling it a failure. Long on purpose: the deadline only bounds a
/// failure, never delays a success, and CI runs on two cores that are often busy (issue 22).
pub const PATIENCE: Duration = Duration::from_secs(120);

/// How many lines of the log file at `path` contain `needle` (0 while it does not exist).
pub fn log_count(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// Waits until more than `before` lines of the log at `path` contain `needle` (a daemon
/// said it is ready, reloaded, gave up...). While waiting, a `proc` that exits fails the
/// test at once with the end of that log, instead of after the deadline.
pub fn wait_for_log(what: &str, path: &Path, needle: &str, before: usize, mut proc: Option<&mut Proc>) {
    wait_for(what, PATIENCE, || {
        if let Some(p) = proc.as_deref_mut()
            && p.exited()
        {
            panic!(
                "{} exited while the test waited for {what}:\n{}",
                p.name,
                log_tail(path, 30)
            );
        }
        (log_count(path, needle) > before).then_some(())
    });
}

/// The last `n` lines of the file at `path`, for failure messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The MIB directories and module list that make net-snmp's tools load our MIB.
pub fn mib_env() -> [(&'static str, String); 2] {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("agent-mib")
        .join("mib");
    let dirs = format!("{}:{}", root.display(), root.join("ietf").display());
    [("MIBDIRS", dirs), ("MIBS", "AMAVIS-MIB".to_string())]
}
