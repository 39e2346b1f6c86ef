#![no_main]
//! avis-snmp-agent's configuration parser on arbitrary text.

libfuzzer_sys::fuzz_target!(|data: &[u8]| avis_fuzz::snmp_config(data));
