//! check: banned file names, content types and declared MIME types, applied to every
//! part, inside archives too (amavisd's `%banned_rules`). Allow rules are tried first
//! on each part, so one can exempt `*.exe` inside a given archive, for example.

use crate::config::checks::BannedRules;
use crate::decode::Part;

/// A banned part and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BannedHit {
    /// The part's path in the tree.
    pub path: String,
    /// What matched, amavisd-like: `.exe-ms,invoice.pdf` or `application/x-msdownload`.
    pub reason: String,
}

/// The rules are configuration (compiled by `config`); matching them against the decoded
/// parts is this check's.
impl BannedRules {
    /// The banned parts of a message.
    pub fn check(&self, parts: &[Part]) -> Vec<BannedHit> {
        let mut hits = Vec::new();
        for p in parts {
            let name = p.name.as_deref().unwrap_or("");
            if self.allow.iter().any(|r| r.is_match(name) || r.is_match(&p.path)) {
                continue;
            }
            let reason = if self.types.iter().any(|t| t == p.short_type) {
                Some(format!(".{},{}", p.short_type, name))
            } else if let Some(m) = p
                .declared_type
                .as_deref()
                .filter(|m| self.mime_types.iter().any(|b| b == m))
            {
                Some(m.to_string())
            } else if !name.is_empty() && self.names.iter().any(|r| r.is_match(name)) {
                Some(name.to_string())
            } else {
                None
            };
            if let Some(reason) = reason {
                hits.push(BannedHit {
                    path: p.path.clone(),
                    reason,
                });
            }
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn part(path: &str, name: &str, t: &'static str, mime: Option<&str>) -> Part {
        Part {
            path: path.into(),
            name: Some(name.into()),
            declared_type: mime.map(str::to_string),
            short_type: t,
            size: 1,
            encrypted: false,
            depth: 0,
        }
    }

    #[test]
    fn names_types_and_mime_types_are_banned_inside_archives_too_unless_allowed() {
        let rules = BannedRules {
            allow: vec![Regex::new(r"(?i)^setup\.exe$").unwrap()],
            names: vec![Regex::new(r"(?i)\.(scr|pif)$").unwrap()],
            types: vec!["exe-ms".into()],
            mime_types: vec!["application/x-msdownload".into()],
        };
        let parts = [
            part("p001", "a.txt", "asc", Some("text/plain")),
            part("p002/x.zip/invoice.pdf", "invoice.pdf", "exe-ms", None),
            part("p003", "fun.scr", "dat", None),
            part("p004", "y.bin", "dat", Some("application/x-msdownload")),
            part("p005", "setup.exe", "exe-ms", None),
        ];
        let hits = rules.check(&parts);
        let paths: Vec<&str> = hits.iter().map(|h| h.path.as_str()).collect();
        assert_eq!(paths, ["p002/x.zip/invoice.pdf", "p003", "p004"]);
        assert_eq!(hits[0].reason, ".exe-ms,invoice.pdf");
    }
}
