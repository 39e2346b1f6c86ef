//! avisd as a relay, end to end: a real avisd between a client and a scriptable back
//! end (and Postfix's own smtp-source as a load client). Every test counts what was
//! sent against what arrived, and reads the scoreboard the monitors read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use agent_mib::{Counter, LedgerKey, ProcKey};
use tests::avisd::{Avisd, config_text};
use tests::mta::{Behaviour, FakeMta, send};
use tests::{PATIENCE, TempDir, bin, free_tcp_port, require_tool, wait_for};

fn start(dir: &TempDir, backend: &FakeMta, lmtp_backend: bool, max_servers: usize) -> Avisd {
    let port = free_tcp_port();
    let scheme = if lmtp_backend { "lmtp" } else { "smtp" };
    let cfg = config_text(
        dir.path(),
        port,
        &format!("{scheme}:[127.0.0.1]:{}", backend.port),
        max_servers,
        "",
    );
    Avisd::start(dir.path(), &cfg, port)
}

#[test]
fn a_message_is_relayed_with_its_envelope_and_the_client_hears_the_back_ends_answer() {
    let dir = TempDir::new("relay-basic");
    let backend = FakeMta::start(Behaviour::default());
    let avisd = start(&dir, &backend, false, 2);
    let r = send(
        avisd.port,
        false,
        "alice@example.org",
        &["bob@example.com", "carol@example.com"],
        "From: alice@example.org\r\nDate: Sun, 29 Nov 2026 05:00:00 +0000\r\nSubject: hi\r\n\r\n.leading dot\r\nbody\r\n",
    )
    .unwrap();
    assert_eq!(r.final_replies.len(), 1);
    assert!(
        r.final_replies[0].starts_with("250 2.0.0 from MTA(smtp:[127.0.0.1]:"),
        "{:?}",
        r.final_replies
    );
    assert!(r.final_replies[0].contains("queued as Q0"));
    let got = backend.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].from, "alice@example.org");
    assert_eq!(got[0].rcpts, ["bob@example.com", "carol@example.com"]);
    assert!(
        got[0].data.starts_with("Received: from client.test"),
        "avisd adds its Received field: {}",
        got[0].data
    );
    assert!(
        got[0].data.contains("\r\n..leading dot\r\n"),
        "dot-stuffing survives the round trip"
    );
    assert!(got[0].mail_line.contains("SIZE="));

    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::InMsgs), 1);
    assert_eq!(snap.counter(Counter::InMsgsRecips), 2);
    assert_eq!(snap.counter(Counter::InMsgsInbound), 1);
    assert_eq!(snap.counter(Counter::ContentCleanMsgs), 1);
    assert_eq!(snap.counter(Counter::OutMsgsDelivers), 1);
    assert_eq!(snap.counter(Counter::OutMsgsProtoSMTPRelay), 1);
    assert_eq!(snap.counter(Counter::InMsgsStatusRelayedUntagged), 1);
    assert_eq!(snap.counter(Counter::LedgerRelayed), 1);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
    assert_eq!(snap.proc(ProcKey::All), 2);

    let events = wait_for("the JSON event", Duration::from_secs(5), || {
        Some(avisd.events()).filter(|e| !e.is_empty())
    });
    let e = &events[0];
    assert_eq!(e["schema"], "avis.message/1");
    assert_eq!(e["mail_from"], "alice@example.org");
    assert_eq!(e["rcpt_num"], 2);
    assert_eq!(e["action"][0], "PASS");
    assert_eq!(e["queued_as"][0], "Q0");
    assert!(e["size"].is_u64() && e["time_unix"].is_f64(), "numbers are numbers");
    assert_eq!(e["subject"], "hi");
    assert_eq!(e["author"][0], "alice@example.org");
}

