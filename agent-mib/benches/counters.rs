//! What a counter bump costs the filter, and why each worker has its own shard:
//! two threads bumping their own shards versus the same word, and one reader snapshot.
//! Run: `cargo bench -p agent-mib --bench counters`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use agent_mib::{Counter, Reader, Scoreboard, WriterInfo};
use criterion::{Criterion, criterion_group, criterion_main};

fn board(name: &str) -> (std::path::PathBuf, Arc<Scoreboard>) {
    let path = std::env::temp_dir().join(format!("avis-bench-{}-{name}/sb", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let b = Scoreboard::open(
        &path,
        &WriterInfo {
            workers: 2,
            ..Default::default()
        },
    )
    .expect("open");
    (path, b)
}

/// Nanoseconds per bump while a second thread bumps too: on its own shard, or on a shared word.
fn contended(shared: bool) -> f64 {
    const N: u64 = 5_000_000;
    let (_p, b) = board(if shared { "shared" } else { "sharded" });
    let word = Arc::new(AtomicU64::new(0));
    let go = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let slot = b.take_slot(i).expect("slot");
            let (word, go) = (Arc::clone(&word), Arc::clone(&go));
            std::thread::spawn(move || {
                while !go.load(Ordering::Acquire) {}
                let t = Instant::now();
                for _ in 0..N {
                    if shared {
                        word.fetch_add(1, Ordering::Relaxed);
                    } else {
                        slot.bump(Counter::InMsgs, 1);
                    }
                }
                t.elapsed().as_nanos() as f64 / N as f64
            })
        })
        .collect();
    go.store(true, Ordering::Release);
    handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum::<f64>() / 2.0
}

fn bench(c: &mut Criterion) {
    let (path, b) = board("single");
    let slot = b.take_slot(0).expect("slot");
    c.bench_function("bump own shard (one thread)", |bch| {
        bch.iter(|| slot.bump(black_box(Counter::InMsgs), 1))
    });
    let mut reader = Reader::new(&path);
    c.bench_function("reader snapshot (256 slots, all counters)", |bch| {
        bch.iter(|| reader.snapshot().map(|s| s.counter(Counter::InMsgs)))
    });
    println!("two threads, own shards : {:.2} ns/bump", contended(false));
    println!("two threads, shared word: {:.2} ns/bump", contended(true));
}

criterion_group!(benches, bench);
criterion_main!(benches);
