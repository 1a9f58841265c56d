//! A small line editor for chat: the prompt stays on the bottom line while incoming messages are
//! printed above it, and whatever the user is typing survives them.
//!
//! Live status lines (download progress) sit between the messages and the prompt and are
//! redrawn in place.
//!
//! Input runs on its own thread (reading keys blocks); printing may happen from any thread. Both
//! go through one lock on the editor's state, so a message never lands in the middle of a
//! redraw.

use crate::fit;
use crossterm::cursor::{MoveLeft, MoveToColumn, MoveUp};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::queue;
use crossterm::style::Print;
use crossterm::terminal::{self, Clear, ClearType};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

const PROMPT: &str = "> ";
const HISTORY: usize = 500;

#[derive(Default)]
struct State {
    line: Vec<char>,
    cursor: usize,
    history: Vec<String>,
    /// Position while browsing history with the arrows; `None` when editing a new line.
    browsing: Option<usize>,
    closed: bool,
    /// Status lines by key, drawn above the prompt.
    status: BTreeMap<u64, String>,
    /// How many status rows the last redraw drew (the cursor sits on the prompt row below).
    drawn_rows: usize,
    /// Reading a password: this prompt is shown instead of the usual one, what is typed is
    /// not shown, and the line never goes into the history.
    secret: Option<&'static str>,
}

/// Prints lines above the prompt. Cheap to clone.
#[derive(Clone)]
pub struct EditorPrinter {
    state: Arc<Mutex<State>>,
}

impl EditorPrinter {
    /// Prints `text` above the prompt and redraws the line being edited.
    pub fn print(&self, text: &str) {
        let mut state = lock(&self.state);
        let mut out = std::io::stdout().lock();
        clear_area(&mut state, &mut out);
        // Raw mode: lines end with \r\n.
        let _ = queue!(out, Print(text.replace('\n', "\r\n")), Print("\r\n"));
        if !state.closed {
            redraw(&mut state, &mut out);
        }
        let _ = out.flush();
    }

    /// Reads the next line as a password: `prompt` is shown, the keys typed are not, and the
    /// line is kept out of the history.
    pub fn ask_secret(&self, prompt: &'static str) {
        let mut state = lock(&self.state);
        state.secret = Some(prompt);
        state.line.clear();
        state.cursor = 0;
        state.browsing = None;
        if !state.closed {
            let mut out = std::io::stdout().lock();
            redraw(&mut state, &mut out);
            let _ = out.flush();
        }
    }

    /// Shows (or with `None` removes) the status line `key` above the prompt.
    pub fn set_status(&self, key: u64, line: Option<String>) {
        let mut state = lock(&self.state);
        match line {
            Some(line) => state.status.insert(key, line),
            None => state.status.remove(&key),
        };
        if !state.closed {
            let mut out = std::io::stdout().lock();
            redraw(&mut state, &mut out);
            let _ = out.flush();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the editor on its own thread; lines typed arrive on `tx`, which is dropped at Ctrl-D,
/// Ctrl-C or when the terminal goes away. Returns `None` if the terminal cannot be put in raw
/// mode.
pub fn start(tx: mpsc::Sender<String>) -> Option<EditorPrinter> {
    terminal::enable_raw_mode().ok()?;
    let state = Arc::new(Mutex::new(State::default()));
    let printer = EditorPrinter {
        state: Arc::clone(&state),
    };
    {
        let mut out = std::io::stdout().lock();
        redraw(&mut lock(&state), &mut out);
        let _ = out.flush();
    }
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            let Event::Key(key) = ev else {
                if matches!(ev, Event::Resize(..)) {
                    let mut out = std::io::stdout().lock();
                    redraw(&mut lock(&state), &mut out);
                    let _ = out.flush();
                }
                continue;
            };
            if key.kind == KeyEventKind::Release {
                continue;
            }
            let submitted = {
                let mut st = lock(&state);
                let action = edit(&mut st, key);
                let mut out = std::io::stdout().lock();
                match &action {
                    Action::Submit(line) => {
                        clear_area(&mut st, &mut out);
                        let _ = queue!(out, Print(PROMPT), Print(line), Print("\r\n"));
                    }
                    Action::Secret(prompt, _) => {
                        clear_area(&mut st, &mut out);
                        let _ = queue!(out, Print(prompt), Print("\r\n"));
                    }
                    Action::Close => {
                        st.closed = true;
                        clear_area(&mut st, &mut out);
                    }
                    Action::Edited => {}
                }
                if !st.closed {
                    redraw(&mut st, &mut out);
                }
                let _ = out.flush();
                action
            };
            match submitted {
                Action::Submit(line) | Action::Secret(_, line) => {
                    if tx.blocking_send(line).is_err() {
                        break;
                    }
                }
                Action::Close => break,
                Action::Edited => {}
            }
        }
        let _ = terminal::disable_raw_mode();
    });
    Some(printer)
}

