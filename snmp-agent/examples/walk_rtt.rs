//! Measures avis-snmp-agent without net-snmp's process start-up: walks the amavis subtree
//! with v2c GETBULK (max-repetitions 10 and 50) over one UDP socket, N times, and prints
//! the mean and p50/p99 per walk and per request.
//! `cargo run --release -p snmp-agent --example walk_rtt -- 127.0.0.1:PORT [N]`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use rasn::types::{Integer, ObjectIdentifier, OctetString};
use rasn_snmp::v2::{BulkPdu, GetBulkRequest, Pdus, VarBind, VarBindValue};
use rasn_snmp::v2c::Message;

const ROOT: [u32; 9] = [1, 3, 6, 1, 4, 1, 15312, 2, 1];

fn request(id: i32, from: &[u32], reps: u32) -> Option<Vec<u8>> {
    let msg = Message {
        version: Integer::from(1),
        community: OctetString::from_static(b"public"),
        data: Pdus::GetBulkRequest(GetBulkRequest(BulkPdu {
            request_id: id,
            non_repeaters: 0,
            max_repetitions: reps,
            variable_bindings: vec![VarBind {
                name: ObjectIdentifier::new(from.to_vec())?,
                value: VarBindValue::Unspecified,
            }],
        })),
    };
    rasn::ber::encode(&msg).ok()
}

/// One walk; returns the number of requests and rows, or `None` on error.
fn walk(sock: &UdpSocket, reps: u32) -> Option<(usize, usize)> {
    let mut at = ROOT.to_vec();
    let (mut requests, mut rows) = (0, 0);
    let mut buf = vec![0u8; 65535];
    loop {
        sock.send(&request(i32::try_from(requests).ok()?, &at, reps)?).ok()?;
        let n = sock.recv(&mut buf).ok()?;
        requests += 1;
        let reply: Message<Pdus> = rasn::ber::decode(buf.get(..n)?).ok()?;
        let Pdus::Response(r) = reply.data else { return None };
        for vb in &r.0.variable_bindings {
            if vb.value == VarBindValue::EndOfMibView || !vb.name.starts_with(&ROOT) {
                return Some((requests, rows));
            }
            rows += 1;
            at = vb.name.to_vec();
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(addr) = args.next() else {
        eprintln!("usage: walk_rtt HOST:PORT [N]");
        std::process::exit(2);
    };
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0").and_then(|s| s.connect(&addr).map(|()| s)) else {
        eprintln!("cannot open a socket to {addr}");
        std::process::exit(1);
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
    for reps in [10, 50] {
        let mut times = Vec::with_capacity(n);
        let mut shape = (0, 0);
        for _ in 0..n {
            let t = Instant::now();
            let Some(s) = walk(&sock, reps) else {
                eprintln!("walk failed");
                std::process::exit(1);
            };
            times.push(t.elapsed());
            shape = s;
        }
        times.sort();
        let mean = times.iter().sum::<Duration>() / u32::try_from(n).unwrap_or(1);
        let pct = |p: usize| times.get((n * p / 100).min(n - 1)).copied().unwrap_or_default();
        println!(
            "GETBULK max-repetitions {reps}: {} rows in {} requests; per walk mean {:?}, p50 {:?}, p99 {:?}; per request mean {:?} ({n} walks)",
            shape.1,
            shape.0,
            mean,
            pct(50),
            pct(99),
            mean / u32::try_from(shape.0.max(1)).unwrap_or(1),
        );
    }
}
