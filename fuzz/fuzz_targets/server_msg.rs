//! libFuzzer entry for [`fuzzing::server_msg`], on the typed input libFuzzer's bytes build; the
//! stable runner calls the same function on the same type.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: fuzzing::MsgInput<fuzzing::ServerMsgChoice>| {
    fuzzing::server_msg(&input)
});
