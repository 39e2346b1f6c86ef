//! Counting what happened: Postfix's log parsed into a [`Tally`], and the sink's
//! messages sorted into originals, duplicates, DSNs and postmaster notices.

use crate::mta::Received;

/// What Postfix's log says happened: delivery attempts by status and by the port of
/// the next hop, and the before-queue proxy's answers.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// (next-hop port, status) of every `status=` line.
    pub deliveries: Vec<(u16, String)>,
    /// `proxy-accept` lines (before-queue: avisd answered 2xx at the end of DATA).
    pub proxy_accept: usize,
    /// `proxy-reject` lines (before-queue: avisd refused; the client got its reply).
    pub proxy_reject: usize,
    /// Transactions Postfix had open with avisd when avisd died, in Postfix's words: the
    /// after-queue `status=deferred (lost connection with ... -- message may be sent more
    /// than once)` and the before-queue `warning: lost connection with proxy`.
    pub lost_in_flight: usize,
    /// Lines of Postfix's own bounce notices (`sender non-delivery notification`).
    pub notices: usize,
    /// (original queue id, new queue id) of each message received with XFORWARD IDENT:
    /// the reinjection listener's `QID: client=..., orig_queue_id=ORIG` lines.
    pub reinjected: Vec<(String, String)>,
}

impl Tally {
    /// Parses a Postfix log.
    pub fn of(log: &str) -> Tally {
        let mut t = Tally::default();
        for line in log.lines() {
            if line.contains("proxy-accept:") {
                t.proxy_accept += 1;
            }
            if line.contains("proxy-reject:") {
                t.proxy_reject += 1;
            }
            if line.contains("status=deferred (lost connection with")
                || line.contains("warning: lost connection with proxy")
            {
                t.lost_in_flight += 1;
            }
            if line.contains("sender non-delivery notification") {
                t.notices += 1;
            }
            if let Some((head, orig)) = line.split_once(", orig_queue_id=") {
                let orig = orig.split(',').next().unwrap_or_default().to_string();
                let qid = head
                    .rsplit_once("]: ")
                    .and_then(|(_, rest)| rest.split(':').next())
                    .unwrap_or_default()
                    .to_string();
                t.reinjected.push((orig, qid));
            }
            let status = line
                .split(", status=")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .map(str::to_string);
            let port = line
                .split(", relay=")
                .nth(1)
                .and_then(|s| s.split(',').next())
                .and_then(|r| r.rsplit_once("]:"))
                .and_then(|(_, p)| p.parse::<u16>().ok());
            if let Some(status) = status {
                t.deliveries.push((port.unwrap_or(0), status));
            }
        }
        t
    }

    /// How many `status=<status>` lines name `port` as the next hop (0: no relay, as for
    /// a message bounced without a connection).
    pub fn count(&self, port: u16, status: &str) -> usize {
        self.deliveries
            .iter()
            .filter(|(p, s)| *p == port && s == status)
            .count()
    }

    /// How many `status=<status>` lines, whatever the next hop.
    pub fn total(&self, status: &str) -> usize {
        self.deliveries.iter().filter(|(_, s)| s == status).count()
    }
}

/// What arrived at the sink, sorted out.
#[derive(Debug, Clone, Default)]
pub struct SinkCount {
    /// Messages that are neither DSNs nor postmaster notices, by distinct Message-ID.
    pub distinct: usize,
    /// Copies beyond the first of the same Message-ID.
    pub duplicates: usize,
    /// Delivery status notifications (null sender).
    pub dsns: usize,
    /// Postfix's notices to the postmaster (`notify_classes`; sender `double-bounce@`).
    pub postmaster_notices: usize,
}

/// The Message-ID field of a message, if any.
pub fn message_id(data: &str) -> Option<String> {
    data.split("\r\n\r\n").next().and_then(|head| {
        head.lines()
            .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
            .map(|l| l[11..].trim().to_string())
    })
}

/// Sorts the sink's messages into distinct originals, duplicates, DSNs and postmaster
/// notices.
pub fn count_sink(received: &[Received]) -> SinkCount {
    let mut ids = std::collections::HashSet::new();
    let mut c = SinkCount::default();
    for m in received {
        if m.from.is_empty() {
            c.dsns += 1;
        } else if m.from.starts_with("double-bounce@") {
            c.postmaster_notices += 1;
        } else if ids.insert(message_id(&m.data).unwrap_or_else(|| m.data.clone())) {
            c.distinct += 1;
        } else {
            c.duplicates += 1;
        }
    }
    c
}
