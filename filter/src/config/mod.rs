//! avisd's configuration, read in two phases: the raw TOML (serde, unknown keys refused)
//! and then a validated, immutable [`Config`]. Every problem of the second phase is
//! reported with its key and line before one failure. With no file, the embedded
//! default (`default.toml`) gives a working filter: 127.0.0.1:10024 → 127.0.0.1:10025.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::message::EventSink;
use target::Target;

pub mod checks;
pub mod defaults;
pub mod endpoint;
pub mod recipient;
pub mod target;

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// TOML syntax, a wrong type or an unknown key.
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// toml's message, with line and column.
        message: String,
    },
    /// Values that parse but make no sense; all of them.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// One invalid value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: String,
    /// The line (1-based).
    pub line: usize,
    /// The key, dotted.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.file, self.line, self.key, self.reason)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    daemon: RawDaemon,
    #[serde(default)]
    listen: Vec<RawListen>,
    #[serde(default)]
    policy: BTreeMap<String, RawPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    hostname: Option<Spanned<String>>,
    state_dir: Spanned<String>,
    scoreboard: Option<Spanned<String>>,
    scoreboard_group: Option<Spanned<String>>,
    quarantine_dir: Option<Spanned<String>>,
    max_servers: Spanned<i64>,
    spool_memory_threshold: Option<Spanned<i64>>,
    #[serde(default)]
    snmp_contact: String,
    #[serde(default)]
    snmp_location: String,
    events: Option<Spanned<String>>,
    drain_timeout: Option<Spanned<i64>>,
    user: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    #[serde(default)]
    allow_root: bool,
    umask: Option<Spanned<i64>>,
}

/// A group's gid, from its name or number.
fn group_id(name: &str) -> Option<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Some(gid);
    }
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    address: Spanned<String>,
    policy: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    forward: Spanned<String>,
    message_size_limit: Option<Spanned<i64>>,
    recipient_limit: Option<Spanned<i64>>,
    idle_timeout: Option<Spanned<i64>>,
    data_timeout: Option<Spanned<i64>>,
    forward_timeout: Option<Spanned<i64>>,
    #[serde(default)]
    local_domains: Vec<Spanned<String>>,
    #[serde(default)]
    mynetworks: Vec<Spanned<String>>,
    #[serde(default)]
    originating: bool,
    #[serde(default)]
    checks: checks::RawChecks,
}

/// Where a listener accepts connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    /// TCP, IPv4 or IPv6.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::Tcp(a) => write!(f, "{a}"),
            ListenAddress::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A listener and the policy bank it applies.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Where.
    pub address: ListenAddress,
    /// Its policy bank's name.
    pub policy: String,
}

/// A network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `a.b.c.d/n`, `x::y/n` or a bare address.
    pub fn parse(s: &str) -> Option<Network> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() { max } else { p.parse().ok()? };
        (prefix <= max).then_some(Network { addr, prefix })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

/// A policy bank: where mail goes and the limits it is received with.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The bank's name.
    pub name: String,
    /// The forward method.
    pub forward: Target,
    /// Largest message; 0 = none.
    pub message_size_limit: u64,
    /// Most recipients per message.
    pub recipient_limit: usize,
    /// How long a client may be silent between commands.
    pub idle_timeout: Duration,
    /// The time the DATA phase starts with; each byte received adds 1/500 s (see
    /// `receive::conn::ConnSettings`).
    pub data_timeout: Duration,
    /// Bound on each read and write with the back end.
    pub forward_timeout: Duration,
    /// Domains whose recipients are local (with their sub-domains). Empty: all local.
    pub local_domains: Vec<String>,
    /// Client networks whose mail is originating.
    pub mynetworks: Vec<Network>,
    /// Everything on this bank is originating.
    pub originating: bool,
    /// The content checks.
    pub checks: checks::Checks,
}

