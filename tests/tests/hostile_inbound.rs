//! avisd against clients beyond its workers (issue 11 item 8), end to end: a real
//! avisd at `max_servers`, real sockets on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::Duration;

use agent_mib::Counter;
use tests::avisd::{Avisd, config_text};
use tests::mta::{Behaviour, FakeMta};
use tests::{PATIENCE, TempDir, free_tcp_port, wait_for};

fn greeting(port: u16) -> (String, BufReader<TcpStream>) {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)
        .expect("a greeting or a 421 within 30 s, not silence");
    (line, r)
}

#[test]
fn a_client_beyond_max_servers_hears_421_after_a_short_grace_and_is_counted() {
    let dir = TempDir::new("hostile-busy");
    let backend = FakeMta::start(Behaviour::default());
    let port = free_tcp_port();
    let cfg = config_text(dir.path(), port, &format!("smtp:[127.0.0.1]:{}", backend.port), 1, "");
    let avisd = Avisd::start(dir.path(), &cfg, port);

    // The one worker is taken by a client that says nothing after the greeting (once the
    // start-up probe's session has let it go).
    let (_, held) = wait_for("the one worker", PATIENCE, || {
        let (line, r) = greeting(avisd.port);
        line.starts_with("220 ").then_some((line, r))
    });
    let before = avisd.snapshot().counter(Counter::InConnBusyRefused);

    for _ in 0..2 {
        let (line, mut rest) = greeting(avisd.port);
        assert!(line.starts_with("421 4.3.2 "), "{line:?}");
        let mut after = String::new();
        assert_eq!(
            rest.read_line(&mut after).unwrap(),
            0,
            "closed after the 421: {after:?}"
        );
    }
    wait_for("the busy counter", PATIENCE, || {
        (avisd.snapshot().counter(Counter::InConnBusyRefused) == before + 2).then_some(())
    });

    // Once the worker is free again, the next client is served.
    drop(held);
    let (line, _) = wait_for("a free worker", PATIENCE, || {
        let (line, r) = greeting(avisd.port);
        line.starts_with("220 ").then_some((line, r))
    });
    assert!(line.starts_with("220 "));
}
