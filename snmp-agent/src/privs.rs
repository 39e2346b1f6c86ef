//! Dropping root after the sockets are bound (port 161 needs it; nothing after does):
//! supplementary groups, then the group, then the user, in that order so the last
//! step cannot be undone. Refuses to go on as root when a drop was asked for and failed.

use nix::unistd::{Group, User, setgid, setgroups, setuid};

/// Why the drop failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivError {
    /// No such user or group.
    #[error("no such {0} `{1}`")]
    Unknown(&'static str, String),
    /// A system call failed.
    #[error("{0}: {1}")]
    Sys(&'static str, nix::Error),
}

/// Becomes `user` (and its group, or `group` when given). No-op when both are `None`.
pub fn drop_to(user: Option<&str>, group: Option<&str>) -> Result<(), PrivError> {
    if user.is_none() && group.is_none() {
        return Ok(());
    }
    let u = match user {
        Some(name) => Some(
            User::from_name(name)
                .map_err(|e| PrivError::Sys("getpwnam", e))?
                .ok_or_else(|| PrivError::Unknown("user", name.to_string()))?,
        ),
        None => None,
    };
    let gid = match group {
        Some(name) => Some(
            Group::from_name(name)
                .map_err(|e| PrivError::Sys("getgrnam", e))?
                .ok_or_else(|| PrivError::Unknown("group", name.to_string()))?
                .gid,
        ),
        None => u.as_ref().map(|u| u.gid),
    };
    if let Some(gid) = gid {
        setgroups(&[gid]).map_err(|e| PrivError::Sys("setgroups", e))?;
        setgid(gid).map_err(|e| PrivError::Sys("setgid", e))?;
    }
    if let Some(u) = u {
        setuid(u.uid).map_err(|e| PrivError::Sys("setuid", e))?;
    }
    tracing::info!(user, group, "dropped privileges");
    Ok(())
}
