#![no_main]
//! Frames from the AgentX master: the codec, and the session's answer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| avis_fuzz::agentx_frame(data));
