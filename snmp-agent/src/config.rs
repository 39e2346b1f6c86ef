//! Configuration in two phases: [`RawConfig`] mirrors the TOML file (every key
//! optional), the command line overrides it, and [`Config::build`] validates the lot
//! into an immutable [`Config`], reporting every problem before failing once.
//!
//! Defaults: no UDP listener and AgentX to net-snmp's default socket
//! `/var/agentx/master`, i.e. a drop-in replacement for amavisd-snmp-subagent. Giving
//! `--listen` starts the standalone agent; its default community is `public` from
//! loopback only (`community = []` or `--community off` turns v1/v2c off). v3 users exist only when configured; a v3 user without `auth` (a
//! noAuthNoPriv user) must be declared with `allow_no_auth = true`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::access::{Community, Network};
use crate::usm::{AuthProtocol, PrivProtocol};

/// The file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Scoreboard path.
    pub scoreboard: Option<PathBuf>,
    /// UDP listen addresses (`127.0.0.1:1161`, `[::1]:1161`).
    #[serde(default)]
    pub listen: Vec<String>,
    /// AgentX master: `tcp:HOST:PORT`, a Unix socket path, or `off`.
    pub agentx: Option<String>,
    /// Seconds between AgentX pings (and the longest reconnect back-off).
    pub agentx_ping_secs: Option<u64>,
    /// Engine ID and boots file.
    pub engine_state: Option<PathBuf>,
    /// Postfix queue directory, or `off`; default: ask `postconf`.
    pub queue_directory: Option<String>,
    /// User to become after binding.
    pub user: Option<String>,
    /// Group to become after binding.
    pub group: Option<String>,
    /// `stderr` or `syslog`.
    pub log: Option<String>,
    /// The syslog socket (default `/dev/log`).
    pub syslog_socket: Option<PathBuf>,
    /// Largest response in octets.
    pub max_message_size: Option<usize>,
    /// v1/v2c communities; absent = `public` from loopback, `community = []` = v1/v2c off.
    pub community: Option<Vec<RawCommunity>>,
    /// v3 users.
    #[serde(default)]
    pub v3_user: Vec<RawUser>,
}

/// One community in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommunity {
    /// The string.
    pub name: String,
    /// CIDR networks; default loopback.
    #[serde(default)]
    pub networks: Vec<String>,
}

/// One v3 user in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    /// usmUserName.
    pub name: String,
    /// `sha` / `sha1` or `sha256`.
    pub auth: Option<String>,
    /// Authentication pass phrase (8 characters at least).
    pub auth_password: Option<String>,
    /// `aes` / `aes128` or `aes256`.
    #[serde(rename = "priv")]
    pub privacy: Option<String>,
    /// Privacy pass phrase.
    pub priv_password: Option<String>,
    /// Allow a user without authentication.
    #[serde(default)]
    pub allow_no_auth: bool,
}

/// Where the AgentX master listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterAddr {
    /// `tcp:host:port`.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// Where the amavisMta figures come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueSource {
    /// Ask `postconf -h queue_directory`.
    Postconf,
    /// This directory.
    Dir(PathBuf),
    /// Not served.
    Off,
}

/// A v3 user as configured (passwords localised later, once the engine ID is known).
#[derive(Debug, Clone)]
pub struct UserSpec {
    /// Name.
    pub name: String,
    /// Protocol and pass phrase.
    pub auth: Option<(AuthProtocol, String)>,
    /// Protocol and pass phrase.
    pub privacy: Option<(PrivProtocol, String)>,
}

/// Where logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error.
    Stderr,
    /// The local syslog socket, facility mail.
    Syslog,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Scoreboard path.
    pub scoreboard: PathBuf,
    /// UDP sockets to bind.
    pub listen: Vec<SocketAddr>,
    /// AgentX master, if any.
    pub agentx: Option<MasterAddr>,
    /// Ping interval.
    pub ping: Duration,
    /// Engine state file.
    pub engine_state: PathBuf,
    /// Queue source.
    pub queue: QueueSource,
    /// Privilege drop.
    pub user: Option<String>,
    /// Privilege drop.
    pub group: Option<String>,
    /// Logging.
    pub log: LogTarget,
    /// Syslog socket.
    pub syslog_socket: PathBuf,
    /// Largest response.
    pub max_message_size: usize,
    /// Communities.
    pub communities: Vec<Community>,
    /// v3 users.
    pub users: Vec<UserSpec>,
}

