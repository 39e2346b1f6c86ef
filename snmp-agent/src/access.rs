//! Who may read over v1/v2c: a community string and the source networks it is good
//! from. A request that matches no (community, network) pair is dropped and counted,
//! never answered (answering would confirm the agent exists to a scanner).

use std::net::IpAddr;
use std::str::FromStr;

/// A source network in CIDR form (`127.0.0.1/32`, `::1/128`, `10.0.0.0/8`, or a bare
/// address meaning one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

/// Why a network did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetworkError {
    /// Not an address.
    #[error("`{0}` is not an IP address or CIDR network")]
    Address(String),
    /// Prefix longer than the address.
    #[error("`{0}`: prefix length out of range")]
    Prefix(String),
}

impl FromStr for Network {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Network, NetworkError> {
        let (a, p) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = a.trim().parse().map_err(|_| NetworkError::Address(s.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .map_err(|_| NetworkError::Prefix(s.to_string()))?,
        };
        if prefix > max {
            return Err(NetworkError::Prefix(s.to_string()));
        }
        Ok(Network { addr, prefix })
    }
}

impl Network {
    /// Whether `ip` lies in the network (an IPv4-mapped IPv6 source counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u128::from(u32::from(n)), u128::from(u32::from(a)), 32, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => masked(u128::from(n), u128::from(a), 128, self.prefix),
            (IpAddr::V4(_), IpAddr::V6(_)) | (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

fn masked(net: u128, addr: u128, bits: u32, prefix: u8) -> bool {
    let host_bits = bits - u32::from(prefix);
    if host_bits >= bits {
        return true;
    }
    (net >> host_bits) == (addr >> host_bits)
}

/// A read-only community and where it is accepted from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Community {
    /// The community string.
    pub name: Vec<u8>,
    /// Source networks; a request from elsewhere is dropped.
    pub networks: Vec<Network>,
}

/// The outcome of an access check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Serve it.
    Granted,
    /// Unknown community (snmpInBadCommunityNames).
    BadName,
    /// Known community, source not allowed (snmpInBadCommunityUses).
    BadSource,
}

/// Checks a community from `src` against the list.
pub fn check(communities: &[Community], name: &[u8], src: IpAddr) -> Access {
    let mut known = false;
    for c in communities.iter().filter(|c| c.name == name) {
        known = true;
        if c.networks.iter().any(|n| n.contains(src)) {
            return Access::Granted;
        }
    }
    if known { Access::BadSource } else { Access::BadName }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix_for_both_families() {
        let n: Network = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        let any: Network = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("192.0.2.1".parse().unwrap()));
        let v6: Network = "::1".parse().unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!(!v6.contains("127.0.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("bogus".parse::<Network>().is_err());
    }

    #[test]
    fn a_community_is_good_only_from_its_networks() {
        let c = vec![Community {
            name: b"public".to_vec(),
            networks: vec!["127.0.0.0/8".parse().unwrap()],
        }];
        assert_eq!(check(&c, b"public", "127.0.0.1".parse().unwrap()), Access::Granted);
        assert_eq!(check(&c, b"public", "192.0.2.1".parse().unwrap()), Access::BadSource);
        assert_eq!(check(&c, b"private", "127.0.0.1".parse().unwrap()), Access::BadName);
    }
}
