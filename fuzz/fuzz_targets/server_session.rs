//! libFuzzer entry for [`fuzzing::server_session`]; the stable runner calls the same function.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::server_session(data));
