//! The mapping of the scoreboard file, and the only `unsafe` code of the workspace.
//!
//! The file is mapped with memmap2's raw mappings, never as `&[u8]`: another process
//! writes it while we look, so the only sound view is one atomic word at a time.
//! Readers map it read-only and must only use `Relaxed` loads ordered by fences
//! (atomic read-modify-writes on read-only memory fault; see `core::sync::atomic`).
#![allow(unsafe_code)]
#![allow(clippy::len_without_is_empty)]

use std::fs::File;
use std::io;
use std::sync::atomic::AtomicU64;

use memmap2::{MmapOptions, MmapRaw};

/// A mapped scoreboard file seen as a slice of atomic words.
#[derive(Debug)]
pub struct Words {
    map: MmapRaw,
    len: usize,
}

impl Words {
    /// Maps `file` read-write (the writer).
    pub fn map_rw(file: &File) -> io::Result<Words> {
        Words::new(MmapOptions::new().map_raw(file)?)
    }

    /// Maps `file` read-only (the readers).
    pub fn map_ro(file: &File) -> io::Result<Words> {
        Words::new(MmapOptions::new().map_raw_read_only(file)?)
    }

    fn new(map: MmapRaw) -> io::Result<Words> {
        if map.as_ptr().align_offset(std::mem::align_of::<AtomicU64>()) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "mapping is not 8-byte aligned",
            ));
        }
        let len = map.len() / 8;
        Ok(Words { map, len })
    }

    /// Number of words mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Word `i`, or `None` past the end.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&AtomicU64> {
        if i < self.len {
            // SAFETY: the mapping is page-aligned (checked to be 8-aligned in `new`), `i` is in
            // bounds, the mapping lives as long as `self`, the file is never truncated while
            // mapped (the writer only ever replaces it by rename), and every process touches
            // this memory only through `AtomicU64`, so no non-atomic access can race.
            Some(unsafe { &*(self.map.as_ptr().cast::<AtomicU64>()).add(i) })
        } else {
            None
        }
    }
}

/// Maps a file that nobody writes while it is mapped (avisd's finished spool files),
/// read-only, for parsing without copying it onto the heap. Here because every `unsafe`
/// of the workspace lives in this module.
pub fn map_immutable_file(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: the callers map only files they created and finished writing, which stay
    // private to their process and are not modified or truncated until the map is dropped.
    unsafe { MmapOptions::new().map(file) }
}