enum Action {
    Edited,
    Submit(String),
    /// A password typed at this prompt.
    Secret(&'static str, String),
    Close,
}

/// Applies one key to the state.
fn edit(st: &mut State, key: KeyEvent) -> Action {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char('c' | 'd') if ctrl => {
            if key.code == KeyCode::Char('d') && !st.line.is_empty() {
                if st.cursor < st.line.len() {
                    st.line.remove(st.cursor);
                }
                return Action::Edited;
            }
            return Action::Close;
        }
        KeyCode::Char('a') if ctrl => st.cursor = 0,
        KeyCode::Char('e') if ctrl => st.cursor = st.line.len(),
        KeyCode::Char('u') if ctrl => {
            st.line.drain(..st.cursor);
            st.cursor = 0;
        }
        KeyCode::Char('k') if ctrl => st.line.truncate(st.cursor),
        KeyCode::Char('w') if ctrl => {
            let mut start = st.cursor;
            while start > 0 && st.line[start - 1] == ' ' {
                start -= 1;
            }
            while start > 0 && st.line[start - 1] != ' ' {
                start -= 1;
            }
            st.line.drain(start..st.cursor);
            st.cursor = start;
        }
        KeyCode::Char(c) if !ctrl => {
            st.line.insert(st.cursor, c);
            st.cursor += 1;
        }
        KeyCode::Backspace if st.cursor > 0 => {
            st.cursor -= 1;
            st.line.remove(st.cursor);
        }
        KeyCode::Delete if st.cursor < st.line.len() => {
            st.line.remove(st.cursor);
        }
        KeyCode::Left => st.cursor = st.cursor.saturating_sub(1),
        KeyCode::Right => st.cursor = (st.cursor + 1).min(st.line.len()),
        KeyCode::Home => st.cursor = 0,
        KeyCode::End => st.cursor = st.line.len(),
        KeyCode::Up | KeyCode::Down if st.secret.is_some() => {}
        KeyCode::Up => {
            let at = st.browsing.unwrap_or(st.history.len());
            if at > 0 {
                st.browsing = Some(at - 1);
                st.line = st.history[at - 1].chars().collect();
                st.cursor = st.line.len();
            }
        }
        KeyCode::Down => {
            if let Some(at) = st.browsing {
                if at + 1 < st.history.len() {
                    st.browsing = Some(at + 1);
                    st.line = st.history[at + 1].chars().collect();
                } else {
                    st.browsing = None;
                    st.line.clear();
                }
                st.cursor = st.line.len();
            }
        }
        KeyCode::Enter => {
            let line: String = st.line.drain(..).collect();
            st.cursor = 0;
            st.browsing = None;
            if let Some(prompt) = st.secret.take() {
                return Action::Secret(prompt, line);
            }
            if !line.trim().is_empty() && st.history.last() != Some(&line) {
                if st.history.len() == HISTORY {
                    st.history.remove(0);
                }
                st.history.push(line.clone());
            }
            return Action::Submit(line);
        }
        _ => {}
    }
    Action::Edited
}

