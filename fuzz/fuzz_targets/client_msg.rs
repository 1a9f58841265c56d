//! libFuzzer entry for [`fuzzing::client_msg`]; the stable runner calls the same function.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::client_msg(data));