#[test]
fn the_back_ends_refusals_reach_each_lmtp_recipient() {
    let dir = TempDir::new("relay-lmtp");
    let backend = FakeMta::start(Behaviour {
        lmtp: true,
        ..Behaviour::default()
    });
    let avisd = start(&dir, &backend, true, 2);
    let rcpts = [
        "ok-1@example.com",
        "lmtpreject-2@example.com",
        "lmtpdefer-3@example.com",
        "reject-4@example.com",
    ];
    let r = send(avisd.port, true, "a@example.org", &rcpts, "Subject: x\r\n\r\nx\r\n").unwrap();
    let codes: Vec<&str> = r.final_replies.iter().map(|s| &s[..3]).collect();
    assert_eq!(codes, ["250", "550", "452", "550"], "{:?}", r.final_replies);
    assert!(r.final_replies[1].contains("from MTA(lmtp:"));
    assert_eq!(backend.received()[0].rcpts, ["ok-1@example.com"]);
    let snap = avisd.snapshot();
    assert_eq!(
        snap.counter(Counter::InMsgsStatusRejected),
        1,
        "counted once per message and status"
    );
    assert_eq!(snap.counter(Counter::InMsgsStatusTempFailed), 1);
    assert_eq!(snap.counter(Counter::LedgerRelayed), 1);
}

#[test]
fn recipients_refused_behind_a_single_esmtp_reply_are_bounced_to_the_sender() {
    let dir = TempDir::new("relay-dsn");
    let backend = FakeMta::start(Behaviour::default());
    let avisd = start(&dir, &backend, false, 2);
    let r = send(
        avisd.port,
        false,
        "sender@example.org",
        &["ok@example.com", "reject-x@example.com"],
        "Subject: s\r\nMessage-ID: <m1@x>\r\n\r\nbody\r\n",
    )
    .unwrap();
    assert!(
        r.final_replies[0].starts_with("250 ") && r.final_replies[0].ends_with(", but 1 BOUNCE"),
        "{:?}",
        r.final_replies
    );
    let got = backend.received();
    assert_eq!(got.len(), 2, "the message and the DSN");
    let dsn = &got[1];
    assert_eq!(dsn.from, "", "a DSN has the null sender");
    assert_eq!(dsn.rcpts, ["sender@example.org"]);
    assert!(dsn.data.contains("Final-Recipient: rfc822; reject-x@example.com"));
    assert!(
        dsn.data.contains("Message-ID: <m1@x>"),
        "the original header is returned"
    );
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::InMsgsStatusBounced), 1);
    assert_eq!(snap.counter(Counter::OutMsgsSubmitDsn), 1);
}

#[test]
fn a_bounce_is_never_bounced_and_every_refusal_goes_back_as_5xx() {
    let dir = TempDir::new("relay-nobounce");
    let backend = FakeMta::start(Behaviour::default());
    let avisd = start(&dir, &backend, false, 2);
    let r = send(
        avisd.port,
        false,
        "",
        &["ok@example.com", "reject-x@example.com"],
        "Subject: s\r\n\r\nb\r\n",
    )
    .unwrap();
    assert!(r.final_replies[0].starts_with("250 "), "{:?}", r.final_replies);
    assert_eq!(backend.received().len(), 1, "no DSN for a null sender");
    let r = send(
        avisd.port,
        false,
        "a@example.org",
        &["reject-1@example.com", "reject-2@example.com"],
        "x\r\n",
    )
    .unwrap();
    assert!(
        r.final_replies[0].starts_with("550 5.1.1 from MTA("),
        "{:?}",
        r.final_replies
    );
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::InMsgsStatusNoBounce), 1);
    assert_eq!(snap.counter(Counter::LedgerRejected), 1);
    assert_eq!(snap.counter(Counter::InMsgsBounceNullRPath), 1);
}

#[test]
fn with_the_back_end_down_every_message_is_tempfailed_and_none_is_acknowledged() {
    let dir = TempDir::new("relay-down");
    let dead_port = free_tcp_port();
    let port = free_tcp_port();
    let cfg = config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{dead_port}"), 2, "");
    let avisd = Avisd::start(dir.path(), &cfg, port);
    for i in 0..5 {
        let r = send(
            avisd.port,
            false,
            "a@example.org",
            &[&format!("r{i}@example.com")],
            "x\r\n",
        )
        .unwrap();
        assert!(
            r.final_replies[0].starts_with("451 4.5.0 Error in processing"),
            "{:?}",
            r.final_replies
        );
    }
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::LedgerTempFailed), 5);
    assert_eq!(snap.counter(Counter::InMsgsStatusTempFailed), 5);
    assert_eq!(snap.counter(Counter::ScannerBackendErrors), 5);
    assert_eq!(snap.counter(Counter::OutMsgsAttemptFails), 5);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}