/// Erases the status lines and the prompt, leaving the cursor where they started.
fn clear_area(st: &mut State, out: &mut impl Write) {
    let _ = queue!(out, MoveToColumn(0));
    if let Ok(rows) = u16::try_from(st.drawn_rows)
        && rows > 0
    {
        let _ = queue!(out, MoveUp(rows));
    }
    let _ = queue!(out, Clear(ClearType::FromCursorDown));
    st.drawn_rows = 0;
}

/// Draws the status lines, the prompt and the part of the line around the cursor that fits the
/// terminal, measured in columns (a wide character takes two).
fn redraw(st: &mut State, out: &mut impl Write) {
    let width = terminal::size().map_or(80, |(w, _)| usize::from(w)).max(10);
    clear_area(st, out);
    for line in st.status.values() {
        // One row each: a wrapped line would break the count of rows to move back over. Its
        // colour codes are kept whole, and reset where it is cut.
        let _ = queue!(out, Print(fit::fit(line, width - 1)), Print("\r\n"));
    }
    st.drawn_rows = st.status.len();
    if let Some(prompt) = st.secret {
        // Nothing of a password is drawn, not even its length.
        let _ = queue!(out, Print(prompt));
        return;
    }
    let room = width - fit::width(PROMPT) - 1;
    let (start, end, back) = fit::window(&st.line, st.cursor, room);
    let visible: String = st.line[start..end].iter().collect();
    let _ = queue!(out, Print(PROMPT), Print(visible));
    if let Ok(back) = u16::try_from(back)
        && back > 0
    {
        let _ = queue!(out, MoveLeft(back));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn type_text(st: &mut State, text: &str) {
        for c in text.chars() {
            edit(st, key(KeyCode::Char(c)));
        }
    }

    fn submit(st: &mut State) -> Option<String> {
        match edit(st, key(KeyCode::Enter)) {
            Action::Submit(line) => Some(line),
            _ => None,
        }
    }

    #[test]
    fn typing_and_editing_in_the_middle() {
        let mut st = State::default();
        type_text(&mut st, "helo");
        edit(&mut st, key(KeyCode::Left));
        type_text(&mut st, "l");
        edit(&mut st, key(KeyCode::End));
        type_text(&mut st, " world");
        edit(&mut st, ctrl('w'));
        edit(&mut st, key(KeyCode::Backspace));
        assert_eq!(submit(&mut st).as_deref(), Some("hello"));
        assert!(st.line.is_empty() && st.cursor == 0);
    }

    #[test]
    fn history_comes_back_with_the_arrows() {
        let mut st = State::default();
        type_text(&mut st, "first");
        submit(&mut st);
        type_text(&mut st, "second");
        submit(&mut st);
        edit(&mut st, key(KeyCode::Up));
        edit(&mut st, key(KeyCode::Up));
        assert_eq!(st.line.iter().collect::<String>(), "first");
        edit(&mut st, key(KeyCode::Down));
        assert_eq!(submit(&mut st).as_deref(), Some("second"));
    }

    #[test]
    fn a_secret_line_is_not_drawn_and_stays_out_of_the_history() {
        let mut st = State {
            secret: Some("Password: "),
            ..State::default()
        };
        type_text(&mut st, "hunter2hunter2");
        let mut drawn = Vec::new();
        redraw(&mut st, &mut drawn);
        let drawn = String::from_utf8_lossy(&drawn);
        assert!(
            drawn.contains("Password: ") && !drawn.contains("hunter2"),
            "{drawn}"
        );
        match edit(&mut st, key(KeyCode::Enter)) {
            Action::Secret("Password: ", line) => assert_eq!(line, "hunter2hunter2"),
            _ => panic!("not read as a secret"),
        }
        assert!(st.history.is_empty() && st.secret.is_none());
        // The next line is an ordinary one again.
        type_text(&mut st, "hello");
        assert_eq!(submit(&mut st).as_deref(), Some("hello"));
    }

    #[test]
    fn ctrl_d_on_an_empty_line_and_ctrl_c_close() {
        let mut st = State::default();
        assert!(matches!(edit(&mut st, ctrl('d')), Action::Close));
        type_text(&mut st, "x");
        assert!(matches!(edit(&mut st, ctrl('c')), Action::Close));
    }
}
