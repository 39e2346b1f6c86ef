#![no_main]
//! A datagram to avis-snmp-agent's UDP front end with SNMPv3 users (USM).

libfuzzer_sys::fuzz_target!(|data: &[u8]| avis_fuzz::snmp_usm(data));
