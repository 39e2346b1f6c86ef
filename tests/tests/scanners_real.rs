//! The scanner clients of avisd against the real daemons from Debian: a private clamd
//! (foreground, loopback TCP and a Unix socket in a temp dir, a signature database written
//! by the test, so no freshclam and no network) and a private spamd (foreground, loopback,
//! local rules only) and a private rspamd (foreground, one normal worker on loopback, the
//! packaged configuration with state, run and log directories in a temp dir). clamd and
//! spamd are started by `tests::scanners`, which also assembles EICAR and GTUBE.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use filter::receive::spool::{Spool, SpoolConfig};
// The one line to change when the clients move under `filter::check`.
use filter::check as sc;
use sc::clamd::{ClamdConfig, ScannerRole, VirusVerdict};
use sc::endpoint::{Endpoint, ScanError};
use sc::rspamd::RspamdConfig;
use sc::spamd::SpamdConfig;
use tests::scanners::{self, Clamd, Spamd, eicar, gtube, terminate, wait_listening};
use tests::{Proc, TempDir, free_tcp_port, require_tool};

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "Received: from client.example.com (client.example.com [192.0.2.1])\r\n\tby mx.example.org with ESMTP id 4Xyz; Sun, 29 Nov 2026 05:00:00 +0000\r\nFrom: Ann Example <ann@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: {subject}\r\nDate: Sun, 29 Nov 2026 05:00:00 +0000\r\nMessage-ID: <20261129050000.4321@client.example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn spool(dir: &Path, bytes: &[u8], threshold: usize) -> Spool {
    let mut s = Spool::new(
        SpoolConfig {
            dir: dir.to_path_buf(),
            memory_threshold: threshold,
        },
        "msg",
    );
    for piece in bytes.chunks(64 * 1024) {
        s.write(piece).unwrap();
    }
    s.finish().unwrap();
    s
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn tcp(port: u16) -> Endpoint {
    Endpoint::Tcp("127.0.0.1".into(), port)
}

fn unix(path: &Path) -> Endpoint {
    Endpoint::Unix(path.to_path_buf())
}

// ---------------------------------------------------------------- clamd

fn start_clamd() -> Clamd {
    scanners::start_clamd("1M")
}

fn clamd_cfg(primary: Vec<Endpoint>, backup: Vec<Endpoint>) -> ClamdConfig {
    ClamdConfig {
        primary,
        backup,
        timeout: Duration::from_secs(30),
        scan_timeout: Duration::from_secs(60),
    }
}

fn scan(cfg: &ClamdConfig, msg: &Spool) -> (Result<VirusVerdict, ScanError>, Vec<(ScannerRole, bool)>) {
    let seen = std::sync::Mutex::new(Vec::new());
    let health = |role, result: Result<(), &ScanError>, _took: Duration| {
        seen.lock().unwrap().push((role, result.is_ok()));
    };
    let verdict = block_on(sc::clamd::scan(cfg, msg, &health));
    (verdict, seen.into_inner().unwrap())
}

#[test]
fn real_clamd_finds_the_test_signature_in_a_mail_and_passes_a_clean_one() {
    let mut clamd = start_clamd();
    let infected = message("test", &format!("Please scan this:\r\n{}", eicar()));
    let clean = message("lunch", "See you at noon.");
    for ep in [&tcp(clamd.port), &unix(&clamd.socket)] {
        let cfg = clamd_cfg(vec![ep.clone()], vec![]);
        let (verdict, health) = scan(&cfg, &spool(clamd.dir.path(), &infected, 1 << 20));
        match verdict {
            // clamd marks names from databases that are not ClamAV's own ".UNOFFICIAL".
            Ok(VirusVerdict::Infected(names)) => {
                assert!(
                    names.iter().any(|n| n.starts_with("Avis-Test-Eicar")),
                    "{ep}: {names:?}"
                )
            }
            other => panic!("{ep}: expected the test signature, got {other:?}"),
        }
        assert_eq!(health, [(ScannerRole::Primary, true)]);
        let (verdict, _) = scan(&cfg, &spool(clamd.dir.path(), &clean, 1 << 20));
        assert_eq!(verdict.unwrap(), VirusVerdict::Clean, "{ep}");
    }
    assert!(!clamd.proc.exited(), "clamd died");
}

#[test]
fn real_clamd_as_backup_answers_when_the_primary_is_down() {
    let clamd = start_clamd();
    let dead = Endpoint::Tcp("127.0.0.1".into(), free_tcp_port());
    let cfg = clamd_cfg(vec![dead], vec![unix(&clamd.socket)]);
    let msg = message("test", &eicar());
    let (verdict, health) = scan(&cfg, &spool(clamd.dir.path(), &msg, 1 << 20));
    assert!(matches!(verdict, Ok(VirusVerdict::Infected(_))), "{verdict:?}");
    assert_eq!(health, [(ScannerRole::Primary, false), (ScannerRole::Backup, true)]);
}

