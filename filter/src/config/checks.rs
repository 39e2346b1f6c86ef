//! The `[policy.NAME.checks]` table: scanners, spam levels, destinies, banned rules,
//! and per-recipient settings (`[[policy.NAME.checks.recipients]]`, first match wins)
//! looked up by address, domain and sub-domain like amavisd's static maps.

use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use super::endpoint::Endpoint;
use super::recipient::{Destinies, Destiny, RecipientPolicy};
use super::{Validator, defaults};

// Not `deny_unknown_fields`: serde cannot combine it with `flatten`; the flattened
// recipient defaults collect what nobody knows, and the validator reports those.
#[derive(Debug, Deserialize, Default)]
pub(super) struct RawChecks {
    #[serde(default)]
    virus_scanners: Vec<Spanned<String>>,
    #[serde(default)]
    virus_scanners_backup: Vec<Spanned<String>>,
    virus_scanners_failure_is_fatal: Option<bool>,
    spamd: Option<Spanned<String>>,
    rspamd: Option<Spanned<String>>,
    scanner_timeout: Option<Spanned<i64>>,
    spam_max_size: Option<Spanned<i64>>,
    oversize_limit: Option<Spanned<i64>>,
    bad_header_checks: Option<bool>,
    quarantine: Option<Vec<Spanned<String>>>,
    banned_names: Option<Vec<Spanned<String>>>,
    banned_types: Option<Vec<String>>,
    banned_mime_types: Option<Vec<String>>,
    #[serde(default)]
    banned_allow: Vec<Spanned<String>>,
    final_virus_destiny: Option<Spanned<String>>,
    final_banned_destiny: Option<Spanned<String>>,
    final_unchecked_destiny: Option<Spanned<String>>,
    final_spam_destiny: Option<Spanned<String>>,
    final_bad_header_destiny: Option<Spanned<String>>,
    final_oversized_destiny: Option<Spanned<String>>,
    #[serde(flatten)]
    defaults: RawRecipient,
    #[serde(default)]
    recipients: Vec<RawOverride>,
}

#[derive(Debug, Deserialize, Default, Clone)]
struct RawRecipient {
    bypass_virus_checks: Option<bool>,
    bypass_spam_checks: Option<bool>,
    bypass_banned_checks: Option<bool>,
    bypass_header_checks: Option<bool>,
    virus_lover: Option<bool>,
    banned_lover: Option<bool>,
    unchecked_lover: Option<bool>,
    spam_lover: Option<bool>,
    bad_header_lover: Option<bool>,
    spam_tag_level: Option<f64>,
    spam_tag2_level: Option<f64>,
    spam_tag3_level: Option<f64>,
    spam_kill_level: Option<f64>,
    spam_dsn_cutoff_level: Option<f64>,
    spam_subject_tag: Option<String>,
    recipient_delimiter: Option<String>,
    addr_extension_spam: Option<String>,
    addr_extension_virus: Option<String>,
    addr_extension_banned: Option<String>,
    addr_extension_bad_header: Option<String>,
    #[serde(flatten)]
    unknown: std::collections::BTreeMap<String, toml::Value>,
}

// `flatten` again: the recipient's settings are the same keys as the bank's defaults,
// and what nobody knows lands in their `unknown` map, reported by the validator.
#[derive(Debug, Deserialize)]
struct RawOverride {
    #[serde(rename = "match")]
    matches: Spanned<Vec<String>>,
    #[serde(flatten)]
    settings: RawRecipient,
}

/// Compiled banned rules (matched against the decoded parts by `check::banned`).
#[derive(Debug, Clone, Default)]
pub struct BannedRules {
    /// Names (or archive paths) matching one of these are allowed, whatever follows.
    pub allow: Vec<Regex>,
    /// Part names matching one of these are banned.
    pub names: Vec<Regex>,
    /// Content types (short types: `exe-ms`, `exe-unix`…) banned.
    pub types: Vec<String>,
    /// Declared MIME types banned (`application/x-msdownload`).
    pub mime_types: Vec<String>,
}

