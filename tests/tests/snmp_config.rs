//! Operating avis-snmp-agent: `--help` and `--version`, a TOML config file read and
//! validated (every error reported, then one failure), and root dropped after binding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod snmp_support;

use std::process::Command;

use snmp_support::*;
use tests::{Proc, TempDir, bin, free_udp_port, wait_for};

#[test]
fn help_and_version_describe_the_program() {
    let help = Command::new(bin("avis-snmp-agent")).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success());
    for flag in [
        "--config",
        "--scoreboard",
        "--listen",
        "--agentx",
        "--community",
        "--v3-user",
        "--user",
        "--syslog",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
    let version = Command::new(bin("avis-snmp-agent")).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("avis-snmp-agent "));
}

#[test]
fn a_config_file_sets_listeners_communities_and_v3_users() {
    let dir = TempDir::new("snmp-config");
    let board = open_board(&dir.join("scoreboard"));
    known_load(&board, 4);
    let port = free_udp_port();
    let conf = dir.join("snmp-agent.toml");
    std::fs::write(
        &conf,
        format!(
            r#"
scoreboard = "{sb}"
listen = ["127.0.0.1:{port}"]
agentx = "off"
queue_directory = "off"
engine_state = "{engine}"

[[community]]
name = "ops"
networks = ["127.0.0.0/8"]

[[v3_user]]
name = "monitor"
auth = "sha256"
auth_password = "monitorauth123"
priv = "aes128"
priv_password = "monitorpriv123"
"#,
            sb = dir.join("scoreboard").display(),
            engine = dir.join("engine").display(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(bin("avis-snmp-agent"));
    cmd.arg("--config")
        .arg(&conf)
        .stderr(std::fs::File::create(dir.join("agent.log")).unwrap());
    let _agent = Proc::spawn("avis-snmp-agent", &mut cmd);
    let addr = format!("127.0.0.1:{port}");
    wait_for("the configured agent to answer community ops", tests::PATIENCE, || {
        let out = snmp(
            "snmpget",
            &[
                "-v2c",
                "-c",
                "ops",
                "-t",
                "0.3",
                "-r",
                "0",
                &addr,
                "AMAVIS-MIB::inMsgs.0",
            ],
        );
        String::from_utf8_lossy(&out.stdout)
            .contains("Counter32: 4")
            .then_some(())
    });
    let v3 = v3_monitor(&addr);
    let mut args: Vec<&str> = v3.iter().map(String::as_str).collect();
    args.push("AMAVIS-MIB::inMsgs.0");
    assert_eq!(lines("snmpget", &args)[0], "AMAVIS-MIB::inMsgs.0 = Counter32: 4");
    // `public` is not configured, so it is not accepted.
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
            "AMAVIS-MIB::inMsgs.0",
        ],
    );
    assert!(!out.status.success());
}

#[test]
fn an_invalid_config_reports_every_error_and_exits() {
    let dir = TempDir::new("snmp-config-bad");
    let conf = dir.join("bad.toml");
    std::fs::write(
        &conf,
        "listen = [\"not-an-address\"]\nlog = \"carrier-pigeon\"\n[[community]]\nname = \"x\"\nnetworks = [\"10.0.0.0/40\"]\n",
    )
    .unwrap();
    let out = Command::new(bin("avis-snmp-agent"))
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for phrase in [
        "listen `not-an-address`",
        "log `carrier-pigeon`",
        "prefix length out of range",
    ] {
        assert!(err.contains(phrase), "missing `{phrase}` in:\n{err}");
    }
}

#[test]
fn root_is_dropped_after_binding_or_the_agent_refuses_to_run() {
    let dir = TempDir::new("snmp-privdrop");
    let board = open_board(&dir.join("scoreboard"));
    known_load(&board, 6);
    let port = free_udp_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(bin("avis-snmp-agent"));
    cmd.arg("--scoreboard")
        .arg(dir.join("scoreboard"))
        .args([
            "--listen",
            &addr,
            "--agentx",
            "off",
            "--queue-directory",
            "off",
            "--user",
            "nobody",
        ])
        .stderr(std::fs::File::create(dir.join("agent.log")).unwrap());
    let mut agent = Proc::spawn("avis-snmp-agent", &mut cmd);
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:\t0\t"));
    if root {
        wait_for("the agent to answer after dropping root", tests::PATIENCE, || {
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
                    "AMAVIS-MIB::inMsgs.0",
                ],
            );
            String::from_utf8_lossy(&out.stdout)
                .contains("Counter32: 6")
                .then_some(())
        });
        let status = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(
            uid.split_whitespace().skip(1).all(|u| u == "65534"),
            "still privileged: {uid}"
        );
        assert!(agent_log(&dir).contains("dropped privileges"));
    } else {
        // Not root: the drop cannot happen, and the agent must not carry on regardless.
        wait_for("the agent to refuse to run", tests::PATIENCE, || {
            agent.exited().then_some(())
        });
        assert!(agent_log(&dir).contains("setgroups"), "{}", agent_log(&dir));
    }
}

