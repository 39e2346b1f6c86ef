//! Where JSON events go: stdout, stderr, a file (reopened on SIGHUP, for logrotate) or
//! the local syslog (`/dev/log`, facility mail, one datagram per event). Writing never
//! blocks mail for long and never fails a message: a failed write is reported once
//! through tracing and counted.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::config::EventSink;

enum Writer {
    Stdout,
    Stderr,
    File(std::fs::File),
    Syslog(Option<UnixDatagram>),
    None,
}

/// The event log.
pub struct EventLog {
    sink: EventSink,
    writer: Mutex<Writer>,
    failures: AtomicU64,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").field("sink", &self.sink).finish()
    }
}

fn open(sink: &EventSink) -> std::io::Result<Writer> {
    Ok(match sink {
        EventSink::Stdout => Writer::Stdout,
        EventSink::Stderr => Writer::Stderr,
        EventSink::File(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Writer::File(std::fs::OpenOptions::new().create(true).append(true).open(p)?)
        }
        EventSink::Syslog => {
            let s = UnixDatagram::unbound()?;
            Writer::Syslog(s.connect("/dev/log").ok().map(|()| s))
        }
        EventSink::None => Writer::None,
    })
}

impl EventLog {
    /// Opens the sink (a file is created if missing).
    pub fn open(sink: &EventSink) -> std::io::Result<EventLog> {
        Ok(EventLog {
            sink: sink.clone(),
            writer: Mutex::new(open(sink)?),
            failures: AtomicU64::new(0),
        })
    }

    /// Reopens the sink (SIGHUP), switching to `sink`.
    pub fn reopen(&self, sink: &EventSink) -> std::io::Result<()> {
        let w = open(sink)?;
        if let Ok(mut g) = self.writer.lock() {
            *g = w;
        }
        Ok(())
    }

    /// Failed writes so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Writes one event as one line.
    pub fn write(&self, event: &Value) {
        let mut line = event.to_string();
        line.push('\n');
        let Ok(mut w) = self.writer.lock() else { return };
        let r = match &mut *w {
            Writer::Stdout => std::io::stdout().lock().write_all(line.as_bytes()),
            Writer::Stderr => std::io::stderr().lock().write_all(line.as_bytes()),
            Writer::File(f) => f.write_all(line.as_bytes()),
            Writer::Syslog(Some(s)) => {
                let msg = format!("<22>avisd[{}]: {}", std::process::id(), line.trim_end());
                s.send(msg.as_bytes()).map(|_| ())
            }
            Writer::Syslog(None) => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "/dev/log")),
            Writer::None => Ok(()),
        };
        if let Err(e) = r
            && self.failures.fetch_add(1, Ordering::Relaxed) == 0
        {
            tracing::warn!(error = %e, "cannot write JSON events; mail flow continues");
        }
    }
}
