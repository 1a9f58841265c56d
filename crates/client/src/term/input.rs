//! Lines from the user: a line editor when a person sits at a terminal, plain lines otherwise.

use rustyline::ExternalPrinter;
use std::io::IsTerminal;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// Where output goes so it does not tear the line being typed.
pub enum Printer {
    /// Straight to stdout.
    Stdout,
    /// Above the line editor's prompt.
    Editor(Box<dyn ExternalPrinter + Send>),
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
        && let Some(printer) = start_editor(tx.clone())
    {
        return (rx, Printer::Editor(printer));
    }
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).await.is_err() {
                break;
            }
        }
    });
    (rx, Printer::Stdout)
}

fn start_editor(tx: mpsc::Sender<String>) -> Option<Box<dyn ExternalPrinter + Send>> {
    let mut editor = rustyline::DefaultEditor::new().ok()?;
    let printer = editor.create_external_printer().ok()?;
    std::thread::spawn(move || {
        // Ctrl-C and Ctrl-D both end the session, like /quit.
        while let Ok(line) = editor.readline("> ") {
            let _ = editor.add_history_entry(line.as_str());
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    Some(Box::new(printer))
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
            Printer::Editor(printer) => {
                let _ = printer.print(text);
            }
        }
    }
}
