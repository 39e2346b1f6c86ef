//! The SNMPv3 engine's persistent identity: a stable snmpEngineID (generated once) and
//! snmpEngineBoots, incremented and written back at every start, in a small text file
//! (`engine_id <hex>` / `boots <n>`). Managers cache both; a new ID would make them
//! rediscover, and boots that go backwards would make them reject us.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Our enterprise number 15312 (ijs) with the high bit set, RFC 3411 engine ID format 5
/// (octets administratively assigned): here, 8 random octets.
const PREFIX: [u8; 5] = [0x80, 0x00, 0x3B, 0xD0, 0x05];

/// Why the engine state could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Reading or writing the file failed.
    #[error("engine state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not ours.
    #[error("engine state {path}: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// The engine ID and this run's boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineState {
    /// snmpEngineID.
    pub engine_id: Vec<u8>,
    /// snmpEngineBoots for this run.
    pub boots: u32,
}

/// Loads the state (or creates it), increments boots and writes it back.
pub fn load_and_boot(path: &Path) -> Result<EngineState, EngineError> {
    let io = |source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    };
    let previous = match fs::read_to_string(path) {
        Ok(text) => Some(parse(&text).map_err(|why| EngineError::Format {
            path: path.to_path_buf(),
            why,
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let state = match previous {
        Some(s) => EngineState {
            engine_id: s.engine_id,
            // RFC 3414: at 2^31-1 the engine must be reconfigured; we stay there.
            boots: s.boots.saturating_add(1).min(i32::MAX as u32),
        },
        None => EngineState {
            engine_id: [PREFIX.as_slice(), &random8()].concat(),
            boots: 1,
        },
    };
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = create_private(&tmp).map_err(io)?;
    file.write_all(format!("engine_id {}\nboots {}\n", hex(&state.engine_id), state.boots).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    Ok(state)
}

/// Creates `tmp` afresh, mode 0600, never through a symlink (we may still be root here, and
/// a link planted at this name would make us overwrite its target). Whatever is at the name
/// (our own leftover, or a planted link) is unlinked first.
fn create_private(tmp: &Path) -> std::io::Result<fs::File> {
    let create = || {
        fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(tmp)
    };
    match create() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            fs::remove_file(tmp)?;
            create()
        }
        other => other,
    }
}

fn parse(text: &str) -> Result<EngineState, String> {
    let mut id = None;
    let mut boots = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("engine_id", v)) => id = Some(unhex(v.trim()).ok_or("engine_id is not hex")?),
            Some(("boots", v)) => boots = Some(v.trim().parse::<u32>().map_err(|e| format!("boots: {e}"))?),
            _ => {}
        }
    }
    match (id, boots) {
        (Some(engine_id), Some(boots)) if (5..=32).contains(&engine_id.len()) => Ok(EngineState { engine_id, boots }),
        _ => Err("expected `engine_id <hex>` (5 to 32 octets) and `boots <n>`".to_string()),
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Eight unpredictable octets (for the engine ID and the AES salt seed).
pub fn random8() -> [u8; 8] {
    let mut b = [0u8; 8];
    let from_os = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if from_os.is_err() {
        let t = agent_mib::now_ms() ^ (u64::from(std::process::id()) << 32);
        b = t.to_be_bytes();
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_id_is_stable_and_boots_count_up_across_restarts() {
        let path = std::env::temp_dir().join(format!("avis-engine-test-{}", std::process::id()));
        let _ = fs::remove_file(&path);
        let first = load_and_boot(&path).unwrap();
        let second = load_and_boot(&path).unwrap();
        assert_eq!(first.engine_id, second.engine_id);
        assert_eq!((first.boots, second.boots), (1, 2));
        assert_eq!(&first.engine_id[..5], &PREFIX);
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_symlink_planted_at_the_temporary_name_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("avis-engine-link-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("snmp-engine");
        let victim = dir.join("victim");
        fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, path.with_extension("tmp")).unwrap();
        let state = load_and_boot(&path).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(load_and_boot(&path).unwrap().boots, state.boots + 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
