#![no_main]
//! The inbound ESMTP/LMTP session (filter::receive::session) fed a client's bytes.

libfuzzer_sys::fuzz_target!(|data: &[u8]| avis_fuzz::smtp_session(data));
