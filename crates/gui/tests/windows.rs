//! The GUI driven like a person would: egui_kittest clicks and types into the real UI state,
//! with a real server on 127.0.0.1 and, where needed, a second user from the client library.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use client::{Client, Event, Fingerprint, NewKey, Trust};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use gui::net::Net;
use gui::{ClientApp, Conversation, LogBuffer, ServerApp};
use server::{Config, Server, ServerHandle};
use std::sync::Arc;
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn start_server(rt: &tokio::runtime::Runtime, files: &std::path::Path) -> ServerHandle {
    rt.block_on(async {
        Server::bind(Config::local(files, 2))
            .await
            .unwrap()
            .spawn()
            .unwrap()
    })
}

/// A server whose passwords are cheap to hash, after `tweak`.
fn start_server_with(
    rt: &tokio::runtime::Runtime,
    files: &std::path::Path,
    tweak: impl FnOnce(&mut Config),
) -> ServerHandle {
    let mut config = Config::local(files, 2);
    config.password_cost = server::accounts::Cost {
        memory_kib: 64,
        passes: 1,
        lanes: 1,
    };
    tweak(&mut config);
    rt.block_on(async { Server::bind(config).await.unwrap().spawn().unwrap() })
}

/// Trust in `server`'s key and no other.
fn pinned(server: &ServerHandle) -> Trust {
    Trust::pinned(server.fingerprint())
}

/// Trust on first use, in the `known_servers` file `file`, asking about a new key.
fn first_use(file: &std::path::Path) -> Trust {
    Trust {
        native_roots: false,
        known_servers: Some(file.to_path_buf()),
        ..Trust::for_user(NewKey::Ask)
    }
}

fn client_window<'a>(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    dir: &std::path::Path,
    trust: Trust,
) -> Harness<'a, ClientApp> {
    let net = Net::start_with(rt.handle(), Arc::new(|| {}), trust);
    let mut app = ClientApp::new(net, addr.to_owned(), String::new(), dir.to_path_buf());
    // A fixed clock keeps the snapshots comparable from run to run.
    app.set_time_format(|_| "12:00:00".into());
    Harness::builder()
        .with_size(egui::vec2(1000.0, 640.0))
        .build_ui_state(|ui, app: &mut ClientApp| app.show(ui), app)
}

/// Steps the UI until `cond` holds (the network answers on other threads).
fn run_until<S>(harness: &mut Harness<'_, S>, what: &str, mut cond: impl FnMut(&S) -> bool) {
    for _ in 0..1000 {
        harness.step();
        if cond(harness.state()) {
            harness.run_steps(2);
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting until {what}");
}

fn type_into(harness: &mut Harness<'_, ClientApp>, label: &str, text: &str) {
    harness.get_by_label(label).focus();
    harness.step();
    harness.get_by_label(label).type_text(text);
    harness.step();
}

fn connect_as(harness: &mut Harness<'_, ClientApp>, name: &str) {
    type_into(harness, "Name", name);
    harness.get_by_label("Connect").click();
    run_until(harness, "connected", ClientApp::is_connected);
}

/// Hides what changes from run to run (ports and folders chosen by the OS) before a snapshot.
fn mask_volatile<S>(harness: &mut Harness<'_, S>) {
    let text_has = |node: &egui_kittest::kittest::AccessKitNode<'_>, what: &str| {
        let text = node.value().or_else(|| node.label()).unwrap_or_default();
        text.contains(what)
    };
    let mut volatile: Vec<egui::Rect> = harness
        .query_all_by(|node| text_has(node, "127.0.0.1:") || text_has(node, "/tmp"))
        .map(|node| node.rect())
        .collect();
    // A fingerprint in a proportional font (the log's) has a width of its own each run: its
    // mask runs to the window's right edge (nothing else is on its line).
    volatile.extend(
        harness
            .query_all_by(|node| text_has(node, "SHA256:"))
            .map(|node| node.rect().with_max_x(f32::MAX)),
    );
    for rect in volatile {
        harness.mask(rect);
    }
}

async fn next_message(events: &mut client::Events) -> (String, String, bool) {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap()
            .unwrap();
        if let Event::Message {
            from,
            text,
            private,
            ..
        } = event
        {
            return (from, text, private);
        }
    }
}

