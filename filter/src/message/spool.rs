//! The message body as received: in memory up to a threshold, then in a file in the
//! spool directory, written in large chunks. A large message is never held whole on
//! the heap. The file is removed when the spool is dropped, which happens only after
//! the client got its final reply (the sender keeps the message until then).
//!
//! Spool files hold other people's mail: they are created 0600, exclusively and without
//! following a symlink, in a 0700 directory. Their names carry the writer's pid and start
//! time, so a name never repeats across restarts; what a killed daemon left behind is
//! removed at the next start ([`clean_leftovers`]).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Creates `dir` (and its missing parents) mode 0700, or tightens an existing one to
/// 0700 when it may (a warning when it may not); refuses a symlink, so the directory cannot be swapped for one pointing elsewhere.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!("{} is not a directory", dir.display())));
    }
    if meta.permissions().mode() & 0o077 != 0
        && let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    {
        // Not ours to change (another owner): say so, and go on with what the admin set.
        tracing::warn!(dir = %dir.display(), error = %e, "cannot make the directory private (0700)");
    }
    Ok(())
}

/// Creates a new file mode 0600 for reading and writing: never an existing file, never
/// through a symlink.
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// This process's part of spool file names: pid and start time, so that neither a restart
/// nor a second daemon on the same directory can meet a name already taken.
fn incarnation() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let started = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        format!("{}.{started:x}", std::process::id())
    })
}

/// What [`clean_leftovers`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Leftovers {
    /// Files of dead writers (or of this pid's previous life), removed.
    pub removed: usize,
    /// Files of another live process (a second daemon on the same directory), kept.
    pub kept: usize,
}

/// Removes the spool files a killed daemon left in `dir` (run at start, before any
/// message is spooled). A file whose writer is another live process is kept. The bodies
/// are still in their senders' queues: no client had a 2xx for them.
pub fn clean_leftovers(dir: &Path) -> io::Result<Leftovers> {
    let mut found = Leftovers::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    let me = std::process::id();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| n.ends_with(".eml")) else {
            continue;
        };
        if entry.file_type()?.is_dir() {
            continue;
        }
        let writer = name.rsplit('.').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = writer.is_some_and(|pid| pid != me && process_alive(pid));
        if alive {
            found.kept += 1;
        } else {
            std::fs::remove_file(entry.path())?;
            found.removed += 1;
        }
    }
    Ok(found)
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    // Signal 0 probes without sending; EPERM means it exists under another user.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// Where and how a body is spooled.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Directory of spool files.
    pub dir: PathBuf,
    /// Bytes kept in memory before moving to a file.
    pub memory_threshold: usize,
}

/// A received body.
#[derive(Debug)]
pub struct Spool {
    mem: Vec<u8>,
    file: Option<(File, PathBuf)>,
    len: u64,
    config: SpoolConfig,
    name: String,
}

impl Spool {
    /// An empty spool; `name` names its file if it needs one.
    pub fn new(config: SpoolConfig, name: &str) -> Spool {
        Spool {
            mem: Vec::new(),
            file: None,
            len: 0,
            config,
            name: name.to_string(),
        }
    }

    /// Bytes spooled.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was spooled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file, when the body outgrew memory.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(_, p)| p.as_path())
    }

    /// Appends a chunk.
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.len += chunk.len() as u64;
        if let Some((f, _)) = &mut self.file {
            return f.write_all(chunk);
        }
        if self.mem.len() + chunk.len() <= self.config.memory_threshold {
            self.mem.extend_from_slice(chunk);
            return Ok(());
        }
        DirBuilder::new().recursive(true).mode(0o700).create(&self.config.dir)?;
        let path = self.config.dir.join(format!("{}.{}.eml", self.name, incarnation()));
        let mut f = create_private(&path)?;
        f.write_all(&self.mem)?;
        f.write_all(chunk)?;
        self.mem = Vec::new();
        self.file = Some((f, path));
        Ok(())
    }

    /// Flushes a file-backed spool to the OS.
    pub fn finish(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some((f, _)) => f.flush(),
            None => Ok(()),
        }
    }

    /// A reader over the whole body from the start (reading in large chunks is the caller's).
    pub fn reader(&self) -> io::Result<SpoolReader<'_>> {
        match &self.file {
            Some((_, path)) => {
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(0))?;
                Ok(SpoolReader::File(f))
            }
            None => Ok(SpoolReader::Memory(&self.mem[..])),
        }
    }

    /// A reader from byte `offset` on (past a header section that is sent rewritten).
    pub fn reader_at(&self, offset: u64) -> io::Result<SpoolReader<'_>> {
        match &self.file {
            Some((_, path)) => {
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(offset))?;
                Ok(SpoolReader::File(f))
            }
            None => Ok(SpoolReader::Memory(
                self.mem
                    .get(usize::try_from(offset).unwrap_or(usize::MAX)..)
                    .unwrap_or(&[]),
            )),
        }
    }

    /// The whole body as bytes, mapping the file when there is one (for parsing).
    pub fn bytes(&self) -> io::Result<SpoolBytes<'_>> {
        match &self.file {
            Some((f, _)) if self.len > 0 => Ok(SpoolBytes::Mapped(agent_mib::map_immutable_file(f)?)),
            Some(_) => Ok(SpoolBytes::Memory(&[])),
            None => Ok(SpoolBytes::Memory(&self.mem)),
        }
    }

    /// The first `max` bytes (for header inspection and DSNs).
    pub fn head(&self, max: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.reader()?.take(max as u64).read_to_end(&mut out)?;
        Ok(out)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some((_, path)) = self.file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The whole body as one byte slice: borrowed from memory, or the spool file mapped
/// read-only (never copied onto the heap).
#[derive(Debug)]
pub enum SpoolBytes<'a> {
    /// In memory.
    Memory(&'a [u8]),
    /// The mapped file.
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for SpoolBytes<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SpoolBytes::Memory(m) => m,
            SpoolBytes::Mapped(m) => m,
        }
    }
}

