//! receive: the inbound ESMTP/LMTP protocol (a sans-IO state machine), the body spool,
//! and the connection driver that runs a session on a socket. Its reply strings are in
//! `crate::replies`, with every other reply avisd sends.

pub mod conn;
pub mod dot;
pub mod session;
/// The spooled body lives in `message` now; this path stays for the users outside the crate.
pub use crate::message::spool;
