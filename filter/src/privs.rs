//! avisd's start as root: the umask, the private state directories (spool, quarantine)
//! handed to the unprivileged user, and the drop itself — supplementary groups, group,
//! user, in that order so the last step cannot be undone — once the listeners are bound.
//! As amavisd: a daemon still able to become root afterwards refuses to go on.

use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User, chown, setgid, setgroups, setuid};

use filter::config::{Config, ListenAddress};
use filter::message::EventSink;

/// Why avisd will not run with these privileges.
#[derive(Debug, thiserror::Error)]
pub enum PrivError {
    /// No such user or group.
    #[error("no such {0} `{1}`")]
    Unknown(&'static str, String),
    /// Root without `[daemon] user` and without `allow_root`.
    #[error(
        "refusing to run as root: set [daemon] user (avisd binds, then becomes it) or, knowingly, allow_root = true"
    )]
    Root,
    /// A system call failed.
    #[error("{0}: {1}")]
    Sys(&'static str, nix::Error),
    /// A state path could not be handed over.
    #[error("{0}: {1}")]
    Path(PathBuf, std::io::Error),
}

/// Who avisd becomes after binding (None: it stays who it is).
#[derive(Debug)]
pub struct Target {
    uid: Uid,
    gid: Gid,
    name: String,
}

/// Decides, before anything is opened, whether avisd may run and as whom. `embedded` is
/// the configuration built into the binary (a first try on loopback): as root it runs
/// with a loud warning, where a configuration file must say `user` or `allow_root`.
pub fn plan(config: &Config, embedded: bool) -> Result<Option<Target>, PrivError> {
    let root = Uid::effective().is_root();
    let Some(name) = config.user.as_deref() else {
        if root && config.group.is_some() {
            return Err(PrivError::Root);
        }
        if root && !(config.allow_root || embedded) {
            return Err(PrivError::Root);
        }
        if root {
            tracing::warn!(
                "RUNNING AS ROOT: every message is parsed with full privileges; set [daemon] user for production"
            );
        }
        return Ok(None);
    };
    if !root {
        tracing::warn!(user = name, "[daemon] user is ignored: avisd was not started as root");
        return Ok(None);
    }
    let user = User::from_name(name)
        .map_err(|e| PrivError::Sys("getpwnam", e))?
        .ok_or_else(|| PrivError::Unknown("user", name.to_string()))?;
    let gid = match config.group.as_deref() {
        Some(g) => {
            Group::from_name(g)
                .map_err(|e| PrivError::Sys("getgrnam", e))?
                .ok_or_else(|| PrivError::Unknown("group", g.to_string()))?
                .gid
        }
        None => user.gid,
    };
    Ok(Some(Target {
        uid: user.uid,
        gid,
        name: name.to_string(),
    }))
}

/// Sets the umask and prepares the private state directories; removes the spool files a
/// killed daemon left. With a target user, hands it what it writes after the drop.
pub fn prepare(config: &Config, target: Option<&Target>) -> Result<(), PrivError> {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(config.umask));
    let spool = config.spool_dir();
    let path_err = |p: &Path| {
        let p = p.to_path_buf();
        move |e| PrivError::Path(p, e)
    };
    std::fs::create_dir_all(&config.state_dir).map_err(path_err(&config.state_dir))?;
    filter::message::spool::private_dir(&spool).map_err(path_err(&spool))?;
    filter::message::spool::private_dir(&config.quarantine_dir).map_err(path_err(&config.quarantine_dir))?;
    let left = filter::message::spool::clean_leftovers(&spool).map_err(path_err(&spool))?;
    if left.removed > 0 || left.kept > 0 {
        tracing::warn!(
            removed = left.removed,
            kept_for_live_writers = left.kept,
            dir = %spool.display(),
            "spool files left by a daemon that did not finish (their senders still hold the mail)"
        );
    }
    if let Some(t) = target {
        // Its home, as amavisd's: the user must reach the spool under it.
        give(t, &config.state_dir)?;
        give(t, &spool)?;
        give(t, &config.quarantine_dir)?;
    }
    Ok(())
}

fn give(t: &Target, path: &Path) -> Result<(), PrivError> {
    chown(path, Some(t.uid), Some(t.gid)).map_err(|e| PrivError::Path(path.to_path_buf(), e.into()))
}

/// After binding: hands over the files opened as root that avisd reopens later (the
/// event log on SIGHUP, Unix sockets), then drops to the target for good.
pub fn drop_to(config: &Config, target: &Target) -> Result<(), PrivError> {
    if let EventSink::File(p) = &config.events {
        give(target, p)?;
    }
    for l in &config.listeners {
        match &l.address {
            ListenAddress::Unix(p) => give(target, p)?,
            ListenAddress::Tcp(_) => {}
        }
    }
    setgroups(&[target.gid]).map_err(|e| PrivError::Sys("setgroups", e))?;
    setgid(target.gid).map_err(|e| PrivError::Sys("setgid", e))?;
    setuid(target.uid).map_err(|e| PrivError::Sys("setuid", e))?;
    if Uid::effective().is_root() || setuid(Uid::from_raw(0)).is_ok() {
        return Err(PrivError::Sys("setuid", nix::Error::EPERM));
    }
    tracing::info!(user = %target.name, uid = %target.uid, gid = %target.gid, "dropped privileges");
    Ok(())
}