#[test]
fn a_load_from_smtp_source_arrives_whole_and_the_counters_agree() {
    let smtp_source = require_tool("smtp-source");
    let dir = TempDir::new("relay-load");
    let backend = FakeMta::start(Behaviour::default());
    let avisd = start(&dir, &backend, false, 4);
    let status = Command::new(smtp_source)
        .args([
            "-s",
            "4",
            "-m",
            "200",
            "-l",
            "2048",
            "-f",
            "load@example.org",
            "-t",
            "sink@example.com",
        ])
        .arg(format!("127.0.0.1:{}", avisd.port))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(backend.received().len(), 200, "every message arrived exactly once");
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::InMsgs), 200);
    assert_eq!(snap.counter(Counter::LedgerReceived), 200);
    assert_eq!(snap.counter(Counter::LedgerRelayed), 200);
    assert_eq!(snap.counter(Counter::OutMsgsDelivers), 200);
    assert!(
        snap.counter(Counter::OutConnReuseRecent) > 0,
        "idle back-end connections are reused"
    );
    assert_eq!(snap.counter(Counter::LatencyTotalCount), 200);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}

#[test]
fn killed_mid_load_avisd_loses_nothing_it_acknowledged_and_counts_the_rest_at_restart() {
    let dir = TempDir::new("relay-kill");
    // Held until released, so all four are in flight together however slowly they arrive.
    let backend = FakeMta::start(Behaviour {
        slow: PATIENCE,
        ..Behaviour::default()
    });
    let mut avisd = start(&dir, &backend, false, 4);
    // Four messages held in flight by a slow back end, then SIGKILL.
    let port = avisd.port;
    let clients: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                send(
                    port,
                    false,
                    "a@example.org",
                    &[&format!("slow-{i}@example.com")],
                    "x\r\n",
                )
            })
        })
        .collect();
    wait_for("four messages in flight", PATIENCE, || {
        (avisd.snapshot().ledger(LedgerKey::InFlight) == 4).then_some(())
    });
    avisd.proc.signal("KILL");
    let acknowledged = clients
        .into_iter()
        .map(|c| c.join().unwrap())
        .filter(|r| {
            r.as_ref()
                .is_ok_and(|r| r.final_replies.iter().any(|f| f.starts_with('2')))
        })
        .count();
    let _ = avisd.proc.child.wait();
    assert_eq!(acknowledged, 0, "no client got 2xx from a killed avisd");
    // The back end finishes the slow transactions avisd left behind; only then is its
    // count final.
    backend.release();
    wait_for("the back end's sessions to end", PATIENCE, || {
        (backend.active() == 0).then_some(())
    });
    let arrived = backend.received().len();
    println!("killed with 4 in flight: {arrived} reached the back end anyway (duplicates when the senders retry)");
    assert!(arrived <= 4, "duplicates stay within the transactions in flight");

    let restarted = Avisd::start_with(dir.path(), &avisd.config, avisd.port);
    let snap = restarted.snapshot();
    assert_eq!(snap.counter(Counter::LedgerReceived), 4);
    assert_eq!(
        snap.counter(Counter::LedgerTempFailed),
        4,
        "in flight at the kill: the senders retry"
    );
    assert_eq!(snap.counter(Counter::ProcGone), 4);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
    // The retries go through.
    for i in 0..4 {
        let r = send(
            restarted.port,
            false,
            "a@example.org",
            &[&format!("r{i}@example.com")],
            "x\r\n",
        )
        .unwrap();
        assert!(r.final_replies[0].starts_with("250"));
    }
}

#[test]
fn sigterm_lets_the_message_in_flight_finish_and_refuses_nothing_it_took() {
    let dir = TempDir::new("relay-drain");
    // Held until avisd is draining, so the message is still in flight when it starts.
    let backend = FakeMta::start(Behaviour {
        slow: PATIENCE,
        ..Behaviour::default()
    });
    let mut avisd = start(&dir, &backend, false, 2);
    let port = avisd.port;
    let client = std::thread::spawn(move || send(port, false, "a@example.org", &["slow-1@example.com"], "x\r\n"));
    wait_for("the message in flight", PATIENCE, || {
        (avisd.snapshot().ledger(LedgerKey::InFlight) == 1).then_some(())
    });
    let drains = avisd.logged("draining");
    avisd.proc.signal("TERM");
    avisd.wait_logged("draining", drains);
    backend.release();
    let r = client.join().unwrap().unwrap();
    assert!(r.final_replies[0].starts_with("250"), "{:?}", r.final_replies);
    let status = avisd.proc.child.wait().unwrap();
    assert!(status.success(), "avisd exits cleanly after the drain");
    assert_eq!(backend.received().len(), 1);
    let snap = agent_mib::Reader::new(&avisd.scoreboard).snapshot().unwrap();
    assert!(!snap.writer_alive());
    assert_eq!(snap.counter(Counter::LedgerRelayed), 1);
}

