//! libFuzzer entry for [`fuzzing::server_session`], on the typed input libFuzzer's bytes build; the
//! stable runner calls the same function on the same type.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: fuzzing::Session| fuzzing::server_session(&input));
