//! What a line typed at the terminal means.

/// One line of input, understood.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Text for everyone (a line without a leading `/`, or `/all TEXT`).
    All(String),
    /// `/msg NAME TEXT`: text for one user.
    Msg {
        /// The recipient.
        to: String,
        /// The text.
        text: String,
    },
    /// `/users`.
    Users,
    /// `/files`.
    Files,
    /// `/get NAME [--pause-at PCT]`.
    Get {
        /// The file's name on the server.
        file: String,
        /// Pause by itself at this percentage.
        pause_at: Option<f64>,
    },
    /// `/pause ID`.
    Pause(u64),
    /// `/resume ID`.
    Resume(u64),
    /// `/cancel ID`.
    Cancel(u64),
    /// `/transfers`.
    Transfers,
    /// `/quit`.
    Quit,
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

/// Parses one input line.
pub fn parse(line: &str) -> Result<Command, CommandError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(Command::Nothing);
    }
    if let Some(escaped) = line.strip_prefix("//") {
        return Ok(Command::All(format!("/{escaped}")));
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(Command::All(line.to_owned()));
    };
    let (word, args) = match rest.split_once(char::is_whitespace) {
        Some((word, args)) => (word, args.trim_start()),
        None => (rest, ""),
    };
    match word {
        "all" if !args.is_empty() => Ok(Command::All(args.to_owned())),
        "all" => Err(CommandError::Usage("/all TEXT")),
        "msg" => match args.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => Ok(Command::Msg {
                to: to.to_owned(),
                text: text.trim_start().to_owned(),
            }),
            _ => Err(CommandError::Usage("/msg NAME TEXT")),
        },
        "get" => parse_get(args),
        "pause" => parse_id(args, "/pause ID").map(Command::Pause),
        "resume" | "continue" => parse_id(args, "/resume ID").map(Command::Resume),
        "cancel" => parse_id(args, "/cancel ID").map(Command::Cancel),
        "transfers" => Ok(Command::Transfers),
        "users" => Ok(Command::Users),
        "files" => Ok(Command::Files),
        "quit" | "exit" => Ok(Command::Quit),
        "help" | "?" => Ok(Command::Help),
        _ => Err(CommandError::Unknown(format!("/{word}"))),
    }
}

fn parse_id(args: &str, usage: &'static str) -> Result<u64, CommandError> {
    args.trim().parse().map_err(|_| CommandError::Usage(usage))
}

fn parse_get(args: &str) -> Result<Command, CommandError> {
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
        [file] => Ok(Command::Get {
            file: (*file).to_owned(),
            pause_at,
        }),
        _ => Err(CommandError::Usage(USAGE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_go_to_everyone() {
        assert_eq!(parse("hello there"), Ok(Command::All("hello there".into())));
        assert_eq!(parse("/all  hi"), Ok(Command::All("hi".into())));
        assert_eq!(
            parse("//etc is a dir"),
            Ok(Command::All("/etc is a dir".into()))
        );
        assert_eq!(parse("   "), Ok(Command::Nothing));
    }

    #[test]
    fn msg_takes_a_name_and_the_rest_of_the_line() {
        assert_eq!(
            parse("/msg bob how are  you"),
            Ok(Command::Msg {
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
        assert_eq!(
            parse("/get a.bin --pause-at 50"),
            Ok(Command::Get {
                file: "a.bin".into(),
                pause_at: Some(50.0)
            })
        );
        assert_eq!(
            parse("/get a.bin"),
            Ok(Command::Get {
                file: "a.bin".into(),
                pause_at: None
            })
        );
        assert!(matches!(
            parse("/get a.bin --pause-at 150"),
            Err(CommandError::Usage(_))
        ));
        assert!(matches!(parse("/get"), Err(CommandError::Usage(_))));
        assert_eq!(parse("/pause 3"), Ok(Command::Pause(3)));
        assert_eq!(parse("/resume 3"), Ok(Command::Resume(3)));
        assert_eq!(parse("/cancel 3"), Ok(Command::Cancel(3)));
        assert!(matches!(parse("/pause x"), Err(CommandError::Usage(_))));
        assert_eq!(parse("/transfers"), Ok(Command::Transfers));
    }

    #[test]
    fn other_commands_and_unknown_ones() {
        assert_eq!(parse("/users"), Ok(Command::Users));
        assert_eq!(parse("/files"), Ok(Command::Files));
        assert_eq!(parse("/quit"), Ok(Command::Quit));
        assert_eq!(parse("/help"), Ok(Command::Help));
        assert_eq!(
            parse("/dance now"),
            Err(CommandError::Unknown("/dance".into()))
        );
    }
}
