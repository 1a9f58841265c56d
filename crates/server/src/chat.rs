//! Chat requests that touch the database: messages (stored, then delivered), history pages,
//! and the account's own requests (register, change password, delete).
//!
//! A message is delivered only once its write has committed. The session does not wait for
//! that before reading its client's next request: each stored message's delivery joins the
//! session's [`Pipeline`], which runs them in the order they were sent, so a client's
//! messages never overtake each other and a pipelining client is not held to one message per
//! commit.

use crate::Shared;
use crate::limit::AddressKey;
use crate::login::{self, LoggedIn, Refusal};
use crate::registry::{Outbox, now_millis};
use crate::store::{HistoryQuery, NewMessage, Party, Pending, StoreError, Write, Written};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;
use wire::{
    ErrorCode, MAX_HISTORY_PAGE, MAX_HISTORY_PAGE_BYTES, MAX_TEXT_LEN, ServerMsg, StoredMessage,
    name_key,
};

/// Deliveries one session may have waiting for their commits at most; a client that sends
/// faster waits (held back by TCP) until the first of them is out. A session's own queue
/// bounds it further (see [`Pipeline::new`]).
const PIPELINE_DEPTH: usize = 64;

/// The deliveries of one session's messages, run in order once each is committed.
///
/// The session's other answers go through it too while deliveries wait, so that a client
/// gets everything in the order of its requests: the echo of a private message to itself
/// before the `pong` of the `ping` it sent next.
pub(crate) struct Pipeline {
    tx: mpsc::Sender<BoxFuture<'static, ()>>,
    /// Steps pushed and not yet run to their end.
    waiting: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Pipeline {
    /// A pipeline for a session whose queue holds `queue_limit` frames. Each step may answer
    /// (an error, `message_queued`), and the answers of the steps waiting come out together
    /// once their commit is done: so at most a quarter of the queue's frames wait, and a
    /// client that pipelines its requests is not evicted for the burst of its own answers.
    pub(crate) fn new(queue_limit: usize) -> Self {
        let depth = (queue_limit / 4).clamp(1, PIPELINE_DEPTH);
        let (tx, mut rx) = mpsc::channel::<BoxFuture<'static, ()>>(depth);
        let waiting = Arc::new(AtomicUsize::new(0));
        let done = Arc::clone(&waiting);
        let task = tokio::spawn(async move {
            while let Some(step) = rx.recv().await {
                step.await;
                done.fetch_sub(1, Ordering::AcqRel);
            }
        });
        Self { tx, waiting, task }
    }

    async fn push(&self, step: BoxFuture<'static, ()>) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        // The task ends only once the sender is dropped, so this cannot fail before `finish`.
        let _ = self.tx.send(step).await;
    }

    /// Answers the session: at once if no delivery waits, else after those that do.
    pub(crate) async fn reply(&self, shared: &Arc<Shared>, me: &Me, msg: ServerMsg) {
        // Only this session pushes, so none is added between the check and the reply.
        if self.waiting.load(Ordering::Acquire) == 0 {
            answer(shared, &me.outbox, &me.name, me.session, &msg).await;
            return;
        }
        let (shared, outbox, name, session) = (
            Arc::clone(shared),
            me.outbox.clone(),
            me.name.clone(),
            me.session,
        );
        self.push(Box::pin(async move {
            answer(&shared, &outbox, &name, session, &msg).await;
        }))
        .await;
    }

    /// Runs what is queued to its end.
    pub(crate) async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

/// Answers the session's own request: waits for room in its queue (so a client that sends
/// faster than it reads is held back, not evicted for the answers it asked for), for at most
/// the idle timeout, after which a client whose queue still has no room is evicted as a slow
/// consumer.
async fn answer(shared: &Shared, outbox: &Outbox, name: &str, session: u64, msg: &ServerMsg) {
    let stall = shared.config.idle_timeout;
    shared
        .registry
        .reply(outbox, name, session, msg, stall)
        .await;
}

/// The session a request comes from.
pub(crate) struct Me {
    pub(crate) name: String,
    pub(crate) session: u64,
    pub(crate) address: AddressKey,
    pub(crate) outbox: Outbox,
    pub(crate) account: Option<LoggedIn>,
}

impl Me {
    fn party(&self) -> Party {
        Party {
            name: self.name.clone(),
            account: self.account.as_ref().map(|a| a.id),
        }
    }
}

fn refused(req: Option<u64>, (code, text): Refusal) -> ServerMsg {
    ServerMsg::error(req, code, text)
}

pub(crate) fn check_text(text: &str, req: Option<u64>) -> Option<ServerMsg> {
    (text.len() > MAX_TEXT_LEN).then(|| {
        let detail = format!(
            "messages are at most {MAX_TEXT_LEN} bytes, this one has {}",
            text.len()
        );
        ServerMsg::error(req, ErrorCode::TooLong, detail)
    })
}

fn not_stored(req: Option<u64>, err: &StoreError) -> ServerMsg {
    tracing::error!(%err, "cannot store a message");
    ServerMsg::error(
        req,
        ErrorCode::Internal,
        "the server could not store the message, so it was not sent",
    )
}

/// What a committed write said, as the id of the stored message.
async fn committed(pending: Pending) -> Result<u64, StoreError> {
    match pending.await {
        Ok(Ok(Written::Message(id))) => Ok(id),
        Ok(Ok(_)) => Err(StoreError::Closed),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(StoreError::Closed),
    }
}

/// A message for everyone: stored, then delivered.
pub(crate) async fn send_all(
    shared: &Arc<Shared>,
    me: &Me,
    pipe: &Pipeline,
    text: String,
    req: Option<u64>,
) -> Option<ServerMsg> {
    if let Some(err) = check_text(&text, req) {
        return Some(err);
    }
    let time = now_millis();
    let pending = shared
        .store
        .submit(Write::Message(NewMessage {
            from: me.party(),
            to: None,
            text: text.clone(),
            time,
            hold_for_recipient: None,
        }))
        .await;
    let (shared, outbox, name, session) = (
        Arc::clone(shared),
        me.outbox.clone(),
        me.name.clone(),
        me.session,
    );
    pipe.push(Box::pin(async move {
        match committed(pending).await {
            Ok(id) => {
                let frame = ServerMsg::message(Some(id), &name, &text, false, time).to_frame();
                let stored = StoredMessage {
                    id,
                    from: name,
                    to: None,
                    text,
                    time,
                };
                shared.registry.broadcast(session, &frame, Some(stored));
            }
            Err(err) => {
                let msg = not_stored(req, &err);
                answer(&shared, &outbox, &name, session, &msg).await;
            }
        }
    }))
    .await;
    None
}

/// A message for one user: stored, then delivered to them if online, or kept for their
/// account if they have one and are not.
pub(crate) async fn send_private(
    shared: &Arc<Shared>,
    me: &Me,
    pipe: &Pipeline,
    to: String,
    text: String,
    req: Option<u64>,
) -> Option<ServerMsg> {
    if let Some(err) = check_text(&text, req) {
        return Some(err);
    }
    let no_such_user = || {
        ServerMsg::error(
            req,
            ErrorCode::NoSuchUser,
            format!("{to:?} is not online and has no account here"),
        )
    };
    let (recipient, hold) = match shared.registry.lookup(&to) {
        Some(online) => (
            Party {
                name: online.name,
                account: online.account,
            },
            None,
        ),
        None => {
            let key = name_key(&to);
            match shared.store.read(move |r| r.account(&key)).await {
                Ok(Some(account)) => (
                    Party {
                        name: account.name,
                        account: Some(account.id),
                    },
                    Some(shared.config.max_offline_messages),
                ),
                Ok(None) => return Some(no_such_user()),
                Err(err) => return Some(not_stored(req, &err)),
            }
        }
    };
    let time = now_millis();
    let pending = shared
        .store
        .submit(Write::Message(NewMessage {
            from: me.party(),
            to: Some(recipient.clone()),
            text: text.clone(),
            time,
            hold_for_recipient: hold,
        }))
        .await;
    let (shared, outbox, name, session) = (
        Arc::clone(shared),
        me.outbox.clone(),
        me.name.clone(),
        me.session,
    );
    pipe.push(Box::pin(async move {
        let id = match committed(pending).await {
            Ok(id) => id,
            Err(StoreError::MailboxFull) => {
                let full = ServerMsg::error(
                    req,
                    ErrorCode::MailboxFull,
                    format!(
                        "{:?} is offline and has {} messages waiting already, the most kept; \
                         this one was not stored",
                        recipient.name, shared.config.max_offline_messages
                    ),
                );
                return answer(&shared, &outbox, &name, session, &full).await;
            }
            Err(err) => {
                let msg = not_stored(req, &err);
                return answer(&shared, &outbox, &name, session, &msg).await;
            }
        };
        if hold.is_some() {
            let queued = ServerMsg::MessageQueued {
                req,
                to: recipient.name.clone(),
                id,
            };
            answer(&shared, &outbox, &name, session, &queued).await;
            // They may have logged in while it was being stored: then it is theirs now.
            if let (Some(account), Some(online)) =
                (recipient.account, shared.registry.lookup(&recipient.name))
                && online.account == Some(account)
            {
                for seat in shared.registry.outboxes(&recipient.name) {
                    let shared = Arc::clone(&shared);
                    tokio::spawn(login::deliver_waiting(shared, account, seat));
                }
            }
            return;
        }
        let frame = ServerMsg::message(Some(id), &name, &text, true, time).to_frame();
        let refusal = match shared.registry.send_to(session, &recipient.name, frame) {
            Ok(()) => return,
            Err(ErrorCode::RateLimited) => ServerMsg::error(
                req,
                ErrorCode::RateLimited,
                format!(
                    "slow down: too many messages wait for {:?} to read them; try again shortly",
                    recipient.name
                ),
            ),
            Err(code) => ServerMsg::error(
                req,
                code,
                format!(
                    "{:?} went offline before the message reached them (it is in your history)",
                    recipient.name
                ),
            ),
        };
        answer(&shared, &outbox, &name, session, &refusal).await;
    }))
    .await;
    None
}

/// A page of history, broadcast or private (for an account only).
pub(crate) async fn history(
    shared: &Shared,
    me: &Me,
    with: Option<String>,
    before: Option<u64>,
    limit: Option<u32>,
    req: Option<u64>,
) -> ServerMsg {
    if !me
        .outbox
        .has_room(MAX_HISTORY_PAGE_BYTES + 2 * MAX_TEXT_LEN * 6)
    {
        let (_, bytes) = me.outbox.queued();
        return ServerMsg::error(
            req,
            ErrorCode::Busy,
            format!(
                "{bytes} bytes of replies wait for you to read them; read them, then ask again"
            ),
        );
    }
    let private = match (&with, &me.account) {
        (None, _) => None,
        (Some(other), Some(account)) => Some((account.id, name_key(other))),
        (Some(_), None) => {
            return ServerMsg::error(
                req,
                ErrorCode::NotRegistered,
                "only an account can read its private conversations; register first",
            );
        }
    };
    let query = HistoryQuery {
        private,
        before,
        limit: limit.map_or(MAX_HISTORY_PAGE, |l| {
            (l as usize).clamp(1, MAX_HISTORY_PAGE)
        }),
        max_bytes: MAX_HISTORY_PAGE_BYTES,
    };
    match shared.store.read(move |r| r.history(&query)).await {
        Ok(page) => ServerMsg::History {
            req,
            with,
            messages: page.messages,
            more: page.more,
        },
        Err(err) => {
            tracing::error!(%err, "cannot read history");
            ServerMsg::error(req, ErrorCode::Internal, "the history cannot be read now")
        }
    }
}

/// Makes the guest's name an account.
pub(crate) async fn register(
    shared: &Shared,
    me: &mut Me,
    password: String,
    req: Option<u64>,
) -> ServerMsg {
    if me.account.is_some() {
        return ServerMsg::error(
            req,
            ErrorCode::NameTaken,
            format!("{:?} is an account already", me.name),
        );
    }
    if let Err(refusal) = login::check_password(&password) {
        return refused(req, refusal);
    }
    match login::create(shared, &me.name, password, me.address).await {
        Ok(id) => {
            me.account = Some(LoggedIn {
                id,
                name: me.name.clone(),
            });
            shared.registry.set_account(&me.name, me.session, Some(id));
            tracing::info!(user = %me.name, "registered");
            ServerMsg::Registered {
                req,
                name: me.name.clone(),
            }
        }
        Err(refusal) => refused(req, refusal),
    }
}

fn guest(req: Option<u64>) -> ServerMsg {
    ServerMsg::error(
        req,
        ErrorCode::NotRegistered,
        "you are a guest: there is no account to change; register first",
    )
}

/// Changes the account's password, the current one checked first.
pub(crate) async fn change_password(
    shared: &Shared,
    me: &Me,
    password: String,
    new_password: String,
    req: Option<u64>,
) -> ServerMsg {
    let Some(account) = &me.account else {
        return guest(req);
    };
    if let Err(refusal) = login::check_password(&new_password) {
        return refused(req, refusal);
    }
    if let Err(refusal) = login::recheck(shared, &me.name, password, me.address).await {
        return refused(req, refusal);
    }
    let hash = match shared
        .passwords
        .hash(crate::accounts::Secret(new_password))
        .await
    {
        Ok(hash) => hash,
        Err(err) => return refused(req, (ErrorCode::Internal, err)),
    };
    let write = Write::SetPassword {
        account: account.id,
        password: hash,
    };
    match shared.store.write(write).await {
        Ok(_) => ServerMsg::PasswordChanged { req },
        Err(err) => {
            tracing::error!(%err, "cannot change a password");
            ServerMsg::error(
                req,
                ErrorCode::Internal,
                "the password could not be changed",
            )
        }
    }
}

/// Deletes the account, the password checked first; the session stays on as a guest.
pub(crate) async fn delete_account(
    shared: &Shared,
    me: &mut Me,
    password: String,
    req: Option<u64>,
) -> ServerMsg {
    let Some(account) = me.account.clone() else {
        return guest(req);
    };
    if let Err(refusal) = login::recheck(shared, &me.name, password, me.address).await {
        return refused(req, refusal);
    }
    match shared
        .store
        .write(Write::DeleteAccount {
            account: account.id,
        })
        .await
    {
        Ok(_) => {
            me.account = None;
            shared.registry.set_account(&me.name, me.session, None);
            tracing::info!(user = %me.name, "account deleted");
            ServerMsg::AccountDeleted { req }
        }
        Err(err) => {
            tracing::error!(%err, "cannot delete an account");
            ServerMsg::error(req, ErrorCode::Internal, "the account could not be deleted")
        }
    }
}
