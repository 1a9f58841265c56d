//! libFuzzer entry for [`fuzzing::transport_receiver`]; the stable runner calls the same function.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::transport_receiver(data));
