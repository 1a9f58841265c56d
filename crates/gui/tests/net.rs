//! The GUI's network task runs commands beside the connection's events: a request the server
//! is slow to answer (a new file it must hash before `download_ready`) holds up neither the
//! chat nor a pause clicked meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use client::{Command, DownloadOptions, Event, TransferEvent, TransferState, Trust};
use gui::net::{Net, Update};
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_support::fake_server;

/// Less than the 10 s the client waits for an answer: an update that only comes once the slow
/// request has given up comes too late.
const SOON: Duration = Duration::from_secs(8);

/// Drains updates until one for which `wanted` holds; fails on an error or after [`SOON`].
fn wait_for(net: &mut Net, what: &str, mut wanted: impl FnMut(&Update) -> bool) {
    let start = Instant::now();
    while start.elapsed() < SOON {
        while let Some(update) = net.poll() {
            if let Update::Error(error) = &update {
                panic!("an error before {what}: {error}");
            }
            if wanted(&update) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no {what} within {SOON:?}");
}

fn transfer_of(update: &Update, id: u64) -> Option<&TransferState> {
    match update {
        Update::Event(Event::Transfer(TransferEvent { id: got, state, .. })) if *got == id => {
            Some(state)
        }
        _ => None,
    }
}

#[test]
fn a_slow_answer_holds_up_neither_chat_nor_a_pause() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(fake_server::slow_to_answer());
    let dest = tempfile::tempdir().unwrap();
    let mut net = Net::start_with(rt.handle(), Arc::new(|| {}), Trust::pinned(server.key));
    net.connect(server.addr.to_string(), client::Login::guest("alice"), None);
    wait_for(&mut net, "connected", |u| {
        matches!(u, Update::Connected { .. })
    });
    let download = |file: &str| Command::Download {
        file: file.into(),
        opts: DownloadOptions {
            dir: dest.path().to_path_buf(),
            ..DownloadOptions::default()
        },
    };

    net.send(download("big.bin"));
    wait_for(&mut net, "the transfer's start", |u| {
        matches!(transfer_of(u, 1), Some(TransferState::Started { .. }))
    });
    net.send(download("slow.bin"));
    wait_for(
        &mut net,
        "the chat message",
        |u| matches!(u, Update::Event(Event::Message { text, .. }) if text == "still there?"),
    );
    net.send(Command::Pause(1));
    wait_for(&mut net, "the pause", |u| {
        matches!(
            transfer_of(u, 1),
            Some(TransferState::Paused {
                at_pause_point: false,
                ..
            })
        )
    });
}
