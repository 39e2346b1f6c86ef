//! decode: the message's parts tree — MIME leaves (through `mime`), nested messages,
//! and the members of archives and compressed streams (zip, gzip, bzip2, xz, tar, 7z) —
//! each typed by its content. Every read goes through a cap: depth, number of parts,
//! total decoded bytes (amavisd's expansion quota, the bomb guard) and time. Hitting a
//! limit stops decoding with a hold reason (amavisd: CC_UNCHECKED,2); an encrypted
//! member marks the message encrypted (CC_UNCHECKED,1). Pure CPU work: the pipeline runs
//! it on a blocking thread, off the async reactor.

pub mod archive;
pub mod types;

use std::time::{Duration, Instant};

use crate::message::HeaderFacts;
use crate::mime;

/// Decoding limits (amavisd's `$MAXLEVELS`, `$MAXFILES`, expansion quota).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Nesting depth of messages and archives.
    pub max_depth: usize,
    /// Parts in all.
    pub max_parts: usize,
    /// Bytes decoded in all.
    pub quota: u64,
    /// Wall-clock budget.
    pub time: Duration,
}

impl Limits {
    /// amavisd's Debian defaults for a message of `size` bytes: depth 14, 1500 parts,
    /// quota max(100 KiB, min(300 MiB, 500 × size)), and 30 s.
    pub fn for_size(size: u64) -> Limits {
        Limits {
            max_depth: 14,
            max_parts: 1500,
            quota: (100 * 1024u64).max((300u64 << 20).min(size.saturating_mul(500))),
            time: Duration::from_secs(30),
        }
    }
}

/// Why decoding stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Too deeply nested.
    Depth,
    /// Too many parts.
    Parts,
    /// Decoded size over the quota (a decompression bomb, or simply huge).
    Quota,
    /// Out of time.
    Time,
}

impl Hold {
    /// The reason as amavisd words it in X-Amavis-Hold and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Hold::Depth => "Maximum decoding depth exceeded",
            Hold::Parts => "Maximum number of files exceeded",
            Hold::Quota => "Exceeded storage quota",
            Hold::Time => "Decoding time limit exceeded",
        }
    }
}

/// One part of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Where it sits: `p003`, `p003/report.zip/invoice.exe`.
    pub path: String,
    /// Its own name (declared by MIME, or the member name in an archive).
    pub name: Option<String>,
    /// Declared MIME type, for MIME parts.
    pub declared_type: Option<String>,
    /// Type by content.
    pub short_type: &'static str,
    /// Decoded size.
    pub size: u64,
    /// An encrypted archive member.
    pub encrypted: bool,
    /// Nesting depth (0: a MIME leaf of the message itself).
    pub depth: usize,
}

/// The decoded message.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    /// Every part.
    pub parts: Vec<Part>,
    /// A limit stopped decoding.
    pub hold: Option<Hold>,
    /// Something was encrypted.
    pub encrypted: bool,
    /// An archive could not be read.
    pub undecipherable: bool,
    /// The MIME structure had problems.
    pub mime_error: bool,
    /// Decoded Subject.
    pub subject: Option<String>,
    /// From addresses.
    pub from: Vec<String>,
    /// Message-ID.
    pub message_id: Option<String>,
    /// The header facts the event log reports (To, Cc, Sender, references, user agent).
    pub headers: HeaderFacts,
}

/// What the archive readers share: the budget and the output.
pub(crate) struct Walker {
    limits: Limits,
    started: Instant,
    used: u64,
    out: Decoded,
}

impl Walker {
    /// Whether any limit is hit (records which); decoding stops then.
    pub(crate) fn stopped(&mut self) -> bool {
        if self.out.hold.is_some() {
            return true;
        }
        if self.started.elapsed() > self.limits.time {
            self.out.hold = Some(Hold::Time);
        } else if self.out.parts.len() >= self.limits.max_parts {
            self.out.hold = Some(Hold::Parts);
        }
        self.out.hold.is_some()
    }

    /// Bytes still allowed.
    pub(crate) fn remaining(&self) -> u64 {
        self.limits.quota.saturating_sub(self.used)
    }

    /// Adds a part and, if it is a container, what is inside it.
    pub(crate) fn add(
        &mut self,
        path: String,
        name: Option<String>,
        declared: Option<String>,
        content: &[u8],
        depth: usize,
    ) {
        if self.stopped() {
            return;
        }
        self.used = self.used.saturating_add(content.len() as u64);
        if self.used > self.limits.quota {
            self.out.hold = Some(Hold::Quota);
            return;
        }
        let short_type = types::short_type(content, name.as_deref());
        self.out.parts.push(Part {
            path: path.clone(),
            name,
            declared_type: declared,
            short_type,
            size: content.len() as u64,
            encrypted: false,
            depth,
        });
        if types::is_container(short_type) {
            if depth + 1 > self.limits.max_depth {
                self.out.hold = Some(Hold::Depth);
                return;
            }
            archive::expand(self, &path, short_type, content, depth + 1);
        }
    }

    /// Adds an archive member as `capped` read it. One too big to hold whole
    /// (`archive::MEMBER_IN_MEMORY`) is typed by its first bytes and counted; if it is a
    /// container, what is inside cannot be seen, and decoding stops as over the quota
    /// (amavisd would have unpacked it to disk; the message is held as unchecked).
    pub(crate) fn add_member(&mut self, path: String, name: Option<String>, m: archive::Member, depth: usize) {
        if m.size == m.head.len() as u64 {
            return self.add(path, name, None, &m.head, depth);
        }
        if self.stopped() {
            return;
        }
        self.used = self.used.saturating_add(m.size);
        let short_type = types::short_type(&m.head, name.as_deref());
        if self.used > self.limits.quota || types::is_container(short_type) {
            self.out.hold = Some(Hold::Quota);
            return;
        }
        self.out.parts.push(Part {
            path,
            name,
            declared_type: None,
            short_type,
            size: m.size,
            encrypted: false,
            depth,
        });
    }

