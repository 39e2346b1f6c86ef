//! The scoreboard against a hostile or broken environment (issue 11): a file truncated,
//! replaced or overwritten under the writer and the readers, a full disk, symlinks planted
//! at the names the writer creates, and who may read the file. Each case must end in a
//! clear answer, never in SIGBUS or in garbage served as counters.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_mib::{Counter, FileCheck, ReadError, Reader, Scoreboard, ScoreboardError, WriterInfo};

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("avis-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("scoreboard")
}

fn info() -> WriterInfo {
    WriterInfo {
        descr: "avis-test".into(),
        name: "mx.example".into(),
        workers: 2,
        ..WriterInfo::default()
    }
}

fn open(path: &Path) -> Arc<Scoreboard> {
    Scoreboard::open(path, &info()).expect("open scoreboard")
}

fn truncate(path: &Path, len: u64) {
    File::options().write(true).open(path).unwrap().set_len(len).unwrap();
}

#[test]
fn a_scoreboard_truncated_under_the_writer_and_a_reader_kills_neither() {
    let path = temp_path("truncated");
    let board = open(&path);
    let worker = board.take_slot(0).unwrap();
    let mut reader = Reader::new(&path);
    reader.snapshot().unwrap();
    truncate(&path, 0);
    // Before the fix, each of these died of SIGBUS.
    worker.bump(Counter::InMsgs, 1);
    board.bump(Counter::InMsgs, 1);
    let err = reader.snapshot().expect_err("a truncated file is not served");
    assert!(matches!(err, ReadError::Damaged { .. }), "{err}");
}

#[test]
fn the_writer_recreates_a_truncated_scoreboard_and_keeps_counting() {
    let path = temp_path("recreated");
    let board = open(&path);
    let worker = board.take_slot(0).unwrap();
    truncate(&path, 4096);
    worker.bump(Counter::InMsgs, 1);
    assert!(matches!(board.check_file(), FileCheck::Recreated(_)));
    worker.bump(Counter::InMsgs, 1);
    let snap = Reader::new(&path).snapshot().expect("the new file is served");
    assert_eq!(snap.counter(Counter::InMsgs), 2);
    assert_eq!(snap.text(agent_mib::TextField::Name), "mx.example");
    assert!(snap.writer_alive());
    assert!(matches!(board.check_file(), FileCheck::Fine));
}

#[test]
fn the_writer_notices_a_scoreboard_replaced_by_rename_and_puts_its_own_back() {
    let path = temp_path("renamed");
    let board = open(&path);
    board.bump(Counter::InMsgs, 3);
    let other = path.with_file_name("other");
    std::fs::write(&other, b"not a scoreboard").unwrap();
    std::fs::rename(&other, &path).unwrap();
    let check = board.check_file();
    assert!(matches!(check, FileCheck::Recreated(_)), "{check:?}");
    assert!(check.to_string().contains("replaced"), "{check}");
    board.bump(Counter::InMsgs, 1);
    assert_eq!(Reader::new(&path).snapshot().unwrap().counter(Counter::InMsgs), 4);
}

#[test]
fn a_scoreboard_overwritten_with_random_bytes_is_served_as_nothing_and_quickly() {
    let path = temp_path("random");
    let board = open(&path);
    board.bump(Counter::InMsgs, 1);
    let mut reader = Reader::new(&path);
    reader.snapshot().unwrap();
    // Same inode, so the reader does not re-attach: random words after the header.
    let len = std::fs::metadata(&path).unwrap().len();
    let mut noise = vec![0u8; usize::try_from(len).unwrap() - 1024];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in &mut noise {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&noise, 1024)
        .unwrap();
    let started = Instant::now();
    let err = reader.snapshot().expect_err("garbage is not served");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, ReadError::Damaged { .. }), "{err}");
    // ... and a header of random bytes too.
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&noise[..1024], 0)
        .unwrap();
    assert!(reader.snapshot().is_err());
}

#[test]
fn the_scoreboard_is_readable_by_its_owner_and_group_only() {
    let path = temp_path("mode");
    // A file left 0644 by an older avisd is tightened when avisd re-attaches.
    drop(open(&path));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _board = open(&path);
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
    let fresh = temp_path("mode-fresh");
    let _b = open(&fresh);
    assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o640);
}

#[test]
fn the_scoreboard_belongs_to_the_monitoring_group_when_one_is_given() {
    let path = temp_path("group");
    let gid = 12_345;
    let _board = Scoreboard::open_with_group(&path, &info(), Some(gid)).expect("open");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!((meta.gid(), meta.mode() & 0o777), (gid, 0o640));
}

#[test]
fn a_symlink_planted_at_the_temporary_name_is_not_followed() {
    let path = temp_path("symlink-tmp");
    let victim = path.with_file_name("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    std::os::unix::fs::symlink(&victim, &tmp).unwrap();
    let board = open(&path);
    board.bump(Counter::InMsgs, 1);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(Reader::new(&path).snapshot().unwrap().counter(Counter::InMsgs), 1);
}

#[test]
fn a_symlink_planted_at_the_scoreboard_path_is_replaced_not_followed() {
    let path = temp_path("symlink-path");
    let victim = path.with_file_name("victim");
    // A compatible scoreboard as the victim: re-attaching through the link would write it.
    drop(open(&victim));
    let before = std::fs::read(&victim).unwrap();
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    let board = open(&path);
    board.bump(Counter::InMsgs, 1);
    drop(board);
    assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&victim).unwrap(), before);
}

/// Mounts a tmpfs of `size` at a fresh directory; `None` where we may not mount (not root).
fn small_tmpfs(name: &str, size: &str) -> Option<Mount> {
    let dir = std::env::temp_dir().join(format!("avis-hostile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(Mount(dir))
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn on_a_full_disk_opening_the_scoreboard_fails_with_a_clear_error_instead_of_sigbus() {
    let Some(mount) = small_tmpfs("full", "64k") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let path = mount.0.join("scoreboard");
    let err = Scoreboard::open(&path, &info()).expect_err("no room for the scoreboard");
    assert!(matches!(err, ScoreboardError::Allocate { .. }), "{err}");
    assert!(err.to_string().contains("No space left"), "{err}");
    // Nothing half-made is left behind.
    assert_eq!(std::fs::read_dir(&mount.0).unwrap().count(), 0);
}
