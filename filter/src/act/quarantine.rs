//! act: the local file quarantine (amavisd's `local:` method). One copy per message and
//! category (`virus-<mail_id>`, `banned-…`, `spam-….gz`, `badh-…`), in a sub-directory
//! named by the mail id's first character, with the envelope prepended as amavisd does
//! (X-Envelope-From, X-Envelope-To, X-Envelope-To-Blocked, X-Quarantine-ID), written to a
//! temporary name, synced and renamed, so a copy is either whole or absent. Copies are
//! private (0600 files in 0700 directories, created exclusively, never through a symlink):
//! they hold viruses and other people's mail.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use agent_mib::ContentCategory;

use crate::message::spool::{Spool, create_private, private_dir};
use crate::message::{Envelope, Ids, Quarantined};

/// The file name prefix amavisd uses for a category, and whether it is gzipped.
pub fn naming(category: ContentCategory) -> (&'static str, bool) {
    match category {
        ContentCategory::Virus => ("virus", false),
        ContentCategory::Banned => ("banned", false),
        ContentCategory::Spam | ContentCategory::Spammy => ("spam", true),
        ContentCategory::BadHdr => ("badh", false),
        ContentCategory::Unchecked => ("unchecked", false),
        ContentCategory::Oversized => ("oversized", false),
        ContentCategory::MtaFailed => ("mta", false),
        ContentCategory::Clean => ("clean", false),
    }
}

/// Writes the quarantine copy of a message for `category`. `blocked` are the recipients
/// that did not get it (X-Envelope-To-Blocked).
pub fn store(
    dir: &Path,
    category: ContentCategory,
    envelope: &Envelope,
    blocked: &[&str],
    ids: &Ids,
    spool: &Spool,
) -> io::Result<Quarantined> {
    let (prefix, gzip) = naming(category);
    let first = ids.mail_id.chars().next().unwrap_or('_').to_string();
    let sub = dir.join(&first);
    private_dir(&sub)?;
    let name = format!("{prefix}-{}{}", ids.mail_id, if gzip { ".gz" } else { "" });
    let path = sub.join(&name);
    let tmp: PathBuf = sub.join(format!(".{name}.tmp"));
    let rcpts: Vec<String> = envelope.recipients.iter().map(|r| format!("<{}>", r.address)).collect();
    let blocked: Vec<String> = blocked.iter().map(|r| format!("<{r}>")).collect();
    let mut head = format!(
        "X-Envelope-From: <{}>\r\nX-Envelope-To: {}\r\n",
        envelope.mail_from,
        rcpts.join(",\r\n ")
    );
    if !blocked.is_empty() {
        head.push_str(&format!("X-Envelope-To-Blocked: {}\r\n", blocked.join(",\r\n ")));
    }
    head.push_str(&format!("X-Quarantine-ID: <{}>\r\n", ids.mail_id));
    let result = (|| {
        // A temporary copy left by a crash is replaced (unlinking never follows a link).
        let _ = fs::remove_file(&tmp);
        let file = create_private(&tmp)?;
        let mut reader = spool.reader()?;
        let size = head.len() as u64 + spool.len();
        if gzip {
            let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
            gz.write_all(head.as_bytes())?;
            copy(&mut reader, &mut gz)?;
            gz.finish()?.sync_all()?;
        } else {
            let mut file = file;
            file.write_all(head.as_bytes())?;
            copy(&mut reader, &mut file)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        Ok(size)
    })();
    match result {
        Ok(size) => Ok(Quarantined {
            category,
            relative: format!("{first}/{name}"),
            quar_type: if gzip { "Z" } else { "F" },
            size,
        }),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn copy(from: &mut impl Read, to: &mut impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::spool::SpoolConfig;
    use crate::message::{Body, Recipient, XForward};
    use std::fs::File;

    /// A fresh directory named `tag`, a spooled one-line message in it, its envelope (to
    /// `rcpts`) and ids with `mail_id`.
    fn fixture(tag: &str, rcpts: &[&str], mail_id: &str) -> (PathBuf, Spool, Envelope, Ids) {
        let dir = std::env::temp_dir().join(format!("avis-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut spool = Spool::new(
            SpoolConfig {
                dir: dir.clone(),
                memory_threshold: 1 << 20,
            },
            "q",
        );
        spool.write(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let envelope = Envelope {
            mail_from: "a@x.org".into(),
            recipients: rcpts
                .iter()
                .map(|r| Recipient {
                    address: (*r).into(),
                    orcpt: None,
                    notify: Default::default(),
                })
                .collect(),
            body: Body::SevenBit,
            smtputf8: false,
            ret: None,
            envid: None,
            declared_size: None,
            xforward: XForward::default(),
            helo: "h".into(),
            lmtp: false,
        };
        let ids = Ids {
            log_id: "00000-01".into(),
            mail_id: mail_id.into(),
        };
        (dir, spool, envelope, ids)
    }

    #[test]
    fn a_copy_is_whole_with_its_envelope_and_spam_is_gzipped() {
        let (dir, spool, envelope, ids) = fixture("quar", &["b@y.org"], "AbCdEfGhIjKl");
        let q = store(&dir, ContentCategory::Virus, &envelope, &["b@y.org"], &ids, &spool).unwrap();
        assert_eq!((q.relative.as_str(), q.quar_type), ("A/virus-AbCdEfGhIjKl", "F"));
        let text = fs::read_to_string(dir.join(&q.relative)).unwrap();
        assert!(text.starts_with("X-Envelope-From: <a@x.org>\r\nX-Envelope-To: <b@y.org>\r\nX-Envelope-To-Blocked: <b@y.org>\r\nX-Quarantine-ID: <AbCdEfGhIjKl>\r\nSubject: x"));
        let q = store(&dir, ContentCategory::Spam, &envelope, &[], &ids, &spool).unwrap();
        assert_eq!(q.relative, "A/spam-AbCdEfGhIjKl.gz");
        let mut gz = flate2::read::GzDecoder::new(File::open(dir.join(&q.relative)).unwrap());
        let mut out = String::new();
        gz.read_to_string(&mut out).unwrap();
        assert!(out.ends_with("body\r\n"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn quarantined_copies_are_private_files_in_private_directories() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, spool, envelope, ids) = fixture("quar-modes", &[], "ZyXwVuTsRqPo");
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        for category in [ContentCategory::Virus, ContentCategory::Spam] {
            let q = store(&dir, category, &envelope, &[], &ids, &spool).unwrap();
            assert_eq!(mode(&dir.join(&q.relative)), 0o600, "{}", q.relative);
        }
        assert_eq!(mode(&dir.join("Z")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let _ = fs::remove_dir_all(&dir);
    }
}