#[test]
fn chat_from_the_window_to_everyone_and_privately() {
    let rt = runtime();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("notes.txt"), b"hello").unwrap();
    let server = start_server(&rt, files.path());
    let addr = server.addr().to_string();
    let mut window = client_window(&rt, &addr, files.path(), pinned(&server));
    connect_as(&mut window, "alice");

    let trust = pinned(&server);
    let (bob, mut bob_events) = rt.block_on(Client::connect(&addr, "bob", &trust)).unwrap();
    run_until(&mut window, "bob is listed online", |app| {
        app.online().contains(&"bob".to_string())
    });
    window.get_by_label_contains("bob joined");

    // Send to everyone from the composer.
    type_into(&mut window, "To: everyone", "hello everyone");
    window.get_by_label("Send").click();
    window.run_steps(2);
    let got = rt.block_on(next_message(&mut bob_events));
    assert_eq!(got, ("alice".into(), "hello everyone".into(), false));

    // Receive a broadcast.
    rt.block_on(bob.send_all("hi alice")).unwrap();
    run_until(&mut window, "bob's message shows", |app| {
        app.lines(&Conversation::Everyone)
            .iter()
            .any(|l| l.text == "hi alice")
    });
    window.get_by_label("hi alice");

    // A private message arrives in its own conversation with an unread count.
    rt.block_on(bob.send_private("alice", "secret")).unwrap();
    run_until(&mut window, "the private message arrives", |app| {
        app.unread(&Conversation::With("bob".into())) == 1
    });
    window.get_by_label("bob (1)");

    // Clicking bob in the online list opens the private conversation; the reply is private.
    window.get_by_label("bob").click();
    window.run_steps(2);
    assert_eq!(window.state().selected(), &Conversation::With("bob".into()));
    assert_eq!(window.state().unread(&Conversation::With("bob".into())), 0);
    window.get_by_label("secret");
    type_into(&mut window, "To: bob", "psst");
    window.get_by_label("Send").click();
    window.run_steps(2);
    let got = rt.block_on(next_message(&mut bob_events));
    assert_eq!(got, ("alice".into(), "psst".into(), true));

    run_until(&mut window, "the file list arrives", |app| {
        !app.files().is_empty()
    });
    window.get_by_label("notes.txt");
    window.get_by_label("Everyone").click();
    window.run_steps(2);
    mask_volatile(&mut window);
    window.snapshot("client_chat");

    window.get_by_label("Log out").click();
    run_until(&mut window, "back on the connect screen", |app| {
        !app.is_connected()
    });
    rt.block_on(server.stop());
}

/// The fingerprint of the server a server window runs.
fn app_key(window: &Harness<'_, ServerApp>) -> String {
    window.state().handle().unwrap().fingerprint().to_string()
}

