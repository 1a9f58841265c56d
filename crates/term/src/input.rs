//! Lines from the user: a line editor when a person sits at a terminal, plain lines otherwise.

use crate::editor::{self, EditorPrinter};
use std::io::BufRead;
use std::io::IsTerminal;
use tokio::sync::mpsc;

/// Where output goes so it does not tear the line being typed.
pub enum Printer {
    /// Straight to stdout.
    Stdout,
    /// Above the line editor's prompt.
    Editor(EditorPrinter),
}

/// Starts reading input lines. The receiver yields `None` at end of input.
///
/// `interactive` asks for the line editor; it is used only when stdin and stdout are both
/// terminals.
pub fn start(interactive: bool) -> (mpsc::Receiver<String>, Printer) {
    let (tx, rx) = mpsc::channel(16);
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if interactive
        && tty
        && let Some(printer) = editor::start(tx.clone())
    {
        return (rx, Printer::Editor(printer));
    }
    // A thread of its own, not tokio's stdin: that reads on the runtime's blocking pool, and
    // the runtime waits for its blocking threads when it shuts down, so after `/quit` (or the
    // server going away) the process would not exit while stdin stays open. A plain thread
    // blocked in `read` does not hold the process up.
    let reader = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
    if let Err(err) = reader {
        tracing::warn!(%err, "cannot read standard input");
    }
    (rx, Printer::Stdout)
}

impl Printer {
    /// Prints one line.
    pub fn line(&mut self, text: String) {
        match self {
            Printer::Stdout => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
            Printer::Editor(printer) => printer.print(&text),
        }
    }

    /// Reads the next line as a password at the line editor (`prompt` shown, the keys not).
    /// False when there is no editor (the next line of input is read as it comes).
    pub fn ask_secret(&mut self, prompt: &'static str) -> bool {
        match self {
            Printer::Stdout => false,
            Printer::Editor(printer) => {
                printer.ask_secret(prompt);
                true
            }
        }
    }

    /// Shows a live status line (`Some`) or removes it (`None`). Returns false when there is no
    /// place for live lines (output is not a terminal).
    pub fn status(&mut self, key: u64, line: Option<String>) -> bool {
        match self {
            Printer::Stdout => false,
            Printer::Editor(printer) => {
                printer.set_status(key, line);
                true
            }
        }
    }
}
