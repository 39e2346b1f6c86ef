//! The message body as received: in memory up to a threshold, then in a file in the
//! spool directory, written in large chunks. A large message is never held whole on
//! the heap. The file is removed when the spool is dropped, which happens only after
//! the client got its final reply (the sender keeps the message until then).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

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
        std::fs::create_dir_all(&self.config.dir)?;
        let path = self.config.dir.join(format!("{}.eml", self.name));
        let mut f = File::options().read(true).write(true).create_new(true).open(&path)?;
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
}
