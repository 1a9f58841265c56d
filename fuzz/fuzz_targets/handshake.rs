//! libFuzzer entry for [`fuzzing::handshake`]; the stable runner calls the same function.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::handshake(data));
