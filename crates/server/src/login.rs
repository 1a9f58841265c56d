//! Who a hello logs in as: a guest, or an account (checked against its password, or
//! registered there and then), and the private messages that waited for an account.

use crate::Shared;
use crate::accounts::Secret;
use crate::limit::AddressKey;
use crate::registry::{Outbox, now_millis};
use crate::store::{AccountId, Write, Written};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use wire::{ErrorCode, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, ServerMsg, StoredMessage, name_key};

/// An account a session is logged in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoggedIn {
    /// Its id.
    pub(crate) id: AccountId,
    /// Its name as registered.
    pub(crate) name: String,
}

/// A hello refused: the code and the words.
pub(crate) type Refusal = (ErrorCode, String);

/// The one answer to a failed login, whatever failed (no such account, no password, a wrong
/// one), so that nothing tells a guesser which.
fn auth_failed(shared: &Shared) -> Refusal {
    let text = if shared.config.require_accounts {
        "wrong name or password (this server admits accounts only; a new one registers with \
         its hello)"
    } else {
        "wrong name or password"
    };
    (ErrorCode::AuthFailed, text.into())
}

fn rate_limited(wait: Duration) -> Refusal {
    (
        ErrorCode::RateLimited,
        format!(
            "too many failed logins; try again in {} ms",
            wait.as_millis().max(1)
        ),
    )
}

/// Checks a new password's length.
pub(crate) fn check_password(password: &str) -> Result<(), Refusal> {
    let len = password.len();
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&len) {
        Ok(())
    } else {
        Err((
            ErrorCode::InvalidPassword,
            format!(
                "a password has {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} bytes, this one {len}"
            ),
        ))
    }
}

fn internal(err: impl std::fmt::Display) -> Refusal {
    tracing::error!(%err, "the database failed during a login");
    (
        ErrorCode::Internal,
        "the server cannot reach its database; try again later".into(),
    )
}

/// Decides what the hello of `name` from `address` logs in as: `None` for a guest.
pub(crate) async fn authenticate(
    shared: &Shared,
    name: &str,
    password: Option<String>,
    register: bool,
    address: AddressKey,
) -> Result<Option<LoggedIn>, Refusal> {
    let key = name_key(name);
    let lookup = key.clone();
    let account = shared
        .store
        .read(move |r| r.account(&lookup))
        .await
        .map_err(internal)?;
    let Some(password) = password else {
        // No password: a guest, if the name is nobody's and guests are welcome.
        return if account.is_some() || shared.config.require_accounts {
            Err(auth_failed(shared))
        } else {
            Ok(None)
        };
    };
    if let Some(wait) = shared.logins.wait(&key, address, std::time::Instant::now()) {
        return Err(rate_limited(wait));
    }
    match account {
        Some(account) => {
            let ok = shared
                .passwords
                .verify(Secret(password), Some(account.password))
                .await;
            if ok {
                shared.logins.succeeded(&key);
                Ok(Some(LoggedIn {
                    id: account.id,
                    name: account.name,
                }))
            } else {
                shared
                    .logins
                    .failed(&key, address, std::time::Instant::now());
                Err(auth_failed(shared))
            }
        }
        None if register => {
            check_password(&password)?;
            if shared.registry.lookup(name).is_some() {
                return Err((
                    ErrorCode::NameTaken,
                    format!("the name {name:?} is already taken"),
                ));
            }
            let id = create(shared, name, password, address).await?;
            Ok(Some(LoggedIn {
                id,
                name: name.to_owned(),
            }))
        }
        None => {
            // As slow as a wrong password, and counted as one.
            shared.passwords.verify(Secret(password), None).await;
            shared
                .logins
                .failed(&key, address, std::time::Instant::now());
            Err(auth_failed(shared))
        }
    }
}

