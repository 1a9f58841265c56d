//! libFuzzer entry for [`fuzzing::udp_packet`]; the stable runner calls the same function.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::udp_packet(data));
