//! Accounts, history and offline messages from the terminal: the `messenger` binary registers,
//! logs in with a password from the environment or a file (never the command line), pages
//! history, is told of a message kept for an offline user and receives its own, changes its
//! password and deletes its account.

use crate::common::{Cli, TestServer, start_with};
use client::{Client, Event, Events};
use serde_json::Value;

async fn server() -> TestServer {
    start_with(|c| {
        c.password_cost = server::accounts::Cost {
            memory_kib: 64,
            passes: 1,
            lanes: 1,
        };
    })
    .await
}

/// The next event named `name`, skipping others (joins, leaves).
async fn event_named(cli: &mut Cli, name: &str) -> Value {
    loop {
        let event = cli.event().await;
        if event["event"] == name {
            return event;
        }
    }
}

async fn wait_for(events: &mut Events, pred: impl Fn(&Event) -> bool) -> Event {
    test_support::wait_for(events, pred).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_registers_pages_history_and_gets_what_waited_for_it() {
    let server = server().await;
    let key = server.key();
    let (bob, mut bob_events) = Client::connect(&server.addr, "bob", &server.trust())
        .await
        .unwrap();
    for i in 0..3 {
        bob.send_all(format!("before alice {i}")).await.unwrap();
    }

    // Registering as it joins, the password from the environment.
    let env = [("MESSENGER_PASSWORD", "alice's first password")];
    let mut cli = Cli::spawn_env(&server.addr, Some(&key), "alice", &["--register"], &env);
    let connected = cli.connected().await;
    assert_eq!(connected["account"], true, "{connected}");
    // What was said before it joined comes first, marked as history.
    for i in 0..3 {
        let msg = event_named(&mut cli, "message").await;
        assert_eq!(msg["text"], format!("before alice {i}"));
        assert_eq!(msg["history"], true, "{msg}");
        assert!(msg["id"].as_u64().is_some(), "{msg}");
    }
    cli.type_line("/history 2").await;
    let page = event_named(&mut cli, "history").await;
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["before alice 1", "before alice 2"], "{page}");
    assert_eq!(page["more"], true);
    let first = page["messages"][0]["id"].as_u64().unwrap();
    cli.type_line(&format!("/history 5 --before {first}")).await;
    let older = event_named(&mut cli, "history").await;
    assert_eq!(older["messages"][0]["text"], "before alice 0", "{older}");
    assert_eq!(older["more"], false);

    // A new password: the script gives it on the next line (the current one is known).
    cli.type_line("/passwd").await;
    cli.type_line("alice's second password").await;
    event_named(&mut cli, "password_changed").await;
    cli.type_line("/quit").await;
    assert_eq!(cli.exit_code().await, 0);
    wait_for(
        &mut bob_events,
        |e| matches!(e, Event::Left { name, .. } if name == "alice"),
    )
    .await;

    // Alice is offline: bob's private message is kept for her.
    bob.send_private("alice", "call me").await.unwrap();
    let queued = wait_for(&mut bob_events, |e| matches!(e, Event::Queued { .. })).await;
    assert!(matches!(&queued, Event::Queued { to, .. } if to == "alice"));

    // The old password no longer logs in; the new one, from a file, does.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "alice's first password\n").unwrap();
    let file_arg = file.to_str().unwrap();
    let mut refused = Cli::spawn_with(&server, "alice", &["--password-file", file_arg]);
    let error = event_named(&mut refused, "error").await;
    assert_eq!(error["code"], "auth_failed", "{error}");
    assert_eq!(refused.exit_code().await, 1);

    std::fs::write(&file, "alice's second password\n").unwrap();
    // Past the wait the failure brought.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let mut cli = Cli::spawn_with(&server, "alice", &["--password-file", file_arg]);
    assert_eq!(cli.connected().await["account"], true);
    let waited = loop {
        let msg = event_named(&mut cli, "message").await;
        if msg["offline"] == true {
            break msg;
        }
    };
    assert_eq!(
        (
            waited["from"].as_str(),
            waited["text"].as_str(),
            waited["private"].as_bool()
        ),
        (Some("bob"), Some("call me"), Some(true)),
        "{waited}"
    );
    cli.type_line("/history bob").await;
    let private = event_named(&mut cli, "history").await;
    assert_eq!(private["with"], "bob");
    assert_eq!(private["messages"][0]["to"], "alice", "{private}");

    // A password on the command's line is refused, not sent; then the account goes.
    cli.type_line("/unregister alice's second password").await;
    assert_eq!(
        event_named(&mut cli, "error").await["code"],
        "bad_arguments"
    );
    cli.type_line("/unregister").await;
    event_named(&mut cli, "account_deleted").await;
    cli.type_line("/quit").await;
    assert_eq!(cli.exit_code().await, 0);
    // The name is free again: a guest takes it.
    let guest = Client::connect(&server.addr, "alice", &server.trust()).await;
    assert!(guest.is_ok_and(|(c, _)| !c.is_account()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_registers_with_a_password_given_on_the_next_line_and_register_needs_one() {
    let server = server().await;
    let key = server.key();
    let mut cli = Cli::spawn_env(&server.addr, Some(&key), "carol", &[], &[]);
    assert_eq!(cli.connected().await["account"], false);
    cli.type_line("/register").await;
    cli.type_line("carol's password").await;
    let registered = event_named(&mut cli, "registered").await;
    assert_eq!(registered["name"], "carol");
    cli.type_line("/quit").await;
    assert_eq!(cli.exit_code().await, 0);
    // Now the name needs the password, and a script that has none is refused.
    let mut refused = Cli::spawn_env(&server.addr, Some(&key), "carol", &[], &[]);
    assert_eq!(
        event_named(&mut refused, "error").await["code"],
        "auth_failed"
    );
    assert_eq!(refused.exit_code().await, 1);
    let env = [("MESSENGER_PASSWORD", "carol's password")];
    let mut cli = Cli::spawn_env(&server.addr, Some(&key), "carol", &[], &env);
    assert_eq!(cli.connected().await["account"], true);
    drop(cli);
    // --register in a script with no password is refused before connecting.
    let no_password = Cli::spawn_env(&server.addr, Some(&key), "dave", &["--register"], &[]);
    assert_eq!(no_password.exit_code().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_get_logs_in_to_a_registered_name_with_its_password() {
    let server = server().await;
    std::fs::write(server.files.path().join("one.bin"), [9u8; 4321]).unwrap();
    let (frank, _events) = Client::connect_as(
        &server.addr,
        &client::Login {
            name: "frank".into(),
            password: Some(client::Password::new("frank's password")),
            register: true,
        },
        None,
        &server.trust(),
    )
    .await
    .unwrap();
    frank.quit().await.unwrap();
    let dest = tempfile::tempdir().unwrap();
    let get = |password: Option<&str>| {
        let mut cmd = crate::common::messenger(Some(&server.key()));
        cmd.args([
            "--server",
            &server.addr,
            "--name",
            "frank",
            "--download-dir",
        ])
        .arg(dest.path())
        .args(["get", "one.bin"])
        .stdin(std::process::Stdio::null());
        if let Some(password) = password {
            cmd.env("MESSENGER_PASSWORD", password);
        }
        cmd
    };
    // Without the password (and nobody to ask), the name is refused.
    let output = get(None).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("wrong name or password"), "{stderr}");
    let output = get(Some("frank's password")).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        std::fs::read(dest.path().join("one.bin")).unwrap(),
        [9u8; 4321]
    );
}
