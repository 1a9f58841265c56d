//! Packet protection's unit tests.
use super::*;
use crate::packet::{Frame, Packet};

fn plain(pn: u64, frame: Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = packet::encode(
        &Packet {
            conn_id: 5,
            pn,
            frame,
        },
        &mut buf,
    )
    .unwrap();
    buf.truncate(n + TAG_LEN);
    buf
}

fn pair(suite: Suite) -> (Keys, Keys) {
    let secret = Secret([7; 32]);
    let mut sender = Keys::for_sender(&secret);
    sender.set_suite(suite);
    (sender, Keys::for_receiver(&secret, suite))
}

#[test]
fn a_sealed_packet_opens_once_on_the_other_end_and_nowhere_else() {
    for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
        let (mut sender, mut receiver) = pair(suite);
        let mut datagram = plain(
            3,
            Frame::Data {
                offset: 9,
                payload: b"secret file bytes",
            },
        );
        let len = datagram.len() - TAG_LEN;
        let original = datagram[..len].to_vec();
        assert_eq!(sender.seal(&mut datagram, len), Some(datagram.len()));
        assert!(
            !datagram.windows(6).any(|w| w == b"secret"),
            "the body is encrypted"
        );
        assert_eq!(
            datagram[..HEADER_LEN],
            original[..HEADER_LEN],
            "header clear"
        );
        // The sender cannot open its own packets (each direction has its own key).
        assert_eq!(
            sender.open(&mut datagram.clone()),
            Err(OpenError::Forged),
            "{suite:?}"
        );
        let mut copy = datagram.clone();
        assert_eq!(receiver.open(&mut copy), Ok(len));
        assert_eq!(copy[..len], original[..]);
        assert_eq!(
            receiver.open(&mut datagram.clone()),
            Err(OpenError::Replayed)
        );
    }
}

#[test]
fn any_change_to_a_packet_makes_it_not_open() {
    let (sender, _) = pair(Suite::Aes256Gcm);
    let mut datagram = plain(100, Frame::Abort { reason: 1 });
    let len = datagram.len() - TAG_LEN;
    sender.seal(&mut datagram, len).unwrap();
    for i in 0..datagram.len() {
        let mut changed = datagram.clone();
        changed[i] ^= 0x40;
        let (_, mut receiver) = pair(Suite::Aes256Gcm);
        assert!(receiver.open(&mut changed).is_err(), "byte {i} changed");
    }
    for cut in 1..datagram.len() {
        let (_, mut receiver) = pair(Suite::Aes256Gcm);
        let mut short = datagram[..datagram.len() - cut].to_vec();
        assert!(receiver.open(&mut short).is_err(), "{cut} bytes cut");
    }
    // Another transfer's keys, or another suite, open nothing.
    let mut other = Keys::for_receiver(&Secret([8; 32]), Suite::Aes256Gcm);
    assert_eq!(other.open(&mut datagram.clone()), Err(OpenError::Forged));
    let (_, mut chacha) = pair(Suite::ChaCha20Poly1305);
    assert_eq!(chacha.open(&mut datagram.clone()), Err(OpenError::Forged));
    let (_, mut receiver) = pair(Suite::Aes256Gcm);
    assert!(receiver.open(&mut datagram).is_ok());
}

#[test]
fn the_hello_is_sealed_with_aes_whatever_the_suite_and_only_by_the_receiver() {
    let (mut sender, receiver) = pair(Suite::ChaCha20Poly1305);
    let mut hello = plain(
        0,
        Frame::Hello {
            suite: Suite::ChaCha20Poly1305.code(),
            offset: 0,
            max_offset: 10,
            max_datagram: 1452,
        },
    );
    let len = hello.len() - TAG_LEN;
    assert_eq!(sender.seal(&mut hello.clone(), len), None);
    receiver.seal(&mut hello, len).unwrap();
    let mut fresh = Keys::for_sender(&Secret([7; 32]));
    assert_eq!(fresh.open(&mut hello.clone()), Ok(len));
    assert_eq!(sender.open(&mut hello), Ok(len));
}

#[test]
fn the_replay_window_refuses_repeats_and_numbers_too_old() {
    let mut w = ReplayWindow::default();
    assert!(w.is_fresh(1000));
    w.mark(1000);
    assert!(!w.is_fresh(1000));
    assert!(w.is_fresh(999), "older but in the window, unseen");
    w.mark(999);
    assert!(!w.is_fresh(999));
    assert!(w.is_fresh(1001));
    w.mark(1000 + ReplayWindow::SIZE - 1);
    assert!(!w.is_fresh(999), "below the window now");
    assert!(!w.is_fresh(1000), "still in the window, and seen");
    assert!(w.is_fresh(1001), "in the window, unseen");
    // Jumps of every size clear what leaves the window, and only that.
    for jump in [1, 2, 63, 64, 65, 127, 128, 1000, 4095, 4096, 4097, 100_000] {
        let mut w = ReplayWindow::default();
        for pn in 0..200 {
            w.mark(pn);
        }
        w.mark(199 + jump);
        for pn in 200..199 + jump {
            let in_window = 199 + jump - pn < ReplayWindow::SIZE;
            assert_eq!(w.is_fresh(pn), in_window, "jump {jump}, pn {pn}");
        }
        for pn in 0..200 {
            assert!(!w.is_fresh(pn), "jump {jump}, pn {pn} seen or too old");
        }
        assert!(!w.is_fresh(199 + jump));
    }
}

#[test]
fn the_key_schedule_matches_the_documented_one() {
    // The vector in docs/TRANSPORT.md: secret 00 01 .. 1f, packet number 1, an ABORT with
    // reason 1 from the receiver on connection 0x0102030405060708.
    let secret = Secret(std::array::from_fn(|i| i as u8));
    let keys = Keys::for_receiver(&secret, Suite::Aes256Gcm);
    let mut buf = vec![0u8; 64];
    let n = packet::encode(
        &Packet {
            conn_id: 0x0102_0304_0506_0708,
            pn: 1,
            frame: Frame::Abort { reason: 1 },
        },
        &mut buf,
    )
    .unwrap();
    let n = keys.seal(&mut buf, n).unwrap();
    let hex: String = buf[..n].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, TEST_VECTOR);
}

/// Also computed by the Python script in docs/TRANSPORT.md (with the `cryptography`
/// package), an implementation independent of ours.
const TEST_VECTOR: &str =
    "0207010203040506070800000000000000017a4d09c1665a2dce3ef0e8405934dfbba76b";
