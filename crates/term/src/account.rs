//! Passwords at the terminal: where the login's comes from (`--password-file`, the
//! `MESSENGER_PASSWORD` environment variable, or a prompt that does not echo; never the command
//! line), and the questions `/register`, `/passwd` and `/unregister` ask.

use crate::command::AccountAction;
use client::{Command, Password};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The flags that say how to log in.
#[derive(Debug, Clone, clap::Args)]
pub struct LoginArgs {
    /// Log in to the account NAME with the password in FILE (its first line). Without it, the
    /// password is taken from $MESSENGER_PASSWORD, or asked for (without echo) when the name
    /// turns out to be registered. Never give a password on the command line.
    #[arg(long, value_name = "FILE", global = true)]
    password_file: Option<PathBuf>,
    /// Make NAME an account with the password (from --password-file, $MESSENGER_PASSWORD, or
    /// asked for twice) as you join; an account that exists already is simply logged in to.
    #[arg(long, global = true)]
    register: bool,
}

/// The environment variable a password may come from.
pub const PASSWORD_ENV: &str = "MESSENGER_PASSWORD";

/// Longest password file read (a password is at most 1 KiB).
const MAX_PASSWORD_FILE: u64 = 4096;

impl LoginArgs {
    /// Whether to register as we join.
    pub fn register(&self) -> bool {
        self.register
    }

    /// The password the flags and the environment give, if any.
    pub fn given(&self) -> Result<Option<Password>, String> {
        if let Some(path) = &self.password_file {
            return read_password_file(path).map(Some);
        }
        Ok(std::env::var(PASSWORD_ENV)
            .ok()
            .filter(|p| !p.is_empty())
            .map(Password::new))
    }
}

/// The first line of `path`, without its line ending.
pub fn read_password_file(path: &Path) -> Result<Password, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut text = String::new();
    file.take(MAX_PASSWORD_FILE)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(format!(
            "{shown} holds no password (its first line is empty)"
        ));
    }
    Ok(Password::new(line))
}

