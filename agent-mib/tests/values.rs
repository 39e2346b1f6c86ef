//! How raw scoreboard values become SNMP values, and that header strings survive any input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agent_mib::snapshot::{Raw, iso8601_utc};
use agent_mib::{Syntax, Value};
use proptest::prelude::*;

#[test]
fn counter32_wraps_gauge32_latches_and_elapsed_fits_an_integer() {
    assert_eq!(
        Raw::Unsigned((1 << 32) + 5).typed(Syntax::Counter32),
        Value::Counter32(5)
    );
    assert_eq!(Raw::Unsigned(1 << 40).typed(Syntax::Gauge32), Value::Gauge32(u32::MAX));
    assert_eq!(
        Raw::Unsigned(u64::MAX).typed(Syntax::Counter64),
        Value::Counter64(u64::MAX)
    );
    assert_eq!(
        Raw::Unsigned((1 << 31) + 7).typed(Syntax::TimeInterval),
        Value::Integer32(7)
    );
    assert_eq!(Raw::Signed(-3).typed(Syntax::Integer32), Value::Integer32(-3));
}

#[test]
fn timestamps_format_as_utc() {
    assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(iso8601_utc(1_796_000_000_000), "2026-11-30T00:53:20Z");
    assert_eq!(iso8601_utc(951_782_400_000), "2000-02-29T00:00:00Z");
}

proptest! {
    #[test]
    fn any_unsigned_value_fits_every_syntax(v in any::<u64>()) {
        for s in [Syntax::Counter32, Syntax::Counter64, Syntax::Gauge32, Syntax::Integer32, Syntax::TimeTicks, Syntax::TimeInterval] {
            let _ = Raw::Unsigned(v).typed(s);
        }
        prop_assert_eq!(Raw::Unsigned(v).typed(Syntax::Counter32), Value::Counter32(v as u32));
    }

    #[test]
    fn ids_written_by_a_worker_read_back_as_a_prefix_on_a_char_boundary(id in "\\PC{0,40}") {
        let dir = std::env::temp_dir().join(format!("avis-prop-{}", std::process::id()));
        let path = dir.join("sb");
        let _ = std::fs::remove_file(&path);
        let board = agent_mib::Scoreboard::open(&path, &agent_mib::WriterInfo { workers: 1, ..Default::default() }).expect("open");
        let slot = board.take_slot(0).expect("slot");
        slot.set_ids(&id, &id);
        let snap = agent_mib::Reader::new(&path).snapshot().expect("snap");
        let got = snap.slots()[0].mail_id.clone();
        prop_assert!(id.starts_with(&got));
        prop_assert!(got.len() <= 31);
        drop(slot);
        drop(board);
    }
}
