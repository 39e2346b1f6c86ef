#![no_main]
//! A whole message through filter::decode::decode (MIME tree, transfer decoding, archives).

libfuzzer_sys::fuzz_target!(|data: &[u8]| avis_fuzz::mime(data));