#[test]
fn a_new_server_key_is_shown_and_trusted_only_when_the_user_says_so() {
    let rt = runtime();
    let files = tempfile::tempdir().unwrap();
    let server = start_server(&rt, files.path());
    let addr = server.addr().to_string();
    let config = tempfile::tempdir().unwrap();
    let known = config.path().join("known_servers");
    let mut window = client_window(&rt, &addr, files.path(), first_use(&known));
    type_into(&mut window, "Name", "newcomer");
    window.get_by_label("Connect").click();
    run_until(&mut window, "the new key is shown", |app| {
        app.new_server_key().is_some()
    });
    let key = server.fingerprint().to_string();
    assert_eq!(window.state().new_server_key(), Some(&server.fingerprint()));
    window.get_by_label(&key);
    window.get_by_label_contains("is not a known server");
    // Cancel: nothing is trusted, nobody joined.
    window.get_by_label("Cancel").click();
    window.run_steps(2);
    assert!(window.state().new_server_key().is_none());
    assert!(!window.state().is_connected());
    assert!(!known.exists());
    assert!(server.users().is_empty());
    // Connect again and trust it: connected, and the key recorded for next time.
    window.get_by_label("Connect").click();
    run_until(&mut window, "the new key is shown again", |app| {
        app.new_server_key().is_some()
    });
    window.get_by_label("Trust").click();
    run_until(&mut window, "connected", ClientApp::is_connected);
    assert_eq!(server.users(), ["newcomer"]);
    let recorded = std::fs::read_to_string(&known).unwrap();
    assert_eq!(recorded, format!("{addr} {key}\n"));
    // A known key connects straight through, without asking.
    let mut again = client_window(&rt, &addr, files.path(), first_use(&known));
    connect_as(&mut again, "regular");
    rt.block_on(server.stop());
}

#[test]
fn a_changed_server_key_is_refused_in_red_naming_both_keys() {
    let rt = runtime();
    let files = tempfile::tempdir().unwrap();
    let server = start_server(&rt, files.path());
    let addr = server.addr().to_string();
    let config = tempfile::tempdir().unwrap();
    let known = config.path().join("known_servers");
    let old = Fingerprint::of_public_key(b"the key this server had before");
    std::fs::write(&known, format!("{addr} {old}\n")).unwrap();
    let mut window = client_window(&rt, &addr, files.path(), first_use(&known));
    type_into(&mut window, "Name", "wary");
    window.get_by_label("Connect").click();
    run_until(&mut window, "the refusal shows", |app| {
        app.connect_error().is_some()
    });
    let refusal = window.state().connect_error().unwrap().to_owned();
    for part in [
        old.to_string(),
        server.fingerprint().to_string(),
        known.display().to_string(),
    ] {
        assert!(refusal.contains(&part), "{refusal:?} lacks {part}");
    }
    window.get_by_label_contains("HAS CHANGED");
    assert!(
        window.state().new_server_key().is_none(),
        "never offered to trust it"
    );
    assert!(!window.state().is_connected());
    assert!(server.users().is_empty());
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        format!("{addr} {old}\n")
    );
    rt.block_on(server.stop());
}

#[test]
fn connect_errors_show_in_place() {
    let rt = runtime();
    let files = tempfile::tempdir().unwrap();
    let server = start_server(&rt, files.path());
    let addr = server.addr().to_string();
    let trust = pinned(&server);
    let _taken = rt
        .block_on(Client::connect(&addr, "carol", &trust))
        .unwrap();

    let mut window = client_window(&rt, &addr, files.path(), pinned(&server));
    type_into(&mut window, "Name", "carol");
    window.get_by_label("Connect").click();
    run_until(&mut window, "the refusal shows", |app| {
        app.connect_error().is_some()
    });
    assert!(window.state().connect_error().unwrap().contains("taken"));
    window.get_by_label_contains("already taken");
    mask_volatile(&mut window);
    window.snapshot("client_connect_error");

    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut window = client_window(&rt, &dead.to_string(), files.path(), pinned(&server));
    type_into(&mut window, "Name", "dave");
    window.get_by_label("Connect").click();
    run_until(&mut window, "the failure shows", |app| {
        app.connect_error().is_some()
    });
    assert!(
        window
            .state()
            .connect_error()
            .unwrap()
            .contains("cannot reach")
    );
}

