//! libFuzzer entry for [`fuzzing::control_frame`]; the stable runner calls the same function.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::control_frame(data));
