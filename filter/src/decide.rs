//! decide: a pure function — check outcomes + policy + recipient → content categories,
//! blocking category, destiny, reply, and the edits a passed recipient gets. No I/O, no
//! async; tested with script-in / transcript-out fixtures (filter/tests/decide/).
//! Follows amavisd-new: categories in precedence order, the first whose destiny is not
//! PASS (and that the recipient does not love) blocks.

use agent_mib::ContentCategory;

/// The policy types `decide` reads live in `config`; kept here for the users of these paths.
pub use crate::config::recipient::{Destinies, Destiny, RecipientPolicy};

use crate::check::headers::{self, BadHeader};
use crate::check::{Outcomes, SpamOutcome, Unchecked, VirusOutcome};
use crate::message::Reply;
use crate::replies::{self, Blocked};

/// A content category with its minor number.
pub type Ccat = (ContentCategory, u8);

/// One recipient's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Every category that applies, highest precedence first (Clean always last).
    pub ccats: Vec<Ccat>,
    /// The category that blocked, if one did.
    pub blocking: Option<Ccat>,
    /// What happens.
    pub destiny: Destiny,
    /// The reply for a blocked recipient (None when passed: the back end answers).
    pub reply: Option<Reply>,
    /// Header fields to add, in order.
    pub add_headers: Vec<(String, String)>,
    /// A prefix for the Subject.
    pub subject_tag: Option<String>,
    /// An address extension to apply (`user+ext@domain`).
    pub extension: Option<String>,
    /// Counted as RelayedTagged when passed.
    pub tagged: bool,
    /// No DSN for this recipient (spam at or above the cutoff).
    pub dsn_cutoff: bool,
}

/// The message-wide facts decide needs beside the outcomes.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// For replies.
    pub log_id: &'a str,
    /// For X-Virus-Scanned.
    pub hostname: &'a str,
    /// The sender is `<>` (a bad-header bounce becomes a pass, as amavisd does).
    pub null_sender: bool,
    /// The policy's destinies.
    pub destinies: &'a Destinies,
    /// When every virus scanner failed: tempfail (amavisd's default) rather than unchecked.
    pub virus_failure_tempfails: bool,
}

fn spam_score(o: &Outcomes) -> Option<f64> {
    match &o.spam {
        SpamOutcome::Scored { score, .. } => Some(*score),
        SpamOutcome::NotScanned | SpamOutcome::Failed(_) => None,
    }
}

fn at_or_above(score: Option<f64>, level: Option<f64>) -> bool {
    matches!((score, level), (Some(s), Some(l)) if s >= l)
}

/// The categories that apply to `r`, highest first.
pub fn categories(o: &Outcomes, r: &RecipientPolicy) -> Vec<Ccat> {
    let mut c: Vec<Ccat> = Vec::new();
    let score = if r.bypass_spam { None } else { spam_score(o) };
    if !r.bypass_virus && matches!(o.virus, VirusOutcome::Infected(_)) {
        c.push((ContentCategory::Virus, 0));
    }
    if !r.bypass_banned && !o.banned.is_empty() {
        c.push((ContentCategory::Banned, 0));
    }
    let unchecked = match (o.unchecked, &o.virus) {
        (Some(u), _) => Some(u),
        (None, VirusOutcome::Failed(_)) => Some(Unchecked::ScannerFailed),
        (None, _) => None,
    };
    match unchecked {
        // Ambiguous MIME is unchecked even for virus-bypass recipients (amavisd).
        Some(Unchecked::Ambiguous) => c.push((ContentCategory::Unchecked, 3)),
        Some(u) if !r.bypass_virus => c.push((
            ContentCategory::Unchecked,
            match u {
                Unchecked::Encrypted => 1,
                Unchecked::OverLimits => 2,
                Unchecked::Ambiguous => 3,
                Unchecked::ScannerFailed => 0,
            },
        )),
        _ => {}
    }
    if at_or_above(score, r.kill_level) {
        c.push((ContentCategory::Spam, 0));
    }
    if at_or_above(score, r.tag2_level) {
        c.push((ContentCategory::Spammy, u8::from(at_or_above(score, r.tag3_level))));
    }
    if let Some(w) = headers::worst(&o.bad_headers).filter(|_| !r.bypass_header) {
        c.push((ContentCategory::BadHdr, w.kind.minor()));
    }
    if o.oversized {
        c.push((ContentCategory::Oversized, 0));
    }
    let tag = score.is_some() && (r.tag_level.is_none() || at_or_above(score, r.tag_level));
    c.push((ContentCategory::Clean, u8::from(tag)));
    c
}

