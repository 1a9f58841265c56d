//! User names: what is allowed, and when two names are "the same" or only look alike.

/// Longest name, in characters.
pub const MAX_NAME_LEN: usize = 32;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Names need at least one character.
    #[error("the name is empty")]
    Empty,
    /// Names are at most [`MAX_NAME_LEN`] characters.
    #[error("the name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    /// Only ASCII letters, digits, `_`, `-` and `.` are allowed.
    #[error("the name contains {0:?}; use letters, digits, '_', '-' or '.'")]
    BadChar(char),
    /// A name may not begin or end with `.` (so `.` and `..` are never names): such names read
    /// as paths, and a trailing dot is easily overlooked beside the same name without it.
    #[error("the name begins or ends with '.'")]
    DotAtEdge,
}

/// Checks that `name` is 1 to 32 characters of ASCII letters, digits, `_`, `-` and `.`, and
/// neither begins nor ends with `.`.
///
/// ASCII only, so names cannot impersonate each other with look-alike letters of other scripts;
/// the look-alikes ASCII has itself (`I` and `l`, `0` and `O`) are caught by [`lookalike_key`].
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(NameError::BadChar(bad));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if name.starts_with('.') || name.ends_with('.') {
        return Err(NameError::DotAtEdge);
    }
    Ok(())
}

/// The key under which a name is unique: names differing only in case are the same user.
pub fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// The key under which names that only look alike collide: the confusables skeleton of
/// Unicode TS #39 (which maps `I` and `1` to `l`, `0` to `O`, `rn` and `m` together, ...),
/// then ignoring case as [`name_key`] does. `aIice`, `a1ice` and `Alice` have the key of
/// `alice`, so a server that refuses a name whose key is taken stops them impersonating her.
pub fn lookalike_key(name: &str) -> String {
    use unicode_security::confusable_detection::skeleton;
    skeleton(name).collect::<String>().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        assert_eq!(validate_name("Alice_01-x.y"), Ok(()));
        assert_eq!(validate_name(&"a".repeat(32)), Ok(()));
    }

    #[test]
    fn refuses_empty_long_and_odd_names() {
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name(&"a".repeat(33)), Err(NameError::TooLong));
        assert_eq!(validate_name("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(validate_name("ålice"), Err(NameError::BadChar('å')));
    }

    #[test]
    fn refuses_dots_at_either_end() {
        for name in [".", "..", "...", ".alice", "alice.", "..alice"] {
            assert_eq!(validate_name(name), Err(NameError::DotAtEdge), "{name:?}");
        }
        assert_eq!(validate_name("a.l.i.c.e"), Ok(()));
    }

    #[test]
    fn keys_ignore_case() {
        assert_eq!(name_key("Bob"), name_key("bOB"));
    }

    #[test]
    fn names_that_only_look_alike_share_a_lookalike_key() {
        let alice = lookalike_key("alice");
        for twin in ["aIice", "a1ice", "Alice", "AIice"] {
            assert_eq!(lookalike_key(twin), alice, "{twin:?}");
        }
        assert_eq!(lookalike_key("b0b"), lookalike_key("bob"));
        assert_eq!(lookalike_key("rnary"), lookalike_key("mary"));
        assert_ne!(lookalike_key("alice"), lookalike_key("alicia"));
        assert_ne!(lookalike_key("bob"), lookalike_key("rob"));
    }
}
