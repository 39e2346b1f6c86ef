//! decide, specified by fixtures: `tests/decide/NNN-name.toml` holds the check outcomes,
//! the policy's destinies and the recipients' settings; `NNN-name.ref` the transcript
//! of verdicts per recipient. A mismatch writes `NNN-name.failed` beside them.
//! `AVIS_BLESS=1` rewrites the `.ref` files (then read every changed line).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use filter::check::banned::BannedHit;
use filter::check::headers::{BadHeader, HeaderProblem};
use filter::check::{Outcomes, SpamOutcome, Unchecked, VirusOutcome};
use filter::decide::{Context, Destinies, Destiny, RecipientPolicy, decide, display_name, message_category};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Message {
    virus: Option<Vec<String>>,
    virus_scanned: Option<bool>,
    virus_failed: Option<String>,
    spam_score: Option<f64>,
    #[serde(default)]
    spam_tests: Vec<String>,
    #[serde(default)]
    banned: Vec<String>,
    #[serde(default)]
    bad_headers: Vec<String>,
    #[serde(default)]
    oversized: bool,
    unchecked: Option<String>,
    #[serde(default)]
    null_sender: bool,
    #[serde(default)]
    virus_failure_tempfails: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    message: Message,
    #[serde(default)]
    destinies: BTreeMap<String, String>,
    recipient: Vec<Recipient>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipient {
    address: String,
    #[serde(default = "yes")]
    local: bool,
    #[serde(default)]
    bypass_virus: bool,
    #[serde(default)]
    bypass_spam: bool,
    #[serde(default)]
    bypass_banned: bool,
    #[serde(default)]
    virus_lover: bool,
    #[serde(default)]
    spam_lover: bool,
    #[serde(default)]
    banned_lover: bool,
    kill_level: Option<f64>,
    tag2_level: Option<f64>,
    spam_subject_tag: Option<String>,
    recipient_delimiter: Option<char>,
}

fn yes() -> bool {
    true
}

fn outcomes(m: &Message) -> Outcomes {
    let virus = match (&m.virus, m.virus_scanned, &m.virus_failed) {
        (Some(names), _, _) => VirusOutcome::Infected(names.clone()),
        (None, _, Some(why)) => VirusOutcome::Failed(why.clone()),
        (None, Some(true), None) => VirusOutcome::Clean,
        (None, _, None) => VirusOutcome::NotScanned,
    };
    let spam = m
        .spam_score
        .map_or(SpamOutcome::NotScanned, |score| SpamOutcome::Scored {
            score,
            tests: m.spam_tests.clone(),
        });
    let banned = m
        .banned
        .iter()
        .map(|b| {
            let (path, reason) = b.split_once(": ").unwrap();
            BannedHit {
                path: path.into(),
                reason: reason.into(),
            }
        })
        .collect();
    let kinds = [
        ("Mime", BadHeader::Mime),
        ("8bit", BadHeader::EightBit),
        ("Control", BadHeader::Control),
        ("Empty", BadHeader::Empty),
        ("Long", BadHeader::Long),
        ("Syntax", BadHeader::Syntax),
        ("Missing", BadHeader::Missing),
        ("Duplicate", BadHeader::Duplicate),
    ];
    let bad_headers = m
        .bad_headers
        .iter()
        .map(|k| {
            let kind = kinds.iter().find(|(n, _)| n == k).map(|(_, v)| *v).unwrap();
            HeaderProblem {
                kind,
                text: format!("{k} problem"),
            }
        })
        .collect();
    let unchecked = m.unchecked.as_deref().map(|u| match u {
        "encrypted" => Unchecked::Encrypted,
        "over_limits" => Unchecked::OverLimits,
        _ => Unchecked::Ambiguous,
    });
    let hold = (unchecked == Some(Unchecked::OverLimits)).then_some("Exceeded storage quota");
    Outcomes {
        virus,
        spam,
        banned,
        bad_headers,
        oversized: m.oversized,
        unchecked,
        hold,
    }
}

fn run(f: &Fixture) -> String {
    let mut d = Destinies::default();
    for (k, v) in &f.destinies {
        let v = Destiny::parse(v).unwrap();
        match k.as_str() {
            "virus" => d.virus = v,
            "banned" => d.banned = v,
            "unchecked" => d.unchecked = v,
            "spam" => d.spam = v,
            "bad_header" => d.bad_header = v,
            "oversized" => d.oversized = v,
            other => panic!("unknown destiny {other}"),
        }
    }
    let o = outcomes(&f.message);
    let ctx = Context {
        log_id: "00001-01",
        hostname: "mx.test",
        null_sender: f.message.null_sender,
        destinies: &d,
        virus_failure_tempfails: f.message.virus_failure_tempfails,
    };
    let mut out = String::new();
    let mut verdicts = Vec::new();
    for r in &f.recipient {
        let mut p = RecipientPolicy {
            local: r.local,
            ..RecipientPolicy::default()
        };
        p.bypass_virus = r.bypass_virus;
        p.bypass_spam = r.bypass_spam;
        p.bypass_banned = r.bypass_banned;
        p.virus_lover = r.virus_lover;
        p.spam_lover = r.spam_lover;
        p.banned_lover = r.banned_lover;
        if let Some(k) = r.kill_level {
            p.kill_level = Some(k);
        }
        if let Some(k) = r.tag2_level {
            p.tag2_level = Some(k);
        }
        p.spam_subject_tag = r.spam_subject_tag.clone();
        p.recipient_delimiter = r.recipient_delimiter;
        let v = decide(&o, &p, &ctx);
        let ccats: Vec<String> = v.ccats.iter().map(|c| display_name(*c)).collect();
        let _ = writeln!(out, "{}:", r.address);
        let _ = writeln!(out, "  ccats: {}", ccats.join(" "));
        let _ = writeln!(out, "  blocking: {}", v.blocking.map_or("-".into(), display_name));
        let _ = writeln!(out, "  destiny: {:?}", v.destiny);
        if let Some(reply) = &v.reply {
            let _ = writeln!(out, "  reply: {reply}");
        }
        for (n, val) in &v.add_headers {
            let _ = writeln!(out, "  header: {n}: {val}");
        }
        if let Some(t) = &v.subject_tag {
            let _ = writeln!(out, "  subject tag: {t:?}");
        }
        if let Some(e) = &v.extension {
            let _ = writeln!(out, "  extension: {e}");
        }
        let _ = writeln!(out, "  tagged: {} dsn_cutoff: {}", v.tagged, v.dsn_cutoff);
        verdicts.push(v);
    }
    let _ = writeln!(out, "message category: {}", message_category(&verdicts).name());
    out
}

#[test]
fn every_fixture_gives_its_transcript() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("decide");
    let mut ran = 0;
    let mut failed = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
    {
        let fixture: Fixture = toml::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let got = run(&fixture);
        let ref_path = path.with_extension("ref");
        let failed_path = path.with_extension("failed");
        if std::env::var_os("AVIS_BLESS").is_some() {
            std::fs::write(&ref_path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&ref_path).unwrap_or_default();
        if got == want {
            let _ = std::fs::remove_file(&failed_path);
        } else {
            std::fs::write(&failed_path, &got).unwrap();
            failed.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
        ran += 1;
    }
    assert!(ran >= 10, "only {ran} fixtures ran");
    assert!(
        failed.is_empty(),
        "transcripts differ (see the .failed files): {failed:?}"
    );
}