#[test]
fn server_window_lists_users_and_stops() {
    let rt = runtime();
    let files = tempfile::tempdir().unwrap();
    let mut app = ServerApp::new(rt.handle().clone(), LogBuffer::default());
    app.start(Some(Config::local(files.path(), 3)));
    let mut window = Harness::builder()
        .with_size(egui::vec2(900.0, 560.0))
        .build_ui_state(|ui, app: &mut ServerApp| app.show(ui), app);
    // The server binds on the runtime; the window hears of it a frame later.
    run_until(&mut window, "the server listens", |app| {
        app.handle().is_some()
    });
    let addr = window.state().handle().unwrap().addr().to_string();
    let trust = pinned(window.state().handle().unwrap());
    let (_a, _ea) = rt.block_on(Client::connect(&addr, "ann", &trust)).unwrap();
    let (_b, _eb) = rt.block_on(Client::connect(&addr, "ben", &trust)).unwrap();
    window.run_steps(2);
    window.get_by_label("Online (2)");
    window.get_by_label("ann");
    window.get_by_label("ben");
    window.get_by_label("UDP ports in use: 0 of 3");
    window.get_by_label_contains("listening on");
    // The key clients compare, shown in the window and the log.
    let key = app_key(&window);
    window.get_by_label(&key);
    window.get_by_label(&format!("TLS key fingerprint {key}"));
    mask_volatile(&mut window);
    window.snapshot("server_window");

    // A transfer shows with its file, user, UDP port and rate.
    std::fs::write(files.path().join("f.bin"), vec![5u8; 4_000_000]).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let opts = client::DownloadOptions {
        dir: dest.path().to_path_buf(),
        pause_at: Some(50.0),
        ..client::DownloadOptions::default()
    };
    let (ann, mut ann_events) = (_a, _ea);
    rt.block_on(ann.download("f.bin", opts)).unwrap();
    rt.block_on(async {
        loop {
            if let Some(Event::Transfer(client::TransferEvent {
                state: client::TransferState::Paused { .. },
                ..
            })) = ann_events.recv().await
            {
                break;
            }
        }
    });
    window.run_steps(2);
    let port = window.state().handle().unwrap().transfers().list()[0]
        .port
        .unwrap();
    window.get_by_label("f.bin");
    window.get_by_label(&port.to_string());
    window.get_by_label("UDP ports in use: 1 of 3");
    window.get_by_label("0 B/s"); // paused: nothing moves
    assert_eq!(
        window.query_all_by_label("ann").count(),
        2,
        "online and as the downloader"
    );

    window.get_by_label("Stop").click();
    window.run_steps(2);
    assert!(window.state().handle().is_none());
    window.get_by_label("Start");
}

#[test]
fn download_asks_to_continue_half_way_then_finishes() {
    let rt = runtime();
    let files = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(files.path().join("movie.bin"), &data).unwrap();
    let server = start_server(&rt, files.path());
    let dest = tempfile::tempdir().unwrap();
    let mut window = client_window(
        &rt,
        &server.addr().to_string(),
        dest.path(),
        pinned(&server),
    );
    connect_as(&mut window, "viewer");
    run_until(&mut window, "the file list arrives", |app| {
        !app.files().is_empty()
    });
    window.get_by_label("movie.bin");

    window.get_by_label("Ask to continue at 50%").click();
    window.run_steps(2);
    window.get_by_label("Download").click();
    run_until(&mut window, "the transfer pauses half way", |app| {
        app.transfers()
            .values()
            .any(|t| t.state == "paused" && t.asks_to_continue)
    });
    let t = window.state().transfers().values().next().unwrap().clone();
    assert!(
        t.bytes >= 4_000_000 && t.bytes < 8_000_000,
        "paused at {}",
        t.bytes
    );
    window.get_by_label("Half way there. Continue?");
    mask_volatile(&mut window);
    window.snapshot("client_transfer_paused");

    window.get_by_label("Continue").click();
    run_until(&mut window, "the transfer finishes", |app| {
        app.transfers().values().any(|t| t.state == "done")
    });
    window.get_by_label("Open folder");
    let t = window.state().transfers().values().next().unwrap().clone();
    assert_eq!(std::fs::read(t.path.unwrap()).unwrap(), data);
    rt.block_on(server.stop());
}

