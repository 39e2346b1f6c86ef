//! Figures derived from snapshots for the TUI and the JSON outputs: throughput now and
//! over 1, 5 and 15 minutes (from a history of InMsgs samples the nanny keeps), and
//! per-stage latency quantiles from the scoreboard's histograms. Pure; no I/O.

use std::collections::VecDeque;

use agent_mib::{Counter, LATENCY_BOUNDS_MS, Snapshot, Stage};

/// How far back the throughput history reaches: the longest average shown.
pub const HISTORY_MS: u64 = 15 * 60 * 1000;
/// The span of "now".
pub const NOW_MS: u64 = 10_000;

/// InMsgs over time, as the nanny saw it.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    samples: VecDeque<(u64, u64)>,
    started_ms: u64,
}

impl Throughput {
    /// Adds the snapshot's InMsgs; a recreated scoreboard (counters restarted) starts over.
    pub fn push(&mut self, snap: &Snapshot) {
        if snap.started_ms() != self.started_ms {
            self.samples.clear();
            self.started_ms = snap.started_ms();
        }
        let sample = (snap.taken_ms(), snap.counter(Counter::InMsgs));
        if self
            .samples
            .back()
            .is_some_and(|(t, v)| sample.0 <= *t || sample.1 < *v)
        {
            // The clock went back or the counter shrank: the history no longer adds up.
            self.samples.clear();
        }
        self.samples.push_back(sample);
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| sample.0.saturating_sub(*t) > HISTORY_MS + 60_000)
        {
            self.samples.pop_front();
        }
    }

    /// Forgets the history.
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// Messages per second over the last `window_ms` (or as much of it as was seen);
    /// `None` before two samples.
    pub fn rate(&self, window_ms: u64) -> Option<f64> {
        let &(t1, v1) = self.samples.back()?;
        let &(t0, v0) = self
            .samples
            .iter()
            .find(|(t, _)| t1.saturating_sub(*t) <= window_ms)
            .filter(|(t, _)| *t < t1)
            .or_else(|| self.samples.iter().rev().nth(1))?;
        let dt = t1.saturating_sub(t0);
        (dt > 0).then(|| v1.saturating_sub(v0) as f64 * 1000.0 / dt as f64)
    }

    /// Messages per second "now": over the last ten seconds (or the last two samples
    /// when they are further apart).
    pub fn now(&self) -> Option<f64> {
        self.rate(NOW_MS)
    }

    /// Messages between consecutive samples, the newest `n` of them, for a sparkline.
    pub fn deltas(&self, n: usize) -> Vec<u64> {
        let all: Vec<u64> = self
            .samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .map(|(a, b)| b.1.saturating_sub(a.1))
            .collect();
        all[all.len().saturating_sub(n)..].to_vec()
    }
}

/// A quantile read from a histogram: inside a bounded bucket (interpolated), or beyond
/// the last bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantile {
    /// About this many milliseconds.
    Ms(f64),
    /// More than the last bound (60 s).
    Over(u64),
}

impl Quantile {
    /// As text of at most five columns.
    pub fn text(self) -> String {
        match self {
            Quantile::Ms(ms) => crate::fmt::latency_ms(ms),
            Quantile::Over(ms) => format!(">{}", crate::fmt::latency_ms(ms as f64)),
        }
    }

    /// Milliseconds (the last bound for [`Quantile::Over`]), for JSON.
    pub fn ms(self) -> f64 {
        match self {
            Quantile::Ms(ms) => ms,
            Quantile::Over(ms) => ms as f64,
        }
    }
}

/// How far back the TUI's latency quantiles look.
pub const LATENCY_WINDOW_MS: u64 = 5 * 60 * 1000;

/// Every stage's per-bucket counts.
type Histograms = [[u64; 13]; 6];

fn histograms(snap: &Snapshot) -> Histograms {
    Stage::ALL.map(|s| buckets(snap, s))
}

/// The latency histograms over time, so quantiles can cover recent mail rather than
/// everything since the counters started.
#[derive(Debug, Clone, Default)]
pub struct LatencyWindow {
    samples: VecDeque<(u64, Histograms)>,
    started_ms: u64,
}

impl LatencyWindow {
    /// Adds the snapshot's histograms, keeping [`LATENCY_WINDOW_MS`] of them; a recreated
    /// scoreboard starts over.
    pub fn push(&mut self, snap: &Snapshot) {
        if snap.started_ms() != self.started_ms {
            self.samples.clear();
            self.started_ms = snap.started_ms();
        }
        let t = snap.taken_ms();
        if self.samples.back().is_some_and(|(t0, _)| t <= *t0) {
            self.samples.clear();
        }
        self.samples.push_back((t, histograms(snap)));
        while self
            .samples
            .get(1)
            .is_some_and(|(t1, _)| t.saturating_sub(*t1) >= LATENCY_WINDOW_MS)
        {
            self.samples.pop_front();
        }
    }

    /// Forgets the history.
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// The span the window covers, `None` with a single sample (then it is "since start").
    pub fn span_ms(&self) -> Option<u64> {
        let (t0, _) = self.samples.front()?;
        let (t1, _) = self.samples.back()?;
        (self.samples.len() > 1).then(|| t1.saturating_sub(*t0))
    }

