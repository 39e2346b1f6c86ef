#![no_main]
//! avisd's configuration parser on arbitrary text.

libfuzzer_sys::fuzz_target!(|data: &[u8]| avis_fuzz::filter_config(data));
