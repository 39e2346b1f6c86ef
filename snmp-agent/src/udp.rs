//! The standalone UDP front end: receives datagrams on every listen socket (IPv4 and
//! IPv6), dispatches on the message version (v1/v2c community messages are decoded as
//! `Message<Any>` first, so the community is checked before the PDU is parsed; v3 goes
//! to [`crate::usm`]), answers from the shared [`Source`] through [`crate::pdu`], and
//! drops and counts whatever is malformed or not allowed. One task per socket; a
//! request is answered synchronously from memory, so nothing here waits on a disk.

use std::net::SocketAddr;
use std::sync::Arc;

use rasn::types::{Any, Integer};
use rasn_snmp::v2::Pdus;
use rasn_snmp::v2c::Message;
use tokio::net::UdpSocket;

pub use crate::datagram::{MAX_DATAGRAM, Stats};

use crate::access::{self, Access, Community};
use crate::pdu::{self, Outcome, Version};
use crate::source::Source;
use crate::usm::Usm;
use crate::view::MibView;

/// Everything a request needs.
#[derive(Debug)]
pub struct Agent {
    /// The instance tree.
    pub view: MibView,
    /// Snapshots.
    pub source: Source,
    /// v1/v2c access; empty disables v1/v2c.
    pub communities: Vec<Community>,
    /// v3; `None` disables v3.
    pub usm: Option<Usm>,
    /// Largest response we send.
    pub max_message_size: usize,
    /// Counters.
    pub stats: Stats,
}

impl Agent {
    /// The answer to one datagram, or `None` to drop it.
    pub fn handle(&self, datagram: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
        Stats::bump(&self.stats.in_pkts);
        match rasn::ber::decode::<Message<Any>>(datagram) {
            Ok(head) => self.community_message(head, src),
            Err(_) => match rasn::ber::decode::<rasn_snmp::v3::Message>(datagram) {
                Ok(msg) if msg.version == Integer::from(3) => match &self.usm {
                    Some(usm) => usm.handle(
                        &self.stats,
                        &self.view,
                        &self.source,
                        self.max_message_size,
                        msg,
                        datagram,
                    ),
                    None => {
                        Stats::bump(&self.stats.bad_versions);
                        None
                    }
                },
                Ok(_) => {
                    Stats::bump(&self.stats.bad_versions);
                    None
                }
                Err(_) => {
                    Stats::bump(&self.stats.asn_parse_errs);
                    tracing::debug!(%src, "dropped a datagram that is not SNMP");
                    None
                }
            },
        }
    }

    fn community_message(&self, head: Message<Any>, src: SocketAddr) -> Option<Vec<u8>> {
        let version = if head.version == Integer::from(0) {
            Version::V1
        } else if head.version == Integer::from(1) {
            Version::V2c
        } else {
            Stats::bump(&self.stats.bad_versions);
            return None;
        };
        match access::check(&self.communities, &head.community, src.ip()) {
            Access::Granted => {}
            Access::BadName => {
                Stats::bump(&self.stats.bad_community_names);
                tracing::debug!(%src, "unknown community");
                return None;
            }
            Access::BadSource => {
                Stats::bump(&self.stats.bad_community_uses);
                tracing::debug!(%src, "community not allowed from this source");
                return None;
            }
        }
        let Ok(pdus) = rasn::ber::decode::<Pdus>(head.data.as_bytes()) else {
            Stats::bump(&self.stats.asn_parse_errs);
            return None;
        };
        let frame = self.source.frame();
        let (resp, kind) = match pdu::answer(&self.view, &frame, version, pdus) {
            Outcome::Respond(p, k) => (p, k),
            Outcome::Ignore => return None,
        };
        let encode = |data: Pdus| {
            rasn::ber::encode(&Message {
                version: head.version.clone(),
                community: head.community.clone(),
                data,
            })
            .ok()
        };
        let out = pdu::fit(resp, kind, self.max_message_size, encode);
        if out.is_none() {
            Stats::bump(&self.stats.silent_drops);
        }
        out
    }
}