#[test]
fn with_syslog_each_event_is_one_datagram_with_ident_pid_and_facility_mail() {
    let dir = TempDir::new("snmp-syslog");
    let log = std::os::unix::net::UnixDatagram::bind(dir.join("log")).unwrap();
    log.set_read_timeout(Some(tests::PATIENCE)).unwrap();
    let mut cmd = Command::new(bin("avis-snmp-agent"));
    cmd.arg("--scoreboard")
        .arg(dir.join("missing-scoreboard"))
        .args([
            "--listen",
            &format!("127.0.0.1:{}", free_udp_port()),
            "--agentx",
            "off",
            "--queue-directory",
            "off",
        ])
        .arg("--syslog")
        .arg("--syslog-socket")
        .arg(dir.join("log"));
    let agent = Proc::spawn("avis-snmp-agent", &mut cmd);
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = log.recv(&mut buf) {
        let line = String::from_utf8_lossy(&buf[..n]).to_string();
        let warned = line.contains("no filter running");
        got.push(line);
        if warned {
            break;
        }
    }
    let prefix = format!("avis-snmp-agent[{}]: ", agent.pid());
    assert!(
        got.iter().any(|l| l.starts_with("<22>") && l.contains(&prefix)),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|l| l.starts_with("<20>") && l.contains("no filter running")),
        "{got:?}"
    );
}

/// Runs the agent with nothing to serve (it stops at once) and returns its exit and stderr.
fn run_and_stop(dir: &TempDir, args: &[&str], env: Option<&str>) -> (bool, String) {
    let sb = dir.join("scoreboard");
    let mut cmd = Command::new(bin("avis-snmp-agent"));
    cmd.arg("--scoreboard")
        .arg(&sb)
        .args(["--agentx", "off", "--queue-directory", "off"])
        .args(args)
        .env_remove("AVIS_SNMP_V3_USER");
    if let Some(spec) = env {
        cmd.env("AVIS_SNMP_V3_USER", spec);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn v3_pass_phrases_on_the_command_line_are_warned_about_and_the_environment_is_an_alternative() {
    let dir = TempDir::new("snmp-secret-flags");
    let (ok, stderr) = run_and_stop(&dir, &["--v3-user", "monitor:sha256:monitorauth123"], None);
    assert!(!ok);
    assert!(
        stderr.contains("--v3-user monitor: pass phrases on the command line are readable by every local user"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("monitorauth123"),
        "the warning must not repeat the secret: {stderr}"
    );
    let (ok, stderr) = run_and_stop(&dir, &[], Some("monitor:sha256:monitorauth123\n"));
    assert!(!ok);
    assert!(!stderr.contains("command line"), "{stderr}");
    assert!(stderr.contains("nothing to do"), "the user was accepted: {stderr}");
}
