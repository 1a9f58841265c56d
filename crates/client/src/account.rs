//! Accounts and history on the client's side: how to log in (a guest's name, or an account's
//! name and password), the password itself (never shown in logs or `Debug` output), and a
//! page of stored messages as the server gave it.

pub use wire::{MAX_HISTORY_PAGE, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, StoredMessage};

/// A password. Its `Debug` shows nothing of it, so a command or a login printed in a log
/// leaks nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps `password` as typed (nothing is trimmed).
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself, to send.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty password.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Who to join as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The wanted name.
    pub name: String,
    /// The account's password; `None` joins as a guest.
    pub password: Option<Password>,
    /// With a password: make the name an account first (on any server, and the only way onto
    /// a server that admits no guests).
    pub register: bool,
}

impl Login {
    /// A guest called `name`.
    pub fn guest(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            password: None,
            register: false,
        }
    }

    /// The account `name`, with its password.
    pub fn account(name: impl Into<String>, password: Password) -> Self {
        Self {
            name: name.into(),
            password: Some(password),
            register: false,
        }
    }
}

/// Which stored messages to ask for: a page back in one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryQuery {
    /// The other party of a private conversation; `None` for the broadcast one.
    pub with: Option<String>,
    /// Only messages older than this id (the first id of the page before); `None` for the
    /// latest.
    pub before: Option<u64>,
    /// Most messages, at most [`MAX_HISTORY_PAGE`]; `None` for the server's default.
    pub limit: Option<u32>,
}

/// A page of stored messages, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryPage {
    /// The other party, for a private conversation.
    pub with: Option<String>,
    /// The messages, oldest first.
    pub messages: Vec<StoredMessage>,
    /// Older messages remain: ask again with `before` set to the first id here.
    pub more: bool,
}

impl HistoryPage {
    /// The query for the page before this one, if there is one.
    pub fn older(&self, limit: Option<u32>) -> Option<HistoryQuery> {
        let first = self.messages.first()?;
        self.more.then(|| HistoryQuery {
            with: self.with.clone(),
            before: Some(first.id),
            limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let login = Login::account("alice", Password::new("correct horse"));
        let shown = format!("{login:?}");
        assert!(!shown.contains("correct"), "{shown}");
        assert!(shown.contains("alice"));
    }

    #[test]
    fn the_page_before_starts_below_the_first_id_and_none_follows_the_last() {
        let msg = |id| StoredMessage {
            id,
            from: "a".into(),
            to: None,
            text: "t".into(),
            time: 0,
        };
        let page = HistoryPage {
            with: Some("bob".into()),
            messages: vec![msg(7), msg(9)],
            more: true,
        };
        assert_eq!(
            page.older(Some(5)),
            Some(HistoryQuery {
                with: Some("bob".into()),
                before: Some(7),
                limit: Some(5)
            })
        );
        let last = HistoryPage {
            more: false,
            ..page
        };
        assert_eq!(last.older(None), None);
    }
}