#[test]
fn real_clamd_refuses_a_stream_over_its_limit_as_too_large_and_scans_a_big_one_under_it() {
    let clamd = start_clamd();
    let cfg = clamd_cfg(vec![tcp(clamd.port)], vec![]);
    let line = "All work and no play makes Jack a dull boy. 0123456789\r\n";
    let big = message("big", &line.repeat(3 * 1024 * 1024 / line.len()));
    let (verdict, health) = scan(&cfg, &spool(clamd.dir.path(), &big, 64 * 1024));
    let e = verdict.unwrap_err();
    assert!(matches!(e, ScanError::TooLarge { .. }), "{e:?}");
    assert!(!e.is_temporary());
    assert_eq!(health, [(ScannerRole::Primary, false)]);
    // Just under the limit, from a file, in several chunks: scanned, and the virus at the
    // very end is found (every chunk arrived).
    let mut body = line.repeat(900 * 1024 / line.len());
    body.push_str(&eicar());
    let under = message("big", &body);
    assert!(under.len() < 1024 * 1024);
    let (verdict, _) = scan(&cfg, &spool(clamd.dir.path(), &under, 64 * 1024));
    assert!(matches!(verdict, Ok(VirusVerdict::Infected(_))), "{verdict:?}");
}

// ---------------------------------------------------------------- spamd

fn start_spamd() -> Spamd {
    scanners::start_spamd(1)
}

#[test]
fn real_spamd_scores_gtube_as_spam_and_a_plain_message_as_ham() {
    let mut spamd = start_spamd();
    let spam = message("test", &format!("This is the GTUBE:\r\n{}", gtube()));
    let ham = message("lunch", "See you at noon at the usual place.");
    for ep in [&tcp(spamd.port), &unix(&spamd.socket)] {
        let cfg = SpamdConfig {
            endpoint: ep.clone(),
            timeout: Duration::from_secs(60),
            max_size: 500 * 1024,
            user: Some("avis-test".into()),
        };
        let v = block_on(sc::spamd::check(&cfg, &spool(spamd.dir.path(), &spam, 1 << 20))).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(spamd.dir.join("spamd.log")).unwrap_or_default();
            panic!("{ep}: {e}\n{log}")
        });
        assert!(v.is_spam, "{ep}: {v:?}");
        assert!(v.score >= 1000.0, "{ep}: {v:?}");
        assert!(v.tests.iter().any(|t| t == "GTUBE"), "{ep}: {v:?}");
        assert!(v.required > 0.0 && v.required < 1000.0, "{ep}: {v:?}");

        let v = block_on(sc::spamd::check(&cfg, &spool(spamd.dir.path(), &ham, 16))).unwrap();
        assert!(!v.is_spam, "{ep}: {v:?}");
        assert!(v.score < v.required, "{ep}: {v:?}");
        assert!(!v.tests.iter().any(|t| t == "GTUBE"), "{ep}: {v:?}");
    }
    assert!(!spamd.proc.exited(), "spamd died");
}

// ---------------------------------------------------------------- rspamd

/// A private rspamd: the packaged configuration (`/etc/rspamd`) with one normal worker on
/// a loopback port, and its state, run and log directories in a temp dir. Stopped with
/// SIGTERM so the main process takes its workers down.
struct Rspamd {
    proc: Proc,
    endpoint: Endpoint,
    dir: TempDir,
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        terminate(&mut self.proc);
    }
}

