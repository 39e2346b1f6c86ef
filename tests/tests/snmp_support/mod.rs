//! Shared by the `snmp_*` end-to-end tests: a scoreboard driven with the agent_mib
//! writer (avisd's stand-in until the relay harness exists), avis-snmp-agent started
//! on free loopback ports, a private net-snmp `snmpd` master, and net-snmp's tools run
//! with our shipped MIB so names like `AMAVIS-MIB::inMsgs.0` resolve.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use agent_mib::{Counter, Scoreboard, WriterInfo};
use tests::{Proc, TempDir, bin, free_tcp_port, free_udp_port, mib_env, require_tool, wait_for};

/// The amavis subtree.
pub const AMAVIS: &str = "1.3.6.1.4.1.15312.2.1";

/// The v3 users every agent of these tests knows.
pub const V3_USERS: [&str; 2] = [
    "monitor:sha256:monitorauth123:aes128:monitorpriv123",
    "legacy:sha1:legacyauth123:aes256:legacypriv123",
];

/// A scoreboard written by this test, as avisd would.
pub fn open_board(path: &Path) -> Arc<Scoreboard> {
    let info = WriterInfo {
        descr: "avis test writer".into(),
        name: "mx1.example".into(),
        contact: "postmaster@example".into(),
        location: "rack 7".into(),
        workers: 4,
    };
    Scoreboard::open(path, &info).unwrap_or_else(|e| panic!("scoreboard {}: {e}", path.display()))
}

/// Drives a known load: `n` messages received, `n` relayed.
pub fn known_load(board: &Arc<Scoreboard>, n: u64) {
    board.bump(Counter::InMsgs, n);
    board.bump(Counter::InMsgsStatusRelayed, n);
    board.bump(Counter::InMsgsSize, n * 10_000);
}

/// A running agent.
pub struct Agent {
    /// The process.
    pub proc: Proc,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// Its UDP port.
    pub port: u16,
}

/// Starts avis-snmp-agent on a free UDP port with `extra` flags and waits until it answers.
pub fn start_agent(dir: &TempDir, scoreboard: &Path, extra: &[&str]) -> Agent {
    let port = free_udp_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(bin("avis-snmp-agent"));
    cmd.arg("--scoreboard")
        .arg(scoreboard)
        .args(["--listen", &addr])
        .arg("--engine-state")
        .arg(dir.join("snmp-engine"))
        .args(["--community", "public@127.0.0.1/32"])
        .args(V3_USERS.iter().flat_map(|u| ["--v3-user", u]))
        .args(extra)
        .args(if extra.contains(&"--agentx") {
            &[][..]
        } else {
            &["--agentx", "off"][..]
        })
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(dir.join("agent.log")).unwrap());
    let proc = Proc::spawn("avis-snmp-agent", &mut cmd);
    let mut agent = Agent { proc, addr, port };
    wait_for("avis-snmp-agent to answer", tests::PATIENCE, || {
        assert!(
            !agent.proc.exited(),
            "avis-snmp-agent exited at start (see its stderr above)"
        );
        // v3 is always on in these tests (v1/v2c may be turned off).
        let mut probe = v3_monitor(&agent.addr);
        probe.splice(0..0, ["-t", "0.3", "-r", "0"].map(String::from));
        probe.push("AMAVIS-MIB::sysUpTime.0".into());
        let probe: Vec<&str> = probe.iter().map(String::as_str).collect();
        let out = snmp("snmpget", &probe);
        out.status.success().then_some(())
    });
    // A binary built before agent-mib changed cannot read this test's scoreboard.
    let log = agent_log(dir);
    assert!(
        !log.contains("incompatible with this program"),
        "avis-snmp-agent is older than agent-mib; run `cargo build -p snmp-agent` (or `cargo test --workspace`):\n{log}"
    );
    agent
}

/// What the agent logged so far (its stderr goes to `agent.log` in the test's directory).
pub fn agent_log(dir: &TempDir) -> String {
    std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
}

