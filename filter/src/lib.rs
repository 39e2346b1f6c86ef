//! avisd, the avis mail content filter. Modules follow the life of a message:
//! accept → receive → (decode → check → decide) → act → forward → record, with
//! `pipeline` the one place that sequences them, and `message` and `config` shared.
//! The filter never talks SNMP: it writes the scoreboard (agent-mib) and JSON events.

pub mod accept;
pub mod act;
pub mod check;
pub mod config;
pub mod decide;
pub mod decode;
pub mod forward;
pub mod message;
pub mod mime;
pub mod pipeline;
pub mod receive;
pub mod record;
pub mod replies;
