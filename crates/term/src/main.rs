//! `messenger`: the terminal chat client.

mod account;
mod command;
mod connect;
mod editor;
mod fit;
mod get;
mod human;
mod input;
mod json;
mod output;

use account::{LoginArgs, Questions, Step};
use clap::Parser;
use client::{
    Client, ClientError, Command, ErrorCode, Event, InFlight, Login, Password, Reply, TransferPhase,
};
use command::{CommandError, Input};
use connect::{Failure, TrustArgs};
use human::Human;
use json::Json;
use output::{AccountChange, Output};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Chat from the terminal. Lines you type go to everyone; /help lists the commands.
///
/// The connection is TLS 1.3. A server whose certificate is not from a trusted CA is trusted
/// on first use, as ssh does: a person at a terminal is shown its key's fingerprint and asked,
/// a script (--json, or input that is not a terminal, or `get`) trusts it and says so; the key
/// is recorded in known_servers, and a server whose key changed is always refused.
///
/// A registered name needs its password: from --password-file, $MESSENGER_PASSWORD, or typed
/// (without echo) when asked; never on the command line. --register makes the name an account.
///
/// With --json, every event is one JSON object per line on stdout (for scripts).
/// Exit status: 0 after /quit or end of input (once running downloads have finished), 1 when
/// the connection fails (or the server's key changed) or is lost.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Server address, as HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:50000")]
    server: String,
    /// Your name: 1 to 32 letters, digits, '_', '-' or '.'.
    #[arg(long)]
    name: String,
    /// Print one JSON object per line for every event instead of text for people.
    #[arg(long)]
    json: bool,
    /// Where downloads are saved.
    #[arg(long, default_value = ".")]
    download_dir: PathBuf,
    /// Largest UDP datagram for downloads, in bytes (1200-65507); by default the largest on
    /// loopback and 1452 elsewhere. Lower it when a VPN or tunnel makes the path's MTU smaller.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1200..=65507))]
    max_datagram: Option<u16>,
    /// Seconds a running download may go while receiving less than 64 KiB before it fails (a
    /// server that trickles data would otherwise keep it alive for ever). Paused time does not
    /// count.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    stall_timeout: u64,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    login: LoginArgs,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Download one file with a progress bar, then exit: 0 only when the file is complete and
    /// verified. Run it again after an interruption and it resumes.
    Get {
        /// The file's name on the server (see /files).
        file: String,
        /// Where to save it (default: the server's name, in --download-dir).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    logging::to_stderr("warn");
    let args = Args::parse();
    let terminal = TerminalGuard::save();
    let code = match &args.command {
        Some(Sub::Get { file, output }) => {
            let ask = !args.json && std::io::stdin().is_terminal();
            get::run(
                &args.server,
                &args.name,
                &args.login,
                ask,
                &args.trust,
                file,
                output.as_deref(),
                &download_options(&args),
                args.json,
            )
            .await
        }
        None => run(args).await,
    };
    drop(terminal);
    code
}

/// Who to log in as: the flags' name, with the password the flags or the environment give
/// (asked for twice at a terminal for `--register` without one).
async fn login_of(name: &str, flags: &LoginArgs, ask: bool) -> Result<Login, String> {
    let mut password = flags.given()?;
    if flags.register() && password.is_none() {
        if !ask {
            return Err(format!(
                "--register needs a password: --password-file FILE or ${}",
                account::PASSWORD_ENV
            ));
        }
        let first = prompt(format!("New password for {}: ", display::visible(name))).await;
        let again = prompt("New password again: ".into()).await;
        match (first, again) {
            (Some(first), Some(again)) if first == again => password = Some(first),
            (Some(_), Some(_)) => return Err("the two passwords differ; not connected".into()),
            _ => return Err("no password was given; not connected".into()),
        }
    }
    Ok(Login {
        name: name.to_owned(),
        register: flags.register() && password.is_some(),
        password,
    })
}

/// Asks the person at the terminal for a password, without echo.
async fn prompt(text: String) -> Option<Password> {
    tokio::task::spawn_blocking(move || account::prompt_blocking(&text))
        .await
        .ok()
        .flatten()
}

/// Connects as `login`, asking the person at the terminal about a new server key when
/// `ask_key`; when `ask_password` and the name turns out to be an account, asks for its
/// password and tries again.
pub async fn connect_asking(
    server: &str,
    trust: &TrustArgs,
    mut login: Login,
    ask_key: bool,
    ask_password: bool,
) -> Result<(Client, client::Events, Login), Failure> {
    let ask = ask_key;
    match trust.connect(server, &login, ask).await {
        Ok((client, events)) => Ok((client, events, login)),
        Err(Failure::Client(err))
            if ask_password
                && login.password.is_none()
                && err.code() == Some(ErrorCode::AuthFailed) =>
        {
            let asked = format!(
                "{} needs a password here. Password: ",
                display::visible(&login.name)
            );
            let Some(password) = prompt(asked).await else {
                return Err(Failure::Client(err));
            };
            login.password = Some(password);
            let (client, events) = trust.connect(server, &login, ask).await?;
            Ok((client, events, login))
        }
        Err(other) => Err(other),
    }
}

