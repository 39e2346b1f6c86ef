//! avisd's content checks end to end: a real avisd with fake clamd and spamd (the real
//! ones are tested in scanners_real.rs), a scriptable back end, and the scoreboard.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use agent_mib::{Counter, LedgerKey};
use tests::avisd::{Avisd, config_text};
use tests::mta::{Behaviour, FakeMta, send};
use tests::{TempDir, fakescan, free_tcp_port, wait_for};

fn start(dir: &TempDir, backend: &FakeMta, checks: &str) -> Avisd {
    let port = free_tcp_port();
    let cfg = config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", backend.port), 2, "");
    Avisd::start(dir.path(), &format!("{cfg}\n[policy.default.checks]\n{checks}\n"), port)
}

/// Sends `body` from sender@example.org to user@example.com.
fn send_to_user(avisd: &Avisd, body: &str) -> tests::mta::ClientResult {
    send(avisd.port, false, "sender@example.org", &["user@example.com"], body).unwrap()
}

fn message(subject: &str, body: &str) -> String {
    format!(
        "From: sender@example.org\r\nDate: Sun, 29 Nov 2026 05:00:00 +0000\r\nSubject: {subject}\r\nMessage-ID: <t@example.org>\r\n\r\n{body}\r\n"
    )
}

fn with_attachment(name: &str, content_b64: &str) -> String {
    format!(
        "From: sender@example.org\r\nDate: Sun, 29 Nov 2026 05:00:00 +0000\r\nSubject: invoice\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--B\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{content_b64}\r\n--B--\r\n"
    )
}

#[test]
fn a_banned_attachment_is_discarded_for_one_recipient_and_delivered_to_the_one_who_bypasses_banned_checks() {
    let dir = TempDir::new("checks-banned");
    let backend = FakeMta::start(Behaviour::default());
    let checks = "[[policy.default.checks.recipients]]\nmatch = [\"admin@example.com\"]\nbypass_banned_checks = true\n";
    let avisd = start(&dir, &backend, checks);
    // "MZ" and a PE-ish header, base64: a Windows executable calling itself a PDF.
    let r = send(
        avisd.port,
        false,
        "sender@example.org",
        &["user@example.com", "admin@example.com"],
        &with_attachment("invoice.pdf.exe", "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAA="),
    )
    .unwrap();
    assert!(
        r.final_replies[0].starts_with("250 ") && r.final_replies[0].ends_with("but 1 DISCARD"),
        "{:?}",
        r.final_replies
    );
    let got = backend.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpts, ["admin@example.com"]);
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::ContentBannedMsgs), 1);
    assert_eq!(snap.counter(Counter::InMsgsStatusDiscarded), 1);
    assert_eq!(snap.counter(Counter::InMsgsStatusRelayedUntagged), 1);
    assert_eq!(snap.counter(Counter::OpsDec), 1);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
    let events = wait_for("the event", tests::PATIENCE, || {
        Some(avisd.events()).filter(|e| !e.is_empty())
    });
    assert_eq!(events[0]["content_type"], "Banned");
    assert_eq!(events[0]["recipients"][0]["ccat_blocking"], "Banned");
    assert_eq!(events[0]["attached_file_names"][0], "invoice.pdf.exe");
}

