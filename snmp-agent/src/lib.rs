//! avis-snmp-agent as a library: the modules behind the thin binary in `main.rs`, public
//! so that the fuzz targets (`fuzz/`) reach the same decoders the daemon runs on untrusted
//! datagrams and frames. No other crate depends on it.

pub mod access;
pub mod agentx;
pub mod config;
pub mod datagram;
pub mod engine;
pub mod logging;
pub mod mta;
pub mod pdu;
pub mod privs;
pub mod source;
pub mod udp;
pub mod usm;
pub mod view;