impl Policy {
    /// Whether `address` is a local recipient (amavisd's `@local_domains_maps`).
    pub fn is_local(&self, address: &str) -> bool {
        if self.local_domains.is_empty() {
            return true;
        }
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d).to_ascii_lowercase();
        self.local_domains
            .iter()
            .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
    }

    /// Whether mail from `client` is originating (amavisd's MYNETS bank).
    pub fn is_originating(&self, client: Option<IpAddr>) -> bool {
        self.originating || client.is_some_and(|ip| self.mynetworks.iter().any(|n| n.contains(ip)))
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (a path or "embedded default").
    pub source: String,
    /// Host name in greetings, Received lines and sysName.
    pub hostname: String,
    /// State directory (scoreboard, spool).
    pub state_dir: PathBuf,
    /// The scoreboard file.
    pub scoreboard: PathBuf,
    /// The group (gid) that may read the scoreboard (`[daemon] scoreboard_group`, a name or
    /// a number): the monitors' group. `None`: the daemon's own group.
    pub scoreboard_group: Option<u32>,
    /// Where quarantined copies go (amavisd's `$QUARANTINEDIR`).
    pub quarantine_dir: PathBuf,
    /// Workers: connections handled at once. Postfix's process limit for the filter
    /// transport must not exceed it.
    pub max_servers: usize,
    /// Bytes of a body kept in memory before it is spooled to a file.
    pub spool_memory_threshold: usize,
    /// sysContact.
    pub snmp_contact: String,
    /// sysLocation.
    pub snmp_location: String,
    /// JSON events.
    pub events: EventSink,
    /// How long SIGTERM waits for transactions in flight.
    pub drain_timeout: Duration,
    /// The user to become once the listeners are bound and the state files created.
    pub user: Option<String>,
    /// Its group, when not the user's own.
    pub group: Option<String>,
    /// Started as root with no `user`: go on as root (with a loud warning) instead of refusing.
    pub allow_root: bool,
    /// The umask set at start (spool and quarantine files get 0600 whatever it is).
    pub umask: u32,
    /// Listeners.
    pub listeners: Vec<Listener>,
    /// Policy banks by name.
    pub policies: BTreeMap<String, Policy>,
}

impl Config {
    /// Where bodies too large for memory are spooled.
    pub fn spool_dir(&self) -> PathBuf {
        self.state_dir.join("spool")
    }

    /// Reads `path`, or the embedded default when `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Config::parse(DEFAULT_TOML, "embedded default"),
            Some(p) => {
                let file = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    file: file.clone(),
                    source,
                })?;
                Config::parse(&text, &file)
            }
        }
    }

    /// Parses and validates TOML text; `file` names it in messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        let mut v = Validator {
            text,
            file,
            problems: Vec::new(),
        };
        let config = v.config(raw);
        if v.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(v.problems))
        }
    }

    /// The policy bank of a listener (validated to exist).
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.get(name)
    }
}