#[test]
fn a_virus_is_discarded_with_amavisds_reply_and_counted_by_name() {
    let dir = TempDir::new("checks-virus");
    let backend = FakeMta::start(Behaviour::default());
    let clamd = fakescan::clamd();
    let avisd = start(
        &dir,
        &backend,
        &format!("virus_scanners = [\"tcp:127.0.0.1:{clamd}\"]\n"),
    );
    let r = send_to_user(&avisd, &message("hi", "VIRUS-MARKER"));
    assert!(
        r.final_replies[0].starts_with("250 2.7.0 Ok, discarded, id="),
        "{:?}",
        r.final_replies
    );
    assert!(
        r.final_replies[0].ends_with("INFECTED: Fake.Virus"),
        "{:?}",
        r.final_replies
    );
    assert!(backend.received().is_empty(), "nothing delivered");
    let clean = send_to_user(&avisd, &message("hi", "clean"));
    assert!(clean.final_replies[0].starts_with("250 2.0.0 from MTA"));
    assert!(
        backend.received()[0]
            .data
            .contains("X-Virus-Scanned: avis at avis.test")
    );
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::ContentVirusMsgs), 1);
    assert_eq!(snap.counter(Counter::OpsVirusCheck), 2);
    assert_eq!(snap.counter(Counter::ScannerClamdRequests), 2);
    assert_eq!(snap.viruses(), [("Fake.Virus".to_string(), 1)]);
    assert_eq!(
        snap.counter(Counter::LedgerQuarantined),
        1,
        "discarded for all, kept in quarantine"
    );
    assert_eq!(snap.counter(Counter::QuarMsgsVirus), 1);
    assert_eq!(snap.counter(Counter::OutMsgsSubmitQuar), 1);
    let e = &avisd.events()[0];
    let copy = dir
        .join("state")
        .join("quarantine")
        .join(e["quarantine"].as_str().unwrap());
    let text = std::fs::read_to_string(&copy).unwrap();
    assert!(
        text.starts_with("X-Envelope-From: <sender@example.org>\r\nX-Envelope-To: <user@example.com>\r\n"),
        "{text}"
    );
    assert!(text.contains("X-Quarantine-ID: <") && text.contains("VIRUS-MARKER"));
    assert_eq!(e["quar_type"], "F");
    assert!(e["actions_performed"].as_str().unwrap().ends_with("Quarantined"));
}

#[test]
fn a_virus_lover_gets_the_message_with_its_quarantine_id_and_a_quarantine_that_cannot_be_written_tempfails() {
    let dir = TempDir::new("checks-quarantine");
    let backend = FakeMta::start(Behaviour::default());
    let clamd = fakescan::clamd();
    let checks = format!(
        "virus_scanners = [\"tcp:127.0.0.1:{clamd}\"]\n\n[[policy.default.checks.recipients]]\nmatch = [\"lab@example.com\"]\nvirus_lover = true\n"
    );
    let avisd = start(&dir, &backend, &checks);
    let r = send(
        avisd.port,
        false,
        "sender@example.org",
        &["lab@example.com"],
        &message("sample", "VIRUS-MARKER"),
    )
    .unwrap();
    assert!(
        r.final_replies[0].starts_with("250 2.0.0 from MTA"),
        "{:?}",
        r.final_replies
    );
    let data = &backend.received()[0].data;
    assert!(
        data.contains("X-Quarantine-ID: <") && data.contains("X-Amavis-Alert: INFECTED"),
        "{data}"
    );
    assert_eq!(avisd.snapshot().counter(Counter::LedgerRelayed), 1);
    // The quarantine directory turns into a file: the next copy cannot be written.
    let quarantine = dir.join("state").join("quarantine");
    std::fs::remove_dir_all(&quarantine).unwrap();
    std::fs::write(&quarantine, "not a directory").unwrap();
    let r = send(
        avisd.port,
        false,
        "sender@example.org",
        &["lab@example.com"],
        &message("sample", "VIRUS-MARKER"),
    )
    .unwrap();
    assert!(
        r.final_replies[0].starts_with("451 4.5.0 Error in processing"),
        "{:?}",
        r.final_replies
    );
    assert_eq!(
        backend.received().len(),
        1,
        "nothing forwarded while the quarantine fails"
    );
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::QuarAttemptTempFails), 1);
    assert_eq!(snap.counter(Counter::LedgerTempFailed), 1);
}