#[test]
fn a_running_transfer_shows_its_throughput_chart_with_rtt_and_loss() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut window = client_window(
        &rt,
        "127.0.0.1:1",
        dir.path(),
        Trust::pinned(Fingerprint::of_public_key(b"")),
    );
    // Feed the window what the network would say about a connection and a transfer.
    window.state_mut().apply(gui::net::Update::Connected {
        name: "me".into(),
        users: vec!["me".into()],
        account: false,
    });
    let transfer = |state| {
        gui::net::Update::Event(Event::Transfer(client::TransferEvent {
            id: 7,
            file: "big.iso".into(),
            state,
        }))
    };
    let started = client::TransferState::Started {
        size: 1_000_000,
        offset: 0,
    };
    window.state_mut().apply(transfer(started));
    for (bytes, rate_bps) in [(100_000, 80_000_000), (300_000, 120_000_000)] {
        let state = client::TransferState::Progress {
            bytes,
            size: 1_000_000,
            rate_bps,
            rtt_us: 1250,
            lost: 3,
        };
        window.state_mut().apply(transfer(state));
    }
    window.run_steps(2);
    window.get_by_label("RTT 1.25 ms, 3 packets lost");
    window.get_by_label_contains("at 14.3 MiB/s");
    assert_eq!(window.state().transfers()[&7].history.len(), 2);
}

#[test]
fn pause_and_continue_buttons_control_a_running_transfer() {
    let rt = runtime();
    let files = tempfile::tempdir().unwrap();
    // Large enough that Pause lands with far more than the receive window (64 MiB) still to
    // come, even when a loaded machine draws the window slowly; sparse, so it costs neither
    // memory nor disk on the server's side.
    let size = 500_000_000u64;
    let big = std::fs::File::create(files.path().join("big.bin")).unwrap();
    big.set_len(size).unwrap();
    let server = start_server(&rt, files.path());
    let dest = tempfile::tempdir().unwrap();
    let mut window = client_window(
        &rt,
        &server.addr().to_string(),
        dest.path(),
        pinned(&server),
    );
    connect_as(&mut window, "pauser");
    run_until(&mut window, "the file list arrives", |app| {
        !app.files().is_empty()
    });
    // Stop at 50 % first, so the transfer is known to be under way when we press Pause.
    window.get_by_label("Ask to continue at 50%").click();
    window.run_steps(2);
    window.get_by_label("Download").click();
    run_until(&mut window, "the pause point", |app| {
        app.transfers().values().any(|t| t.asks_to_continue)
    });
    window.get_by_label("Continue").click();
    run_until(&mut window, "running again", |app| {
        app.transfers().values().any(|t| t.state == "running")
    });
    window.get_by_label("Pause").click();
    run_until(&mut window, "paused by the button", |app| {
        app.transfers()
            .values()
            .any(|t| t.state == "paused" && !t.asks_to_continue)
    });
    let t = window.state().transfers().values().next().unwrap().clone();
    assert!(t.bytes < size, "paused before the end");
    window.get_by_label("Continue").click();
    run_until(&mut window, "the transfer finishes", |app| {
        app.transfers().values().any(|t| t.state == "done")
    });
    rt.block_on(server.stop());
}

