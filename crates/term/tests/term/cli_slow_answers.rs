//! A request the server is slow to answer (a new file it must hash before `download_ready`)
//! holds up nothing else in the terminal client: chat arriving meanwhile is shown at once, and
//! a pause typed meanwhile applies at once. Proven with the real binary against a server that
//! never answers that request (the client gives up on it after 10 s).

use crate::common::Cli;
use crate::common::fake_server::slow_to_answer;
use serde_json::Value;

/// The next event that is not a transfer's progress.
async fn next_not_progress(cli: &mut Cli) -> Value {
    loop {
        let event = cli.event().await;
        if event["state"] != "progress" {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_holds_up_neither_chat_nor_a_pause() {
    let server = slow_to_answer().await;
    let dest = tempfile::tempdir().unwrap();
    let dir = dest.path().to_str().unwrap();
    let addr = server.addr.to_string();
    let mut cli = Cli::spawn_to(&addr, Some(&server.key), "alice", &["--download-dir", dir]);
    cli.connected().await;

    cli.type_line("/get big.bin").await;
    let started = next_not_progress(&mut cli).await;
    assert_eq!(
        (started["state"].as_str(), started["id"].as_u64()),
        (Some("started"), Some(1)),
        "{started}"
    );

    // The server answers this one only with a chat message: the message is shown while the
    // request still waits (before it times out, which would show as an `error`).
    cli.type_line("/get slow.bin").await;
    let message = next_not_progress(&mut cli).await;
    assert_eq!(
        (message["event"].as_str(), message["text"].as_str()),
        (Some("message"), Some("still there?")),
        "{message}"
    );

    // And a pause typed while the request waits applies to the running transfer at once, long
    // before the 4 GiB are in.
    cli.type_line("/pause 1").await;
    let paused = next_not_progress(&mut cli).await;
    assert_eq!(
        (paused["event"].as_str(), paused["state"].as_str()),
        (Some("transfer"), Some("paused")),
        "{paused}"
    );
    assert_eq!(paused["reason"], "user");
}
