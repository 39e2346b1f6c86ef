//! Text formats shared by the batch outputs and the TUI: amavisd-nanny's elapsed
//! times, amavisd-agent's uptime, and short latencies that fit a five-column cell.
//! Pure functions over numbers; no I/O.

/// amavisd-nanny's `format_time_interval`: `Nd` or two spaces, then `H:MM:SS`
/// (hours modulo 24) of `secs` whole seconds.
pub fn elapsed(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let day = if days > 0 { format!("{days}d") } else { "  ".to_string() };
    format!("{day}{}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A duration for a table cell, without the leading padding of [`elapsed`]:
/// `0:00:07`, `1:02:03`, `2d 3:04:05`.
pub fn duration(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let hms = format!("{}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if days > 0 { format!("{days}d {hms}") } else { hms }
}

/// amavisd-agent's sysUpTime text: `(<d> days, H:MM:SS.cc)` from hundredths of a second.
pub fn uptime_ticks(ticks: u64) -> String {
    let secs = ticks / 100;
    format!(
        "({} days, {}:{:02}:{:02}.{:02})",
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
        ticks % 100
    )
}

/// A threshold for people: `10m`, `90s`, `2h`, whichever unit divides it.
pub fn threshold(ms: u64) -> String {
    let secs = ms / 1000;
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// A latency in at most five columns: `7ms`, `999ms`, `2.5s`, `42s`, `9m`.
pub fn latency_ms(ms: f64) -> String {
    if ms < 999.5 {
        format!("{ms:.0}ms")
    } else if ms < 9_950.0 {
        format!("{:.1}s", ms / 1000.0)
    } else if ms < 599_500.0 {
        format!("{:.0}s", ms / 1000.0)
    } else {
        format!("{:.0}m", ms / 60_000.0)
    }
}

/// A count in at most `width` columns: exact when it fits, else `12k`, `3.4M`, `5G`.
pub fn count(n: u64, width: usize) -> String {
    let exact = n.to_string();
    if exact.len() <= width {
        return exact;
    }
    let units = [
        (1_000_000_000_000.0, "T"),
        (1_000_000_000.0, "G"),
        (1_000_000.0, "M"),
        (1_000.0, "k"),
    ];
    let v = n as f64;
    for (scale, unit) in units {
        if v >= scale {
            let short = format!("{:.1}{unit}", v / scale);
            return if short.len() <= width {
                short
            } else {
                format!("{:.0}{unit}", v / scale)
            };
        }
    }
    exact
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_matches_amavisd_nanny() {
        assert_eq!(elapsed(3), "  0:00:03");
        assert_eq!(elapsed(41), "  0:00:41");
        assert_eq!(elapsed(3600 * 25 + 61), "1d1:01:01");
    }

    #[test]
    fn uptime_text_matches_amavisd_agent() {
        assert_eq!(uptime_ticks(9_000_000), "(1 days, 1:00:00.00)");
        assert_eq!(uptime_ticks(12_345), "(0 days, 0:02:03.45)");
    }

    #[test]
    fn latencies_fit_five_columns() {
        for (ms, s) in [
            (7.0, "7ms"),
            (999.0, "999ms"),
            (2_500.0, "2.5s"),
            (42_000.0, "42s"),
            (900_000.0, "15m"),
        ] {
            assert_eq!(latency_ms(ms), s);
            assert!(s.len() <= 5);
        }
    }

    #[test]
    fn thresholds_use_the_largest_whole_unit() {
        assert_eq!(threshold(600_000), "10m");
        assert_eq!(threshold(20_000), "20s");
        assert_eq!(threshold(90_000), "90s");
        assert_eq!(threshold(7_200_000), "2h");
    }

    #[test]
    fn counts_shorten_to_fit() {
        assert_eq!(count(12_345, 6), "12345");
        assert_eq!(count(1_234_567, 6), "1.2M");
    }
}
