//! What both datagram front ends share (community messages in [`crate::udp`], v3 in
//! [`crate::usm`]): the largest datagram and the SNMP group counters. Its own module so
//! that `udp` uses `usm` and `usm` does not use `udp` back.

use std::sync::atomic::{AtomicU64, Ordering};

/// Largest UDP payload we send (and receive).
pub const MAX_DATAGRAM: usize = 65507;

/// The SNMP group counters of RFC 3418 that matter here, and USM's (RFC 3414).
#[derive(Debug, Default)]
pub struct Stats {
    /// Datagrams received.
    pub in_pkts: AtomicU64,
    /// Unknown message version.
    pub bad_versions: AtomicU64,
    /// Unknown community.
    pub bad_community_names: AtomicU64,
    /// Known community from a source it is not allowed from.
    pub bad_community_uses: AtomicU64,
    /// Not decodable.
    pub asn_parse_errs: AtomicU64,
    /// Requests dropped for another reason (a response we could not encode).
    pub silent_drops: AtomicU64,
}

impl Stats {
    /// Adds one to `c`.
    pub fn bump(c: &AtomicU64) -> u64 {
        c.fetch_add(1, Ordering::Relaxed) + 1
    }
}