/// Serves one socket until the process ends.
pub async fn serve(socket: UdpSocket, agent: Arc<Agent>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, src) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems: not fatal.
                tracing::debug!("recv: {e}");
                continue;
            }
        };
        let Some(request) = buf.get(..len) else { continue };
        if let Some(reply) = agent.handle(request, src)
            && let Err(e) = socket.send_to(&reply, src).await
        {
            tracing::debug!(%src, "send: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::Ordering;

    use proptest::prelude::*;

    use super::*;
    use crate::usm::{AuthProtocol, PrivProtocol, User};

    /// Datagrams net-snmp 5.9.3 sent: `snmpget -v1`, `snmpbulkget -v2c`, and a v3
    /// discovery probe.
    const V1_GET: &[u8] = b"\x30\x26\x02\x01\x00\x04\x06public\xa0\x19\x02\x01\x01\x02\x01\x00\x02\x01\x00\x30\x0e\x30\x0c\x06\x08\x2b\x06\x01\x02\x01\x01\x03\x00\x05\x00";
    const V2_BULK: &[u8] = b"\x30\x2a\x02\x01\x01\x04\x06public\xa5\x1d\x02\x01\x07\x02\x01\x00\x02\x01\x0a\x30\x12\x30\x10\x06\x0c\x2b\x06\x01\x04\x01\xf7\x50\x02\x01\x01\x02\x01\x05\x00";
    const V3_PROBE: &[u8] = b"\x30\x3e\x02\x01\x03\x30\x11\x02\x04\x12\x34\x56\x78\x02\x03\x00\xff\xe3\x04\x01\x04\x02\x01\x03\x04\x10\x30\x0e\x04\x00\x02\x01\x00\x02\x01\x00\x04\x00\x04\x00\x04\x00\x30\x14\x04\x00\x04\x00\xa0\x0e\x02\x04\x01\x02\x03\x04\x02\x01\x00\x02\x01\x00\x30\x00";

    /// One agent for all cases: localising the v3 keys hashes a megabyte each.
    fn agent() -> &'static Agent {
        static AGENT: std::sync::OnceLock<Agent> = std::sync::OnceLock::new();
        AGENT.get_or_init(build)
    }

    fn build() -> Agent {
        let engine = vec![0x80, 0, 0x3b, 0xd0, 5, 1, 2, 3, 4, 5, 6, 7, 8];
        let user = User::new(
            "u",
            Some((AuthProtocol::Sha1, "authpass1")),
            Some((PrivProtocol::Aes128, "privpass1")),
            &engine,
        );
        Agent {
            view: MibView::new(),
            source: Source::new(
                agent_mib::Reader::new("/nonexistent/scoreboard"),
                Arc::new(Mutex::new(None)),
            ),
            communities: vec![Community {
                name: b"public".to_vec(),
                networks: vec!["127.0.0.0/8".parse().unwrap_or_else(|_| unreachable!())],
            }],
            usm: Some(Usm::new(engine, 1, vec![user], 7)),
            max_message_size: MAX_DATAGRAM,
            stats: Stats::default(),
        }
    }

    fn src() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40000))
    }

    #[test]
    fn real_requests_of_each_version_are_answered() {
        let a = build();
        for d in [V1_GET, V2_BULK, V3_PROBE] {
            assert!(a.handle(d, src()).is_some(), "{d:?}");
        }
        assert_eq!(a.stats.asn_parse_errs.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn garbage_is_dropped_and_counted() {
        let a = build();
        assert!(a.handle(b"\x30\x03\x02\x01", src()).is_none());
        assert_eq!(a.stats.asn_parse_errs.load(Ordering::Relaxed), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = agent().handle(&bytes, src());
        }

        #[test]
        fn mutated_real_requests_never_panic(
            which in 0usize..3,
            flips in proptest::collection::vec((0usize..80, any::<u8>()), 1..5),
            cut in 1usize..80,
        ) {
            let mut d = [V1_GET, V2_BULK, V3_PROBE][which].to_vec();
            for (at, b) in flips {
                let i = at % d.len();
                d[i] = b;
            }
            d.truncate(cut.min(d.len()));
            let _ = agent().handle(&d, src());
        }
    }
}