impl BannedRules {
    /// Whether no rule is configured.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.types.is_empty() && self.mime_types.is_empty()
    }
}

/// A static lookup table of addresses, as amavisd's maps: `user@example.com` (that
/// address), `user@` (that local part anywhere), `example.com` or `@example.com` (that
/// domain), `.example.com` (the domain and its sub-domains), `.` (everyone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup(Vec<String>);

impl Lookup {
    /// Whether `address` matches an entry.
    pub fn matches(&self, address: &str) -> bool {
        let a = address.to_ascii_lowercase();
        let (local, domain) = a.rsplit_once('@').unwrap_or((a.as_str(), ""));
        self.0.iter().any(|e| {
            if e == "." || *e == a {
                return true;
            }
            if let Some(l) = e.strip_suffix('@') {
                return l == local;
            }
            if let Some(d) = e.strip_prefix('.') {
                return domain == d || domain.ends_with(&format!(".{d}"));
            }
            domain == e.trim_start_matches('@')
        })
    }
}

/// The scanners of a policy bank, their endpoints parsed at load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scanners {
    /// clamd endpoints tried first.
    pub virus_primary: Vec<Endpoint>,
    /// clamd endpoints tried when every primary failed.
    pub virus_backup: Vec<Endpoint>,
    /// spamd.
    pub spamd: Option<Endpoint>,
    /// rspamd.
    pub rspamd: Option<Endpoint>,
    /// Bound on one scanner request.
    pub timeout: Duration,
    /// Messages larger are not given to the spam scanner (spamc's habit).
    pub spam_max_size: u64,
}

/// The validated checks of a policy bank.
#[derive(Debug, Clone)]
pub struct Checks {
    /// External scanners.
    pub scanners: Scanners,
    /// When every virus scanner failed: tempfail (amavisd's default) or pass as unchecked.
    pub virus_failure_tempfails: bool,
    /// Banned rules.
    pub banned: BannedRules,
    /// Header checks on.
    pub bad_header_checks: bool,
    /// Destinies per category.
    pub destinies: Destinies,
    /// Messages above are Oversized (0: never).
    pub oversize_limit: u64,
    /// Categories whose messages get a quarantine copy (default virus, banned, spam), by
    /// each recipient's blocking category, else its main one.
    pub quarantine: Vec<agent_mib::ContentCategory>,
    defaults: RecipientPolicy,
    /// Each `[[...recipients]]` entry compiled at load: its settings over the defaults.
    overrides: Vec<(Lookup, RecipientPolicy)>,
}

impl Checks {
    /// The settings of `address` (first matching `[[...recipients]]` entry over the defaults).
    pub fn recipient(&self, address: &str, local: bool) -> RecipientPolicy {
        let mut p = self
            .overrides
            .iter()
            .find(|(l, _)| l.matches(address))
            .map_or(&self.defaults, |(_, p)| p)
            .clone();
        p.local = local;
        p
    }

    /// Whether any check needs the message decoded.
    pub fn needs_decoding(&self) -> bool {
        !self.banned.is_empty()
    }
}

fn apply(p: &mut RecipientPolicy, r: &RawRecipient) {
    let set = |dst: &mut bool, v: Option<bool>| {
        if let Some(v) = v {
            *dst = v;
        }
    };
    set(&mut p.bypass_virus, r.bypass_virus_checks);
    set(&mut p.bypass_spam, r.bypass_spam_checks);
    set(&mut p.bypass_banned, r.bypass_banned_checks);
    set(&mut p.bypass_header, r.bypass_header_checks);
    set(&mut p.virus_lover, r.virus_lover);
    set(&mut p.banned_lover, r.banned_lover);
    set(&mut p.unchecked_lover, r.unchecked_lover);
    set(&mut p.spam_lover, r.spam_lover);
    set(&mut p.bad_header_lover, r.bad_header_lover);
    for (dst, v) in [
        (&mut p.tag_level, r.spam_tag_level),
        (&mut p.tag2_level, r.spam_tag2_level),
        (&mut p.tag3_level, r.spam_tag3_level),
        (&mut p.kill_level, r.spam_kill_level),
        (&mut p.dsn_cutoff_level, r.spam_dsn_cutoff_level),
    ] {
        if v.is_some() {
            *dst = v;
        }
    }
    if let Some(t) = &r.spam_subject_tag {
        p.spam_subject_tag = (!t.is_empty()).then(|| t.clone());
    }
    if let Some(d) = &r.recipient_delimiter {
        p.recipient_delimiter = d.chars().next();
    }
    for (dst, v) in [
        (&mut p.spam_extension, &r.addr_extension_spam),
        (&mut p.virus_extension, &r.addr_extension_virus),
        (&mut p.banned_extension, &r.addr_extension_banned),
        (&mut p.bad_header_extension, &r.addr_extension_bad_header),
    ] {
        if let Some(v) = v {
            *dst = (!v.is_empty()).then(|| v.clone());
        }
    }
}