#[test]
fn counters_survive_a_restart_and_reset_only_with_the_file() {
    let dir = TempDir::new("relay-restart");
    let backend = FakeMta::start(Behaviour::default());
    let avisd = start(&dir, &backend, false, 2);
    send(avisd.port, false, "a@example.org", &["b@example.com"], "x\r\n").unwrap();
    let started = avisd.snapshot().started_ms();
    let (config, port) = (avisd.config.clone(), avisd.port);
    avisd.proc.signal("TERM");
    drop(avisd);
    let again = Avisd::start_with(dir.path(), &config, port);
    send(again.port, false, "a@example.org", &["b@example.com"], "x\r\n").unwrap();
    let snap = again.snapshot();
    assert_eq!(snap.counter(Counter::InMsgs), 2);
    assert_eq!(
        snap.started_ms(),
        started,
        "sysUpTime keeps counting from the same start"
    );
    assert_eq!(snap.generation(), 2);
}

#[test]
fn pipe_delivery_hands_the_message_to_a_program_and_maps_its_exit_code() {
    let dir = TempDir::new("relay-pipe");
    let port = free_tcp_port();
    let out = dir.join("piped.eml");
    let script = dir.join("deliver.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$2\" in *tempfail*) exit 75;; esac\ncat >> {}\n",
            out.display()
        ),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    let cfg = config_text(
        dir.path(),
        port,
        &format!("pipe:argv={} ${{sender}} ${{recipient}}", script.display()),
        2,
        "",
    );
    let avisd = Avisd::start(dir.path(), &cfg, port);
    let r = send(
        avisd.port,
        false,
        "a@example.org",
        &["b@example.com"],
        "Subject: piped\r\n\r\nx\r\n",
    )
    .unwrap();
    assert!(r.final_replies[0].starts_with("250"), "{:?}", r.final_replies);
    assert!(std::fs::read_to_string(&out).unwrap().contains("Subject: piped"));
    let r = send(avisd.port, false, "a@example.org", &["tempfail@example.com"], "x\r\n").unwrap();
    assert!(
        r.final_replies[0].starts_with("450"),
        "EX_TEMPFAIL is temporary: {:?}",
        r.final_replies
    );
}

#[test]
fn a_bad_configuration_fails_at_start_with_file_line_and_reason() {
    let dir = TempDir::new("relay-badcfg");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[daemon]\nstate_dir = \"s\"\nmax_servers = 9999\n\n[[listen]]\naddress = \"127.0.0.1:1\"\n\n[policy.default]\nforward = \"smtp:nowhere\"\n").unwrap();
    let out = Command::new(bin("avisd"))
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3: daemon.max_servers"), "{err}");
    assert!(err.contains("bad.toml:9: policy.default.forward"), "{err}");
    let ok = Command::new(bin("avisd")).arg("--check-config").output().unwrap();
    assert!(ok.status.success(), "the embedded default is valid");
}

#[test]
fn xforward_attributes_reach_a_back_end_that_offers_xforward() {
    let dir = TempDir::new("relay-xforward");
    let backend = FakeMta::start(Behaviour::default());
    let avisd = start(&dir, &backend, false, 2);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", avisd.port)).unwrap();
    use std::io::{BufRead, BufReader, Write};
    let mut r = BufReader::new(s.try_clone().unwrap());
    let script = "EHLO mx.test\r\nXFORWARD NAME=client.example ADDR=192.0.2.7 PORT=4711 PROTO=ESMTP HELO=client.example\r\nXFORWARD IDENT=4ZxQ1 SOURCE=REMOTE\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n";
    s.write_all(script.as_bytes()).unwrap();
    let mut line = String::new();
    while !line.starts_with("354") {
        line.clear();
        r.read_line(&mut line).unwrap();
    }
    s.write_all(b"From: a@example.org\r\nDate: Sun, 29 Nov 2026 05:00:00 +0000\r\n\r\nx\r\n.\r\nQUIT\r\n")
        .unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("250"), "{line}");
    let got = backend.received();
    let xf = got[0].xforward.join(" ");
    assert!(
        xf.contains("ADDR=192.0.2.7") && xf.contains("IDENT=4ZxQ1") && xf.contains("NAME=client.example"),
        "{xf}"
    );
    assert!(
        got[0].data.contains("from client.example ([192.0.2.7])"),
        "the Received field names the original client"
    );
    let e = &avisd.events()[0];
    assert_eq!(e["client_ip"], "192.0.2.7");
    assert_eq!(e["queue_id"], "4ZxQ1");
}