#[test]
fn a_name_is_registered_from_the_connect_screen_and_then_needs_its_password() {
    let rt = runtime();
    let files = tempfile::tempdir().unwrap();
    let server = start_server_with(&rt, files.path(), |_| {});
    let addr = server.addr().to_string();

    // Too short a password is refused in place, before anything is sent.
    let mut window = client_window(&rt, &addr, files.path(), pinned(&server));
    type_into(&mut window, "Name", "erin");
    type_into(&mut window, "Password", "short");
    window.get_by_label("Register").click();
    window.run_steps(2);
    assert!(
        window
            .state()
            .connect_error()
            .is_some_and(|e| e.contains("at least 8")),
        "{:?}",
        window.state().connect_error()
    );
    type_into(&mut window, "Password", " but longer now");
    window.get_by_label("Register").click();
    run_until(
        &mut window,
        "registered and connected",
        ClientApp::is_connected,
    );
    assert!(window.state().is_account());
    // The password is not kept once connected.
    assert!(window.state().password.is_empty());
    window.get_by_label("Log out").click();
    run_until(&mut window, "logged out", |app| !app.is_connected());

    // Without the password the name is refused, in place; with it, it is erin's again.
    let mut window = client_window(&rt, &addr, files.path(), pinned(&server));
    connect_error_for(&mut window, "erin");
    assert!(
        window
            .state()
            .connect_error()
            .unwrap()
            .contains("wrong name or password")
    );
    window.get_by_label_contains("wrong name or password");
    type_into(&mut window, "Password", "short but longer now");
    window.get_by_label("Connect").click();
    run_until(&mut window, "logged in", ClientApp::is_connected);
    assert!(window.state().is_account());
}

fn connect_error_for(window: &mut Harness<'_, ClientApp>, name: &str) {
    type_into(window, "Name", name);
    window.get_by_label("Connect").click();
    run_until(window, "the refusal shows", |app| {
        app.connect_error().is_some()
    });
}

fn ids_shown(app: &ClientApp) -> Vec<u64> {
    app.lines(&Conversation::Everyone)
        .iter()
        .filter_map(|l| l.id)
        .collect()
}

#[test]
fn older_messages_load_when_the_conversation_is_scrolled_to_its_top() {
    let rt = runtime();
    let files = tempfile::tempdir().unwrap();
    let server = start_server_with(&rt, files.path(), |c| {
        c.history_on_join = 10;
        c.rate_burst = 1000;
    });
    let addr = server.addr().to_string();
    let trust = pinned(&server);
    let (talker, _events) = rt
        .block_on(Client::connect(&addr, "talker", &trust))
        .unwrap();
    rt.block_on(async {
        for i in 0..200 {
            talker.send_all(format!("message {i}")).await.unwrap();
        }
        // Everything is stored once the talker hears its own listing answered.
        talker.users().await.unwrap();
    });

    let mut window = client_window(&rt, &addr, files.path(), pinned(&server));
    connect_as(&mut window, "reader");
    // Ten come on joining; they fit in the window, so a page of older ones follows, and then
    // the conversation is taller than the window and nothing more is fetched by itself.
    let first = 10 + gui::OLDER_PAGE as usize;
    run_until(&mut window, "a page of older messages", |app| {
        ids_shown(app).len() >= first
    });
    window.run_steps(20);
    let shown = ids_shown(window.state());
    assert_eq!(shown.len(), first, "fetched without scrolling");
    assert!(
        shown.windows(2).all(|w| w[0] < w[1]),
        "out of order: {shown:?}"
    );
    let last = window
        .state()
        .lines(&Conversation::Everyone)
        .last()
        .cloned();
    assert_eq!(last.map(|l| l.text), Some("message 199".to_string()));

    // Scrolling up to the top fetches the next page, in place above the others.
    let centre = window.get_by_label_contains("message 199").rect().center();
    for _ in 0..4 {
        window.hover_at(centre);
        window.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Page,
            delta: egui::vec2(0.0, 100.0),
            modifiers: egui::Modifiers::NONE,
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
        });
        window.run_steps(3);
    }
    run_until(&mut window, "the next page", |app| {
        ids_shown(app).len() >= first + gui::OLDER_PAGE as usize
    });
    let shown = ids_shown(window.state());
    assert!(
        shown.windows(2).all(|w| w[0] < w[1]),
        "out of order: {shown:?}"
    );
    let texts: Vec<String> = window
        .state()
        .lines(&Conversation::Everyone)
        .iter()
        .filter(|l| l.id.is_some())
        .map(|l| l.text.clone())
        .collect();
    let expected: Vec<String> = (200 - texts.len()..200)
        .map(|i| format!("message {i}"))
        .collect();
    assert_eq!(texts, expected, "a gap or a duplicate");
}