async fn run(args: Args) -> ExitCode {
    // A person at the terminal is asked about a new server key, and for a password; a script
    // is not.
    let ask = !args.json && std::io::stdin().is_terminal();
    let login = match login_of(&args.name, &args.login, ask).await {
        Ok(login) => login,
        Err(sentence) => {
            eprintln!("messenger: {}", display::visible(&sentence));
            return ExitCode::FAILURE;
        }
    };
    let (client, mut events, login) =
        match connect_asking(&args.server, &args.trust, login, ask, ask).await {
            Ok(connected) => connected,
            Err(Failure::Declined) => {
                eprintln!("messenger: the server's key was not trusted; not connected");
                return ExitCode::FAILURE;
            }
            Err(Failure::Client(err)) => {
                if args.json
                    && let Some(code) = err.code()
                {
                    Json::new(input::Printer::Stdout).error(code.as_str(), &err.to_string());
                }
                eprintln!("messenger: {}", sentence(&err, &args));
                return ExitCode::FAILURE;
            }
        };
    // The account's password, to answer what `/passwd` and `/unregister` would ask.
    let mut known = login.password;
    // The questions of an account command under way: the next lines answer them.
    let mut asking: Option<Questions> = None;
    // What `known` becomes when the account command under way succeeds.
    let mut becomes: Option<Password> = None;
    let color =
        !args.json && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let download = download_options(&args);
    let (mut lines, printer) = input::start(!args.json);
    let mut out: Box<dyn Output> = if args.json {
        Box::new(Json::new(printer))
    } else {
        Box::new(Human::new(color, printer))
    };
    out.server_key(&args.server, client.server_key());
    out.connected(
        client.name(),
        &args.server,
        client.users_at_join(),
        client.is_account(),
    );

    // Once we said goodbye, the server's bye should follow at once; do not wait forever for it.
    let mut quit_deadline: Option<tokio::time::Instant> = None;
    // At the end of input, commands under way and downloads under way finish before we leave
    // (a script that pipes `/get FILE` in gets the file); paused ones stay paused, their
    // `.part` kept for later.
    let mut draining = false;
    // Commands waiting for their answers: they run beside the events and the next lines, so
    // that a slow answer (a new file the server must hash first) holds up neither the chat
    // nor a pause.
    let mut inflight = InFlight::new();
    loop {
        if draining
            && quit_deadline.is_none()
            && inflight.is_empty()
            && !has_running_transfers(&client)
        {
            match goodbye(&client).await {
                Some(deadline) => quit_deadline = Some(deadline),
                None => {
                    out.disconnected("quit", "goodbye");
                    return ExitCode::SUCCESS;
                }
            }
        }
        let quitting = quit_deadline.is_some();
        let give_up =
            tokio::time::sleep_until(quit_deadline.unwrap_or_else(tokio::time::Instant::now));
        tokio::select! {
            () = give_up, if quitting => {
                out.disconnected("quit", "goodbye (the server did not confirm)");
                return ExitCode::SUCCESS;
            }
            event = events.recv() => match event {
                Some(Event::Disconnected { reason, message }) => {
                    out.disconnected(&reason, &message);
                    if reason == "quit" {
                        return ExitCode::SUCCESS;
                    }
                    eprintln!(
                        "messenger: the connection to {} ended: {} ({})",
                        args.server,
                        display::visible(&message),
                        display::visible(&reason)
                    );
                    return ExitCode::FAILURE;
                }
                Some(event) => out.event(&event),
                None => return ExitCode::FAILURE,
            },
            reply = inflight.next() => {
                match &reply {
                    Ok(Reply::Registered | Reply::PasswordChanged) => known = becomes.take(),
                    Ok(Reply::AccountDeleted) => known = None,
                    _ => {}
                }
                show_reply(reply, client.name(), out.as_mut());
            }
            line = lines.recv(), if !quitting && !draining => {
                if let Some(questions) = asking.as_mut() {
                    // The answer to a password question: never parsed as a command.
                    let step = match line {
                        Some(line) => questions.answer(&line),
                        None => {
                            draining = true;
                            Step::Stop("input ended; nothing was changed")
                        }
                    };
                    asking = take_step(step, asking, &client, &mut inflight, &mut becomes, out.as_mut());
                    continue;
                }
                let input = match line {
                    Some(line) => command::parse(&line, &download),
                    None => {
                        draining = true;
                        Ok(Input::Nothing)
                    }
                };
                match input {
                    Ok(Input::Run(Command::Quit)) => match goodbye(&client).await {
                        Some(deadline) => quit_deadline = Some(deadline),
                        None => {
                            out.disconnected("quit", "goodbye");
                            return ExitCode::SUCCESS;
                        }
                    },
                    Ok(Input::Run(command)) => inflight.push(&client, command),
                    Ok(Input::Account(action)) => {
                        let interactive = !args.json && std::io::stdin().is_terminal();
                        let (questions, step) =
                            Questions::start(action, known.clone(), interactive);
                        asking = take_step(
                            step,
                            Some(questions),
                            &client,
                            &mut inflight,
                            &mut becomes,
                            out.as_mut(),
                        );
                    }
                    Ok(Input::Help) => out.info(command::HELP),
                    Ok(Input::Nothing) => {}
                    Err(CommandError::Unknown(word)) => out.error(
                        "unknown_command",
                        &format!("unknown command {word}; /help lists the commands"),
                    ),
                    Err(CommandError::Usage(usage)) => {
                        out.error("bad_arguments", &format!("usage: {usage}"));
                    }
                }
            }
        }
    }
}

