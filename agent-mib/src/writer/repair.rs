//! The writer's answer to a scoreboard damaged under it: avisd calls
//! [`Scoreboard::check_file`] on its one-second tick; a file truncated, removed or replaced
//! by someone else is noticed, and a fresh file with the current figures is renamed into
//! place and mapped at the same address, so workers keep their references and counting
//! never stops. When that cannot be done (a full disk), the writer counts on in memory and
//! tries again at the next tick.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;

use super::{Held, Scoreboard, byte_len, file_err, held_by, layout_words};
use crate::file::{self, FileError, Fresh, Identity};
use crate::layout::{MAGIC, header};
use crate::{TextField, now_ms};

/// What [`Scoreboard::check_file`] found.
#[derive(Debug)]
pub enum FileCheck {
    /// The path still names the file we map, whole.
    Fine,
    /// The file was damaged or taken away; a fresh one holds the current figures now.
    Recreated(Damage),
    /// The file was damaged or taken away and could not be recreated (tried again at the
    /// next check); counting goes on in memory.
    Failed(Damage, String),
}

/// What happened to the file under the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// It shrank (pages mapped past its end read as zeros from then on: those counters
    /// restarted).
    Truncated,
    /// The path names another file (replaced by rename).
    Replaced,
    /// The path names nothing.
    Removed,
}

impl std::fmt::Display for FileCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = |d: &Damage| match d {
            Damage::Truncated => "the scoreboard was truncated under avisd (counters on the lost pages restarted)",
            Damage::Replaced => "the scoreboard was replaced by another file under avisd",
            Damage::Removed => "the scoreboard was removed under avisd",
        };
        match self {
            FileCheck::Fine => f.write_str("the scoreboard is intact"),
            FileCheck::Recreated(d) => write!(f, "{}; recreated it with the current figures", what(d)),
            FileCheck::Failed(d, e) => write!(
                f,
                "{}; cannot recreate it ({e}); counting in memory, monitors see nothing until it is back",
                what(d)
            ),
        }
    }
}

impl Scoreboard {
    /// Makes sure the path still names the whole file we map; avisd calls it once a second.
    /// When the file was truncated, removed or replaced, writes a fresh one with the
    /// current figures and moves the mapping onto it.
    pub fn check_file(&self) -> FileCheck {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let len = byte_len(&self.regions);
        let shrank = held.file.metadata().is_ok_and(|m| m.len() < len);
        let damage = if shrank || self.words.faults() != held.faults_seen {
            Damage::Truncated
        } else {
            match Identity::at(&self.path) {
                Ok(Some(id)) if id == held.id => return FileCheck::Fine,
                Ok(Some(_)) => Damage::Replaced,
                Ok(None) => Damage::Removed,
                Err(e) => return FileCheck::Failed(Damage::Removed, e.to_string()),
            }
        };
        if damage == Damage::Replaced {
            // Another avisd's file is not ours to replace.
            if let Ok(Some(other)) = file::open_existing(&self.path)
                && matches!(file::lock(&other), Err(FileError::Locked))
            {
                let pid = held_by(&other);
                return FileCheck::Failed(damage, format!("another avisd (pid {pid}) holds the new file"));
            }
        }
        match self.recreate(&mut held) {
            Ok(()) => FileCheck::Recreated(damage),
            Err(e) => FileCheck::Failed(damage, file_err(&self.path, None)(e).to_string()),
        }
    }

    /// Copies the mapping into a fresh file, restores the header, renames the file into
    /// place and maps it at the same address. Bumps between the copy and the remap are lost.
    fn recreate(&self, held: &mut Held) -> Result<(), FileError> {
        let r = &self.regions;
        let fresh = Fresh::create(&self.path, byte_len(r), self.access)?;
        let mut words: Vec<u64> = (0..r.total_words)
            .map(|i| self.word(i).load(Ordering::Relaxed))
            .collect();
        let mut set = |i: usize, v: u64| {
            if let Some(w) = words.get_mut(i) {
                *w = v;
            }
        };
        for (i, v) in layout_words(r) {
            set(i, v);
        }
        set(header::MAGIC, MAGIC);
        let started = self.started_ms();
        set(header::STARTED_MS, if started == 0 { now_ms() } else { started });
        set(header::WRITER_PID, u64::from(std::process::id()));
        set(header::GENERATION, self.generation);
        set(header::HEARTBEAT_MS, now_ms());
        set(header::ATTACHED, 1);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        fresh.file.write_all_at(&bytes, 0)?;
        let file = fresh.install(&self.path)?;
        self.words.remap_rw(&file)?;
        for (field, text) in TextField::ALL.into_iter().zip(&self.texts) {
            self.set_text(field, text);
        }
        *held = Held {
            id: Identity::of(&file)?,
            file,
            faults_seen: self.words.faults(),
        };
        Ok(())
    }
}