/// Reads a spool.
#[derive(Debug)]
pub enum SpoolReader<'a> {
    /// From memory.
    Memory(&'a [u8]),
    /// From the spool file.
    File(File),
}

impl Read for SpoolReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            SpoolReader::Memory(m) => m.read(buf),
            SpoolReader::File(f) => f.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_past_the_threshold_moves_to_a_file_that_is_removed_on_drop() {
        let dir = std::env::temp_dir().join(format!("avis-spool-{}", std::process::id()));
        let mut s = Spool::new(
            SpoolConfig {
                dir: dir.clone(),
                memory_threshold: 10,
            },
            "t1",
        );
        s.write(b"12345").unwrap();
        assert!(s.path().is_none());
        s.write(b"6789012345").unwrap();
        let path = s.path().map(Path::to_path_buf).unwrap();
        assert!(path.is_file());
        let mut all = Vec::new();
        s.reader().unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all, b"123456789012345");
        assert_eq!(s.len(), 15);
        drop(s);
        assert!(!path.exists());
    }

    fn fresh_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("avis-spool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn spool_past_threshold(dir: &Path, name: &str) -> io::Result<Spool> {
        let mut s = Spool::new(
            SpoolConfig {
                dir: dir.to_path_buf(),
                memory_threshold: 4,
            },
            name,
        );
        s.write(b"more than four bytes")?;
        Ok(s)
    }

    #[test]
    fn a_spool_name_taken_by_a_killed_daemons_leftover_does_not_fail_the_next_message() {
        let dir = fresh_dir("taken");
        std::fs::create_dir_all(&dir).unwrap();
        // What a daemon killed mid-DATA left: the first id of every start.
        std::fs::write(dir.join("00000-01-1.eml"), b"half a message").unwrap();
        let s = spool_past_threshold(&dir, "00000-01-1").unwrap();
        assert!(s.path().is_some());
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn spool_files_are_private_files_in_a_private_directory() {
        let dir = fresh_dir("modes");
        let s = spool_past_threshold(&dir, "m").unwrap();
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(s.path().unwrap()), 0o600);
        assert_eq!(mode(&dir), 0o700);
        drop(s);
        // An existing directory left open to everyone is tightened at start.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_spool_file_is_never_created_through_a_symlink() {
        let dir = fresh_dir("symlink");
        private_dir(&dir).unwrap();
        let target = dir.join("target");
        let link = dir.join("link.eml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_private(&link).is_err());
        assert!(!target.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn leftovers_of_dead_writers_are_removed_at_start_and_a_live_writers_files_are_kept() {
        let dir = fresh_dir("leftovers");
        private_dir(&dir).unwrap();
        let old = dir.join("00000-01-1.eml"); // the naming before pids were in it
        let dead = dir.join(format!("00000-02-1.{}.5f.eml", u32::MAX - 1));
        let mine = dir.join(format!("00000-03-1.{}.5f.eml", std::process::id()));
        // pid 1 is alive on every system: a second daemon's file is kept.
        let live = dir.join("00000-04-1.1.5f.eml");
        for p in [&old, &dead, &mine, &live] {
            std::fs::write(p, b"x").unwrap();
        }
        let found = clean_leftovers(&dir).unwrap();
        assert_eq!(found, Leftovers { removed: 3, kept: 1 });
        assert!(!old.exists() && !dead.exists() && !mine.exists());
        assert!(live.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
