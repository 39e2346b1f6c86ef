//! Where JSON events go: stdout, stderr, a file (reopened on SIGHUP, for logrotate) or
//! the local syslog (`/dev/log`, facility mail, one datagram per event). The message path
//! never waits for the sink: events go through a bounded queue to one writer thread, and
//! when the queue is full (a stdout nobody reads, a wedged syslog, a hung disk) an event is
//! dropped, never waited for. Dropped events and failed writes are handed back to the
//! caller to count (`avisEventsDropped`) and reported once through tracing.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::message::EventSink;

/// Events waiting for the writer thread. At about 2 KB an event, 8 MB at most; a burst
/// that a healthy sink absorbs in well under a second.
const QUEUE: usize = 4096;

/// How long dropping the log (at shutdown) waits for the queue to be written out.
const DRAIN: Duration = Duration::from_secs(2);

enum Writer {
    Stdout,
    Stderr,
    File(std::fs::File),
    Syslog(Option<UnixDatagram>),
    None,
}

/// What the writer thread is handed, in order.
enum Item {
    /// One event line.
    Line(String),
    /// Switch sinks (SIGHUP): events before it go to the old one.
    Switch(Writer),
}

/// What the caller and the writer thread share.
#[derive(Default)]
struct Shared {
    /// A writer to switch to before the next event, when the queue had no room for the
    /// switch itself (a stalled sink being replaced).
    replacement: Mutex<Option<Writer>>,
    /// Events dropped or failed and not yet handed to the caller to count.
    lost: AtomicU64,
    /// Events dropped or failed since start.
    lost_total: AtomicU64,
}

impl Shared {
    fn lose(&self, why: &dyn std::fmt::Display) {
        self.lost.fetch_add(1, Ordering::Relaxed);
        if self.lost_total.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(error = %why, "JSON events are being lost (counted in avisEventsDropped); mail flow continues");
        }
    }
}

/// The event log.
pub struct EventLog {
    sink: EventSink,
    queue: Option<SyncSender<Item>>,
    shared: Arc<Shared>,
    finished: Mutex<Receiver<()>>,
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

fn write_line(w: &mut Writer, line: &str) -> std::io::Result<()> {
    match w {
        Writer::Stdout => std::io::stdout().lock().write_all(line.as_bytes()),
        Writer::Stderr => std::io::stderr().lock().write_all(line.as_bytes()),
        Writer::File(f) => f.write_all(line.as_bytes()),
        Writer::Syslog(Some(s)) => {
            let msg = format!("<22>avisd[{}]: {}", std::process::id(), line.trim_end());
            s.send(msg.as_bytes()).map(|_| ())
        }
        Writer::Syslog(None) => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "/dev/log")),
        Writer::None => Ok(()),
    }
}

/// The writer thread: the only place that may block on the sink. Ends when the log is
/// dropped and the queue is empty.
fn run(queue: &Receiver<Item>, mut writer: Writer, shared: &Shared) {
    for item in queue {
        if let Some(w) = shared.replacement.lock().ok().and_then(|mut r| r.take()) {
            writer = w;
        }
        match item {
            Item::Line(line) => {
                if let Err(e) = write_line(&mut writer, &line) {
                    shared.lose(&e);
                }
            }
            Item::Switch(w) => writer = w,
        }
    }
}

impl EventLog {
    /// Opens the sink (a file is created if missing) and starts its writer thread.
    pub fn open(sink: &EventSink) -> std::io::Result<EventLog> {
        let writer = open(sink)?;
        let (queue, lines) = std::sync::mpsc::sync_channel(QUEUE);
        let (done, finished) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        std::thread::Builder::new().name("avisd-events".into()).spawn(move || {
            run(&lines, writer, &theirs);
            let _ = done.send(());
        })?;
        Ok(EventLog {
            sink: sink.clone(),
            queue: Some(queue),
            shared,
            finished: Mutex::new(finished),
        })
    }