/// Runs a net-snmp tool with our MIB loaded.
pub fn snmp(tool: &str, args: &[&str]) -> Output {
    let exe = require_tool(tool);
    let mut cmd = Command::new(exe);
    for (k, v) in mib_env() {
        cmd.env(k, v);
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

/// Runs a tool and returns its stdout lines, panicking with stderr when it fails.
pub fn lines(tool: &str, args: &[&str]) -> Vec<String> {
    let out = snmp(tool, args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

/// `NAME = TYPE: value` lines without the ever-moving objects (uptime, ages), so two
/// walks taken moments apart compare equal.
pub fn stable(walk: &[String]) -> Vec<String> {
    walk.iter()
        .filter(|l| !l.contains("sysUpTime") && !l.contains("No more variables") && !l.starts_with("End of MIB"))
        .cloned()
        .collect()
}

/// The value part of `AMAVIS-MIB::x.0 = Counter32: 7` (`Counter32: 7`).
pub fn value_of(walk: &[String], name: &str) -> String {
    let prefix = format!("AMAVIS-MIB::{name}.0 = ");
    walk.iter()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| panic!("{name} not in the walk:\n{}", walk.join("\n")))
}

/// The v3 authPriv flags for the SHA-256/AES-128 user.
pub fn v3_monitor(addr: &str) -> Vec<String> {
    [
        "-v3",
        "-l",
        "authPriv",
        "-u",
        "monitor",
        "-a",
        "SHA-256",
        "-A",
        "monitorauth123",
        "-x",
        "AES",
        "-X",
        "monitorpriv123",
        addr,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A private snmpd master with AgentX on a TCP loopback port.
pub struct Snmpd {
    /// The process.
    pub proc: Proc,
    /// Where managers talk to it.
    pub addr: String,
    /// Its AgentX socket, as avis-snmp-agent's `--agentx` takes it.
    pub agentx: String,
    conf: PathBuf,
}

impl Snmpd {
    /// Starts snmpd (foreground, no system config) with AgentX on a TCP loopback port.
    pub fn start(dir: &TempDir, udp_port: u16, agentx_port: u16) -> Snmpd {
        Self::start_on(dir, udp_port, &format!("tcp:127.0.0.1:{agentx_port}"))
    }

    /// Starts snmpd with `agentXSocket` set to `socket` (`tcp:host:port` or a Unix
    /// socket path, the syntax avis-snmp-agent's `--agentx` takes too) and waits for it.
    pub fn start_on(dir: &TempDir, udp_port: u16, socket: &str) -> Snmpd {
        let conf = dir.join("snmpd.conf");
        std::fs::write(
            &conf,
            format!(
                "agentaddress udp:127.0.0.1:{udp_port}\nmaster agentx\nagentXSocket {socket}\n\
                 agentXTimeout 1\nagentXRetries 1\nrocommunity public 127.0.0.1\n\
                 createUser monitor SHA-256 monitorauth123 AES monitorpriv123\nrouser monitor authpriv\n"
            ),
        )
        .unwrap();
        let mut s = Snmpd {
            proc: Self::spawn(dir, &conf),
            addr: format!("127.0.0.1:{udp_port}"),
            agentx: socket.to_string(),
            conf,
        };
        s.wait_up();
        s
    }

    fn spawn(dir: &TempDir, conf: &Path) -> Proc {
        let exe = require_tool("snmpd");
        let persistent = dir.join("snmpd-persist");
        std::fs::create_dir_all(&persistent).unwrap();
        let mut cmd = Command::new(exe);
        cmd.args(["-f", "-Lo", "-C", "-c"])
            .arg(conf)
            .env("SNMP_PERSISTENT_DIR", &persistent)
            .env("MIBS", "")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Proc::spawn("snmpd", &mut cmd)
    }

    fn wait_up(&mut self) {
        let addr = self.addr.clone();
        wait_for("snmpd to answer", tests::PATIENCE, || {
            let out = snmp(
                "snmpget",
                &[
                    "-v2c",
                    "-c",
                    "public",
                    "-t",
                    "0.3",
                    "-r",
                    "0",
                    &addr,
                    "1.3.6.1.2.1.1.3.0",
                ],
            );
            out.status.success().then_some(())
        });
    }

    /// Stops snmpd by its PID and starts a new one with the same configuration.
    pub fn restart(&mut self, dir: &TempDir) {
        self.proc.signal("TERM");
        wait_for("snmpd to exit", tests::PATIENCE, || self.proc.exited().then_some(()));
        self.proc = Self::spawn(dir, &self.conf);
        self.wait_up();
    }
}

/// A free UDP port and a free TCP port on loopback.
pub fn free_ports() -> (u16, u16) {
    (free_udp_port(), free_tcp_port())
}