    /// Records that decoding stopped over the quota, found by a reader before adding.
    pub(crate) fn exceed_quota(&mut self) {
        self.out.hold = Some(Hold::Quota);
    }

    /// Records an encrypted member (its content cannot be seen).
    pub(crate) fn add_encrypted(&mut self, path: String, name: Option<String>, depth: usize) {
        self.out.encrypted = true;
        self.out.parts.push(Part {
            path,
            name,
            declared_type: None,
            short_type: "dat",
            size: 0,
            encrypted: true,
            depth,
        });
    }

    /// Records an archive that could not be read.
    pub(crate) fn undecipherable(&mut self) {
        self.out.undecipherable = true;
    }
}

/// Decodes a whole message.
pub fn decode(raw: &[u8], limits: Limits) -> Decoded {
    let mut w = Walker {
        limits,
        started: Instant::now(),
        used: 0,
        out: Decoded::default(),
    };
    let (max_depth, max_parts) = (w.limits.max_depth, w.limits.max_parts);
    let mut index = 0;
    let (msg, truncated) = mime::parse(raw, max_depth, max_parts, &mut |p| {
        index += 1;
        let path = format!("p{index:03}");
        w.add(
            path,
            p.name.map(str::to_string),
            p.declared_type.map(str::to_string),
            p.content,
            p.depth,
        );
    });
    w.out.mime_error = msg.encoding_problem || msg.unparsable;
    w.out.subject = msg.subject;
    w.out.from = msg.from;
    w.out.message_id = msg.message_id;
    w.out.headers = HeaderFacts {
        to: msg.to,
        cc: msg.cc,
        sender: msg.sender,
        references: msg.references,
        user_agent: msg.user_agent,
    };
    if truncated && w.out.hold.is_none() {
        w.out.hold = Some(Hold::Parts);
    }
    w.out
}

/// Expands `content` as a container of short type `kind` (`zip`, `gz`, `bz2`, `xz`, `tar`,
/// `7z`) as if it were a message's only part, whatever its bytes look like, through the
/// same walker, readers and limits as [`decode`]: the fuzz targets' way into each archive
/// reader (`fuzz/`), since random bytes rarely carry the right magic.
pub fn decode_container(kind: &str, content: &[u8], limits: Limits) -> Decoded {
    let mut w = Walker {
        limits,
        started: Instant::now(),
        used: content.len() as u64,
        out: Decoded::default(),
    };
    archive::expand(&mut w, "p001", kind, content, 1);
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn mail_with_attachment(name: &str, ctype: &str, content: &[u8]) -> Vec<u8> {
        let b64 = base64(content);
        format!(
            "From: a@b\r\nSubject: t\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XX\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--XX--\r\n"
        )
        .into_bytes()
    }

    pub(crate) fn base64(data: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in data.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    s.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    s.push('=');
                }
            }
        }
        s
    }

    #[test]
    fn mime_parts_are_listed_and_typed_by_content() {
        let m = mail_with_attachment(
            "invoice.pdf",
            "application/pdf",
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff",
        );
        let d = decode(&m, Limits::for_size(m.len() as u64));
        assert_eq!(d.parts.len(), 2);
        assert_eq!(d.parts[1].name.as_deref(), Some("invoice.pdf"));
        assert_eq!(d.parts[1].short_type, "exe-ms", "a PE file that calls itself a PDF");
        assert_eq!(d.subject.as_deref(), Some("t"));
        assert!(d.hold.is_none());
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_quota() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &vec![0u8; 8 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        let m = mail_with_attachment("x.gz", "application/gzip", &bomb);
        let d = decode(&m, Limits::for_size(m.len() as u64));
        assert_eq!(d.hold, Some(Hold::Quota), "{} bytes of gzip -> 8 MiB", bomb.len());
    }

    #[test]
    fn a_member_larger_than_what_is_held_in_memory_is_counted_and_typed_but_not_held() {
        let big = archive::MEMBER_IN_MEMORY as usize + (1 << 20);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &vec![0u8; big]).unwrap();
        let m = mail_with_attachment("x.gz", "application/gzip", &gz.finish().unwrap());
        let limits = Limits {
            quota: 300 << 20,
            ..Limits::for_size(m.len() as u64)
        };
        let d = decode(&m, limits.clone());
        assert_eq!(d.hold, None);
        let inner = d.parts.last().unwrap();
        assert_eq!((inner.size, inner.short_type), (big as u64, "dat"));

        // The same size of container cannot be looked into: held as over the quota.
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(big as u64);
        h.set_cksum();
        tar.append_data(&mut h, "zeros", std::io::repeat(0).take(big as u64))
            .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
        let m = mail_with_attachment("x.tar.gz", "application/gzip", &gz.finish().unwrap());
        assert_eq!(decode(&m, limits).hold, Some(Hold::Quota));
    }

    #[test]
    fn a_zip_declaring_more_than_the_quota_is_over_it_without_inflating() {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        z.start_file("zeros", opts).unwrap();
        z.write_all(&vec![0u8; 4 << 20]).unwrap();
        let bomb = z.finish().unwrap().into_inner();
        let m = mail_with_attachment("x.zip", "application/zip", &bomb);
        let limits = Limits {
            quota: 1 << 20,
            ..Limits::for_size(m.len() as u64)
        };
        let d = decode(&m, limits);
        assert_eq!(d.hold, Some(Hold::Quota));
        assert!(
            d.parts.iter().all(|p| p.path.matches('/').count() == 0),
            "no member was read"
        );
    }
}