fn destiny_of(cat: ContentCategory, d: &Destinies) -> Destiny {
    match cat {
        ContentCategory::Virus => d.virus,
        ContentCategory::Banned => d.banned,
        ContentCategory::Unchecked => d.unchecked,
        ContentCategory::Spam => d.spam,
        ContentCategory::BadHdr => d.bad_header,
        ContentCategory::Oversized => d.oversized,
        ContentCategory::MtaFailed | ContentCategory::Spammy | ContentCategory::Clean => Destiny::Pass,
    }
}

fn loves(cat: ContentCategory, r: &RecipientPolicy) -> bool {
    match cat {
        ContentCategory::Virus => r.virus_lover,
        ContentCategory::Banned => r.banned_lover,
        ContentCategory::Unchecked => r.unchecked_lover,
        ContentCategory::Spam | ContentCategory::Spammy => r.spam_lover,
        ContentCategory::BadHdr => r.bad_header_lover,
        ContentCategory::Oversized | ContentCategory::MtaFailed | ContentCategory::Clean => false,
    }
}

fn reason(cat: Ccat, o: &Outcomes) -> String {
    match cat.0 {
        ContentCategory::Virus => match &o.virus {
            VirusOutcome::Infected(names) => format!("INFECTED: {}", names.join(", ")),
            VirusOutcome::NotScanned | VirusOutcome::Clean | VirusOutcome::Failed(_) => "INFECTED".into(),
        },
        ContentCategory::Banned => {
            format!(
                "BANNED: {}",
                o.banned.first().map_or(String::new(), |b| b.reason.clone())
            )
        }
        ContentCategory::Unchecked => match cat.1 {
            1 => "UNCHECKED: encrypted".into(),
            2 => format!("UNCHECKED: {}", o.hold.unwrap_or("over limits")),
            3 => "UNCHECKED: ambiguous content".into(),
            _ => "UNCHECKED: virus scanners failed".into(),
        },
        ContentCategory::Spam => "spam".into(),
        ContentCategory::Spammy => "spammy".into(),
        ContentCategory::BadHdr => {
            format!("BAD HEADER: {}", o.bad_headers.first().map_or("", |p| p.text.as_str()))
        }
        ContentCategory::Oversized => "Message size exceeds recipient's size limit".into(),
        ContentCategory::MtaFailed | ContentCategory::Clean => String::new(),
    }
}

/// The reply for a recipient blocked by `cat` with `destiny` (amavisd's
/// `%smtp_reason_by_ccat` and the D_DISCARD / D_TEMPFAIL overrides).
fn blocked_reply(cat: Ccat, destiny: Destiny, o: &Outcomes, log_id: &str) -> Reply {
    let (code, enhanced): (u16, (u8, u16, u16)) = match cat {
        (ContentCategory::BadHdr, 2) => (554, (5, 6, 3)),
        (ContentCategory::BadHdr, _) => (554, (5, 6, 0)),
        (ContentCategory::Oversized, _) => (552, (5, 3, 4)),
        (ContentCategory::MtaFailed, _) => (550, (5, 3, 5)),
        _ => (554, (5, 7, 0)),
    };
    let how = match destiny {
        Destiny::Discard => Blocked::Discard,
        Destiny::Tempfail => Blocked::Tempfail,
        Destiny::Bounce => Blocked::Bounce,
        Destiny::Reject | Destiny::Pass => Blocked::Reject,
    };
    replies::blocked(how, code, enhanced, log_id, &reason(cat, o))
}

