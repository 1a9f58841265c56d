//! The decoders meet arbitrary bytes from the network: they must never panic, and whatever they
//! accept must survive a round trip.

use bytes::BytesMut;
use proptest::prelude::*;
use tokio_util::codec::Decoder;
use wire::{ClientMsg, FrameCodec, ServerMsg};

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,64}", "[a-z]{1,8}"]
}

fn any_client_msg() -> impl Strategy<Value = ClientMsg> {
    let req = proptest::option::of(any::<u64>());
    prop_oneof![
        (
            any::<u32>(),
            any_text(),
            proptest::option::of(any_text()),
            any::<bool>()
        )
            .prop_map(|(version, name, password, register)| ClientMsg::Hello {
                version,
                name,
                password,
                register
            }),
        (any_text(), req.clone()).prop_map(|(text, req)| ClientMsg::SendAll { text, req }),
        (any_text(), any_text(), req.clone()).prop_map(|(to, text, req)| ClientMsg::SendPrivate {
            to,
            text,
            req
        }),
        req.clone().prop_map(|req| ClientMsg::ListUsers { req }),
        req.clone().prop_map(|req| ClientMsg::ListFiles {
            req,
            after: None,
            limit: None,
        }),
        (any_text(), req.clone()).prop_map(|(file, req)| ClientMsg::Download { file, req }),
        (any::<u64>(), req.clone()).prop_map(|(id, req)| ClientMsg::Cancel { id, req }),
        (
            proptest::option::of(any_text()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u32>()),
            req.clone()
        )
            .prop_map(|(with, before, limit, req)| ClientMsg::History {
                with,
                before,
                limit,
                req
            }),
        (any_text(), req.clone()).prop_map(|(password, req)| ClientMsg::Register { password, req }),
        (any_text(), any_text(), req.clone()).prop_map(|(password, new_password, req)| {
            ClientMsg::ChangePassword {
                password,
                new_password,
                req,
            }
        }),
        (any_text(), req.clone())
            .prop_map(|(password, req)| ClientMsg::DeleteAccount { password, req }),
        Just(ClientMsg::Ping),
        Just(ClientMsg::Quit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn frame_decoder_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
        let mut codec = FrameCodec::new(256);
        let mut buf = BytesMut::new();
        'outer: for chunk in chunks {
            buf.extend_from_slice(&chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        prop_assert!(!frame.is_empty() && frame.len() <= 256);
                        let _ = ClientMsg::decode(&frame);
                        let _ = ServerMsg::decode(&frame);
                    }
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
        }
    }

    #[test]
    fn message_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ClientMsg::decode(&bytes);
        let _ = ServerMsg::decode(&bytes);
    }

    #[test]
    fn json_shaped_garbage_never_panics(s in r#"\{("type":"[a-z_]{0,12}",?)?("[a-z]{1,6}":(-?[0-9]{1,20}|"[^"]{0,8}"|null|true|\[\]|\{\}),?){0,4}\}"#) {
        let _ = ClientMsg::decode(s.as_bytes());
        let _ = ServerMsg::decode(s.as_bytes());
    }

    #[test]
    fn client_messages_round_trip_through_frames(msgs in proptest::collection::vec(any_client_msg(), 1..8)) {
        let mut buf = BytesMut::new();
        for msg in &msgs {
            buf.extend_from_slice(&msg.to_frame());
        }
        let mut codec = FrameCodec::default();
        let mut decoded = Vec::new();
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            decoded.push(ClientMsg::decode(&frame).unwrap());
        }
        prop_assert_eq!(decoded, msgs);
    }
}
