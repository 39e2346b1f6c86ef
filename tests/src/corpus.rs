//! The corpus of hand-made messages in `tests/corpus/`: each `NAME.eml` beside its expected
//! verdict `NAME.expect`, checked against a real avisd with the real clamd and spamd by
//! `tests/tests/corpus.rs` and sent by `bench/scanners.sh` (through `examples/corpus.rs`).
//!
//! The messages are kept with LF line ends and rendered with CRLF. What no file of the
//! repository should carry is made at render time from placeholders:
//!
//! - `{{eicar}}`, `{{gtube}}`: the test strings, assembled from pieces;
//! - `{{base64:RECIPE}}`: base64 lines of the bytes RECIPE builds (below);
//! - `{{hex:HH..}}`: raw bytes (a NUL, a bare CR, invalid UTF-8);
//! - `{{long:N}}`: N characters on one line; `{{fill:N}}`: N bytes of text lines.
//!
//! A RECIPE is `eicar`, `gtube`, `exe` (the head of a Windows executable), `text:WORDS`,
//! `zeros:SIZE`, or an archive of named members: `zip(NAME=RECIPE, ...)`, `tar(...)`,
//! `targz(...)`, `7z(...)`; `gz(RECIPE)`; `nest(N, RECIPE)` (RECIPE as `file.txt` in a zip
//! in a zip ... N zips deep); `bomb(COUNT, SIZE)` (a zip of COUNT members of SIZE zero
//! bytes). SIZE is bytes with an optional `K` or `M`.
//!
//! An expect file holds `key: value` lines (`#` starts a comment):
//! `reply` (prefix of the final SMTP reply), `content_type` (the event's), `virus` (a
//! prefix of a reported virus name, or `none`), `test` (a spam rule that hit), `delivered`
//! (`yes`/`no`: the back end got a copy for the recipient, perhaps at an address extension),
//! `rcpt` (the address the copy went to), `header` / `no-header` (a text
//! the delivered header section holds / does not hold), `dsn` and `quarantined` (`yes`/`no`), `within`
//! (seconds the answer may take).

use std::io::{Cursor, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::scanners::{eicar, gtube};

/// One message of the corpus.
#[derive(Debug, Clone)]
pub struct Case {
    /// The file name without `.eml`.
    pub name: String,
    /// The rendered message, CRLF line ends.
    pub message: Vec<u8>,
    /// What avisd must do with it.
    pub expect: Vec<Expect>,
}

/// One expectation of an expect file.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// The final reply starts with this.
    Reply(String),
    /// The event's `content_type`.
    ContentType(String),
    /// A virus name starting with this was reported; `None`: no virus name.
    Virus(Option<String>),
    /// This spam rule hit.
    Test(String),
    /// The back end received a copy for the recipient.
    Delivered(bool),
    /// The copy went to this address (an extension shows it was redirected).
    Rcpt(String),
    /// The delivered copy's header section contains this.
    Header(String),
    /// The delivered copy's header section does not contain this.
    NoHeader(String),
    /// A DSN went to the sender.
    Dsn(bool),
    /// A copy was kept in the quarantine.
    Quarantined(bool),
    /// The answer came within this time.
    Within(Duration),
}

/// The corpus directory.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// Every case, sorted by name, rendered.
pub fn load() -> Result<Vec<Case>, String> {
    let dir = dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".eml").map(str::to_string))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let eml = dir.join(format!("{name}.eml"));
            let template = std::fs::read(&eml).map_err(|e| format!("{}: {e}", eml.display()))?;
            let message = render(&template).map_err(|e| format!("{}: {e}", eml.display()))?;
            let exp = dir.join(format!("{name}.expect"));
            let text = std::fs::read_to_string(&exp).map_err(|e| format!("{}: {e}", exp.display()))?;
            let expect = parse_expect(&text).map_err(|e| format!("{}: {e}", exp.display()))?;
            Ok(Case { name, message, expect })
        })
        .collect()
}

fn parse_expect(text: &str) -> Result<Vec<Expect>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: no `key: value`", i + 1))?;
        let value = value.trim().to_string();
        let yes = |v: &str| match v {
            "yes" => Ok(true),
            "no" => Ok(false),
            _ => Err(format!("line {}: `{key}` takes yes or no", i + 1)),
        };
        out.push(match key.trim() {
            "reply" => Expect::Reply(value),
            "content_type" => Expect::ContentType(value),
            "virus" if value == "none" => Expect::Virus(None),
            "virus" => Expect::Virus(Some(value)),
            "test" => Expect::Test(value),
            "delivered" => Expect::Delivered(yes(&value)?),
            "rcpt" => Expect::Rcpt(value),
            "header" => Expect::Header(value),
            "no-header" => Expect::NoHeader(value),
            "dsn" => Expect::Dsn(yes(&value)?),
            "quarantined" => Expect::Quarantined(yes(&value)?),
            "within" => Expect::Within(Duration::from_secs(
                value.parse().map_err(|_| format!("line {}: seconds expected", i + 1))?,
            )),
            other => return Err(format!("line {}: unknown key `{other}`", i + 1)),
        });
    }
    Ok(out)
}