/// Everything wrong with a configuration, one line each.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

impl Config {
    /// Validates `raw` (file merged with flags).
    pub fn build(raw: RawConfig) -> Result<Config, ConfigError> {
        let mut errors = Vec::new();
        let listen = raw
            .listen
            .iter()
            .filter_map(|l| {
                l.parse::<SocketAddr>()
                    .map_err(|e| errors.push(format!("listen `{l}`: {e}")))
                    .ok()
            })
            .collect();
        let agentx = match raw.agentx.as_deref() {
            None => Some(MasterAddr::Unix(PathBuf::from("/var/agentx/master"))),
            Some("off" | "none" | "") => None,
            Some(s) => match s.strip_prefix("tcp:") {
                Some(hp) => Some(MasterAddr::Tcp(hp.to_string())),
                None => Some(MasterAddr::Unix(PathBuf::from(s.strip_prefix("unix:").unwrap_or(s)))),
            },
        };
        let mut communities = Vec::new();
        let raw_communities = raw.community.unwrap_or_else(|| {
            vec![RawCommunity {
                name: "public".into(),
                networks: Vec::new(),
            }]
        });
        for c in raw_communities {
            let nets: Vec<String> = if c.networks.is_empty() {
                LOOPBACK.iter().map(|s| s.to_string()).collect()
            } else {
                c.networks
            };
            let mut networks = Vec::new();
            for n in nets {
                match n.parse::<Network>() {
                    Ok(net) => networks.push(net),
                    Err(e) => errors.push(format!("community `{}`: {e}", c.name)),
                }
            }
            communities.push(Community {
                name: c.name.into_bytes(),
                networks,
            });
        }
        let users = raw.v3_user.into_iter().filter_map(|u| user(u, &mut errors)).collect();
        let log = match raw.log.as_deref() {
            None | Some("stderr") => LogTarget::Stderr,
            Some("syslog") => LogTarget::Syslog,
            Some(other) => {
                errors.push(format!("log `{other}`: expected stderr or syslog"));
                LogTarget::Stderr
            }
        };
        let queue = match raw.queue_directory.as_deref() {
            None | Some("postconf") => QueueSource::Postconf,
            Some("off" | "none" | "") => QueueSource::Off,
            Some(d) => QueueSource::Dir(PathBuf::from(d)),
        };
        let scoreboard = raw.scoreboard.unwrap_or_else(agent_mib::default_scoreboard);
        let engine_state = raw
            .engine_state
            .unwrap_or_else(|| scoreboard.parent().unwrap_or(Path::new(".")).join("snmp-engine"));
        let max_message_size = raw.max_message_size.unwrap_or(crate::udp::MAX_DATAGRAM);
        if !(484..=crate::udp::MAX_DATAGRAM).contains(&max_message_size) {
            errors.push(format!("max_message_size {max_message_size}: must be 484..=65507"));
        }
        let ping = Duration::from_secs(raw.agentx_ping_secs.unwrap_or(5).clamp(1, 300));
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        Ok(Config {
            scoreboard,
            listen,
            agentx,
            ping,
            engine_state,
            queue,
            user: raw.user,
            group: raw.group,
            log,
            syslog_socket: raw.syslog_socket.unwrap_or_else(|| PathBuf::from("/dev/log")),
            max_message_size,
            communities,
            users,
        })
    }
}

