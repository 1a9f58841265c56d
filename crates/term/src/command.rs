//! What a line typed at the terminal means: the client library's [`Command`], or one of the
//! few things only the terminal does.

use client::{Command, DownloadOptions, HistoryQuery, MAX_HISTORY_PAGE};

/// One line of input, understood.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A command for the connection (the client library's one [`Command`] type).
    Run(Command),
    /// `/help`.
    Help,
    /// An empty line.
    Nothing,
    /// An account command: its passwords are asked for (without echo at a terminal), never
    /// typed on the command's line.
    Account(AccountAction),
}

/// What an account command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountAction {
    /// `/register`: make our name an account.
    Register,
    /// `/passwd`: change the account's password.
    Passwd,
    /// `/unregister`: delete the account.
    Unregister,
}

/// A line that is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// `/something` we do not know.
    Unknown(String),
    /// A known command with missing parts; holds its usage line.
    Usage(&'static str),
}

/// The help text, one command per line.
pub const HELP: &str = "\
Commands:
  TEXT                 send TEXT to everyone (start with // to send a line beginning with /)
  /all TEXT            send TEXT to everyone
  /msg NAME TEXT       send TEXT to NAME only
  /users               list the users online
  /files               list the files the server shares
  /get NAME [--pause-at PCT]
                       download NAME (pausing by itself at PCT percent, if given)
  /pause ID            pause transfer ID
  /resume ID           continue transfer ID
  /cancel ID           cancel transfer ID (its partial file is removed)
  /transfers           list your transfers
  /history [NAME] [N] [--before ID]
                       the last N (default 20, at most 200) messages said to everyone, or
                       of your private conversation with NAME; --before pages further back
  /register            make your name an account (asks for a password)
  /passwd              change your account's password
  /unregister          delete your account (asks for its password)
  /help                show this help
  /quit                leave (end of input does the same)";

/// Parses one input line; a download is saved as `download` says (the flags), with the line's
/// own `--pause-at`.
pub fn parse(line: &str, download: &DownloadOptions) -> Result<Input, CommandError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(Input::Nothing);
    }
    if let Some(escaped) = line.strip_prefix("//") {
        return Ok(Input::Run(Command::SendAll(format!("/{escaped}"))));
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(Input::Run(Command::SendAll(line.to_owned())));
    };
    let (word, args) = match rest.split_once(char::is_whitespace) {
        Some((word, args)) => (word, args.trim_start()),
        None => (rest, ""),
    };
    let command = match word {
        "all" if !args.is_empty() => Command::SendAll(args.to_owned()),
        "all" => return Err(CommandError::Usage("/all TEXT")),
        "msg" => match args.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => Command::SendPrivate {
                to: to.to_owned(),
                text: text.trim_start().to_owned(),
            },
            _ => return Err(CommandError::Usage("/msg NAME TEXT")),
        },
        "get" => parse_get(args, download)?,
        "pause" => Command::Pause(parse_id(args, "/pause ID")?),
        "resume" | "continue" => Command::Resume(parse_id(args, "/resume ID")?),
        "cancel" => Command::Cancel(parse_id(args, "/cancel ID")?),
        "transfers" => Command::Transfers,
        "history" => parse_history(args)?,
        "register" | "passwd" | "password" | "unregister" if !args.is_empty() => {
            // A password typed on the line would be in the editor's history (and on the
            // screen): it is refused, never sent.
            return Err(CommandError::Usage(
                "/register, /passwd or /unregister alone: the password is asked for",
            ));
        }
        "register" => return Ok(Input::Account(AccountAction::Register)),
        "passwd" | "password" => return Ok(Input::Account(AccountAction::Passwd)),
        "unregister" => return Ok(Input::Account(AccountAction::Unregister)),
        "users" => Command::Users,
        "files" => Command::Files,
        "quit" | "exit" => Command::Quit,
        "help" | "?" => return Ok(Input::Help),
        _ => return Err(CommandError::Unknown(format!("/{word}"))),
    };
    Ok(Input::Run(command))
}

/// Messages `/history` shows when not told how many.
pub const HISTORY_DEFAULT: u32 = 20;

fn parse_history(args: &str) -> Result<Command, CommandError> {
    const USAGE: &str = "/history [NAME] [N] [--before ID] (N from 1 to 200)";
    let mut words: Vec<&str> = args.split_whitespace().collect();
    let mut before = None;
    if let Some(at) = words.iter().position(|w| *w == "--before") {
        let id = words.get(at + 1).and_then(|id| id.parse().ok());
        before = Some(id.ok_or(CommandError::Usage(USAGE))?);
        words.drain(at..at + 2);
    }
    let count = |word: &str| -> Result<u32, CommandError> {
        word.parse()
            .ok()
            .filter(|n| (1..=MAX_HISTORY_PAGE as u32).contains(n))
            .ok_or(CommandError::Usage(USAGE))
    };
    // A lone number is a count (a user named with digits only: `/history 42 20`).
    let (with, limit) = match words.as_slice() {
        [] => (None, HISTORY_DEFAULT),
        [one] if one.bytes().all(|b| b.is_ascii_digit()) => (None, count(one)?),
        [name] => (Some((*name).to_owned()), HISTORY_DEFAULT),
        [name, n] => (Some((*name).to_owned()), count(n)?),
        _ => return Err(CommandError::Usage(USAGE)),
    };
    Ok(Command::History(HistoryQuery {
        with,
        before,
        limit: Some(limit),
    }))
}

fn parse_id(args: &str, usage: &'static str) -> Result<u64, CommandError> {
    args.trim().parse().map_err(|_| CommandError::Usage(usage))
}

