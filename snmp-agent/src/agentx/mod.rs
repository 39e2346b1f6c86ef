//! The AgentX subagent front end (RFC 2741): [`codec`] is the wire format, [`session`]
//! the connection's state machine (connect → open → register → serve, with pings, and
//! back to connect with back-off whenever the master goes away).

pub mod codec;
pub mod session;