/// Registers `name` with `password` (its length checked already), for a client at `address`.
pub(crate) async fn create(
    shared: &Shared,
    name: &str,
    password: String,
    address: AddressKey,
) -> Result<AccountId, Refusal> {
    if let Err(wait) = shared.registrations.take(
        address,
        std::time::Instant::now(),
        shared.config.registrations_per_hour,
    ) {
        return Err((
            ErrorCode::RateLimited,
            format!(
                "too many new accounts from your address; try again in {} minutes",
                wait.as_secs().div_ceil(60).max(1)
            ),
        ));
    }
    let hash = shared
        .passwords
        .hash(Secret(password))
        .await
        .map_err(internal)?;
    let write = Write::CreateAccount {
        name: name.to_owned(),
        password: hash,
        time: now_millis(),
        max_accounts: shared.config.max_accounts,
    };
    match shared.store.write(write).await {
        Ok(Written::Account(id)) => Ok(id),
        Ok(_) => Err(internal("unexpected answer")),
        Err(crate::store::StoreError::Exists) => Err((
            ErrorCode::NameTaken,
            format!("the name {name:?} is registered already"),
        )),
        Err(crate::store::StoreError::TooManyAccounts) => Err((
            ErrorCode::ServerFull,
            format!(
                "this server keeps {} accounts, its most; ask its operator",
                shared.config.max_accounts
            ),
        )),
        Err(err) => Err(internal(err)),
    }
}

/// Checks `password` against the stored hash of the account `name` is logged in to, counting
/// a failure against the name and address as a login's would.
pub(crate) async fn recheck(
    shared: &Shared,
    name: &str,
    password: String,
    address: AddressKey,
) -> Result<(), Refusal> {
    let key = name_key(name);
    if let Some(wait) = shared.logins.wait(&key, address, std::time::Instant::now()) {
        return Err(rate_limited(wait));
    }
    let lookup = key.clone();
    let account = shared
        .store
        .read(move |r| r.account(&lookup))
        .await
        .map_err(internal)?;
    let hash = account.map(|a| a.password);
    if shared.passwords.verify(Secret(password), hash).await {
        Ok(())
    } else {
        shared
            .logins
            .failed(&key, address, std::time::Instant::now());
        Err((ErrorCode::AuthFailed, "wrong password".into()))
    }
}

/// Messages taken from the waiting ones at a time: at most 16 × 4 KiB texts (about 400 KiB
/// escaped at worst), one queue entry.
const WAITING_BATCH: usize = 16;
/// How long the hand-out waits for room in a queue that a client is slow to read.
const WAITING_PATIENCE: Duration = Duration::from_secs(60);

/// Hands the private messages waiting for `account` to `outbox` (a seat of it), oldest
/// first, marked `offline`, a batch at a time as its queue has room. A batch that cannot be
/// queued stays in the history (the sender's and the recipient's), not in the waiting ones.
pub(crate) async fn deliver_waiting(shared: Arc<Shared>, account: AccountId, outbox: Outbox) {
    loop {
        let write = Write::TakeWaiting {
            account,
            limit: WAITING_BATCH,
        };
        let (messages, more) = match shared.store.write(write).await {
            Ok(Written::Taken { messages, more }) => (messages, more),
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(%err, "cannot take the messages waiting for an account");
                return;
            }
        };
        if messages.is_empty() {
            return;
        }
        let entry = waiting_entry(&messages);
        let deadline = tokio::time::Instant::now() + WAITING_PATIENCE;
        loop {
            if outbox.is_closed() {
                return;
            }
            if outbox.has_room(entry.len()) && outbox.offer(entry.clone()) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    lost = messages.len(),
                    "a client took no waiting messages for a minute; they stay in its history"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !more {
            return;
        }
    }
}

fn waiting_entry(messages: &[StoredMessage]) -> Bytes {
    let mut entry = Vec::new();
    for msg in messages {
        let frame = ServerMsg::Message {
            id: Some(msg.id),
            from: msg.from.clone(),
            text: msg.text.clone(),
            private: true,
            time: msg.time,
            history: false,
            offline: true,
        }
        .to_frame();
        entry.extend_from_slice(&frame);
    }
    Bytes::from(entry)
}