/// Renders a template: placeholders replaced, LF line ends turned into CRLF.
pub fn render(template: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = find(rest, b"{{") {
        crlf(&mut out, &rest[..start]);
        let after = &rest[start + 2..];
        let end = find(after, b"}}").ok_or("a `{{` without `}}`")?;
        let ph = std::str::from_utf8(&after[..end]).map_err(|_| "a placeholder that is not UTF-8")?;
        placeholder(&mut out, ph.trim())?;
        rest = &after[end + 2..];
    }
    crlf(&mut out, rest);
    Ok(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn crlf(out: &mut Vec<u8>, text: &[u8]) {
    for &b in text {
        if b == b'\n' && out.last() != Some(&b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
}

fn placeholder(out: &mut Vec<u8>, ph: &str) -> Result<(), String> {
    let (kind, arg) = ph.split_once(':').unwrap_or((ph, ""));
    match kind {
        "eicar" => out.extend_from_slice(eicar().as_bytes()),
        "gtube" => out.extend_from_slice(gtube().as_bytes()),
        "base64" => {
            let data = build(arg)?;
            for (i, line) in base64(&data).as_bytes().chunks(76).enumerate() {
                if i > 0 {
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(line);
            }
        }
        "hex" => {
            let digits = arg.as_bytes();
            if !digits.len().is_multiple_of(2) {
                return Err(format!("{{{{hex:{arg}}}}}: odd number of digits"));
            }
            for pair in digits.chunks(2) {
                let s = std::str::from_utf8(pair).map_err(|_| "hex digits expected")?;
                out.push(u8::from_str_radix(s, 16).map_err(|_| format!("`{s}` is not hex"))?);
            }
        }
        "long" => out.extend(std::iter::repeat_n(b'x', size(arg)? as usize)),
        "fill" => {
            let line = b"All work and no play makes Jack a dull boy. All work and no play.\r\n";
            let n = size(arg)? as usize;
            out.extend(line.iter().copied().cycle().take(n / line.len() * line.len()));
        }
        _ => return Err(format!("unknown placeholder `{{{{{ph}}}}}`")),
    }
    Ok(())
}

fn size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.strip_suffix('M') {
        Some(d) => (d, 1 << 20),
        None => match s.strip_suffix('K') {
            Some(d) => (d, 1 << 10),
            None => (s, 1),
        },
    };
    digits
        .parse::<u64>()
        .map(|n| n * unit)
        .map_err(|_| format!("`{s}` is not a size"))
}

/// Base64 without line breaks.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            s.push(if i <= c.len() {
                char::from(T[((n >> (18 - 6 * i)) & 63) as usize])
            } else {
                '='
            });
        }
    }
    s
}

/// Builds the bytes a recipe describes.
pub fn build(recipe: &str) -> Result<Vec<u8>, String> {
    let mut p = Recipe { s: recipe, at: 0 };
    let data = p.recipe()?;
    if p.at != recipe.len() {
        return Err(format!("`{recipe}`: unexpected `{}`", &recipe[p.at..]));
    }
    Ok(data)
}

struct Recipe<'a> {
    s: &'a str,
    at: usize,
}

impl Recipe<'_> {
    /// Everything up to the next `(`, `)`, `,` or `=`, trimmed.
    fn word(&mut self) -> &str {
        let rest = &self.s[self.at..];
        let end = rest.find(['(', ')', ',', '=']).unwrap_or(rest.len());
        self.at += end;
        rest[..end].trim()
    }

    fn eat(&mut self, c: char) -> bool {
        let rest = &self.s[self.at..];
        let trimmed = rest.trim_start();
        if trimmed.starts_with(c) {
            self.at += rest.len() - trimmed.len() + 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("`{}`: `{c}` expected at {}", self.s, self.at))
        }
    }

    fn recipe(&mut self) -> Result<Vec<u8>, String> {
        let word = self.word().to_string();
        if !self.eat('(') {
            return atom(&word);
        }
        let data = match word.as_str() {
            "zip" | "tar" | "targz" | "7z" => {
                let mut members = Vec::new();
                loop {
                    let name = self.word().to_string();
                    self.expect('=')?;
                    members.push((name, self.recipe()?));
                    if !self.eat(',') {
                        break;
                    }
                }
                archive(&word, &members)?
            }
            "gz" => gzip(&self.recipe()?)?,
            "nest" => {
                let n: usize = self.word().parse().map_err(|_| "nest(N, ...): N expected")?;
                self.expect(',')?;
                let mut data = zip(&[("file.txt".to_string(), self.recipe()?)])?;
                for level in 2..=n {
                    data = zip(&[(format!("level{}.zip", level - 1), data)])?;
                }
                data
            }
            "bomb" => {
                let count: usize = self.word().parse().map_err(|_| "bomb(COUNT, SIZE): COUNT expected")?;
                self.expect(',')?;
                let each = size(self.word())?;
                bomb(count, each)?
            }
            other => return Err(format!("unknown recipe `{other}(...)`")),
        };
        self.expect(')')?;
        Ok(data)
    }
}

