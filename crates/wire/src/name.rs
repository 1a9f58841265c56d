//! User names: what is allowed, and when two names are "the same".

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
}

/// Checks that `name` is 1 to 32 characters of ASCII letters, digits, `_`, `-` and `.`.
///
/// ASCII only, so names cannot impersonate each other with look-alike characters.
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
    Ok(())
}

/// The key under which a name is unique: names differing only in case are the same user.
pub fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
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
    fn keys_ignore_case() {
        assert_eq!(name_key("Bob"), name_key("bOB"));
    }
}
