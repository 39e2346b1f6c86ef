//! Where a scanner listens, in the one grammar of the configuration: `tcp:host:port`,
//! `host:port`, `[v6]:port` or `unix:/path`. Parsed once, when the configuration is
//! loaded or reloaded; the scanner clients (`check::endpoint`) only connect.

use std::fmt;
use std::path::PathBuf;

/// Where a scanner listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A host name or IP literal (without brackets) and a port.
    Tcp(String, u16),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// Why an endpoint string was refused (a configuration error, reported with the string).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad scanner endpoint {spec:?}: {why}; expected tcp:host:port, host:port, [v6addr]:port or unix:/path")]
pub struct EndpointError {
    spec: String,
    why: &'static str,
}

impl Endpoint {
    /// Parses `tcp:127.0.0.1:3310`, `127.0.0.1:3310`, `[::1]:783`, `tcp:[::1]:783`,
    /// `localhost:783` or `unix:/run/clamav/clamd.ctl`.
    pub fn parse(spec: &str) -> Result<Endpoint, EndpointError> {
        let err = |why| EndpointError {
            spec: spec.to_string(),
            why,
        };
        let spec_trimmed = spec.trim();
        if let Some(path) = spec_trimmed.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(err("unix socket path must be absolute"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let rest = spec_trimmed.strip_prefix("tcp:").unwrap_or(spec_trimmed);
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner.split_once(']').ok_or_else(|| err("unclosed ["))?;
            (host, after.strip_prefix(':').ok_or_else(|| err("no port"))?)
        } else {
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| err("no port"))?;
            // An unbracketed IPv6 literal is ambiguous ("::1:783"): demand brackets.
            if host.contains(':') {
                return Err(err("an IPv6 address needs brackets"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(err("no host"));
        }
        if host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(err("bad host"));
        }
        let port: u16 = port.parse().map_err(|_| err("bad port"))?;
        if port == 0 {
            return Err(err("port 0"));
        }
        Ok(Endpoint::Tcp(host.to_string(), port))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(host, port) if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Endpoint::Tcp(host, port) => write!(f, "tcp:{host}:{port}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_endpoint_string_parses_or_is_refused_without_panic(s in "(tcp:|unix:)?\\[?[ -~]{0,30}") {
            if let Ok(ep) = Endpoint::parse(&s) {
                // What parses displays as something that parses to the same endpoint.
                prop_assert_eq!(Endpoint::parse(&ep.to_string()), Ok(ep));
            }
        }
    }

    #[test]
    fn endpoints_parse_in_every_documented_form() {
        let cases: &[(&str, Endpoint)] = &[
            ("tcp:127.0.0.1:3310", Endpoint::Tcp("127.0.0.1".into(), 3310)),
            ("127.0.0.1:3310", Endpoint::Tcp("127.0.0.1".into(), 3310)),
            ("[::1]:783", Endpoint::Tcp("::1".into(), 783)),
            ("tcp:[::1]:783", Endpoint::Tcp("::1".into(), 783)),
            ("localhost:11333", Endpoint::Tcp("localhost".into(), 11333)),
            (
                "unix:/run/clamav/clamd.ctl",
                Endpoint::Unix("/run/clamav/clamd.ctl".into()),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(&Endpoint::parse(spec).unwrap(), want, "{spec}");
        }
    }

    #[test]
    fn bad_endpoints_are_refused_with_the_reason() {
        for (spec, why) in [
            ("unix:relative.sock", "absolute"),
            ("127.0.0.1", "no port"),
            (":783", "no host"),
            ("host:99999", "bad port"),
            ("host:0", "port 0"),
            ("::1:783", "brackets"),
            ("[::1:783", "unclosed"),
            ("[::1]", "no port"),
        ] {
            let e = Endpoint::parse(spec).unwrap_err().to_string();
            assert!(e.contains(why), "{spec}: {e}");
        }
    }

    #[test]
    fn endpoints_display_as_they_parse() {
        for spec in ["tcp:127.0.0.1:3310", "tcp:[::1]:783", "unix:/run/x.sock"] {
            assert_eq!(Endpoint::parse(spec).unwrap().to_string(), spec);
        }
    }
}