/// Whether a spam scan could change nothing for `r`: every virus scanner failed and that
/// tempfails the message, or a category above spam (virus, banned, unchecked) blocks it
/// already. amavisd skips the spam scan when this holds for every recipient.
pub fn blocked_before_spam(o: &Outcomes, r: &RecipientPolicy, d: &Destinies, virus_failure_tempfails: bool) -> bool {
    if virus_failure_tempfails && !r.bypass_virus && matches!(o.virus, VirusOutcome::Failed(_)) {
        return true;
    }
    categories(o, r)
        .iter()
        .take_while(|c| {
            matches!(
                c.0,
                ContentCategory::Virus | ContentCategory::Banned | ContentCategory::Unchecked
            )
        })
        .any(|c| destiny_of(c.0, d) != Destiny::Pass && !loves(c.0, r))
}

/// Decides for one recipient.
pub fn decide(o: &Outcomes, r: &RecipientPolicy, ctx: &Context<'_>) -> Verdict {
    // Every virus scanner failed and the policy says so: the whole message tempfails.
    if let (VirusOutcome::Failed(why), true, false) = (&o.virus, ctx.virus_failure_tempfails, r.bypass_virus) {
        return Verdict {
            ccats: vec![(ContentCategory::Unchecked, 0), (ContentCategory::Clean, 0)],
            blocking: Some((ContentCategory::Unchecked, 0)),
            destiny: Destiny::Tempfail,
            reply: Some(replies::virus_scanners_failed(ctx.log_id, why)),
            add_headers: Vec::new(),
            subject_tag: None,
            extension: None,
            tagged: false,
            dsn_cutoff: false,
        };
    }
    let ccats = categories(o, r);
    let mut blocking = None;
    let mut destiny = Destiny::Pass;
    for &c in &ccats {
        let d = destiny_of(c.0, ctx.destinies);
        if d == Destiny::Pass || loves(c.0, r) {
            continue;
        }
        if c.0 == ContentCategory::BadHdr && d == Destiny::Bounce && ctx.null_sender {
            continue;
        }
        blocking = Some(c);
        destiny = d;
        break;
    }
    let score = if r.bypass_spam { None } else { spam_score(o) };
    let dsn_cutoff = at_or_above(score, r.dsn_cutoff_level);
    if let Some(b) = blocking {
        return Verdict {
            reply: Some(blocked_reply(b, destiny, o, ctx.log_id)),
            ccats,
            blocking,
            destiny,
            add_headers: Vec::new(),
            subject_tag: None,
            extension: None,
            tagged: false,
            dsn_cutoff,
        };
    }
    let (add_headers, subject_tag, extension) = edits(o, r, &ccats, ctx);
    let tagged = subject_tag.is_some()
        || extension.is_some()
        || add_headers.iter().any(|(n, v)| {
            // amavisd counts as tagged: a virus or banned alert, a spam flag YES.
            (n == "X-Amavis-Alert" && (v.starts_with("INFECTED") || v.starts_with("BANNED")))
                || (n == "X-Spam-Flag" && v == "YES")
        });
    Verdict {
        ccats,
        blocking: None,
        destiny: Destiny::Pass,
        reply: None,
        add_headers,
        subject_tag,
        extension,
        tagged,
        dsn_cutoff,
    }
}