    /// Reopens the sink (SIGHUP), switching to `sink` from the next event on. Opening
    /// happens here, so an error reaches the caller; the writer thread only swaps.
    pub fn reopen(&self, sink: &EventSink) -> std::io::Result<()> {
        let w = open(sink)?;
        let Some(queue) = self.queue.as_ref() else {
            return Ok(());
        };
        if let Err(TrySendError::Full(item) | TrySendError::Disconnected(item)) = queue.try_send(Item::Switch(w))
            && let (Item::Switch(w), Ok(mut r)) = (item, self.shared.replacement.lock())
        {
            *r = Some(w);
        }
        Ok(())
    }

    /// Events lost (dropped on a full queue, or failed to write) since start.
    pub fn failures(&self) -> u64 {
        self.shared.lost_total.load(Ordering::Relaxed)
    }

    /// Queues one event as one line, never waiting. Returns how many events were lost
    /// since the previous call (this one included), for the caller to count.
    #[must_use = "lost events are counted by the caller"]
    pub fn write(&self, event: &impl Serialize) -> u64 {
        // Through `Value`, whose map is ordered, so that every event's keys come out
        // sorted (docs/events.md), whatever the declaration order of its fields.
        let line = serde_json::to_value(event).map(|v| v.to_string() + "\n");
        match line.map(|line| self.queue.as_ref().map(|q| q.try_send(Item::Line(line)))) {
            Err(e) => self.shared.lose(&format_args!("an event could not be serialized: {e}")),
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(TrySendError::Full(_)))) => self.shared.lose(&"the event queue is full: the sink is stalled"),
            Ok(Some(Err(TrySendError::Disconnected(_))) | None) => self.shared.lose(&"the event writer thread is gone"),
        }
        self.shared.lost.swap(0, Ordering::Relaxed)
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        // Closing the queue ends the writer once it has written what is queued; a stalled
        // sink gets a short grace, then the rest is abandoned (the thread dies with us).
        drop(self.queue.take());
        if let Ok(f) = self.finished.lock() {
            let _ = f.recv_timeout(DRAIN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::mpsc;

    #[test]
    fn a_stalled_sink_never_blocks_the_writer_and_the_lost_events_are_counted() {
        let dir = std::env::temp_dir().join(format!("avis-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A pipe whose reader never reads: what a stdout nobody drains looks like.
        let fifo = dir.join("events.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let log = EventLog::open(&EventSink::File(fifo)).unwrap();
        let event = serde_json::json!({ "padding": "x".repeat(1000) });
        let (done, finished) = mpsc::channel();
        let writer = std::thread::spawn(move || {
            // 20 MB of events against a 64 KiB pipe.
            let lost: u64 = (0..20_000).map(|_| log.write(&event)).sum();
            let _ = done.send((lost, log.failures()));
            log
        });
        let (lost, failures) = finished
            .recv_timeout(Duration::from_secs(20))
            .expect("writing events must return while the sink is stalled");
        assert!(lost > 10_000, "most events were dropped and reported: {lost}");
        assert_eq!(lost, failures);
        drop(writer.join());
        drop(reader);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn events_reach_a_healthy_file_in_order_and_a_reopen_switches_files() {
        let dir = std::env::temp_dir().join(format!("avis-sink-ok-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
        let log = EventLog::open(&EventSink::File(a.clone())).unwrap();
        assert_eq!(log.write(&serde_json::json!({ "n": 1 })), 0);
        assert_eq!(log.write(&serde_json::json!({ "n": 2 })), 0);
        log.reopen(&EventSink::File(b.clone())).unwrap();
        assert_eq!(log.write(&serde_json::json!({ "n": 3 })), 0);
        drop(log);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "{\"n\":1}\n{\"n\":2}\n");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "{\"n\":3}\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_event_is_written_with_its_keys_sorted_whatever_its_field_order() {
        #[derive(Serialize)]
        struct Unsorted {
            zeta: u8,
            alpha: Inner,
        }
        #[derive(Serialize)]
        struct Inner {
            y: u8,
            b: u8,
        }
        let dir = std::env::temp_dir().join(format!("avis-sink-sorted-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("e.jsonl");
        let log = EventLog::open(&EventSink::File(path.clone())).unwrap();
        let event = Unsorted {
            zeta: 1,
            alpha: Inner { y: 2, b: 3 },
        };
        assert_eq!(log.write(&event), 0);
        drop(log);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"alpha\":{\"b\":3,\"y\":2},\"zeta\":1}\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