fn start_rspamd() -> Rspamd {
    let rspamd = require_tool("rspamd");
    let dir = TempDir::new("rspamd");
    for sub in ["local", "db", "run", "log"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let port = free_tcp_port();
    // Only the normal worker (no controller, proxy or fuzzy), on our port.
    let conf = format!(
        ".include \"$CONFDIR/common.conf\"\noptions {{\n  pidfile = \"$RUNDIR/rspamd.pid\";\n  .include \"$CONFDIR/options.inc\"\n}}\nlogging {{\n  type = \"file\";\n  filename = \"$LOGDIR/rspamd.log\";\n  level = \"info\";\n}}\nworker \"normal\" {{\n  bind_socket = \"127.0.0.1:{port}\";\n  .include \"$CONFDIR/worker-normal.inc\"\n  count = 1;\n}}\n"
    );
    let conf_path = dir.join("rspamd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let out_path = dir.join("rspamd.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let var = |name: &str, sub: &str| format!("--var={name}={}", dir.join(sub).display());
    let mut proc = Proc::spawn(
        "rspamd",
        Command::new(rspamd)
            // -i: allow running the workers as root (CI runs as root; harmless otherwise).
            .args(["--no-fork", "--insecure", "--config"])
            .arg(&conf_path)
            .arg("--var=CONFDIR=/etc/rspamd")
            .args([
                var("LOCAL_CONFDIR", "local"),
                var("DBDIR", "db"),
                var("RUNDIR", "run"),
                var("LOGDIR", "log"),
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out),
    );
    wait_listening(&mut proc, port, &out_path, Duration::from_secs(180));
    Rspamd {
        proc,
        endpoint: Endpoint::Tcp("127.0.0.1".into(), port),
        dir,
    }
}

#[test]
fn real_rspamd_rejects_gtube_and_sees_the_envelope_of_a_plain_message() {
    let mut rspamd = start_rspamd();
    let cfg = RspamdConfig {
        endpoint: rspamd.endpoint.clone(),
        timeout: Duration::from_secs(60),
        max_size: 1 << 20,
    };
    let rcpts = ["bob@example.org".to_string(), "carol@example.org".to_string()];
    let check = |msg: &[u8], from: &str| {
        block_on(sc::rspamd::check(
            &cfg,
            &spool(rspamd.dir.path(), msg, 1 << 20),
            from,
            &rcpts,
            Some("127.0.0.1"),
        ))
        .unwrap_or_else(|e| {
            let log = std::fs::read_to_string(rspamd.dir.join("log/rspamd.log")).unwrap_or_default();
            panic!("{e}\n{log}")
        })
    };
    let spam = message("test", &format!("This is the GTUBE:\r\n{}", gtube()));
    let v = check(&spam, "ann@example.com");
    assert!(v.is_spam, "{v:?}");
    assert_eq!(v.action.as_deref(), Some("reject"), "{v:?}");
    assert!(v.tests.iter().any(|t| t == "GTUBE"), "{v:?}");

    // An envelope sender unlike the From field, and the To field among the recipients:
    // rspamd's symbols show that the envelope arrived as request headers.
    let ham = message("lunch", "See you at noon at the usual place.");
    let v = check(&ham, "bounces@lists.example.net");
    assert!(!v.is_spam, "{v:?}");
    assert_eq!(v.action.as_deref(), Some("no action"), "{v:?}");
    assert!(v.score < v.required, "{v:?}");
    for symbol in ["FROM_NEQ_ENVFROM", "TO_MATCH_ENVRCPT_ALL"] {
        assert!(v.tests.iter().any(|t| t == symbol), "{symbol} missing: {v:?}");
    }
    assert!(!rspamd.proc.exited(), "rspamd died");
}

#[test]
fn avisd_with_the_real_clamd_and_spamd_discards_a_virus_tags_spam_and_passes_the_rest() {
    use tests::avisd::{Avisd, config_text};
    use tests::mta::{Behaviour, FakeMta, send};
    let clamd = start_clamd();
    let spamd = start_spamd();
    let backend = FakeMta::start(Behaviour::default());
    let dir = TempDir::new("avisd-real-scanners");
    let port = free_tcp_port();
    let cfg = format!(
        "{}\n[policy.default.checks]\nvirus_scanners = [\"{}\"]\nspamd = \"{}\"\nspam_subject_tag = \"***SPAM*** \"\n",
        config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", backend.port), 2, ""),
        tcp(clamd.port),
        tcp(spamd.port)
    );
    let avisd = Avisd::start(dir.path(), &cfg, port);
    let as_text = |m: Vec<u8>| String::from_utf8(m).unwrap();
    let r = send(
        port,
        false,
        "sender@example.org",
        &["user@example.com"],
        &as_text(message("invoice", &eicar())),
    )
    .unwrap();
    assert!(
        r.final_replies[0].starts_with("250 2.7.0 Ok, discarded, id="),
        "{:?}",
        r.final_replies
    );
    assert!(
        r.final_replies[0].contains("INFECTED: Avis-Test-Eicar"),
        "{:?}",
        r.final_replies
    );
    let r = send(
        port,
        false,
        "sender@example.org",
        &["user@example.com"],
        &as_text(message("offer", &gtube())),
    )
    .unwrap();
    assert!(
        r.final_replies[0].starts_with("250 "),
        "spam passes by default: {:?}",
        r.final_replies
    );
    let r = send(
        port,
        false,
        "sender@example.org",
        &["user@example.com"],
        &as_text(message("lunch", "See you at noon.")),
    )
    .unwrap();
    assert!(r.final_replies[0].starts_with("250 "));
    let got = backend.received();
    assert_eq!(got.len(), 2, "the virus was not delivered");
    assert!(
        got[0].data.contains("X-Spam-Flag: YES") && got[0].data.contains("Subject: ***SPAM*** offer"),
        "{}",
        got[0].data
    );
    assert!(got[1].data.contains("X-Virus-Scanned: avis at avis.test") && !got[1].data.contains("X-Spam-Flag: YES"));
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(agent_mib::Counter::ContentVirusMsgs), 1);
    assert_eq!(snap.counter(agent_mib::Counter::ContentSpamMsgs), 1);
    assert_eq!(snap.counter(agent_mib::Counter::ScannerClamdRequests), 3);
    assert_eq!(
        snap.counter(agent_mib::Counter::ScannerSpamdRequests),
        2,
        "the virus, discarded for its only recipient, is not spam-scanned"
    );
    assert_eq!(snap.ledger(agent_mib::LedgerKey::Unaccounted), 0);
}