fn atom(word: &str) -> Result<Vec<u8>, String> {
    Ok(match word.split_once(':') {
        None if word == "eicar" => eicar().into_bytes(),
        None if word == "gtube" => gtube().into_bytes(),
        // The DOS header of a PE file: what file(1) and amavisd call exe-ms.
        None if word == "exe" => {
            let mut v = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8".to_vec();
            v.resize(128, 0);
            v.extend_from_slice(b"This program cannot be run in DOS mode.\r\r\n$");
            v
        }
        Some(("text", words)) => format!("{words}\r\n").into_bytes(),
        Some(("zeros", n)) => vec![0; size(n)? as usize],
        _ => return Err(format!("unknown recipe `{word}`")),
    })
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn archive(kind: &str, members: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    match kind {
        "zip" => zip(members),
        "tar" => tar(members),
        "targz" => gzip(&tar(members)?),
        _ => seven_z(members),
    }
}

fn zip(members: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        z.start_file(name.as_str(), options).map_err(err)?;
        z.write_all(data).map_err(err)?;
    }
    Ok(z.finish().map_err(err)?.into_inner())
}

fn tar(members: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let mut t = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, data.as_slice()).map_err(err)?;
    }
    t.into_inner().map_err(err)
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).map_err(err)?;
    gz.finish().map_err(err)
}

fn seven_z(members: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let mut w = sevenz_rust2::ArchiveWriter::new(Cursor::new(Vec::new())).map_err(err)?;
    for (name, data) in members {
        w.push_archive_entry(sevenz_rust2::ArchiveEntry::new_file(name), Some(data.as_slice()))
            .map_err(err)?;
    }
    Ok(w.finish().map_err(err)?.into_inner())
}

/// A zip of `count` members of `each` zero bytes. One member is compressed and its
/// compressed form copied, so building it costs one compression.
fn bomb(count: usize, each: u64) -> Result<Vec<u8>, String> {
    let mut one = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(each >= u64::from(u32::MAX));
    one.start_file("zeros-0.bin", options).map_err(err)?;
    std::io::copy(&mut std::io::repeat(0).take(each), &mut one).map_err(err)?;
    let mut one = one.finish_into_readable().map_err(err)?;
    let mut all = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..count {
        let file = one.by_index_raw(0).map_err(err)?;
        all.raw_copy_file_rename(file, format!("zeros-{i}.bin")).map_err(err)?;
    }
    Ok(all.finish().map_err(err)?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rendered_and_line_ends_become_crlf() {
        let m = render(b"Subject: x\n\n{{hex:00ff}} {{long:3}}\n{{base64:text:hi}}\n").unwrap();
        assert_eq!(m, b"Subject: x\r\n\r\n\x00\xff xxx\r\naGkNCg==\r\n");
        assert!(render(b"{{nope}}").is_err());
        assert!(render(b"{{eicar").is_err());
    }

    #[test]
    fn recipes_build_archives_whose_members_can_be_read_back() {
        let z = build("zip(a.txt=text:one, inner.zip=zip(b.txt=text:two))").unwrap();
        let mut a = zip::ZipArchive::new(Cursor::new(z)).unwrap();
        assert_eq!(a.len(), 2);
        let mut inner = Vec::new();
        a.by_name("inner.zip").unwrap().read_to_end(&mut inner).unwrap();
        assert_eq!(zip::ZipArchive::new(Cursor::new(inner)).unwrap().len(), 1);
        let b = build("bomb(3, 1M)").unwrap();
        let mut a = zip::ZipArchive::new(Cursor::new(b)).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a.by_index(2).unwrap().size(), 1 << 20);
        assert!(build("7z(x=eicar)").unwrap().starts_with(b"7z\xbc\xaf\x27\x1c"));
        assert!(build("zip(x=eicar").is_err());
        assert!(build("frob").is_err());
    }
}
