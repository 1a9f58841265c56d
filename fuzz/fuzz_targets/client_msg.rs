//! libFuzzer entry for [`fuzzing::client_msg`], on the typed input libFuzzer's bytes build; the
//! stable runner calls the same function on the same type.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: fuzzing::MsgInput<fuzzing::ClientMsgChoice>| {
    fuzzing::client_msg(&input)
});