    /// Per-bucket counts of `stage` within the window (since start with one sample).
    pub fn counts(&self, stage: Stage) -> [u64; 13] {
        let i = Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0);
        match (self.samples.front(), self.samples.back()) {
            (Some((_, old)), Some((_, new))) if self.samples.len() > 1 => {
                std::array::from_fn(|b| new[i][b].saturating_sub(old[i][b]))
            }
            (_, Some((_, new))) => new[i],
            _ => [0; 13],
        }
    }

    /// p50, p95 and p99 of `stage` within the window.
    pub fn quantiles(&self, stage: Stage) -> [Option<Quantile>; 3] {
        let b = self.counts(stage);
        [0.50, 0.95, 0.99].map(|q| quantile(&b, q))
    }
}

/// The per-bucket counts of `stage` (not cumulative), as the scoreboard keeps them.
pub fn buckets(snap: &Snapshot, stage: Stage) -> [u64; 13] {
    let (_, _, b) = stage.counters();
    b.map(|c| snap.counter(c))
}

/// The `q` quantile (0 < q ≤ 1) of per-bucket `counts`, interpolated linearly inside its
/// bucket; `None` when nothing was observed.
pub fn quantile(counts: &[u64; 13], q: f64) -> Option<Quantile> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).max(1.0);
    let mut below = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let Some(&upper) = LATENCY_BOUNDS_MS.get(i) else {
                return Some(Quantile::Over(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1]));
            };
            let lower = if i == 0 { 0 } else { LATENCY_BOUNDS_MS[i - 1] };
            let within = (rank - below as f64) / n as f64;
            return Some(Quantile::Ms(lower as f64 + within * (upper - lower) as f64));
        }
        below += n;
    }
    Some(Quantile::Over(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1]))
}

/// p50, p95 and p99 of `stage`.
pub fn quantiles(snap: &Snapshot, stage: Stage) -> [Option<Quantile>; 3] {
    let b = buckets(snap, stage);
    [0.50, 0.95, 0.99].map(|q| quantile(&b, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(taken_ms: u64, set: &[(Counter, u64)]) -> Snapshot {
        let mut counters = vec![0; agent_mib::COUNTER_COUNT];
        for (c, v) in set {
            counters[*c as usize] = *v;
        }
        Snapshot::new(agent_mib::SnapshotParts {
            taken_ms,
            started_ms: 1,
            writer_pid: 1,
            generation: 1,
            heartbeat_ms: taken_ms,
            writer_alive: true,
            texts: Default::default(),
            counters,
            gauges: Vec::new(),
            slots: Vec::new(),
        })
    }

    fn at(taken_ms: u64, in_msgs: u64) -> Snapshot {
        snap(taken_ms, &[(Counter::InMsgs, in_msgs)])
    }

    #[test]
    fn throughput_averages_over_the_window_or_what_was_seen_of_it() {
        let mut t = Throughput::default();
        assert_eq!(t.rate(60_000), None);
        // 2 msg/s for 5 minutes, then 10 msg/s for 10 s, one sample a second.
        let mut msgs = 0;
        for s in 0..=310u64 {
            msgs += if s <= 300 { 2 } else { 10 };
            t.push(&at(1_000_000 + s * 1000, msgs));
        }
        assert_eq!(t.now(), Some(10.0));
        assert_eq!(t.rate(60_000), Some((50.0 * 2.0 + 10.0 * 10.0) / 60.0));
        let all = t.rate(HISTORY_MS).unwrap();
        assert!((all - (300.0 * 2.0 + 10.0 * 10.0) / 310.0).abs() < 1e-9, "{all}");
        assert_eq!(t.deltas(3), vec![10, 10, 10]);
    }

    #[test]
    fn latency_quantiles_cover_the_last_five_minutes() {
        let (_, _, b) = Stage::Total.counters();
        // `fast` messages took ≤ 10 ms, `slow` ones 5–10 s.
        let with = |t: u64, fast: u64, slow: u64| snap(t, &[(b[0], fast), (b[9], slow)]);
        let mut w = LatencyWindow::default();
        // An hour of fast mail, then a minute of slow mail.
        w.push(&with(1_000_000, 10_000, 0));
        assert_eq!(w.span_ms(), None);
        assert_eq!(w.quantiles(Stage::Total)[0], Some(Quantile::Ms(5.0)));
        w.push(&with(1_060_000, 10_000, 100));
        assert_eq!(w.span_ms(), Some(60_000));
        assert_eq!(w.quantiles(Stage::Total)[0], Some(Quantile::Ms(7_500.0)));
        // Six minutes later the window (from the newest sample at least 5 minutes old)
        // has moved past the slow minute.
        w.push(&with(1_420_000, 10_100, 100));
        w.push(&with(1_430_000, 10_200, 100));
        assert_eq!(w.span_ms(), Some(370_000));
        assert_eq!(w.quantiles(Stage::Total)[0], Some(Quantile::Ms(5.0)));
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_that_holds_the_rank() {
        // 100 observations: 50 in (0,10], 45 in (10,25], 5 in (25,50].
        let mut b = [0u64; 13];
        b[0] = 50;
        b[1] = 45;
        b[2] = 5;
        assert_eq!(quantile(&b, 0.5), Some(Quantile::Ms(10.0)));
        assert_eq!(quantile(&b, 0.95), Some(Quantile::Ms(25.0)));
        assert_eq!(quantile(&b, 0.99), Some(Quantile::Ms(45.0)));
    }

    #[test]
    fn a_quantile_in_the_unbounded_bucket_is_only_known_to_exceed_the_last_bound() {
        let mut b = [0u64; 13];
        b[12] = 3;
        assert_eq!(quantile(&b, 0.5), Some(Quantile::Over(60_000)));
        assert_eq!(quantile(&[0; 13], 0.5), None);
    }
}
