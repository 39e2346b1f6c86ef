//! Archive and compressed-stream readers: zip, gzip, bzip2, xz, tar and 7z, all pure
//! Rust. Declared sizes are never trusted to be small: every member is read through
//! `take(remaining quota + 1)`, so a bomb costs at most the quota in time; when a zip or 7z
//! directory declares more than the quota left, it is over the quota before a byte is
//! inflated. Members are never written to disk, and at most `MEMBER_IN_MEMORY` bytes of
//! one are held: past that the rest is only counted (a bomb of one huge member costs
//! 32 MiB of memory, not the 300 MiB quota).

use std::io::{Cursor, Read};

use super::Walker;

/// The most of one member held in memory. A larger member is typed by its first bytes and
/// counted against the quota; a larger container cannot be looked into (see `Walker::add_member`).
pub(crate) const MEMBER_IN_MEMORY: u64 = 32 << 20;

/// A member as read: its first `MEMBER_IN_MEMORY` bytes (all of it when smaller) and its
/// size, counted up to the quota + 1.
pub(crate) struct Member {
    pub(crate) head: Vec<u8>,
    pub(crate) size: u64,
}

/// Expands the container `content` of short type `kind` found at `path`.
pub(crate) fn expand(w: &mut Walker, path: &str, kind: &str, content: &[u8], depth: usize) {
    match kind {
        "zip" => zip(w, path, content, depth),
        "gz" => stream(w, path, flate2::read::MultiGzDecoder::new(content), depth),
        "bz2" => stream(w, path, bzip2::read::MultiBzDecoder::new(content), depth),
        "xz" => stream(
            w,
            path,
            lzma_rust2::XzReader::new_mem_limit(content, true, 256 * 1024),
            depth,
        ),
        "tar" => tar(w, path, content, depth),
        "7z" => seven_z(w, path, content, depth),
        _ => {}
    }
}

/// Reads at most the remaining quota + 1 byte, so going over is visible, holding at most
/// `MEMBER_IN_MEMORY` of them.
fn capped(w: &Walker, r: impl Read) -> std::io::Result<Member> {
    let mut r = r.take(w.remaining().saturating_add(1));
    let mut head = Vec::new();
    (&mut r).take(MEMBER_IN_MEMORY).read_to_end(&mut head)?;
    let rest = std::io::copy(&mut r, &mut std::io::sink())?;
    Ok(Member {
        size: head.len() as u64 + rest,
        head,
    })
}

/// An archive whose directory declares more than the quota left is over the quota without
/// inflating a byte: a bomb that tells the truth costs nothing. (A directory that lies low
/// is still caught by `capped`, at the cost of inflating up to the quota.)
fn over_quota_as_declared(w: &mut Walker, declared: u64) -> bool {
    if declared > w.remaining() {
        w.exceed_quota();
        return true;
    }
    false
}

fn stream(w: &mut Walker, path: &str, r: impl Read, depth: usize) {
    match capped(w, r) {
        Ok(m) => w.add_member(format!("{path}/(decompressed)"), None, m, depth),
        Err(_) => w.undecipherable(),
    }
}

fn zip(w: &mut Walker, path: &str, content: &[u8], depth: usize) {
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(content)) else {
        w.undecipherable();
        return;
    };
    let declared = (0..archive.len())
        .filter_map(|i| archive.by_index_raw(i).ok().map(|f| f.size()))
        .fold(0u64, u64::saturating_add);
    if over_quota_as_declared(w, declared) {
        return;
    }
    for i in 0..archive.len() {
        if w.stopped() {
            return;
        }
        let (name, encrypted, is_dir) = match archive.by_index_raw(i) {
            Ok(f) => (
                f.name().map(|n| n.to_string()).unwrap_or_default(),
                f.encrypted(),
                f.is_dir(),
            ),
            Err(_) => {
                w.undecipherable();
                continue;
            }
        };
        if is_dir {
            continue;
        }
        let member = format!("{path}/{name}");
        if encrypted {
            w.add_encrypted(member, Some(name), depth);
            continue;
        }
        let data = match archive.by_index(i) {
            Ok(f) => capped(w, f),
            Err(_) => {
                w.undecipherable();
                continue;
            }
        };
        match data {
            Ok(m) => w.add_member(member, Some(name), m, depth),
            Err(_) => w.undecipherable(),
        }
    }
}

fn tar(w: &mut Walker, path: &str, content: &[u8], depth: usize) {
    let mut archive = tar::Archive::new(content);
    let Ok(entries) = archive.entries() else {
        w.undecipherable();
        return;
    };
    for entry in entries {
        if w.stopped() {
            return;
        }
        let Ok(entry) = entry else {
            w.undecipherable();
            return;
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        match capped(w, entry) {
            Ok(m) => w.add_member(format!("{path}/{name}"), Some(name), m, depth),
            Err(_) => w.undecipherable(),
        }
    }
}

fn seven_z(w: &mut Walker, path: &str, content: &[u8], depth: usize) {
    // The LZMA dictionary is allocated from header values: cap it.
    let reader = sevenz_rust2::ArchiveReader::new_with_memory_limit(
        Cursor::new(content),
        sevenz_rust2::Password::empty(),
        64 * 1024,
    );
    let mut reader = match reader {
        Ok(r) => r,
        Err(sevenz_rust2::Error::PasswordRequired | sevenz_rust2::Error::MaybeBadPassword(_)) => {
            w.add_encrypted(format!("{path}/(encrypted)"), None, depth);
            return;
        }
        Err(_) => {
            w.undecipherable();
            return;
        }
    };
    let declared = reader
        .archive()
        .files
        .iter()
        .map(|f| f.size)
        .fold(0u64, u64::saturating_add);
    if over_quota_as_declared(w, declared) {
        return;
    }
    // Each member is added as it is read, so one member at a time is in memory.
    let result = reader.for_each_entries(|entry, r| {
        if entry.is_directory {
            return Ok(true);
        }
        let member = capped(w, r)?;
        w.add_member(
            format!("{path}/{}", entry.name),
            Some(entry.name.clone()),
            member,
            depth,
        );
        Ok(!w.stopped())
    });
    match result {
        Err(sevenz_rust2::Error::PasswordRequired | sevenz_rust2::Error::MaybeBadPassword(_)) => {
            w.add_encrypted(format!("{path}/(encrypted)"), None, depth);
        }
        Err(_) if !w.stopped() => w.undecipherable(),
        _ => {}
    }
}