#[test]
fn listeners_on_ipv6_and_unix_sockets_each_apply_their_policy_bank() {
    let dir = TempDir::new("relay-listeners");
    let backend = FakeMta::start(Behaviour::default());
    let v4 = free_tcp_port();
    let v6 = free_tcp_port();
    let sock = dir.join("avisd.sock");
    let cfg = format!(
        "{}\n[[listen]]\naddress = \"[::1]:{v6}\"\npolicy = \"default\"\n\n[[listen]]\naddress = \"unix:{}\"\npolicy = \"lmtpbank\"\n\n[policy.lmtpbank]\nforward = \"smtp:[127.0.0.1]:{}\"\n",
        config_text(dir.path(), v4, &format!("smtp:[127.0.0.1]:{}", backend.port), 2, ""),
        sock.display(),
        backend.port
    );
    let avisd = Avisd::start(dir.path(), &cfg, v4);
    let s6 = std::net::TcpStream::connect(("::1", v6));
    assert!(s6.is_ok(), "avisd listens on [::1]");
    drop(s6);
    use std::io::{BufRead, BufReader, Write};
    let u = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let mut w = u.try_clone().unwrap();
    let mut r = BufReader::new(u);
    w.write_all(b"LHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        .unwrap();
    let mut line = String::new();
    while !line.starts_with("354") {
        line.clear();
        r.read_line(&mut line).unwrap();
    }
    w.write_all(b"From: a@example.org\r\nDate: Sun, 29 Nov 2026 05:00:00 +0000\r\n\r\nover a unix socket\r\n.\r\n")
        .unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("250"), "{line}");
    assert_eq!(backend.received().len(), 1);
    assert_eq!(avisd.events()[0]["policy_banks"][0], "lmtpbank");
}

#[test]
fn avisd_start_returns_only_once_every_listener_is_bound_even_a_unix_socket_alone() {
    // Issue 22: the helper used to wait for one TCP listener and let the test race avisd
    // to the others. With a Unix socket as the only listener there is no TCP port to
    // stand in for readiness: the helper must wait for avisd to say it is ready.
    let dir = TempDir::new("relay-ready");
    let backend = FakeMta::start(Behaviour::default());
    let port = free_tcp_port();
    let sock = dir.join("only.sock");
    let cfg = config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", backend.port), 2, "").replace(
        &format!("address = \"127.0.0.1:{port}\""),
        &format!("address = \"unix:{}\"", sock.display()),
    );
    let avisd = Avisd::start(dir.path(), &cfg, port);
    use std::io::{BufRead, BufReader};
    let u = std::os::unix::net::UnixStream::connect(&sock).expect("the Unix socket is bound when start returns");
    u.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut greeting = String::new();
    BufReader::new(u).read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert_eq!(avisd.logged("listening"), 1, "one listener, logged once");
}

