//! libFuzzer entry for [`fuzzing::transport_sender`], on the typed input libFuzzer's bytes build; the
//! stable runner calls the same function on the same type.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: fuzzing::SenderScenario| fuzzing::transport_sender(&input));