#[test]
fn with_every_virus_scanner_down_the_message_is_tempfailed_not_passed_unchecked() {
    let dir = TempDir::new("checks-scanner-down");
    let backend = FakeMta::start(Behaviour::default());
    let dead = free_tcp_port();
    let avisd = start(
        &dir,
        &backend,
        &format!("virus_scanners = [\"tcp:127.0.0.1:{dead}\"]\nscanner_timeout = 2\n"),
    );
    let r = send_to_user(&avisd, &message("hi", "clean"));
    assert!(r.final_replies[0].starts_with("451 4.5.0"), "{:?}", r.final_replies);
    assert!(backend.received().is_empty());
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::ScannerClamdErrors), 1);
    assert_eq!(snap.counter(Counter::LedgerTempFailed), 1);
}

#[test]
fn spammy_mail_is_tagged_and_redirected_to_the_spam_extension_and_spam_above_kill_rejected() {
    let dir = TempDir::new("checks-spam");
    let backend = FakeMta::start(Behaviour::default());
    let spamd = fakescan::spamd();
    let checks = format!(
        "spamd = \"tcp:127.0.0.1:{spamd}\"\nspam_kill_level = 20.0\nspam_subject_tag = \"***SPAM*** \"\nrecipient_delimiter = \"+\"\nfinal_spam_destiny = \"reject\"\n\n[[policy.default.checks.recipients]]\nmatch = [\"strict@example.com\"]\nspam_kill_level = 10.0\n"
    );
    let avisd = start(&dir, &backend, &checks);
    let r = send_to_user(&avisd, &message("offer", "SPAM-MARKER"));
    assert!(r.final_replies[0].starts_with("250 "), "{:?}", r.final_replies);
    let got = backend.received();
    assert_eq!(got[0].rcpts, ["user+spam@example.com"]);
    assert!(got[0].data.contains("X-Spam-Flag: YES\r\n"));
    assert!(got[0].data.contains("X-Spam-Score: 15.000\r\n"));
    assert!(got[0].data.contains("Subject: ***SPAM*** offer\r\n"));
    let r = send(
        avisd.port,
        false,
        "sender@example.org",
        &["strict@example.com"],
        &message("offer", "SPAM-MARKER"),
    )
    .unwrap();
    assert!(
        r.final_replies[0].starts_with("554 5.7.0 Reject, id="),
        "{:?}",
        r.final_replies
    );
    let ham = send_to_user(&avisd, &message("hello", "ham"));
    assert!(ham.final_replies[0].starts_with("250 "));
    assert!(
        !backend.received()[1].data.contains("X-Spam-Flag"),
        "below the tag level: no spam fields"
    );
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::ContentSpammyMsgs), 1);
    assert_eq!(snap.counter(Counter::ContentSpamMsgs), 1);
    assert_eq!(snap.counter(Counter::InMsgsStatusRelayedTagged), 1);
    assert_eq!(snap.counter(Counter::InMsgsStatusRejected), 1);
    assert_eq!(snap.counter(Counter::ScannerSpamdRequests), 3);
    let events = avisd.events();
    assert_eq!(events[0]["spam_score"], 15.0);
    assert_eq!(events[0]["tests"][0], "BAYES_99");
    assert_eq!(events[0]["subject"], "offer");
    assert_eq!(events[0]["subject_rot13"], "bssre");
    assert_eq!(events[0]["author"][0], "sender@example.org");
    assert_eq!(events[0]["message_id"], "t@example.org");
    assert_eq!(events[0]["checks_performed"], "SHB");
    assert_eq!(events[0]["references"], serde_json::Value::Null, "none were given");
}

