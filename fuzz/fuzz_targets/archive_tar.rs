#![no_main]
//! The tar reader of filter::decode::archive, and what it finds inside.

libfuzzer_sys::fuzz_target!(|data: &[u8]| avis_fuzz::archive("tar", data));
