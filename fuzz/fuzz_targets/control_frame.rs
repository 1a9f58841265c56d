//! libFuzzer entry for [`fuzzing::control_frame`], on the typed input libFuzzer's bytes build; the
//! stable runner calls the same function on the same type.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: fuzzing::FrameInput| fuzzing::control_frame(&input));
