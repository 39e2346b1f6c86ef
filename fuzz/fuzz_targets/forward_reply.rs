#![no_main]
//! The forward client (filter::forward::client) reading a back end's replies.

libfuzzer_sys::fuzz_target!(|data: &[u8]| avis_fuzz::forward_reply(data));
