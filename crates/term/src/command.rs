//! What a line typed at the terminal means: the client library's [`Command`], or one of the
//! few things only the terminal does.

use client::{Command, DownloadOptions};

/// One line of input, understood.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A command for the connection (the client library's one [`Command`] type).
    Run(Command),
    /// `/help`.
    Help,
    /// An empty line.
    Nothing,
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
        "users" => Command::Users,
        "files" => Command::Files,
        "quit" | "exit" => Command::Quit,
        "help" | "?" => return Ok(Input::Help),
        _ => return Err(CommandError::Unknown(format!("/{word}"))),
    };
    Ok(Input::Run(command))
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
