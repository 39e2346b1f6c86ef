//! Private instances of the real scanners from Debian, for tests and benchmarks: a clamd
//! (foreground, loopback TCP and a Unix socket in a temp dir, a signature database written
//! here, so no freshclam and no network) and a spamd (foreground, loopback, the packaged
//! rules, Bayes off). EICAR and GTUBE are assembled from pieces so that no file of the
//! repository carries them whole (a scanner on a developer's machine would flag it).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Proc, TempDir, free_tcp_port, require_tool, wait_for};

/// The EICAR anti-virus test file (68 bytes).
pub fn eicar() -> String {
    [
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        "EICAR-STANDARD-ANTIVIRUS",
        "-TEST-FILE!$H+H*",
    ]
    .concat()
}

/// The GTUBE anti-spam test string.
pub fn gtube() -> String {
    [
        "XJS*C4JDBQADN1.NSBN3*2IDNEN*",
        "GTUBE-STANDARD-ANTI-UBE",
        "-TEST-EMAIL*C.34X",
    ]
    .concat()
}

/// The name clamd reports for EICAR with the test database (clamd appends `.UNOFFICIAL`).
pub const EICAR_SIGNATURE: &str = "Avis-Test-Eicar";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until `port` on loopback accepts, failing with the daemon's log if it exited.
pub fn wait_listening(proc: &mut Proc, port: u16, log: &Path, timeout: Duration) {
    wait_for(&format!("{} to listen on {port}", proc.name), timeout, || {
        if proc.exited() {
            panic!(
                "{} exited during start-up:\n{}",
                proc.name,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
}

/// Stops a preforking daemon by its PID with SIGTERM and waits for it (its own handler
/// stops its workers); `Proc`'s drop then only reaps it, or kills it if it hung.
pub fn terminate(proc: &mut Proc) {
    if proc.exited() {
        return; // reaped: its PID may be another process's by now
    }
    proc.signal("TERM");
    let deadline = std::time::Instant::now() + crate::PATIENCE;
    while !proc.exited() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private clamd. Its only signature is an `.ndb` body signature of EICAR (any file
/// type, so it matches inside decoded MIME parts and unpacked archives).
#[derive(Debug)]
pub struct Clamd {
    /// The daemon.
    pub proc: Proc,
    /// Its loopback TCP port.
    pub port: u16,
    /// Its Unix socket.
    pub socket: PathBuf,
    /// Its config, database and logs.
    pub dir: TempDir,
}

/// Starts a private clamd that takes streams up to `stream_max` (clamd's size syntax, `1M`).
pub fn start_clamd(stream_max: &str) -> Clamd {
    let clamd = require_tool("clamd");
    let dir = TempDir::new("clamd");
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(
        db.join("avis-test.ndb"),
        format!("{EICAR_SIGNATURE}:0:*:{}\n", hex(eicar().as_bytes())),
    )
    .unwrap();
    let port = free_tcp_port();
    let socket = dir.join("clamd.sock");
    // No `User`: clamd stays the user running the test (root in CI, anyone elsewhere).
    let conf = format!(
        "Foreground yes\nDatabaseDirectory {}\nTCPSocket {port}\nTCPAddr 127.0.0.1\nLocalSocket {}\nLogFile {}\nPidFile {}\nStreamMaxLength {stream_max}\nSelfCheck 0\n",
        db.display(),
        socket.display(),
        dir.join("clamd.log").display(),
        dir.join("clamd.pid").display(),
    );
    let conf_path = dir.join("clamd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let out = std::fs::File::create(dir.join("clamd.out")).unwrap();
    let mut proc = Proc::spawn(
        "clamd",
        Command::new(clamd)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out),
    );
    wait_listening(&mut proc, port, &dir.join("clamd.out"), crate::PATIENCE);
    wait_for("clamd's Unix socket", crate::PATIENCE, || socket.exists().then_some(()));
    Clamd {
        proc,
        port,
        socket,
        dir,
    }
}

/// A private spamd. Stopped with SIGTERM when dropped, so that it takes its children down
/// with it (a SIGKILL would leave them serving the port).
#[derive(Debug)]
pub struct Spamd {
    /// The daemon.
    pub proc: Proc,
    /// Its loopback TCP port.
    pub port: u16,
    /// Its Unix socket.
    pub socket: PathBuf,
    /// Its site configuration and log.
    pub dir: TempDir,
}

impl Drop for Spamd {
    fn drop(&mut self) {
        terminate(&mut self.proc);
    }
}

/// Starts a private spamd with `children` children.
pub fn start_spamd(children: usize) -> Spamd {
    let spamd = require_tool("spamd");
    let dir = TempDir::new("spamd");
    // The plugin loader files (.pre) live in the site config directory; the rules stay
    // the packaged ones in /usr/share/spamassassin. Bayes off: no state between runs.
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    let etc = Path::new("/etc/spamassassin");
    let pre: Vec<_> = std::fs::read_dir(etc)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/install-test-deps.sh", etc.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pre"))
        .collect();
    assert!(!pre.is_empty(), "no .pre files in {}", etc.display());
    for p in pre {
        std::fs::copy(&p, site.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(site.join("local.cf"), "use_bayes 0\nbayes_auto_learn 0\n").unwrap();
    let port = free_tcp_port();
    let log = dir.join("spamd.log");
    let socket = dir.join("spamd.sock");
    let out = std::fs::File::create(&log).unwrap();
    let n = children.to_string();
    let mut proc = Proc::spawn(
        "spamd",
        Command::new(spamd)
            .args(["--local", "--nouser-config", "--syslog=stderr"])
            .arg(format!("--max-children={n}"))
            .arg(format!("--min-children={n}"))
            .arg(format!("--max-spare={n}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--listen={}", socket.display()))
            .arg(format!("--pidfile={}", dir.join("spamd.pid").display()))
            .arg(format!("--siteconfigpath={}", site.display()))
            .arg(format!("--helper-home-dir={}", dir.path().display()))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out),
    );
    wait_listening(&mut proc, port, &log, Duration::from_secs(120));
    wait_for("spamd's Unix socket", crate::PATIENCE, || socket.exists().then_some(()));
    Spamd {
        proc,
        port,
        socket,
        dir,
    }
}