#[test]
fn sighup_reloads_the_policy_and_reopens_the_event_log() {
    let dir = TempDir::new("relay-hup");
    let first = FakeMta::start(Behaviour::default());
    let second = FakeMta::start(Behaviour::default());
    let port = free_tcp_port();
    let cfg = config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", first.port), 2, "");
    let mut avisd = Avisd::start(dir.path(), &cfg, port);
    send(port, false, "a@example.org", &["b@example.com"], "x\r\n").unwrap();
    std::fs::rename(&avisd.events, dir.join("events.jsonl.1")).unwrap(); // logrotate
    std::fs::write(
        &avisd.config,
        config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", second.port), 2, ""),
    )
    .unwrap();
    // avisd reopens the event log before it swaps the policy in: the new file alone does
    // not say the new forward target is in use, the log line after both does.
    let reloads = avisd.logged("configuration reloaded");
    avisd.proc.signal("HUP");
    avisd.wait_logged("configuration reloaded", reloads);
    assert!(avisd.events.exists(), "the events file is reopened");
    send(port, false, "a@example.org", &["b@example.com"], "x\r\n").unwrap();
    assert_eq!(first.received().len(), 1);
    assert_eq!(second.received().len(), 1, "the reloaded forward target is used");
    assert_eq!(avisd.events().len(), 1, "the new event went to the new file");
    std::fs::write(&avisd.config, "this is not toml [").unwrap();
    let refusals = avisd.logged("reload refused");
    avisd.proc.signal("HUP");
    avisd.wait_logged("reload refused", refusals);
    let r = send(port, false, "a@example.org", &["b@example.com"], "x\r\n").unwrap();
    assert!(
        r.final_replies[0].starts_with("250"),
        "a bad file keeps the running configuration"
    );
}

#[test]
fn a_message_refused_for_its_size_after_data_is_on_the_ledger_counted_and_logged() {
    let dir = TempDir::new("relay-size");
    let backend = FakeMta::start(Behaviour::default());
    let port = free_tcp_port();
    let cfg = config_text(
        dir.path(),
        port,
        &format!("smtp:[127.0.0.1]:{}", backend.port),
        2,
        "message_size_limit = 4096",
    );
    let avisd = Avisd::start(dir.path(), &cfg, port);
    let big = format!(
        "From: a@example.org\r\n\r\n{}",
        format!("{}\r\n", "y".repeat(500)).repeat(20)
    );
    let r = send(port, false, "a@example.org", &["b@example.com"], &big).unwrap();
    assert!(
        r.final_replies[0].starts_with("552 5.3.4 Message size"),
        "{:?}",
        r.final_replies
    );
    assert!(backend.received().is_empty());
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::LedgerReceived), 1);
    assert_eq!(snap.counter(Counter::LedgerRejected), 1);
    assert_eq!(snap.counter(Counter::InMsgs), 1);
    assert_eq!(snap.counter(Counter::ContentOversizedMsgs), 1);
    assert_eq!(snap.counter(Counter::InMsgsStatusRejected), 1);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
    let e = &avisd.events()[0];
    assert_eq!(e["smtp_code"][0], "552");
    assert_eq!(e["content_type"], "Oversized");
    // The session goes on after the refusal.
    let ok = send(
        port,
        false,
        "a@example.org",
        &["b@example.com"],
        "From: a@example.org\r\n\r\nsmall\r\n",
    )
    .unwrap();
    assert!(ok.final_replies[0].starts_with("250"));
}

#[test]
fn a_twenty_megabyte_message_goes_through_the_file_spool_and_arrives_intact() {
    let dir = TempDir::new("relay-large");
    let backend = FakeMta::start(Behaviour::default());
    let avisd = start(&dir, &backend, false, 2);
    let line = format!("{}\r\n", "0123456789abcdef".repeat(4));
    let body = format!(
        "From: a@example.org\r\nDate: Sun, 29 Nov 2026 05:00:00 +0000\r\nSubject: big\r\n\r\n{}",
        line.repeat(20 * 1024 * 1024 / line.len())
    );
    let r = send(avisd.port, false, "a@example.org", &["b@example.com"], &body).unwrap();
    assert!(r.final_replies[0].starts_with("250"), "{:?}", r.final_replies);
    let got = &backend.received()[0].data;
    assert!(got.ends_with(&body), "the body arrived byte for byte");
    let e = &avisd.events()[0];
    assert!(e["size"].as_u64().unwrap() >= 20 * 1024 * 1024 - 100);
    let spool = dir.join("state").join("spool");
    let left = std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "the spool file is removed once the message is answered");
}