struct Validator<'a> {
    text: &'a str,
    file: &'a str,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.get(..end).map_or(1, |t| t.matches('\n').count() + 1)
    }

    /// A problem whose value has no span (a key the flattened tables collected): the
    /// line is where the key is first written.
    fn problem_at_key(&mut self, key: &str, name: &str, reason: &str) {
        let line = self
            .text
            .lines()
            .position(|l| {
                l.trim_start().starts_with(name)
                    && l[l.find(name).map_or(0, |i| i + name.len())..]
                        .trim_start()
                        .starts_with('=')
            })
            .map_or(1, |i| i + 1);
        self.problems.push(Problem {
            file: self.file.to_string(),
            line,
            key: key.to_string(),
            reason: reason.to_string(),
        });
    }

    fn problem<T>(&mut self, key: &str, at: &Spanned<T>, reason: impl Into<String>) {
        let line = self.line(at.span());
        self.problems.push(Problem {
            file: self.file.to_string(),
            line,
            key: key.to_string(),
            reason: reason.into(),
        });
    }

    fn range(&mut self, key: &str, v: &Spanned<i64>, min: i64, max: i64) -> i64 {
        let x = *v.get_ref();
        if x < min || x > max {
            self.problem(key, v, format!("{x} is out of range {min}..={max}"));
            return min;
        }
        x
    }

    /// A number from the file, in its range, or its default when absent.
    fn param(&mut self, key: &str, v: Option<&Spanned<i64>>, p: defaults::Param) -> i64 {
        v.map_or(p.default, |v| self.range(key, v, p.min, p.max))
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let d = &raw.daemon;
        let hostname = match &d.hostname {
            Some(h) if h.get_ref().is_empty() || h.get_ref().contains(char::is_whitespace) => {
                self.problem("daemon.hostname", h, "must be a host name without spaces");
                "localhost".to_string()
            }
            Some(h) => h.get_ref().clone(),
            None => system_hostname(),
        };
        let state_dir = PathBuf::from(d.state_dir.get_ref());
        let scoreboard = d
            .scoreboard
            .as_ref()
            .map_or_else(|| state_dir.join("scoreboard"), |s| PathBuf::from(s.get_ref()));
        let scoreboard_group = d.scoreboard_group.as_ref().and_then(|g| {
            let gid = group_id(g.get_ref());
            if gid.is_none() {
                self.problem("daemon.scoreboard_group", g, "no such group");
            }
            gid
        });
        let quarantine_dir = d
            .quarantine_dir
            .as_ref()
            .map_or_else(|| state_dir.join("quarantine"), |q| PathBuf::from(q.get_ref()));
        let max_servers = self.range(
            "daemon.max_servers",
            &d.max_servers,
            1,
            agent_mib::layout::MAX_SLOTS as i64,
        ) as usize;
        let spool_memory_threshold = self.param(
            "daemon.spool_memory_threshold",
            d.spool_memory_threshold.as_ref(),
            defaults::SPOOL_MEMORY_THRESHOLD,
        ) as usize;
        let drain_timeout = Duration::from_secs(self.param(
            "daemon.drain_timeout",
            d.drain_timeout.as_ref(),
            defaults::DRAIN_TIMEOUT,
        ) as u64);
        let umask = self.param("daemon.umask", d.umask.as_ref(), defaults::UMASK) as u32;
        let mut name = |key: &str, v: &Option<Spanned<String>>| match v {
            Some(n) if n.get_ref().is_empty() || n.get_ref().contains(|c: char| c.is_whitespace() || c == ':') => {
                self.problem(key, n, "must be a user or group name");
                None
            }
            Some(n) => Some(n.get_ref().clone()),
            None => None,
        };
        let user = name("daemon.user", &d.user);
        let group = name("daemon.group", &d.group);
        let events = match d.events.as_ref().map_or(defaults::EVENTS, |e| e.get_ref().as_str()) {
            "stdout" => EventSink::Stdout,
            "stderr" => EventSink::Stderr,
            "syslog" => EventSink::Syslog,
            "none" => EventSink::None,
            other => match other.strip_prefix("file:") {
                Some(p) if !p.is_empty() => EventSink::File(PathBuf::from(p)),
                _ => {
                    if let Some(e) = &d.events {
                        self.problem(
                            "daemon.events",
                            e,
                            "expected stdout, stderr, syslog, none or file:/path",
                        );
                    }
                    EventSink::None
                }
            },
        };

        let mut policies = BTreeMap::new();
        for (name, p) in &raw.policy {
            let policy = self.policy(name, p);
            policies.insert(name.clone(), policy);
        }
        let mut listeners = Vec::new();
        if raw.listen.is_empty() {
            self.problems.push(Problem {
                file: self.file.to_string(),
                line: 1,
                key: "listen".into(),
                reason: "at least one [[listen]] is needed".into(),
            });
        }
        for (i, l) in raw.listen.iter().enumerate() {
            let key = format!("listen[{i}].address");
            let a = l.address.get_ref();
            let address = if let Some(p) = a.strip_prefix("unix:") {
                if p.is_empty() {
                    self.problem(&key, &l.address, "empty socket path");
                }
                ListenAddress::Unix(PathBuf::from(p))
            } else {
                match a.parse::<SocketAddr>() {
                    Ok(s) => ListenAddress::Tcp(s),
                    Err(_) => {
                        self.problem(
                            &key,
                            &l.address,
                            format!("{a:?} is not ip:port, [ipv6]:port or unix:/path"),
                        );
                        continue;
                    }
                }
            };
            let policy = l
                .policy
                .as_ref()
                .map_or(defaults::POLICY_NAME, |p| p.get_ref().as_str());
            if !policies.contains_key(policy) {
                // An absent key is reported at its listener's address.
                let line = self.line(l.policy.as_ref().map_or(l.address.span(), Spanned::span));
                self.problems.push(Problem {
                    file: self.file.to_string(),
                    line,
                    key: format!("listen[{i}].policy"),
                    reason: format!("no [policy.{policy}]"),
                });
            }
            listeners.push(Listener {
                address,
                policy: policy.to_string(),
            });
        }
        Config {
            source: self.file.to_string(),
            hostname,
            state_dir,
            scoreboard,
            scoreboard_group,
            quarantine_dir,
            max_servers,
            spool_memory_threshold,
            snmp_contact: d.snmp_contact.clone(),
            snmp_location: d.snmp_location.clone(),
            events,
            drain_timeout,
            user,
            group,
            allow_root: d.allow_root,
            umask,
            listeners,
            policies,
        }
    }

    fn policy(&mut self, name: &str, p: &RawPolicy) -> Policy {
        let k = |f: &str| format!("policy.{name}.{f}");
        let forward = match Target::parse(p.forward.get_ref()) {
            Ok(t) => t,
            Err(e) => {
                self.problem(&k("forward"), &p.forward, e.to_string());
                Target::Pipe(vec!["/bin/false".into()])
            }
        };
        let secs = |v: &mut Self, f: &str, s: &Option<Spanned<i64>>, d: defaults::Param| {
            Duration::from_secs(v.param(&k(f), s.as_ref(), d) as u64)
        };
        let idle_timeout = secs(self, "idle_timeout", &p.idle_timeout, defaults::IDLE_TIMEOUT);
        let data_timeout = secs(self, "data_timeout", &p.data_timeout, defaults::DATA_TIMEOUT);
        let forward_timeout = secs(self, "forward_timeout", &p.forward_timeout, defaults::FORWARD_TIMEOUT);
        // Postfix's smtp_*_timeout defaults are 300 s; ours must stay below so Postfix
        // never gives up on a transaction avisd is still completing.
        for (f, s, d) in [
            ("idle_timeout", &p.idle_timeout, idle_timeout),
            ("forward_timeout", &p.forward_timeout, forward_timeout),
        ] {
            if let Some(s) = s.as_ref().filter(|_| d >= Duration::from_secs(300)) {
                self.problem(&k(f), s, "must stay below Postfix's 300 s smtp timeouts");
            }
        }
        let mut mynetworks = Vec::new();
        for (i, n) in p.mynetworks.iter().enumerate() {
            match Network::parse(n.get_ref()) {
                Some(net) => mynetworks.push(net),
                None => self.problem(
                    &format!("policy.{name}.mynetworks[{i}]"),
                    n,
                    "not an address or CIDR network",
                ),
            }
        }
        Policy {
            name: name.to_string(),
            forward,
            message_size_limit: self.param(
                &k("message_size_limit"),
                p.message_size_limit.as_ref(),
                defaults::MESSAGE_SIZE_LIMIT,
            ) as u64,
            recipient_limit: self.param(
                &k("recipient_limit"),
                p.recipient_limit.as_ref(),
                defaults::RECIPIENT_LIMIT,
            ) as usize,
            idle_timeout,
            data_timeout,
            forward_timeout,
            local_domains: p
                .local_domains
                .iter()
                .map(|d| d.get_ref().trim_start_matches('.').to_ascii_lowercase())
                .collect(),
            mynetworks,
            originating: p.originating,
            checks: self.checks(name, &p.checks),
        }
    }
}

fn system_hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace))
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests;
