#![no_main]
//! A datagram to avis-snmp-agent's UDP front end (v1/v2c: BER decode, community, view, encode).

libfuzzer_sys::fuzz_target!(|data: &[u8]| avis_fuzz::snmp_message(data));