#[test]
fn lmtp_clients_get_each_recipients_verdict() {
    let dir = TempDir::new("checks-lmtp");
    let backend = FakeMta::start(Behaviour::default());
    let spamd = fakescan::spamd();
    let checks = format!(
        "spamd = \"tcp:127.0.0.1:{spamd}\"\nfinal_spam_destiny = \"reject\"\n\n[[policy.default.checks.recipients]]\nmatch = [\"lover@example.com\"]\nspam_lover = true\n"
    );
    let avisd = start(&dir, &backend, &checks);
    let r = send(
        avisd.port,
        true,
        "sender@example.org",
        &["lover@example.com", "user@example.com"],
        &message("x", "SPAM-MARKER"),
    )
    .unwrap();
    let codes: Vec<&str> = r.final_replies.iter().map(|s| &s[..3]).collect();
    assert_eq!(codes, ["250", "554"], "{:?}", r.final_replies);
    assert_eq!(backend.received()[0].rcpts, ["lover@example.com"]);
}

#[test]
fn a_bad_header_passes_with_an_alert_and_the_worker_went_through_the_check_states() {
    let dir = TempDir::new("checks-badh");
    let backend = FakeMta::start(Behaviour::default());
    let avisd = start(&dir, &backend, "");
    let r = send(
        avisd.port,
        false,
        "sender@example.org",
        &["user@example.com"],
        "Subject: one\r\nSubject: two\r\n\r\nno From, no Date\r\n",
    )
    .unwrap();
    assert!(r.final_replies[0].starts_with("250 "));
    let data = &backend.received()[0].data;
    assert!(
        data.contains("X-Amavis-Alert: BAD HEADER SECTION, Missing required header field"),
        "{data}"
    );
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::ContentBadHdrMsgs), 1);
    assert_eq!(snap.counter(Counter::LatencyDecodeCount), 1);
}

#[test]
fn a_clamd_slower_than_the_scanner_timeout_tempfails_the_message_and_counts_a_timeout() {
    let dir = TempDir::new("checks-clamd-slow");
    let backend = FakeMta::start(Behaviour::default());
    let clamd = fakescan::clamd_with(fakescan::Mode::Slow(Duration::from_secs(30)));
    let avisd = start(
        &dir,
        &backend,
        &format!("virus_scanners = [\"tcp:127.0.0.1:{clamd}\"]\nscanner_timeout = 2\n"),
    );
    let started = std::time::Instant::now();
    let r = send_to_user(&avisd, &message("hi", "clean"));
    assert!(r.final_replies[0].starts_with("451 4.5.0"), "{:?}", r.final_replies);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the scanner's timeout, not the scanner, decided: {:?}",
        started.elapsed()
    );
    assert!(backend.received().is_empty(), "nothing passed unchecked");
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::ScannerClamdTimeouts), 1);
    assert_eq!(snap.counter(Counter::ScannerClamdRequests), 1);
    assert_eq!(snap.counter(Counter::LedgerTempFailed), 1);
    assert_eq!(snap.ledger(LedgerKey::Unaccounted), 0);
}

#[test]
fn a_clamd_error_fails_over_to_the_backup_and_with_failures_not_fatal_mail_passes_as_unchecked() {
    let dir = TempDir::new("checks-clamd-error");
    let backend = FakeMta::start(Behaviour::default());
    let broken = fakescan::clamd_with(fakescan::Mode::Error);
    let backup = fakescan::clamd();
    let avisd = start(
        &dir,
        &backend,
        &format!(
            "virus_scanners = [\"tcp:127.0.0.1:{broken}\"]\nvirus_scanners_backup = [\"tcp:127.0.0.1:{backup}\"]\n"
        ),
    );
    let r = send_to_user(&avisd, &message("hi", "VIRUS-MARKER"));
    assert!(
        r.final_replies[0].contains("INFECTED: Fake.Virus"),
        "the backup found it: {:?}",
        r.final_replies
    );
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::ScannerClamdErrors), 1);
    assert_eq!(snap.counter(Counter::ScannerClamdBackupRequests), 1);
    assert_eq!(snap.counter(Counter::ScannerClamdBackupErrors), 0);
    drop(avisd);

    // Only the broken one, and the administrator chose to pass what cannot be scanned.
    let dir = TempDir::new("checks-clamd-error-pass");
    let avisd = start(
        &dir,
        &backend,
        &format!("virus_scanners = [\"tcp:127.0.0.1:{broken}\"]\nvirus_scanners_failure_is_fatal = false\n"),
    );
    let r = send_to_user(&avisd, &message("hi", "clean"));
    assert!(r.final_replies[0].starts_with("250 2.0.0"), "{:?}", r.final_replies);
    let events = wait_for("the event", tests::PATIENCE, || {
        Some(avisd.events()).filter(|e| !e.is_empty())
    });
    assert_eq!(events[0]["content_type"], "Unchecked", "{}", events[0]);
    assert_eq!(avisd.snapshot().counter(Counter::ScannerClamdErrors), 1);
}

