//! avisd, the avis mail content filter. Modules follow the life of a message:
//! accept → receive → (decode → check → decide) → act → forward → record, with
//! `pipeline` the one place that sequences them, `message` and `config` beneath them all,
//! and `daemon` the wiring on top. `tests/layering.rs` enforces that order
//! (docs/architecture.md).
//! The filter never talks SNMP: it writes the scoreboard (agent-mib) and JSON events.

pub mod accept;
pub mod act;
pub mod check;
pub mod config;
pub mod daemon;
pub mod decide;
pub mod decode;
pub mod forward;
pub mod message;
pub mod mime;
pub mod pipeline;
pub mod receive;
pub mod record;
pub mod replies;
