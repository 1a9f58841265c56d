//! Text from the network: which characters control a terminal or a text's direction instead of
//! showing. Every name and text a peer sends is data; a front end shows these characters as
//! escapes, and a file name never keeps them.

/// True for characters that control the terminal or the text's direction instead of showing:
/// C0 controls (newline and tab included), DEL, C1 controls, and the Unicode bidirectional
/// formatting characters (embeddings, overrides, isolates and marks).
pub fn is_hidden_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
        // Line and paragraph separators break lines in some terminals and widgets.
        || matches!(c, '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_direction_marks_are_hidden_and_letters_are_not() {
        for c in [
            '\n', '\t', '\u{1b}', '\u{7f}', '\u{9b}', '\u{202e}', '\u{2066}', '\u{2028}',
        ] {
            assert!(is_hidden_control(c), "{c:?}");
        }
        for c in ['a', 'é', '日', '🎉', ' ', '/'] {
            assert!(!is_hidden_control(c), "{c:?}");
        }
    }
}
