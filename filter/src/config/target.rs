//! Where a policy bank forwards mail: `smtp:[host]:port`, `lmtp:[host]:port`,
//! `smtp:unix:/path`, `lmtp:unix:/path`, or `pipe:argv=/path/prog arg ${sender} ${recipient}`.

use std::fmt;

/// The wire protocol to the back end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// ESMTP: one reply after DATA.
    Smtp,
    /// LMTP: one reply per accepted recipient after DATA.
    Lmtp,
}

/// A socket address of a back end.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// host and port (host may be a name or an IP literal).
    Tcp(String, u16),
    /// A Unix socket path.
    Unix(String),
}

/// A forwarding method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An SMTP or LMTP server.
    Mta(Protocol, Address),
    /// A program, given the message on stdin; `${sender}` and `${recipient}` in its
    /// arguments are expanded (with `${recipient}`, one run per recipient).
    Pipe(Vec<String>),
}

/// Why a target string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad forward method {spec:?}: {why}; expected smtp:[host]:port, lmtp:[host]:port, lmtp:unix:/path or pipe:argv=/path args"
)]
pub struct TargetError {
    spec: String,
    why: &'static str,
}

impl Target {
    /// Parses a forward method.
    pub fn parse(spec: &str) -> Result<Target, TargetError> {
        let err = |why| TargetError {
            spec: spec.to_string(),
            why,
        };
        let (scheme, rest) = spec.split_once(':').ok_or_else(|| err("no method: prefix"))?;
        let protocol = match scheme.to_ascii_lowercase().as_str() {
            "smtp" => Protocol::Smtp,
            "lmtp" => Protocol::Lmtp,
            "pipe" => {
                let argv = rest.strip_prefix("argv=").unwrap_or(rest);
                let args: Vec<String> = argv.split_whitespace().map(str::to_string).collect();
                if args.is_empty() || !args[0].starts_with('/') {
                    return Err(err("pipe needs an absolute program path"));
                }
                return Ok(Target::Pipe(args));
            }
            _ => return Err(err("unknown method")),
        };
        if let Some(path) = rest.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(err("unix socket path must be absolute"));
            }
            return Ok(Target::Mta(protocol, Address::Unix(path.to_string())));
        }
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner.split_once(']').ok_or_else(|| err("unclosed ["))?;
            (host, after.strip_prefix(':').ok_or_else(|| err("no port"))?)
        } else {
            rest.rsplit_once(':').ok_or_else(|| err("no port"))?
        };
        if host.is_empty() {
            return Err(err("no host"));
        }
        let port: u16 = port.parse().map_err(|_| err("bad port"))?;
        Ok(Target::Mta(protocol, Address::Tcp(host.to_string(), port)))
    }

    /// The protocol counter suffix amavisd uses (`SMTP`, `LMTP`, `Pipe`).
    pub fn counter_protocol(&self) -> &'static str {
        match self {
            Target::Mta(Protocol::Smtp, _) => "SMTP",
            Target::Mta(Protocol::Lmtp, _) => "LMTP",
            Target::Pipe(_) => "Pipe",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Mta(p, a) => {
                let scheme = match p {
                    Protocol::Smtp => "smtp",
                    Protocol::Lmtp => "lmtp",
                };
                match a {
                    Address::Tcp(h, port) => write!(f, "{scheme}:[{h}]:{port}"),
                    Address::Unix(path) => write!(f, "{scheme}:unix:{path}"),
                }
            }
            Target::Pipe(args) => write!(f, "pipe:argv={}", args.join(" ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_methods_parse_like_amavisd_writes_them() {
        let cases = [
            (
                "smtp:[127.0.0.1]:10025",
                Some(Target::Mta(Protocol::Smtp, Address::Tcp("127.0.0.1".into(), 10025))),
            ),
            (
                "smtp:127.0.0.1:10025",
                Some(Target::Mta(Protocol::Smtp, Address::Tcp("127.0.0.1".into(), 10025))),
            ),
            (
                "lmtp:[::1]:24",
                Some(Target::Mta(Protocol::Lmtp, Address::Tcp("::1".into(), 24))),
            ),
            (
                "lmtp:unix:/run/dovecot/lmtp",
                Some(Target::Mta(Protocol::Lmtp, Address::Unix("/run/dovecot/lmtp".into()))),
            ),
            ("pipe:argv=/usr/sbin/sendmail -i -f ${sender} -- ${recipient}", None),
            ("smtp:[127.0.0.1]", None),
            ("smtp:[127.0.0.1]:99999", None),
            ("ftp:[127.0.0.1]:21", None),
            ("lmtp:unix:relative", None),
        ];
        for (spec, want) in cases {
            let got = Target::parse(spec);
            match want {
                Some(t) => assert_eq!(got, Ok(t), "{spec}"),
                None if spec.starts_with("pipe:") => assert!(matches!(got, Ok(Target::Pipe(_))), "{spec}"),
                None => assert!(got.is_err(), "{spec}"),
            }
        }
        assert_eq!(
            Target::parse("smtp:[::1]:25").map(|t| t.to_string()),
            Ok("smtp:[::1]:25".to_string())
        );
    }
}