#[test]
fn a_spamd_slower_than_the_scanner_timeout_leaves_the_message_unscored_but_delivered() {
    let dir = TempDir::new("checks-spamd-slow");
    let backend = FakeMta::start(Behaviour::default());
    let spamd = fakescan::spamd_with(fakescan::Mode::Slow(Duration::from_secs(30)));
    let avisd = start(
        &dir,
        &backend,
        &format!("spamd = \"tcp:127.0.0.1:{spamd}\"\nscanner_timeout = 2\n"),
    );
    let r = send_to_user(&avisd, &message("offer", "SPAM-MARKER"));
    assert!(r.final_replies[0].starts_with("250 2.0.0"), "{:?}", r.final_replies);
    let got = backend.received();
    assert_eq!(got.len(), 1);
    assert!(!got[0].data.contains("X-Spam-"), "unscored: {}", got[0].data);
    let snap = avisd.snapshot();
    assert_eq!(snap.counter(Counter::ScannerSpamdTimeouts), 1);
    assert_eq!(snap.counter(Counter::LedgerRelayed), 1);
}

#[test]
fn spam_is_not_scanned_when_a_virus_blocks_every_recipient_but_is_when_one_loves_viruses() {
    let dir = TempDir::new("checks-spam-skip");
    let backend = FakeMta::start(Behaviour::default());
    let (clamd, spamd) = (fakescan::clamd(), fakescan::spamd());
    let checks = format!(
        "virus_scanners = [\"tcp:127.0.0.1:{clamd}\"]\nspamd = \"tcp:127.0.0.1:{spamd}\"\n\n[[policy.default.checks.recipients]]\nmatch = [\"lab@example.com\"]\nvirus_lover = true\n"
    );
    let avisd = start(&dir, &backend, &checks);
    let virus = message("sample", "VIRUS-MARKER SPAM-MARKER");
    let r = send(avisd.port, false, "sender@example.org", &["user@example.com"], &virus).unwrap();
    assert!(r.final_replies[0].contains("INFECTED"), "{:?}", r.final_replies);
    let snap = avisd.snapshot();
    assert_eq!(
        snap.counter(Counter::ScannerSpamdRequests),
        0,
        "blocked for everyone: not spam-scanned"
    );
    assert_eq!(snap.counter(Counter::OpsSpamCheck), 0);

    let r = send(
        avisd.port,
        false,
        "sender@example.org",
        &["user@example.com", "lab@example.com"],
        &virus,
    )
    .unwrap();
    assert!(r.final_replies[0].starts_with("250 "), "{:?}", r.final_replies);
    assert_eq!(avisd.snapshot().counter(Counter::ScannerSpamdRequests), 1);
    let got = backend.received();
    assert_eq!(got[0].rcpts, ["lab@example.com"], "the lover gets it, spam-tagged");
    assert!(got[0].data.contains("X-Spam-Flag: YES"), "{}", got[0].data);
    let events = avisd.events();
    assert_eq!(events[0]["checks_performed"], "VHB");
    assert_eq!(events[1]["checks_performed"], "VSHB");
}
