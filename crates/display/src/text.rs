//! Showing text that came from the network.
//!
//! Names, chat texts, file names and error messages are written by whoever is on the other end
//! of the connection. Shown raw, a newline forges a line that looks like the client's own
//! (`[12:00:00] [private] admin: ...`), an escape sequence sets the window title or clears the
//! screen, and a bidirectional override makes `txt.exe` read as `exe.txt`. [`visible`] makes
//! every such character show as what it is, so that no text can pass for another line or move
//! the cursor.

use std::borrow::Cow;
use std::fmt::Write;
use wire::is_hidden_control;

/// `text` with every [`wire::is_hidden_control`] character written as an escape (`\n`, `\t`,
/// `\u{1b}`, `\u{202e}`): safe to print on a terminal or show in a window.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hidden_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hidden_control(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_left_as_it_is() {
        for text in [
            "hello",
            "héllo wörld",
            "日本語",
            "emoji 🎉",
            "a\\nb (typed)",
        ] {
            assert!(matches!(visible(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn controls_and_direction_overrides_show_as_escapes() {
        for (raw, shown) in [
            (
                "hi\n[12:00:00] [private] admin: x",
                "hi\\n[12:00:00] [private] admin: x",
            ),
            ("\u{1b}]0;owned\u{7}", "\\u{1b}]0;owned\\u{7}"),
            ("\u{1b}[31mred\u{1b}[2K", "\\u{1b}[31mred\\u{1b}[2K"),
            ("a\rb\tc\u{7f}", "a\\rb\\tc\\u{7f}"),
            ("\u{9b}2J", "\\u{9b}2J"),
            ("evil\u{202e}txt.exe", "evil\\u{202e}txt.exe"),
            ("\u{2066}x\u{2069}\u{200f}", "\\u{2066}x\\u{2069}\\u{200f}"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
        ] {
            assert_eq!(visible(raw), shown);
        }
    }
}