fn user(u: RawUser, errors: &mut Vec<String>) -> Option<UserSpec> {
    let auth = match (
        u.auth.as_deref().map(str::to_ascii_lowercase).as_deref(),
        u.auth_password,
    ) {
        (None, None) => None,
        (Some("sha" | "sha1" | "sha-1"), Some(pw)) => Some((AuthProtocol::Sha1, pw)),
        (Some("sha256" | "sha-256"), Some(pw)) => Some((AuthProtocol::Sha256, pw)),
        (Some(p), Some(_)) => {
            errors.push(format!("v3 user `{}`: auth `{p}` not offered (sha1, sha256)", u.name));
            return None;
        }
        (_, _) => {
            errors.push(format!("v3 user `{}`: auth and auth_password go together", u.name));
            return None;
        }
    };
    let privacy = match (
        u.privacy.as_deref().map(str::to_ascii_lowercase).as_deref(),
        u.priv_password,
    ) {
        (None, None) => None,
        (Some("aes" | "aes128" | "aes-128"), Some(pw)) => Some((PrivProtocol::Aes128, pw)),
        (Some("aes256" | "aes-256"), Some(pw)) => Some((PrivProtocol::Aes256, pw)),
        (Some(p), Some(_)) => {
            errors.push(format!("v3 user `{}`: priv `{p}` not offered (aes128, aes256)", u.name));
            return None;
        }
        (_, _) => {
            errors.push(format!("v3 user `{}`: priv and priv_password go together", u.name));
            return None;
        }
    };
    for (what, pw) in [
        ("auth", auth.as_ref().map(|a| &a.1)),
        ("priv", privacy.as_ref().map(|p| &p.1)),
    ] {
        if pw.is_some_and(|p| p.len() < 8) {
            errors.push(format!(
                "v3 user `{}`: {what}_password shorter than 8 characters",
                u.name
            ));
        }
    }
    if privacy.is_some() && auth.is_none() {
        errors.push(format!("v3 user `{}`: privacy needs authentication", u.name));
    }
    if auth.is_none() && !u.allow_no_auth {
        errors.push(format!("v3 user `{}`: noAuthNoPriv needs allow_no_auth = true", u.name));
    }
    Some(UserSpec {
        name: u.name,
        auth,
        privacy,
    })
}

/// Parses `NAME:AUTH:AUTHPASS[:PRIV:PRIVPASS]` from the command line.
pub fn user_flag(s: &str) -> Result<RawUser, String> {
    let parts: Vec<&str> = s.splitn(5, ':').collect();
    let get = |i: usize| parts.get(i).map(|x| x.to_string());
    if parts.len() != 3 && parts.len() != 5 {
        return Err("expected NAME:AUTH:AUTHPASS[:PRIV:PRIVPASS]".to_string());
    }
    Ok(RawUser {
        name: parts[0].to_string(),
        auth: get(1),
        auth_password: get(2),
        privacy: get(3),
        priv_password: get(4),
        allow_no_auth: false,
    })
}

/// Parses `NAME[@NET,NET...]` from the command line.
pub fn community_flag(s: &str) -> RawCommunity {
    match s.split_once('@') {
        Some((name, nets)) => RawCommunity {
            name: name.to_string(),
            networks: nets.split(',').map(str::to_string).collect(),
        },
        None => RawCommunity {
            name: s.to_string(),
            networks: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_reported_before_failing_once() {
        let raw: RawConfig = toml::from_str(
            r#"
            listen = ["nonsense", "127.0.0.1:1161"]
            log = "carrier-pigeon"
            [[community]]
            name = "public"
            networks = ["10.0.0.0/99"]
            [[v3_user]]
            name = "short"
            auth = "sha256"
            auth_password = "abc"
            "#,
        )
        .unwrap();
        let err = Config::build(raw).unwrap_err();
        assert_eq!(err.0.len(), 4, "{err}");
    }

    #[test]
    fn defaults_are_agentx_to_the_debian_socket_and_public_from_loopback() {
        let c = Config::build(RawConfig::default()).unwrap();
        assert_eq!(c.agentx, Some(MasterAddr::Unix(PathBuf::from("/var/agentx/master"))));
        assert!(c.listen.is_empty());
        assert_eq!(c.communities.len(), 1);
        assert_eq!(c.communities[0].networks.len(), 2);
    }

    #[test]
    fn an_empty_community_list_turns_v1_and_v2c_off() {
        let raw: RawConfig = toml::from_str("community = []").unwrap();
        assert!(Config::build(raw).unwrap().communities.is_empty());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<RawConfig>("listne = []").is_err());
    }
}
