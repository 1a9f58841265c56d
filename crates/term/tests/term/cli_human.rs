//! The terminal client's output for people, when the texts it shows are hostile: no string
//! from the network may forge a line or reach the terminal as an escape sequence.

use crate::common::fake_server::{FakeServer, Script};
use crate::common::{WAIT, messenger, start_with};
use client::Client;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

const FORGED: &str = "[12:00:00] [private] admin: send me your password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_texts_cannot_forge_lines_or_reach_the_terminal() {
    let server = start_with(|_| {}).await;
    let mut victim = messenger(Some(&server.key()))
        .args(["--server", &server.addr, "--name", "victim"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(victim.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap();
    assert!(first.unwrap().unwrap().contains("connected"));

    let (attacker, _events) = Client::connect(&server.addr, "mallory", &server.trust())
        .await
        .unwrap();
    let attacks = [
        format!("hi\n{FORGED}"),
        format!("hi\r{FORGED}"),
        "\u{1b}]0;pwned\u{7}window title".to_owned(),
        "\u{1b}[2K\u{1b}[1A\u{1b}[31merase and colour".to_owned(),
        "\u{9b}2Jc1 erase".to_owned(),
        "evil\u{202e}txt.exe".to_owned(),
        format!("line\u{2028}{FORGED}"),
    ];
    for text in &attacks {
        attacker.send_all(text.clone()).await.unwrap();
        attacker.send_private("victim", text.clone()).await.unwrap();
    }
    attacker.send_all("the end").await.unwrap();

    let mut shown = Vec::new();
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("the last message never showed")
            .unwrap()
            .expect("stdout ended");
        let done = line.ends_with("the end");
        shown.push(line);
        if done {
            break;
        }
    }
    let messages: Vec<&String> = shown.iter().filter(|l| l.contains("mallory:")).collect();
    assert_eq!(messages.len(), 2 * attacks.len() + 1, "{shown:#?}");
    for line in &shown {
        assert!(!line.starts_with("[12:00:00]"), "a forged line: {line:?}");
        assert!(
            !line.chars().any(wire::is_hidden_control),
            "a control character reached the terminal: {line:?}"
        );
    }
    assert!(
        shown.iter().any(|l| l.contains("hi\\n[12:00:00]")),
        "{shown:#?}"
    );
    assert!(shown.iter().any(|l| l.contains("evil\\u{202e}txt.exe")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_name_with_a_newline_cannot_split_the_printed_path() {
    let server = start_with(|_| {}).await;
    let name = "two\nlines.txt";
    std::fs::write(server.files.path().join(name), b"data").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = messenger(Some(&server.key()))
        .args(["--server", &server.addr, "--name", "getter"])
        .args(["--download-dir", dir.path().to_str().unwrap()])
        .args(["get", name])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let saved = dir.path().canonicalize().unwrap().join("two_lines.txt");
    assert_eq!(stdout.trim_end(), saved.to_str().unwrap());
    assert_eq!(std::fs::read(saved).unwrap(), b"data");
    assert!(!stderr.contains('\n') || stderr.lines().all(|l| !l.starts_with("lines.txt")));
}

/// Runs the human client against a server that greets it with `greet`, and returns what it
/// printed (stdout, stderr) before it exited.
async fn greeted(
    greet: impl Fn(&str) -> Vec<bytes::Bytes> + Send + Sync + 'static,
) -> (String, String) {
    let server = FakeServer::greeting(greet, || -> Script { Box::new(|_| vec![]) }).await;
    let out = tokio::time::timeout(
        WAIT,
        messenger(Some(&server.key))
            .args(["--server", &server.addr.to_string(), "--name", "victim"])
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("the client never exited")
    .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const EVIL: &str = "x\u{1b}]0;pwned\u{7}\n[12:00:00] [private] admin: forged";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_welcome_name_or_refusal_cannot_reach_the_terminal() {
    let (stdout, _) = greeted(|_| {
        vec![
            wire::ServerMsg::Welcome {
                version: 1,
                name: EVIL.into(),
                users: vec![],
                server: "fake".into(),
                account: false,
            }
            .to_frame(),
        ]
    })
    .await;
    assert!(stdout.contains("connected"), "{stdout}");
    let (_, stderr) = greeted(|_| {
        vec![wire::ServerMsg::error(None, wire::ErrorCode::NameTaken, EVIL).to_frame()]
    })
    .await;
    assert!(stderr.contains("refused"), "{stderr}");
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
        assert!(
            text.lines().all(|l| !l.starts_with("[12:00:00]")),
            "a forged line: {text:?}"
        );
    }
}
