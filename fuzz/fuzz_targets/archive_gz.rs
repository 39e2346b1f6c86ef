#![no_main]
//! The gz reader of filter::decode::archive, and what it finds inside.

libfuzzer_sys::fuzz_target!(|data: &[u8]| avis_fuzz::archive("gz", data));
