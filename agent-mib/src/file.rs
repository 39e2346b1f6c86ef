//! The scoreboard as a file: how avisd creates it and checks that it is still the file it
//! maps. Kept apart from the counters (`writer`) because this is where the hostile
//! environment is met: planted symlinks, a full disk, a file truncated or replaced by
//! someone else, and who may read the figures.
//!
//! - Created beside its final name under a temporary name with `O_CREAT|O_EXCL|O_NOFOLLOW`
//!   (a planted symlink is never followed), mode 0640 in the monitoring group, its blocks
//!   reserved (a sparse file on a full disk would raise SIGBUS at the first write instead of
//!   an error), then renamed into place.
//! - Re-attached with `O_NOFOLLOW`; its mode and group are set again and its blocks
//!   reserved, for a file left by an older avisd.

use std::fs::{File, TryLockError};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::libc;

use crate::map;

/// Mode of the scoreboard: the daemon writes, the monitoring group reads, nobody else.
pub const MODE: u32 = 0o640;

/// Who the file is for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Access {
    /// The monitoring group (`[daemon] scoreboard_group`); `None` keeps the daemon's group.
    pub group: Option<u32>,
}

/// Why the file could not be made or held.
#[derive(Debug)]
pub enum FileError {
    /// Another process holds the lock.
    Locked,
    /// The filesystem would not reserve the file's blocks (ENOSPC on a full disk).
    Allocate(std::io::Error),
    /// Any other system error.
    Io(std::io::Error),
}

impl From<std::io::Error> for FileError {
    fn from(e: std::io::Error) -> FileError {
        FileError::Io(e)
    }
}

/// Opens an existing scoreboard for writing without following a symlink at `path`.
/// `Ok(None)` when there is nothing usable there (missing, or a symlink to be replaced).
pub fn open_existing(path: &Path) -> std::io::Result<Option<File>> {
    match File::options()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets mode, group and reserved blocks on a file avisd holds.
pub fn prepare(file: &File, len: u64, access: Access) -> Result<(), FileError> {
    file.set_permissions(std::fs::Permissions::from_mode(MODE))?;
    if let Some(gid) = access.group
        && file.metadata()?.gid() != gid
    {
        std::os::unix::fs::fchown(file, None, Some(gid))?;
    }
    if file.metadata()?.len() < len {
        file.set_len(len)?;
    }
    map::allocate(file, len).map_err(FileError::Allocate)
}

/// Takes the exclusive lock that says "an avisd writes this file".
pub fn lock(file: &File) -> Result<(), FileError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(FileError::Locked),
        Err(TryLockError::Error(e)) => Err(FileError::Io(e)),
    }
}

/// A new, locked, fully allocated file of `len` bytes under a temporary name beside `path`;
/// [`Fresh::install`] renames it into place. Dropped before that, it is removed.
#[derive(Debug)]
pub struct Fresh {
    /// The open file.
    pub file: File,
    tmp: PathBuf,
    installed: bool,
}

impl Fresh {
    /// Creates the temporary file. A leftover of a crashed avisd with our pid, or anything
    /// planted there, is unlinked (never followed) and the creation tried once more.
    pub fn create(path: &Path, len: u64, access: Access) -> Result<Fresh, FileError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let create = || {
            File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(MODE)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
        };
        let file = match create() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&tmp)?;
                create()?
            }
            other => other?,
        };
        let fresh = Fresh {
            file,
            tmp,
            installed: false,
        };
        lock(&fresh.file)?;
        prepare(&fresh.file, len, access)?;
        Ok(fresh)
    }

    /// Renames the file into place (replacing whatever is at `path`, a symlink included).
    pub fn install(mut self, path: &Path) -> std::io::Result<File> {
        std::fs::rename(&self.tmp, path)?;
        self.installed = true;
        let file = self.file.try_clone()?;
        Ok(file)
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if !self.installed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The identity of a file, to notice that the path now names another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    /// Of an open file.
    pub fn of(file: &File) -> std::io::Result<Identity> {
        let m = file.metadata()?;
        Ok(Identity {
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// Of what `path` names now (a symlink itself, not its target); `None` when nothing.
    pub fn at(path: &Path) -> std::io::Result<Option<Identity>> {
        match std::fs::symlink_metadata(path) {
            Ok(m) => Ok(Some(Identity {
                dev: m.dev(),
                ino: m.ino(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