fn edits(
    o: &Outcomes,
    r: &RecipientPolicy,
    ccats: &[Ccat],
    ctx: &Context<'_>,
) -> (Vec<(String, String)>, Option<String>, Option<String>) {
    let has = |cat: ContentCategory| ccats.iter().any(|c| c.0 == cat);
    let mut h: Vec<(String, String)> = Vec::new();
    if !r.bypass_virus && !matches!(o.virus, VirusOutcome::NotScanned) {
        h.push(("X-Virus-Scanned".into(), format!("avis at {}", ctx.hostname)));
    }
    if has(ContentCategory::Virus) {
        if let VirusOutcome::Infected(n) = &o.virus {
            h.push((
                "X-Amavis-Alert".into(),
                format!("INFECTED, message contains virus: {}", n.join(", ")),
            ));
        }
    } else if has(ContentCategory::Banned) {
        let what = o.banned.first().map_or(String::new(), |b| b.reason.clone());
        h.push(("X-Amavis-Alert".into(), format!("BANNED, message contains {what}")));
    } else if let Some(w) = o.bad_headers.first().filter(|_| has(ContentCategory::BadHdr)) {
        h.push(("X-Amavis-Alert".into(), format!("BAD HEADER SECTION, {}", w.text)));
    }
    if let Some(hold) = o.hold {
        h.push(("X-Amavis-Hold".into(), hold.to_string()));
    }
    let clean_tag = ccats.contains(&(ContentCategory::Clean, 1));
    let mut subject_tag = None;
    let mut extension = None;
    if r.local {
        if let (true, Some(score)) = (clean_tag, spam_score(o).filter(|_| !r.bypass_spam)) {
            let spammy = has(ContentCategory::Spammy);
            let tests = match &o.spam {
                SpamOutcome::Scored { tests, .. } => tests.join(","),
                SpamOutcome::NotScanned | SpamOutcome::Failed(_) => String::new(),
            };
            let fmt = |l: Option<f64>| l.map_or("-".to_string(), |v| format!("{v}"));
            h.push(("X-Spam-Flag".into(), if spammy { "YES" } else { "NO" }.into()));
            h.push(("X-Spam-Score".into(), format!("{score:.3}")));
            let stars = score.clamp(0.0, 64.0) as usize;
            if stars > 0 {
                h.push(("X-Spam-Level".into(), "*".repeat(stars)));
            }
            h.push((
                "X-Spam-Status".into(),
                format!(
                    "{}, score={score:.3} tagged_above={} required={} tests=[{tests}]",
                    if spammy { "Yes" } else { "No" },
                    fmt(r.tag_level),
                    fmt(r.tag2_level)
                ),
            ));
        }
        subject_tag = if has(ContentCategory::Virus) {
            Some("***INFECTED*** ".to_string())
        } else if has(ContentCategory::Unchecked) && !has(ContentCategory::Banned) {
            Some("***UNCHECKED*** ".to_string())
        } else if has(ContentCategory::Spammy) {
            r.spam_subject_tag.clone()
        } else {
            None
        };
        let ext = if has(ContentCategory::Virus) {
            r.virus_extension.clone()
        } else if has(ContentCategory::Banned) {
            r.banned_extension.clone()
        } else if has(ContentCategory::Spam) || has(ContentCategory::Spammy) {
            r.spam_extension.clone()
        } else if has(ContentCategory::BadHdr) {
            r.bad_header_extension.clone()
        } else {
            None
        };
        extension = ext.filter(|_| r.recipient_delimiter.is_some());
    }
    (h, subject_tag, extension)
}

/// The message's content category for the Content*Msgs counters: the highest blocking
/// category among recipients, else the highest main category.
pub fn message_category(verdicts: &[Verdict]) -> ContentCategory {
    verdicts
        .iter()
        .filter_map(|v| v.blocking.map(|b| b.0))
        .max()
        .or_else(|| verdicts.iter().filter_map(|v| v.ccats.first().map(|c| c.0)).max())
        .unwrap_or(ContentCategory::Clean)
}

/// amavisd's display name of a category, with its minor (`Spammy3`, `CleanTag`…).
pub fn display_name(c: Ccat) -> String {
    match c {
        (ContentCategory::Clean, 1) => "CleanTag".into(),
        (ContentCategory::Spammy, 1) => "Spammy3".into(),
        (ContentCategory::Unchecked, 1) => "UncheckedEncrypted".into(),
        (ContentCategory::Unchecked, 2) => "UncheckedOverLimits".into(),
        (ContentCategory::Unchecked, 3) => "UncheckedAmbiguousContent".into(),
        (ContentCategory::BadHdr, m) if m > 0 => {
            let kind = [
                BadHeader::Mime,
                BadHeader::EightBit,
                BadHeader::Control,
                BadHeader::Empty,
                BadHeader::Long,
                BadHeader::Syntax,
                BadHeader::Missing,
                BadHeader::Duplicate,
            ]
            .into_iter()
            .find(|k| k.minor() == m);
            let suffix = match kind {
                Some(BadHeader::Mime) => "Mime",
                Some(BadHeader::EightBit) => "8bit",
                Some(BadHeader::Control) => "Char",
                Some(BadHeader::Empty) => "Space",
                Some(BadHeader::Long) => "Long",
                Some(BadHeader::Syntax) => "Syntax",
                Some(BadHeader::Missing) => "Missing",
                Some(BadHeader::Duplicate) => "Dupl",
                None => "",
            };
            format!("BadHdr{suffix}")
        }
        (cat, _) => cat.name().into(),
    }
}
