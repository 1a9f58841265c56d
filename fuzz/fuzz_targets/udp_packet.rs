//! libFuzzer entry for [`fuzzing::udp_packet`], on the typed input libFuzzer's bytes build; the
//! stable runner calls the same function on the same type.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: fuzzing::PacketInput| fuzzing::udp_packet(&input));