fn parse_get(args: &str, download: &DownloadOptions) -> Result<Command, CommandError> {
    const USAGE: &str = "/get NAME [--pause-at PCT]";
    let mut words: Vec<&str> = args.split_whitespace().collect();
    let mut pause_at = None;
    if let Some(at) = words.iter().position(|w| *w == "--pause-at") {
        let pct: f64 = words
            .get(at + 1)
            .and_then(|p| p.trim_end_matches('%').parse().ok())
            .filter(|p: &f64| *p > 0.0 && *p < 100.0)
            .ok_or(CommandError::Usage(
                "/get NAME --pause-at PCT (PCT between 0 and 100)",
            ))?;
        pause_at = Some(pct);
        words.drain(at..at + 2);
    }
    match words.as_slice() {
        [file] => Ok(Command::Download {
            file: (*file).to_owned(),
            opts: DownloadOptions {
                pause_at,
                ..download.clone()
            },
        }),
        _ => Err(CommandError::Usage(USAGE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Input, CommandError> {
        super::parse(line, &DownloadOptions::default())
    }

    fn run(command: Command) -> Result<Input, CommandError> {
        Ok(Input::Run(command))
    }

    fn get(file: &str, pause_at: Option<f64>) -> Result<Input, CommandError> {
        let opts = DownloadOptions {
            pause_at,
            ..DownloadOptions::default()
        };
        run(Command::Download {
            file: file.into(),
            opts,
        })
    }

    #[test]
    fn plain_lines_go_to_everyone() {
        assert_eq!(
            parse("hello there"),
            run(Command::SendAll("hello there".into()))
        );
        assert_eq!(parse("/all  hi"), run(Command::SendAll("hi".into())));
        assert_eq!(
            parse("//etc is a dir"),
            run(Command::SendAll("/etc is a dir".into()))
        );
        assert_eq!(parse("   "), Ok(Input::Nothing));
    }

    #[test]
    fn msg_takes_a_name_and_the_rest_of_the_line() {
        assert_eq!(
            parse("/msg bob how are  you"),
            run(Command::SendPrivate {
                to: "bob".into(),
                text: "how are  you".into()
            })
        );
        assert_eq!(
            parse("/msg bob"),
            Err(CommandError::Usage("/msg NAME TEXT"))
        );
        assert_eq!(parse("/msg"), Err(CommandError::Usage("/msg NAME TEXT")));
    }

    #[test]
    fn transfer_commands() {
        assert_eq!(parse("/get a.bin --pause-at 50"), get("a.bin", Some(50.0)));
        assert_eq!(parse("/get a.bin"), get("a.bin", None));
        assert!(matches!(
            parse("/get a.bin --pause-at 150"),
            Err(CommandError::Usage(_))
        ));
        assert!(matches!(parse("/get"), Err(CommandError::Usage(_))));
        assert_eq!(parse("/pause 3"), run(Command::Pause(3)));
        assert_eq!(parse("/resume 3"), run(Command::Resume(3)));
        assert_eq!(parse("/cancel 3"), run(Command::Cancel(3)));
        assert!(matches!(parse("/pause x"), Err(CommandError::Usage(_))));
        assert_eq!(parse("/transfers"), run(Command::Transfers));
    }

    #[test]
    fn history_takes_a_name_a_count_and_a_starting_point() {
        let history = |with: Option<&str>, limit, before| {
            run(Command::History(HistoryQuery {
                with: with.map(str::to_owned),
                before,
                limit: Some(limit),
            }))
        };
        assert_eq!(parse("/history"), history(None, 20, None));
        assert_eq!(parse("/history 50"), history(None, 50, None));
        assert_eq!(parse("/history bob"), history(Some("bob"), 20, None));
        assert_eq!(parse("/history bob 5"), history(Some("bob"), 5, None));
        assert_eq!(parse("/history 42 5"), history(Some("42"), 5, None));
        assert_eq!(
            parse("/history bob 5 --before 900"),
            history(Some("bob"), 5, Some(900))
        );
        for bad in [
            "/history 0",
            "/history 201",
            "/history bob x",
            "/history --before",
            "/history a b c",
        ] {
            assert!(matches!(parse(bad), Err(CommandError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn account_commands_take_no_password_on_their_line() {
        assert_eq!(
            parse("/register"),
            Ok(Input::Account(AccountAction::Register))
        );
        // A password typed on the line is refused, never sent.
        assert!(matches!(
            parse("/register hunter2hunter2"),
            Err(CommandError::Usage(_))
        ));
        assert_eq!(parse("/passwd"), Ok(Input::Account(AccountAction::Passwd)));
        assert_eq!(
            parse("/unregister"),
            Ok(Input::Account(AccountAction::Unregister))
        );
    }

    #[test]
    fn other_commands_and_unknown_ones() {
        assert_eq!(parse("/users"), run(Command::Users));
        assert_eq!(parse("/files"), run(Command::Files));
        assert_eq!(parse("/quit"), run(Command::Quit));
        assert_eq!(parse("/help"), Ok(Input::Help));
        assert_eq!(
            parse("/dance now"),
            Err(CommandError::Unknown("/dance".into()))
        );
    }

    #[test]
    fn a_download_keeps_the_options_of_the_flags_with_its_own_pause_point() {
        let flags = DownloadOptions {
            dir: "/downloads".into(),
            max_datagram: Some(1200),
            ..DownloadOptions::default()
        };
        let parsed = super::parse("/get a.bin --pause-at 25", &flags);
        let opts = DownloadOptions {
            pause_at: Some(25.0),
            ..flags
        };
        assert_eq!(
            parsed,
            run(Command::Download {
                file: "a.bin".into(),
                opts
            })
        );
    }
}
