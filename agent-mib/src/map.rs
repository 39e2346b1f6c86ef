//! The mapping of the scoreboard file, and the only `unsafe` code of the workspace.
//!
//! The file is mapped with memmap2's raw mappings, never as `&[u8]`: another process
//! writes it while we look, so the only sound view is one atomic word at a time.
//! Readers map it read-only and must only use `Relaxed` loads ordered by fences
//! (atomic read-modify-writes on read-only memory fault; see `core::sync::atomic`).
//!
//! A file shrunk under a live mapping (a truncation by someone else) turns every access to
//! the lost pages into SIGBUS, which would kill avisd on its next counter bump and a
//! monitor on its next read. So every mapping registers its address range, and a SIGBUS
//! handler replaces a faulting page of a registered range with a private zero page and lets
//! the access go on; the owner learns of it through [`Words::faults`] (and its own size
//! checks) and re-creates or re-attaches. A fault anywhere else goes to the previous
//! handler (or the default action), as before.
#![allow(unsafe_code)]
#![allow(clippy::len_without_is_empty)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use memmap2::{MmapOptions, MmapRaw};
use nix::libc;

/// A mapped scoreboard file seen as a slice of atomic words.
#[derive(Debug)]
pub struct Words {
    map: MmapRaw,
    len: usize,
    range: Option<usize>,
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
        let range = register(map.as_ptr() as usize, map.len());
        Ok(Words { map, len, range })
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
            // bounds, the mapping lives as long as `self`, and every process touches this
            // memory only through `AtomicU64`, so no non-atomic access can race. A page lost
            // to a truncation stays mapped: the SIGBUS handler puts a zero page there.
            Some(unsafe { &*(self.map.as_ptr().cast::<AtomicU64>()).add(i) })
        } else {
            None
        }
    }

    /// Pages of this mapping replaced by zero pages since it was made: the file shrank under
    /// us. The owner compares it with the value it last saw.
    pub fn faults(&self) -> u64 {
        self.range
            .and_then(|r| FAULTS.get(r))
            .map_or(0, |f| f.load(Ordering::Relaxed))
    }

    /// Puts `file` (at least as long as this mapping) in place of the mapped file, at the
    /// same address, read-write, so every `&AtomicU64` handed out stays valid and from now on
    /// reaches the new file. The writer uses it to move onto a re-created scoreboard.
    pub fn remap_rw(&self, file: &File) -> io::Result<()> {
        let wanted = u64::try_from(self.map.len()).unwrap_or(u64::MAX);
        if file.metadata()?.len() < wanted {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the new scoreboard is shorter than the mapping",
            ));
        }
        // SAFETY: MAP_FIXED over our own live mapping of the same length replaces its pages
        // atomically; the address range stays mapped throughout, so references into it stay
        // valid, and the file is long enough for every page.
        let p = unsafe {
            libc::mmap(
                self.map.as_mut_ptr().cast(),
                self.map.len(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Words {
    fn drop(&mut self) {
        // Before memmap2 unmaps: a later fault at this address is no longer ours to patch.
        if let Some(r) = self.range {
            unregister(r);
        }
    }
}

/// Reserves the blocks of `file`'s first `len` bytes, so writing through a mapping can
/// never fault for want of space (a sparse file on a full disk raises SIGBUS instead of
/// an error). Fails with the filesystem's error, ENOSPC on a full disk.
pub fn allocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a plain system call on a descriptor we own; glibc emulates it by writing
    // zeros where the filesystem has no fallocate.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
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

// ---- the SIGBUS guard --------------------------------------------------------------

/// Mappings alive at once in one process: avisd has one (two while moving to a new file),
/// a monitor one or two.
const RANGES: usize = 16;

/// `(start, len)` of each registered mapping; start 0 is a free entry. Read by the signal
/// handler, so plain atomics only.
static STARTS: [AtomicUsize; RANGES] = [const { AtomicUsize::new(0) }; RANGES];
static LENS: [AtomicUsize; RANGES] = [const { AtomicUsize::new(0) }; RANGES];
static FAULTS: [AtomicU64; RANGES] = [const { AtomicU64::new(0) }; RANGES];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
/// The handler that was installed before ours (`sa_sigaction` and `sa_flags`).
static PREVIOUS: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
static PREVIOUS_FLAGS: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();
static REGISTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn register(start: usize, len: usize) -> Option<usize> {
    INSTALL.call_once(install);
    // One registration at a time; the handler only reads.
    let _guard = REGISTER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let i = STARTS.iter().position(|s| s.load(Ordering::Acquire) == 0)?;
    LENS[i].store(len, Ordering::Release);
    FAULTS[i].store(0, Ordering::Relaxed);
    // The start, stored last, makes the entry live. More mappings than entries: the
    // extra ones are simply not guarded.
    STARTS[i].store(start, Ordering::Release);
    Some(i)
}

fn unregister(i: usize) {
    if let Some(s) = STARTS.get(i) {
        s.store(0, Ordering::Release);
    }
}

fn install() {
    // SAFETY: sysconf is always safe to call.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if let Ok(p) = usize::try_from(page)
        && p.is_power_of_two()
    {
        PAGE.store(p, Ordering::Relaxed);
    }
    // SAFETY: a zeroed sigaction is a valid value; we fill handler, flags and mask, and
    // keep the previous action to chain to.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&raw mut action.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, &raw const action, &raw mut old) == 0 {
            PREVIOUS.store(old.sa_sigaction, Ordering::Relaxed);
            PREVIOUS_FLAGS.store(usize::try_from(old.sa_flags).unwrap_or(0), Ordering::Relaxed);
        }
    }
}

/// Async-signal-safe: atomics, mmap (a system call) and sigaction only.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel hands a valid siginfo for SA_SIGINFO handlers.
    let addr = if info.is_null() {
        0
    } else {
        unsafe { (*info).si_addr() as usize }
    };
    let page = PAGE.load(Ordering::Relaxed);
    for ((s, l), faults) in STARTS.iter().zip(&LENS).zip(&FAULTS) {
        let start = s.load(Ordering::Acquire);
        let len = l.load(Ordering::Acquire);
        if start != 0 && addr >= start && addr - start < len {
            let at = addr & !(page - 1);
            // SAFETY: `at` is a page of a mapping we own; a private zero page in its place
            // makes the faulting access succeed when the handler returns.
            let p = unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                faults.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
    chain(sig, info, ctx);
}

/// Not ours: what would have happened without us.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let previous = PREVIOUS.load(Ordering::Relaxed);
    let siginfo = PREVIOUS_FLAGS.load(Ordering::Relaxed) & usize::try_from(libc::SA_SIGINFO).unwrap_or(0) != 0;
    if previous == libc::SIG_DFL || previous == libc::SIG_IGN {
        // SAFETY: restoring the default action; the access faults again and the process
        // dies of SIGBUS, as it would have without this handler.
        unsafe {
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
        }
    } else if siginfo {
        // SAFETY: the previous action was installed with SA_SIGINFO, so this is its type.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(previous) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a plain handler installed without SA_SIGINFO.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(previous) };
        f(sig);
    }
}
