//! Logging to stderr (the default, as `amavisd-snmp-subagent -f` does) or to the local
//! syslog socket with ident `avis-snmp-agent`, facility mail, and the event's own
//! severity (amavisd's subagent logged everything at LOG_INFO; we do not copy that).

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Arc;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogTarget;

/// A writer that sends each formatted event as one syslog datagram.
#[derive(Debug, Clone)]
struct Syslog {
    socket: Arc<UnixDatagram>,
}

#[derive(Debug)]
struct Line {
    socket: Arc<UnixDatagram>,
    severity: u8,
    buf: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        // facility mail (2) * 8 + severity
        let msg = format!(
            "<{}>avis-snmp-agent[{}]: {}",
            16 + self.severity,
            std::process::id(),
            text.trim_end()
        );
        // A full or absent syslog must not stop the agent.
        let _ = self.socket.send(msg.as_bytes());
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        self.line(6)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        let severity = match *meta.level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        self.line(severity)
    }
}

impl Syslog {
    fn line(&self, severity: u8) -> Line {
        Line {
            socket: Arc::clone(&self.socket),
            severity,
            buf: Vec::new(),
        }
    }
}

/// Installs the subscriber; `RUST_LOG` sets the level (default `info`). `socket` is the
/// syslog socket (normally `/dev/log`).
pub fn init(target: LogTarget, socket: &Path) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match target {
        LogTarget::Stderr => {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init();
        }
        LogTarget::Syslog => {
            let sock = UnixDatagram::unbound()?;
            sock.connect(socket)
                .map_err(|e| anyhow::anyhow!("cannot log to syslog at {}: {e}", socket.display()))?;
            let socket = sock;
            let writer = Syslog {
                socket: Arc::new(socket),
            };
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .without_time()
                .with_target(false)
                .with_writer(writer)
                .init();
        }
    }
    Ok(())
}
