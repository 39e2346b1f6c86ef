//! receive: the inbound ESMTP/LMTP protocol (a sans-IO state machine), the body spool,
//! every reply string, and the connection driver that runs a session on a socket.

pub mod conn;
pub mod replies;
pub mod session;
pub mod spool;