/// Asks the person at the terminal for a password on stderr, reading keys without echo. `None`
/// when stdin is not a terminal, or they pressed Ctrl-C, Ctrl-D or Escape.
pub fn prompt_blocking(prompt: &str) -> Option<Password> {
    use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    use std::io::{IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    crossterm::terminal::enable_raw_mode().ok()?;
    let mut typed = String::new();
    let done = loop {
        let Ok(Event::Key(key)) = event::read() else {
            continue;
        };
        if key.kind == KeyEventKind::Release {
            continue;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Enter => break true,
            KeyCode::Esc => break false,
            KeyCode::Char('c' | 'd') if ctrl => break false,
            KeyCode::Char('u') if ctrl => typed.clear(),
            KeyCode::Char(c) if !ctrl => typed.push(c),
            KeyCode::Backspace => {
                typed.pop();
            }
            _ => {}
        }
    };
    let _ = crossterm::terminal::disable_raw_mode();
    eprintln!();
    (done && !typed.is_empty()).then(|| Password::new(typed))
}

/// One step of an account command's questions.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Ask for a password with this prompt; the next line of input answers it.
    Ask(&'static str),
    /// Run this command; when it succeeds, the password to know from then on (`None`: the
    /// account is gone) is the second member.
    Run(Command, Option<Password>),
    /// Stop, for this reason (nothing was sent).
    Stop(&'static str),
}

/// The questions of one account command, answered one line at a time.
#[derive(Debug)]
pub struct Questions {
    action: AccountAction,
    /// The current password, when the flags gave it (or it was typed earlier).
    known: Option<Password>,
    /// A person is typing (and can be asked to type a new password twice).
    interactive: bool,
    answers: Vec<Password>,
}

impl Questions {
    /// Starts `action`: what to ask first, or (everything known) what to run. A person is
    /// always asked for the current password, as passwd(1) does (whoever sits at an unlocked
    /// terminal cannot change or delete the account); a script's known one is used.
    pub fn start(
        action: AccountAction,
        known: Option<Password>,
        interactive: bool,
    ) -> (Self, Step) {
        let known = match action {
            AccountAction::Passwd | AccountAction::Unregister if interactive => None,
            _ => known,
        };
        let mut questions = Self {
            action,
            known,
            interactive,
            answers: Vec::new(),
        };
        let step = questions.next();
        (questions, step)
    }

    /// Takes the answer to the last question.
    pub fn answer(&mut self, line: &str) -> Step {
        if line.is_empty() {
            return Step::Stop("cancelled; nothing was changed");
        }
        self.answers.push(Password::new(line));
        self.next()
    }

    /// The prompts still to answer, in order.
    fn prompts(&self) -> Vec<&'static str> {
        let mut prompts = Vec::new();
        let new_twice = |prompts: &mut Vec<&'static str>| {
            prompts.push("New password: ");
            if self.interactive {
                prompts.push("New password again: ");
            }
        };
        match self.action {
            AccountAction::Register if self.known.is_none() => new_twice(&mut prompts),
            AccountAction::Register => {}
            AccountAction::Passwd => {
                if self.known.is_none() {
                    prompts.push("Current password: ");
                }
                new_twice(&mut prompts);
            }
            AccountAction::Unregister if self.known.is_none() => prompts.push("Password: "),
            AccountAction::Unregister => {}
        }
        prompts
    }

    fn next(&mut self) -> Step {
        let prompts = self.prompts();
        if let Some(prompt) = prompts.get(self.answers.len()) {
            return Step::Ask(prompt);
        }
        let mut answers = std::mem::take(&mut self.answers).into_iter();
        let current = self.known.clone().or_else(|| match self.action {
            AccountAction::Register => None,
            _ => answers.next(),
        });
        let mut new = || -> Result<Option<Password>, ()> {
            let first = answers.next();
            if self.interactive && answers.next() != first {
                return Err(());
            }
            Ok(first)
        };
        const DIFFER: &str = "the two new passwords differ; nothing was changed";
        match (self.action, current) {
            (AccountAction::Register, Some(known)) => {
                Step::Run(Command::Register(known.clone()), Some(known))
            }
            (AccountAction::Register, None) => match new() {
                Ok(Some(new)) => Step::Run(Command::Register(new.clone()), Some(new)),
                _ => Step::Stop(DIFFER),
            },
            (AccountAction::Passwd, Some(old)) => match new() {
                Ok(Some(new)) => Step::Run(
                    Command::ChangePassword {
                        old,
                        new: new.clone(),
                    },
                    Some(new),
                ),
                _ => Step::Stop(DIFFER),
            },
            (AccountAction::Unregister, Some(old)) => Step::Run(Command::DeleteAccount(old), None),
            (_, None) => Step::Stop("no password was given; nothing was changed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(p: &str) -> Password {
        Password::new(p)
    }

    #[test]
    fn a_person_registers_with_a_password_typed_twice() {
        let (mut q, step) = Questions::start(AccountAction::Register, None, true);
        assert_eq!(step, Step::Ask("New password: "));
        assert_eq!(
            q.answer("a long password"),
            Step::Ask("New password again: ")
        );
        assert_eq!(
            q.answer("a long password"),
            Step::Run(
                Command::Register(pw("a long password")),
                Some(pw("a long password"))
            )
        );
    }

    #[test]
    fn two_different_new_passwords_change_nothing() {
        let (mut q, _) = Questions::start(AccountAction::Passwd, None, true);
        assert_eq!(q.answer("old one here"), Step::Ask("New password: "));
        assert_eq!(q.answer("new one here"), Step::Ask("New password again: "));
        assert!(matches!(q.answer("new one hare"), Step::Stop(_)));
    }

    #[test]
    fn a_script_answers_each_question_once_and_a_known_password_is_not_asked() {
        let (mut q, step) = Questions::start(AccountAction::Passwd, Some(pw("from file")), false);
        assert_eq!(step, Step::Ask("New password: "));
        assert_eq!(
            q.answer("the new one"),
            Step::Run(
                Command::ChangePassword {
                    old: pw("from file"),
                    new: pw("the new one")
                },
                Some(pw("the new one"))
            )
        );
        let (_, step) = Questions::start(AccountAction::Unregister, Some(pw("from file")), false);
        assert_eq!(
            step,
            Step::Run(Command::DeleteAccount(pw("from file")), None)
        );
        // A person is asked for the current password all the same.
        let (_, step) = Questions::start(AccountAction::Passwd, Some(pw("from file")), true);
        assert_eq!(step, Step::Ask("Current password: "));
        let (_, step) = Questions::start(AccountAction::Unregister, Some(pw("typed")), true);
        assert_eq!(step, Step::Ask("Password: "));
        let (_, step) = Questions::start(AccountAction::Register, Some(pw("from file")), true);
        assert_eq!(
            step,
            Step::Run(Command::Register(pw("from file")), Some(pw("from file")))
        );
    }

    #[test]
    fn an_empty_answer_cancels() {
        let (mut q, step) = Questions::start(AccountAction::Unregister, None, true);
        assert_eq!(step, Step::Ask("Password: "));
        assert!(matches!(q.answer(""), Step::Stop(_)));
    }

    #[test]
    fn a_password_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "correct horse battery\r\nsecond line\n").unwrap();
        assert_eq!(
            read_password_file(&path).unwrap(),
            pw("correct horse battery")
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(read_password_file(&path).is_err());
        assert!(read_password_file(&dir.path().join("missing")).is_err());
    }
}
