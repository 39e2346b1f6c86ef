//! Archive and compressed-stream readers: zip, gzip, bzip2, xz, tar and 7z, all pure
//! Rust. Declared sizes are never trusted: every member is read through `take(remaining
//! quota + 1)`, so a bomb costs at most the quota. Members are never written to disk.

use std::io::{Cursor, Read};

use super::Walker;

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

/// Reads at most the remaining quota + 1 byte, so going over is visible.
fn capped(w: &Walker, r: impl Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(w.remaining().saturating_add(1)).read_to_end(&mut out)?;
    Ok(out)
}

fn stream(w: &mut Walker, path: &str, r: impl Read, depth: usize) {
    match capped(w, r) {
        Ok(data) => w.add(format!("{path}/(decompressed)"), None, None, &data, depth),
        Err(_) => w.undecipherable(),
    }
}

fn zip(w: &mut Walker, path: &str, content: &[u8], depth: usize) {
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(content)) else {
        w.undecipherable();
        return;
    };
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
            Ok(d) => w.add(member, Some(name), None, &d, depth),
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
            Ok(d) => w.add(format!("{path}/{name}"), Some(name), None, &d, depth),
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
    let mut found: Vec<(String, Vec<u8>)> = Vec::new();
    let mut over = false;
    let budget = w.remaining();
    let mut used = 0u64;
    let result = reader.for_each_entries(|entry, r| {
        if entry.is_directory {
            return Ok(true);
        }
        let mut data = Vec::new();
        r.take(budget.saturating_sub(used).saturating_add(1))
            .read_to_end(&mut data)?;
        used = used.saturating_add(data.len() as u64);
        if used > budget {
            over = true;
            return Ok(false);
        }
        found.push((entry.name.clone(), data));
        Ok(found.len() < 10_000)
    });
    match result {
        Err(sevenz_rust2::Error::PasswordRequired | sevenz_rust2::Error::MaybeBadPassword(_)) => {
            w.add_encrypted(format!("{path}/(encrypted)"), None, depth);
        }
        Err(_) if !over => w.undecipherable(),
        _ => {}
    }
    for (name, data) in found {
        w.add(format!("{path}/{name}"), Some(name), None, &data, depth);
    }
    if over {
        w.exceed_quota();
    }
}