/// Acts on one step of an account command's questions; returns the questions still open.
fn take_step(
    step: Step,
    questions: Option<Questions>,
    client: &Client,
    inflight: &mut InFlight,
    becomes: &mut Option<Password>,
    out: &mut dyn Output,
) -> Option<Questions> {
    match step {
        Step::Ask(prompt) => {
            out.ask_secret(prompt);
            questions
        }
        Step::Run(command, after) => {
            *becomes = after;
            inflight.push(client, command);
            None
        }
        Step::Stop(why) => {
            out.error("bad_arguments", why);
            None
        }
    }
}

/// Says goodbye to the server; returns how long to wait for its answer, or `None` when the
/// connection is already gone.
async fn goodbye(client: &Client) -> Option<tokio::time::Instant> {
    client.execute(Command::Quit).await.ok()?;
    Some(tokio::time::Instant::now() + Duration::from_secs(3))
}

/// True while a download is queued or moving data (a paused one waits for a command).
fn has_running_transfers(client: &Client) -> bool {
    client
        .transfers()
        .iter()
        .any(|t| matches!(t.state, TransferPhase::Queued | TransferPhase::Running))
}

/// What every download of this run shares: the folder and the datagram size.
fn download_options(args: &Args) -> client::DownloadOptions {
    client::DownloadOptions {
        dir: args.download_dir.clone(),
        max_datagram: args.max_datagram.map(usize::from),
        stall_timeout: Duration::from_secs(args.stall_timeout),
        ..client::DownloadOptions::default()
    }
}

/// Shows what a command gave back: a listing, or why it failed.
fn show_reply(reply: Result<Reply, ClientError>, name: &str, out: &mut dyn Output) {
    match reply {
        Ok(Reply::Users(names)) => out.users(&names),
        Ok(Reply::Files(files)) => out.files(&files),
        Ok(Reply::Transfers(all)) => out.transfers(&all),
        Ok(Reply::History(page)) => out.history(&page),
        Ok(Reply::Registered) => out.account(AccountChange::Registered, name),
        Ok(Reply::PasswordChanged) => out.account(AccountChange::PasswordChanged, name),
        Ok(Reply::AccountDeleted) => out.account(AccountChange::Deleted, name),
        // Sent, or started: what follows arrives as events.
        Ok(Reply::Done | Reply::Download(_)) => {}
        Err(err) => {
            let code = err.code().map_or("disconnected", |c| c.as_str());
            out.error(code, &err.to_string());
        }
    }
}

/// One clear sentence for a failed connection (what the server said made visible: it may be
/// hostile).
fn sentence(err: &ClientError, args: &Args) -> String {
    let sentence = match err {
        ClientError::Unreachable { source, .. } => format!(
            "cannot connect to {} ({source}); is the server running, and is the address HOST:PORT?",
            args.server
        ),
        ClientError::Server { message, code } => {
            format!("the server refused to let you in: {message} ({code})")
        }
        ClientError::ServerKeyChanged { .. }
        | ClientError::UntrustedServer { .. }
        | ClientError::Tls { .. }
        | ClientError::CaFile { .. }
        | ClientError::KnownServers { .. } => err.to_string(),
        other => format!("could not join {}: {other}", args.server),
    };
    display::visible(&sentence).into_owned()
}

/// Leaves the terminal as we found it: the line editor may still be reading keys in raw mode
/// when we exit.
struct TerminalGuard;

impl TerminalGuard {
    fn save() -> Self {
        Self
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if crossterm::terminal::is_raw_mode_enabled().unwrap_or(false) {
            let _ = crossterm::terminal::disable_raw_mode();
            // Take the prompt away: nothing reads it any more.
            print!("\r\x1b[2K");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }
    }
}
