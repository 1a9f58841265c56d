//! Fitting text to terminal columns: wide characters take two columns, combining marks none,
//! and colour codes (`ESC [ ... m`, what `Output::paint` writes) none, and are never cut in half.

use unicode_width::UnicodeWidthChar;

/// Columns `c` takes on a terminal (control characters are drawn as nothing).
pub fn char_width(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Columns `text` takes, its escape sequences excluded.
pub fn width(text: &str) -> usize {
    let mut total = 0;
    for piece in pieces(text) {
        if let Piece::Char(c) = piece {
            total += char_width(c);
        }
    }
    total
}

/// The longest start of `text` that fits in `columns`, with every escape sequence it holds
/// whole; if anything was cut after a colour code, the colours are reset at the end, so that
/// what follows is not painted.
pub fn fit(text: &str, columns: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut used = 0;
    let mut painted = false;
    for piece in pieces(text) {
        match piece {
            Piece::Escape(seq) => {
                out.push_str(seq);
                painted = true;
            }
            Piece::Char(c) => {
                let w = char_width(c);
                if used + w > columns {
                    if painted {
                        out.push_str(RESET);
                    }
                    return out;
                }
                used += w;
                out.push(c);
            }
        }
    }
    out
}

const RESET: &str = "\x1b[0m";

/// The part of `line` (characters, the cursor at index `cursor`) to show in `columns`: the
/// window's first and last character indices and how many columns the cursor sits from the
/// window's right end. The cursor is always inside the window (at its end when it is at the
/// end of the line), so the window scrolls as it moves.
pub fn window(line: &[char], cursor: usize, columns: usize) -> (usize, usize, usize) {
    let cursor = cursor.min(line.len());
    // The cursor needs a column of its own at the end of the line.
    let cursor_cell = line.get(cursor).map_or(1, |&c| char_width(c).max(1));
    let mut start = cursor;
    let mut used = cursor_cell.min(columns);
    while start > 0 {
        let w = char_width(line[start - 1]);
        if used + w > columns {
            break;
        }
        used += w;
        start -= 1;
    }
    let mut end = cursor;
    let mut shown = used - cursor_cell.min(columns);
    while end < line.len() {
        let w = char_width(line[end]);
        if shown + w > columns {
            break;
        }
        shown += w;
        end += 1;
    }
    let back = line[cursor..end].iter().map(|&c| char_width(c)).sum();
    (start, end, back)
}

enum Piece<'a> {
    Char(char),
    Escape(&'a str),
}

/// `text` as characters and whole escape sequences (`ESC [` parameters and one final byte in
/// `@`..=`~`; a lone `ESC` or a sequence cut off at the end is one piece too).
fn pieces(text: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let c = rest.chars().next()?;
        if c == '\x1b' {
            let bytes = rest.as_bytes();
            let mut end = 1;
            if bytes.get(1) == Some(&b'[') {
                end = 2;
                while let Some(&b) = bytes.get(end) {
                    end += 1;
                    if (0x40..=0x7e).contains(&b) {
                        break;
                    }
                }
            }
            // Every byte of a CSI sequence is ASCII: `end` is a character boundary.
            let (seq, tail) = rest.split_at(end.min(rest.len()));
            rest = tail;
            return Some(Piece::Escape(seq));
        }
        rest = &rest[c.len_utf8()..];
        Some(Piece::Char(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREEN: &str = "\x1b[32m";

    #[test]
    fn widths() {
        for (text, columns) in [
            ("", 0),
            ("abc", 3),
            ("漢字", 4),
            ("e\u{301}", 1), // e and a combining accent
            ("😀!", 3),
            ("\x1b[32mok\x1b[0m", 2),
            ("\x1b[1;31mred", 3),
        ] {
            assert_eq!(width(text), columns, "{text:?}");
        }
    }

    #[test]
    fn fitting_never_cuts_a_colour_code_or_a_wide_character() {
        for (text, columns, fitted) in [
            ("hello", 3, "hel"),
            ("hello", 9, "hello"),
            ("漢字x", 3, "漢"),
            ("漢字x", 4, "漢字"),
            ("a😀b", 2, "a"),
            // The code is kept whole and the colour reset after the cut.
            ("\x1b[32mdone: a.bin\x1b[0m", 4, "\x1b[32mdone\x1b[0m"),
            ("\x1b[32m", 0, "\x1b[32m"),
            ("ab\x1b[32mcd", 2, "ab\x1b[32m\x1b[0m"),
            ("x\x1b[3", 5, "x\x1b[3"), // cut off by the sender: kept as it is
        ] {
            let got = fit(text, columns);
            assert_eq!(got, fitted, "{text:?} in {columns}");
            assert!(width(&got) <= columns);
        }
        let line = format!("{GREEN}{}", "漢".repeat(50));
        for columns in 0..30 {
            let got = fit(&line, columns);
            assert!(got.starts_with(GREEN));
            assert_eq!(width(&got), columns / 2 * 2);
        }
    }

    #[test]
    fn the_window_keeps_the_cursor_in_view_and_counts_columns() {
        let line: Vec<char> = "ab漢字cd".chars().collect();
        // (cursor, columns) -> (start, end, columns from the cursor to the window's end)
        for (cursor, columns, expected) in [
            (0, 20, (0, 6, 8)),
            (6, 20, (0, 6, 0)),
            (6, 5, (3, 6, 0)), // "字cd" and the cursor's cell; 漢 would not fit
            (3, 4, (2, 4, 2)), // "漢字", the cursor on 字
            (2, 3, (1, 3, 2)), // "b漢"
            (0, 1, (0, 1, 1)),
        ] {
            assert_eq!(
                window(&line, cursor, columns),
                expected,
                "cursor {cursor}, {columns} columns"
            );
        }
    }
}