impl Validator<'_> {
    pub(super) fn checks(&mut self, policy: &str, raw: &RawChecks) -> Checks {
        let k = |f: &str| format!("policy.{policy}.checks.{f}");
        for key in raw.defaults.unknown.keys() {
            self.problem_at_key(&k(key), key, "unknown key");
        }
        let virus_primary = self.endpoints(&k("virus_scanners"), &raw.virus_scanners);
        let virus_backup = self.endpoints(&k("virus_scanners_backup"), &raw.virus_scanners_backup);
        let spamd = raw.spamd.as_ref().and_then(|e| self.endpoint(&k("spamd"), e));
        let rspamd = raw.rspamd.as_ref().and_then(|e| self.endpoint(&k("rspamd"), e));
        let timeout = self.param(
            &k("scanner_timeout"),
            raw.scanner_timeout.as_ref(),
            defaults::SCANNER_TIMEOUT,
        );
        let spam_max_size = self.param(&k("spam_max_size"), raw.spam_max_size.as_ref(), defaults::SPAM_MAX_SIZE);
        let oversize_limit = self.param(
            &k("oversize_limit"),
            raw.oversize_limit.as_ref(),
            defaults::OVERSIZE_LIMIT,
        );
        let mut destinies = Destinies::default();
        for (field, v, dst) in [
            ("final_virus_destiny", &raw.final_virus_destiny, &mut destinies.virus),
            ("final_banned_destiny", &raw.final_banned_destiny, &mut destinies.banned),
            (
                "final_unchecked_destiny",
                &raw.final_unchecked_destiny,
                &mut destinies.unchecked,
            ),
            ("final_spam_destiny", &raw.final_spam_destiny, &mut destinies.spam),
            (
                "final_bad_header_destiny",
                &raw.final_bad_header_destiny,
                &mut destinies.bad_header,
            ),
            (
                "final_oversized_destiny",
                &raw.final_oversized_destiny,
                &mut destinies.oversized,
            ),
        ] {
            if let Some(v) = v {
                match Destiny::parse(v.get_ref()) {
                    Some(d) => *dst = d,
                    None => self.problem(&k(field), v, "expected pass, discard, bounce, reject or tempfail"),
                }
            }
        }
        let mut regexes = |field: &str, list: Vec<(String, Option<&Spanned<String>>)>| -> Vec<Regex> {
            let mut out = Vec::new();
            for (i, (text, at)) in list.into_iter().enumerate() {
                match Regex::new(&text) {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        if let Some(at) = at {
                            self.problem(
                                &format!("{}[{i}]", k(field)),
                                at,
                                format!("bad regular expression: {e}"),
                            );
                        }
                    }
                }
            }
            out
        };
        let names = match &raw.banned_names {
            Some(list) => regexes(
                "banned_names",
                list.iter().map(|s| (s.get_ref().clone(), Some(s))).collect(),
            ),
            None => regexes(
                "banned_names",
                defaults::BANNED_NAMES
                    .into_iter()
                    .map(|s| (s.to_string(), None))
                    .collect(),
            ),
        };
        let allow = regexes(
            "banned_allow",
            raw.banned_allow
                .iter()
                .map(|s| (s.get_ref().clone(), Some(s)))
                .collect(),
        );
        let banned = BannedRules {
            allow,
            names,
            types: raw
                .banned_types
                .clone()
                .unwrap_or_else(|| defaults::BANNED_TYPES.map(String::from).to_vec()),
            mime_types: raw
                .banned_mime_types
                .clone()
                .unwrap_or_else(|| defaults::BANNED_MIME_TYPES.map(String::from).to_vec()),
        };
        let quarantine = match &raw.quarantine {
            None => defaults::QUARANTINE.to_vec(),
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let cat = match c.get_ref().as_str() {
                        "virus" => Some(agent_mib::ContentCategory::Virus),
                        "banned" => Some(agent_mib::ContentCategory::Banned),
                        "spam" => Some(agent_mib::ContentCategory::Spam),
                        "bad_header" => Some(agent_mib::ContentCategory::BadHdr),
                        "unchecked" => Some(agent_mib::ContentCategory::Unchecked),
                        "clean" => Some(agent_mib::ContentCategory::Clean),
                        _ => None,
                    };
                    if cat.is_none() {
                        self.problem(
                            &format!("{}[{i}]", k("quarantine")),
                            c,
                            "expected virus, banned, spam, bad_header, unchecked or clean",
                        );
                    }
                    cat
                })
                .collect(),
        };
        let mut defaults = RecipientPolicy::default();
        apply(&mut defaults, &raw.defaults);
        let overrides = raw
            .recipients
            .iter()
            .enumerate()
            .map(|(i, o)| {
                if o.matches.get_ref().is_empty() {
                    self.problem(
                        &format!("{}[{i}].match", k("recipients")),
                        &o.matches,
                        "an empty match list matches nobody",
                    );
                }
                for key in o.settings.unknown.keys() {
                    self.problem_at_key(&format!("{}[{i}].{key}", k("recipients")), key, "unknown key");
                }
                let lookup = Lookup(o.matches.get_ref().iter().map(|m| m.to_ascii_lowercase()).collect());
                let mut p = defaults.clone();
                apply(&mut p, &o.settings);
                (lookup, p)
            })
            .collect();
        Checks {
            scanners: Scanners {
                virus_primary,
                virus_backup,
                spamd,
                rspamd,
                timeout: Duration::from_secs(timeout as u64),
                spam_max_size: spam_max_size as u64,
            },
            virus_failure_tempfails: raw
                .virus_scanners_failure_is_fatal
                .unwrap_or(defaults::VIRUS_SCANNERS_FAILURE_IS_FATAL),
            banned,
            bad_header_checks: raw.bad_header_checks.unwrap_or(defaults::BAD_HEADER_CHECKS),
            destinies,
            oversize_limit: oversize_limit as u64,
            quarantine,
            defaults,
            overrides,
        }
    }
}

impl Validator<'_> {
    /// A scanner endpoint, parsed once here; a refused one is a problem at its line.
    fn endpoint(&mut self, key: &str, e: &Spanned<String>) -> Option<Endpoint> {
        Endpoint::parse(e.get_ref())
            .map_err(|why| self.problem(key, e, why.to_string()))
            .ok()
    }

    fn endpoints(&mut self, key: &str, list: &[Spanned<String>]) -> Vec<Endpoint> {
        list.iter()
            .enumerate()
            .filter_map(|(i, e)| self.endpoint(&format!("{key}[{i}]"), e))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_match_address_local_part_domain_and_subdomains() {
        let l = Lookup(vec![
            "boss@example.com".into(),
            "postmaster@".into(),
            ".lab.example.org".into(),
            "example.net".into(),
        ]);
        assert!(l.matches("Boss@Example.com"));
        assert!(l.matches("postmaster@anywhere.test"));
        assert!(l.matches("x@lab.example.org") && l.matches("x@a.b.lab.example.org"));
        assert!(l.matches("x@example.net") && !l.matches("x@sub.example.net"));
        assert!(!l.matches("other@example.com"));
        assert!(Lookup(vec![".".into()]).matches("anyone@anywhere"));
    }
}
