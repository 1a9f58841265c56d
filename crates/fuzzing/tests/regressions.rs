//! Inputs on which a target once failed, kept as tests so the bug stays fixed. Each names what
//! was wrong and where it was fixed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// An ACK whose newest range ends at packet number u64::MAX was encoded but refused by the
/// decoder (transport-proto/src/packet.rs compared against a bound that started at u64::MAX).
#[test]
fn udp_packet_ack_ending_at_the_last_packet_number() {
    fuzzing::udp_packet(&unhex(
        "c484484d9548891f0bceacc486b5478da33b767d9affdf316a0750b3",
    ));
}

/// A DATA packet far beyond the window, before the HELLO_ACK, was written: the Vec sink
/// panicked with a capacity overflow (transport-proto/src/receiver/ now drops data beyond the
/// window it could have granted).
#[test]
fn transport_receiver_data_beyond_the_window() {
    fuzzing::transport_receiver(&unhex(
        "2328030100fc0af0ff00030004020005080a000300060700020202000300030004020005080a000300060700020202000300030004020005080a00030006070002020200032328030100fc0af0ff00030004020005080a000300060700020202000300030004020005080a000300060700020202000300030004020005080a00030006070002020200030bb8030100fcf550ff00030002000901001301076d657373656e67650000000000000005000a00ff00050110000300020003000202020003030002020202000300020003000202020003030002020202000300020003000202020003030002020202",
    ));
}

/// A receiver that resumed at the stream's end and lost every CLOSE finished with no last byte
/// for a non-empty stream; the event's contract now says so (transport-proto/src/lib.rs).
#[test]
fn transport_receiver_resumed_at_the_end_without_a_close() {
    fuzzing::transport_receiver(&unhex(
        "020003000201020003030002020202000300020003000300030004020005080a00030006070002020200\
         0300030004020005080a0003000607000202020003",
    ));
}

/// Found by libFuzzer: a packet numbered u64::MAX, then any other, overflowed `largest + 1` in
/// the receiver's loss count (transport-proto/src/receiver/ now saturates).
#[test]
fn transport_receiver_packet_number_u64_max() {
    fuzzing::transport_receiver(&unhex(
        "230202000300030004020005081a000300060700020202000300030004020005080a060a0000ffff\
         ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\
         ffffffffffffffffffffff050803000700020202000300030004020005080a000300060700020202\
         0003",
    ));
}

/// Found by the stable campaign when the sender began to hold the stream itself: its probe
/// timeout chose data the receiver had acknowledged through another copy, dropped it as
/// acknowledged and sent nothing, so a lost window update was never asked for again and the
/// flow idled out (transport-proto/src/sender/transmit.rs: a probe carries unacknowledged data
/// or a PING).
#[test]
fn transport_receiver_probe_of_data_acknowledged_through_another_copy() {
    fuzzing::transport_receiver(&unhex(
        "2329030100fc0af0ff000300030100fc0af0ff00030004020005080a0003000607000202020003000300\
         fc0af0ff00030004020005080a000300060700020202000300030004020005080a000300060700020202\
         000300030004020005080a0004020005080a000300060700020202000300030004020005080a00030006\
         07000202020003",
    ));
}