#[test]
fn a_back_end_slower_than_the_forward_timeout_gets_the_message_tempfailed() {
    let dir = TempDir::new("relay-slow-backend");
    // Far slower than avisd's 2 s bound, so a busy machine's delays cannot blur the two.
    let backend = FakeMta::start(Behaviour {
        slow: Duration::from_secs(30),
        ..Behaviour::default()
    });
    let port = free_tcp_port();
    let mut cfg = config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", backend.port), 2, "");
    cfg = cfg.replace("forward_timeout = 20", "forward_timeout = 2");
    let avisd = Avisd::start(dir.path(), &cfg, port);
    let started = std::time::Instant::now();
    let r = send(
        port,
        false,
        "a@example.org",
        &["slow-1@example.com"],
        "From: a@example.org\r\n\r\nx\r\n",
    )
    .unwrap();
    assert!(r.final_replies[0].starts_with("451 4.5.0"), "{:?}", r.final_replies);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answered within avisd's own bound, long before the back end's 30 s: {:?}",
        started.elapsed()
    );
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::ScannerBackendTimeouts), 1);
    assert_eq!(snap.counter(Counter::LedgerTempFailed), 1);
}

#[test]
fn a_slowloris_client_is_cut_off_with_421_after_the_idle_timeout_however_it_drips() {
    use std::io::{Read, Write};
    let dir = TempDir::new("relay-slowloris");
    let backend = FakeMta::start(Behaviour::default());
    let port = free_tcp_port();
    let cfg = config_text(
        dir.path(),
        port,
        &format!("smtp:[127.0.0.1]:{}", backend.port),
        2,
        "idle_timeout = 2",
    );
    let avisd = Avisd::start(dir.path(), &cfg, port);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = std::time::Instant::now();
    // One byte every 300 ms, never a whole line: each read is quick, the command never ends
    // (the drip would last 15 s; a timeout per read would cut it off only after that).
    let mut writer = s.try_clone().unwrap();
    let dripper = std::thread::spawn(move || {
        for b in b"EHLO very.slow.client.example.org.and.more.and.more".iter() {
            if writer.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    assert!(all.contains("\r\n421 4.4.2 avis.test Error: timeout exceeded"), "{all}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cut off after about 2 s, long before the drip ends, took {:?}",
        started.elapsed()
    );
    let _ = dripper.join();
    drop(avisd);
}

#[test]
fn two_thousand_messages_in_twenty_sessions_arrive_byte_identical_counted_and_logged() {
    let smtp_source = require_tool("smtp-source");
    let dir = TempDir::new("relay-2000");
    let backend = FakeMta::start(Behaviour::default());
    let reference = FakeMta::start(Behaviour::default());
    let avisd = start(&dir, &backend, false, 20);
    let load = |port: u16| {
        let status = Command::new(&smtp_source)
            .args([
                "-s",
                "20",
                "-m",
                "2000",
                "-l",
                "1024",
                "-f",
                "load@example.org",
                "-t",
                "sink@example.com",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .status()
            .unwrap();
        assert!(status.success());
    };
    load(reference.port);
    load(avisd.port);
    let through = backend.received();
    assert_eq!(through.len(), 2000, "every message arrived once");
    // smtp-source's messages differ only in their Date and Message-ID fields: through
    // avisd each is the message smtp-source sent, with avisd's Received field in front,
    // the same header field names and the body byte for byte.
    let reference = &reference.received()[0].data;
    let split = |m: &str| -> (Vec<String>, String) {
        let (head, body) = m.split_once("\r\n\r\n").unwrap_or((m, ""));
        let names = head
            .split("\r\n")
            .filter(|l| !l.starts_with([' ', '\t']))
            .map(|l| l.split(':').next().unwrap_or("").to_ascii_lowercase())
            .collect();
        (names, body.to_string())
    };
    let (ref_names, ref_body) = split(reference);
    for m in &through {
        let (mut names, body) = split(&m.data);
        assert_eq!(names.first().map(String::as_str), Some("received"), "{}", m.data);
        names.remove(0);
        assert_eq!(names, ref_names, "no header field added or lost but avisd's Received");
        assert_eq!(body, ref_body, "the body arrived byte for byte");
    }
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::InMsgs), 2000);
    assert_eq!(snap.counter(Counter::InMsgsRecips), 2000);
    assert_eq!(snap.counter(Counter::LedgerRelayed), 2000);
    assert_eq!(snap.counter(Counter::OutMsgsDelivers), 2000);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
    let events = avisd.events();
    assert_eq!(events.len(), 2000, "one event per message");
    assert!(
        events
            .iter()
            .all(|e| e["schema"] == "avis.message/1" && e["action"][0] == "PASS")
    );
}
