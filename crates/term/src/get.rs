//! `messenger get FILE`: one download with a progress bar, like curl or wget.

use crate::connect::{Failure, TrustArgs, tell_person};
use crate::input::Printer;
use crate::json::Json;
use crate::output::Output;
use client::{DownloadOptions, Event, TransferPhase, TransferState};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::process::ExitCode;

/// Downloads `file` and exits: 0 only when it is complete and verified. A new server key is
/// trusted on first use without asking: `get` runs in scripts.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    server: &str,
    name: &str,
    login: &crate::account::LoginArgs,
    ask: bool,
    trust: &TrustArgs,
    file: &str,
    output: Option<&Path>,
    download: &DownloadOptions,
    json: bool,
) -> ExitCode {
    let fail = |sentence: String| {
        eprintln!("messenger: {sentence}");
        ExitCode::FAILURE
    };
    // With --json, the connection and the transfer's events are told as the chat's are.
    let mut json = json.then(|| Json::new(Printer::Stdout));
    let login = match crate::login_of(name, login, ask).await {
        Ok(login) => login,
        Err(sentence) => return fail(display::visible(&sentence).into_owned()),
    };
    // A new server key is trusted without asking; a password may be asked for.
    let connected = crate::connect_asking(server, trust, login, false, ask).await;
    let (client, mut events) = match connected.map(|(c, e, _)| (c, e)) {
        Ok(connected) => connected,
        Err(Failure::Client(err)) => {
            if let Some(out) = json.as_mut()
                && let Some(code) = err.code()
            {
                out.error(code.as_str(), &err.to_string());
            }
            return fail(format!(
                "cannot download from {server}: {}",
                display::visible(&err.to_string())
            ));
        }
        Err(Failure::Declined) => return fail("the server's key was not trusted".into()),
    };
    match json.as_mut() {
        Some(out) => out.server_key(server, client.server_key()),
        None => tell_person(server, client.server_key()),
    }
    let (dir, save_as) = match output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                return fail(format!("{} is not a file name", path.display()));
            };
            (dir.to_path_buf(), Some(name.to_owned()))
        }
        None => (download.dir.clone(), None),
    };
    let opts = DownloadOptions {
        dir,
        save_as,
        ..download.clone()
    };
    let id = match client.download(file, opts).await {
        Ok(id) => id,
        Err(err) => {
            return fail(format!(
                "cannot download {}: {}",
                display::visible(file),
                display::visible(&err.to_string())
            ));
        }
    };
    let bar = if json.is_some() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {percent:>3}% {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(file.to_owned());
    while let Some(event) = events.recv().await {
        let transfer = match event {
            Event::Transfer(t) if t.id == id => t,
            Event::Lagged { .. } => {
                // Events were dropped: the end of ours may have been one of them.
                let ended = client
                    .transfers()
                    .into_iter()
                    .find(|t| t.id == id)
                    .filter(|t| {
                        matches!(t.state, TransferPhase::Failed | TransferPhase::Cancelled)
                    });
                if let Some(t) = ended {
                    bar.abandon();
                    return fail(format!(
                        "downloading {} {} (its last events were missed while the server \
                         flooded this client)",
                        display::visible(file),
                        t.state
                    ));
                }
                continue;
            }
            Event::Disconnected { message, .. } => {
                bar.abandon();
                return fail(format!(
                    "the connection to {server} ended: {}; run the same command to resume",
                    display::visible(&message)
                ));
            }
            _ => continue,
        };
        if let Some(out) = json.as_mut() {
            out.transfer(&transfer);
        }
        match transfer.state {
            TransferState::Preparing => {
                bar.set_message(format!("{file} (the server is preparing it)"));
            }
            TransferState::Queued { position } => {
                bar.set_message(format!("{file} (queued, {position} ahead)"));
            }
            TransferState::Started { size, offset } => {
                bar.set_message(file.to_owned());
                bar.set_length(size);
                bar.set_position(offset);
                bar.reset_eta();
            }
            TransferState::Progress { bytes, .. } => bar.set_position(bytes),
            TransferState::Paused { .. } | TransferState::Resumed { .. } => {}
            TransferState::Done {
                path,
                last_byte,
                hash,
                bytes,
            } => {
                bar.finish_and_clear();
                if json.is_none() {
                    let last = last_byte.map_or("none (empty file)".into(), |b| b.to_string());
                    eprintln!(
                        "{}: {bytes} bytes, verified (BLAKE3 {}), last byte {last}",
                        display::visible(file),
                        hash
                    );
                    println!("{}", display::visible(&path.display().to_string()));
                }
                let _ = client.quit().await;
                return ExitCode::SUCCESS;
            }
            TransferState::Failed { error } => {
                bar.abandon();
                return fail(format!(
                    "downloading {} failed: {}",
                    display::visible(file),
                    display::visible(&error)
                ));
            }
            TransferState::Cancelled => {
                bar.abandon();
                return fail(format!("the download of {file} was cancelled"));
            }
        }
    }
    fail(format!("the connection to {server} ended"))
}
