//! Who is online, and how to reach them.
//!
//! The registry is the single owner of the user table. Its lock is never held across an await:
//! delivering a message is a `try_send` into the recipient's bounded outbox, so a slow client
//! can never stall the sender or anyone else; it is disconnected instead. Join and leave notices
//! are gathered into batches (see [`crate::notices`]) so that a crowd joining at once costs each
//! recipient one queue entry per batch rather than one per newcomer.

use crate::limit::AddressKey;
use crate::notices::Notices;
use crate::store::AccountId;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use wire::{ErrorCode, ServerMsg, StoredMessage, lookalike_key, name_key};

/// Why the server closes a connection: sent to the client in its last frame and to the others
/// in the `left` notice.
pub use wire::CloseReason;

/// How much one client's outbound queue may hold: frames and bytes. A client whose queue
/// would pass either is a slow consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most frames (a batch of notices counts as one).
    pub frames: usize,
    /// Most bytes. A single frame larger than this still goes into an empty queue.
    pub bytes: usize,
}

impl QueueLimits {
    /// The most one sender's private messages may hold of a recipient's queue: a quarter, so
    /// a flood from one connection is refused long before the recipient is in danger.
    fn per_sender(self) -> (usize, usize) {
        ((self.frames / 4).max(1), (self.bytes / 4).max(1))
    }

    /// The most all senders' private messages together may hold of a recipient's queue: half,
    /// so that a crowd of flooders cannot fill it either, and replies and notices keep room.
    fn private(self) -> (usize, usize) {
        ((self.frames / 2).max(1), (self.bytes / 2).max(1))
    }
}

/// A frame in a client's queue, with the session whose private message it is (if it is one).
#[derive(Debug)]
struct Queued {
    frame: Bytes,
    from: Option<u64>,
}

/// What a client's queue holds now: in total, of private messages, and per sender.
#[derive(Debug, Default)]
struct Occupancy {
    frames: usize,
    bytes: usize,
    private_frames: usize,
    private_bytes: usize,
    /// Frames and bytes of private messages waiting, per sending session.
    senders: HashMap<u64, (usize, usize)>,
    /// An answer waits for room ([`Outbox::wait_room`]): the writer wakes it as it takes one.
    room_wanted: bool,
}

impl Occupancy {
    fn add(&mut self, len: usize, from: Option<u64>) {
        self.frames += 1;
        self.bytes += len;
        if let Some(from) = from {
            self.private_frames += 1;
            self.private_bytes += len;
            let share = self.senders.entry(from).or_default();
            share.0 += 1;
            share.1 += len;
        }
    }

    fn remove(&mut self, len: usize, from: Option<u64>) {
        self.frames = self.frames.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(len);
        if let Some(from) = from {
            self.private_frames = self.private_frames.saturating_sub(1);
            self.private_bytes = self.private_bytes.saturating_sub(len);
            if let Some(share) = self.senders.get_mut(&from) {
                share.0 = share.0.saturating_sub(1);
                share.1 = share.1.saturating_sub(len);
                if share.0 == 0 {
                    self.senders.remove(&from);
                }
            }
        }
    }

    /// Whether `len` more bytes fit in a queue of `limits`.
    fn fits(&self, len: usize, limits: QueueLimits) -> bool {
        self.frames < limits.frames && (self.bytes == 0 || self.bytes + len <= limits.bytes)
    }
}

/// The sending side of one client's outbound queue, plus the switch that disconnects it.
///
/// The queue is bounded in frames and in bytes. Private messages are also counted per sender,
/// so that a flood aimed at one client is refused at its senders (`rate_limited`) instead of
/// filling the queue and getting a client that reads normally evicted as slow.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Queued>,
    held: Arc<Mutex<Occupancy>>,
    /// Woken when a frame is taken while an answer waits for room.
    room: Arc<Notify>,
    limits: QueueLimits,
    closed: CancellationToken,
    reason: Arc<OnceLock<CloseReason>>,
}

/// The receiving end of an [`Outbox`], for the writer task: taking a frame frees its room.
#[derive(Debug)]
pub struct OutboxReceiver {
    rx: mpsc::Receiver<Queued>,
    held: Arc<Mutex<Occupancy>>,
    room: Arc<Notify>,
}

/// Outcome of trying to queue a frame for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Queued,
    Full,
    Gone,
    /// A private message refused because its sender (or all senders together) hold too much
    /// of the recipient's queue already; the recipient is not at fault.
    SenderOverShare,
}

fn lock_held<T>(held: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters only: a poisoned lock still holds usable numbers.
    held.lock().unwrap_or_else(|e| e.into_inner())
}

impl Outbox {
    /// A new queue within `limits`, and its receiving end for the writer task.
    pub fn new(limits: QueueLimits) -> (Self, OutboxReceiver) {
        // The channel never holds more than `limits.frames`: room is checked before sending.
        let (tx, rx) = mpsc::channel(limits.frames.max(1));
        let held = Arc::new(Mutex::new(Occupancy::default()));
        let room = Arc::new(Notify::new());
        let outbox = Self {
            tx,
            held: Arc::clone(&held),
            room: Arc::clone(&room),
            limits,
            closed: CancellationToken::new(),
            reason: Arc::new(OnceLock::new()),
        };
        (outbox, OutboxReceiver { rx, held, room })
    }

    fn deliver(&self, frame: Bytes) -> Delivery {
        self.enqueue(frame, None)
    }

    /// Queues a private message from session `from`, unless that sender already holds its
    /// share of this queue or private messages hold their part of it.
    fn deliver_private(&self, from: u64, frame: Bytes) -> Delivery {
        self.enqueue(frame, Some(from))
    }

    fn enqueue(&self, frame: Bytes, from: Option<u64>) -> Delivery {
        let len = frame.len();
        let mut held = lock_held(&self.held);
        if from.is_some() {
            let (each_frames, each_bytes) = self.limits.per_sender();
            let (all_frames, all_bytes) = self.limits.private();
            let (mine_frames, mine_bytes) = from
                .and_then(|from| held.senders.get(&from).copied())
                .unwrap_or_default();
            let over = |count: usize, bytes: usize, max_count: usize, max_bytes: usize| {
                count >= max_count || (bytes > 0 && bytes + len > max_bytes)
            };
            if over(mine_frames, mine_bytes, each_frames, each_bytes)
                || over(
                    held.private_frames,
                    held.private_bytes,
                    all_frames,
                    all_bytes,
                )
            {
                return Delivery::SenderOverShare;
            }
        }
        if !held.fits(len, self.limits) {
            return Delivery::Full;
        }
        match self.tx.try_send(Queued { frame, from }) {
            Ok(()) => {
                held.add(len, from);
                Delivery::Queued
            }
            Err(mpsc::error::TrySendError::Full(_)) => Delivery::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Gone,
        }
    }

    /// True when a reply of about `len` bytes would fit in the queue now: a reply the client
    /// could not take is refused before it is built.
    pub fn has_room(&self, len: usize) -> bool {
        lock_held(&self.held).fits(len, self.limits)
    }

    /// Waits until a frame of `len` bytes fits in the queue, for at most `stall`; false if it
    /// did not fit in time or the connection closed meanwhile. For the answers to a client's
    /// own requests: a client that sends faster than it reads its answers is held back (its
    /// requests wait in TCP) rather than evicted for the burst of answers it asked for.
    pub async fn wait_room(&self, len: usize, stall: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + stall;
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so a frame taken right after it still wakes us.
            notified.as_mut().enable();
            {
                let mut held = lock_held(&self.held);
                if held.fits(len, self.limits) {
                    return true;
                }
                held.room_wanted = true;
            }
            tokio::select! {
                () = &mut notified => {}
                () = self.closed.cancelled() => return false,
                () = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }

    /// Frames and bytes waiting in the queue now.
    pub fn queued(&self) -> (usize, usize) {
        let held = lock_held(&self.held);
        (held.frames, held.bytes)
    }

    /// Queues `frame` (one entry, however many frames it holds) if it fits now; false if not.
    pub fn offer(&self, frame: Bytes) -> bool {
        self.deliver(frame) == Delivery::Queued
    }

    /// True once the connection is closing.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Queues `msg`; a client whose queue is full is disconnected as a slow consumer (its
    /// session then leaves the registry as usual).
    pub fn send_or_close(&self, msg: &ServerMsg) {
        if self.deliver(msg.to_frame()) == Delivery::Full {
            self.close(CloseReason::SlowConsumer);
        }
    }

    /// Asks the connection to close for `reason`. The first reason given wins.
    pub fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.closed.cancel();
    }

    /// Resolves once [`Outbox::close`] was called.
    pub async fn closed(&self) {
        self.closed.cancelled().await;
    }

    /// Why the connection is closing, if it is.
    pub fn reason(&self) -> Option<CloseReason> {
        self.reason.get().copied()
    }
}

impl OutboxReceiver {
    fn taken(&self, queued: Queued) -> Bytes {
        let mut held = lock_held(&self.held);
        held.remove(queued.frame.len(), queued.from);
        if std::mem::take(&mut held.room_wanted) {
            drop(held);
            self.room.notify_waiters();
        }
        queued.frame
    }

    /// The next frame, waiting for one; `None` once every [`Outbox`] is gone.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let queued = self.rx.recv().await?;
        Some(self.taken(queued))
    }

    /// The next frame if one is waiting.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let queued = self.rx.try_recv().ok()?;
        Some(self.taken(queued))
    }
}

/// One connection of a member.
struct Seat {
    session: u64,
    outbox: Outbox,
    /// Where the connection comes from, for the per-address limit.
    address: AddressKey,
    /// Sequence number of the latest notice when this seat joined: its welcome listed
    /// everyone up to there, so it gets only later notices.
    seen: u64,
}

/// A user online: a guest on one connection, or an account on one or more ("multiclient":
/// every seat gets everything for the account; the others see one `joined` for the first
/// seat and one `left` for the last).
struct Member {
    name: String,
    /// The account the member is logged in to; `None` for a guest.
    account: Option<AccountId>,
    /// Its [`lookalike_key`], under which no other member may join.
    lookalike: String,
    seats: Vec<Seat>,
}

/// A user online, as [`Registry::lookup`] finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Online {
    /// The name as they joined.
    pub name: String,
    /// Their account, if logged in to one.
    pub account: Option<AccountId>,
}

/// Most bytes of notices gathered before they go out without waiting for the interval, so a
/// batch stays a reasonable single queue entry (about a thousand notices).
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// What the registry's lock protects.
#[derive(Default)]
struct Table {
    /// Keyed by name ignoring case, in that order (the order of the welcome's user list).
    members: BTreeMap<String, Member>,
    /// The key of the member holding each look-alike key.
    lookalikes: HashMap<String, String>,
    /// Seats (connections of members) online per source address.
    per_address: HashMap<AddressKey, usize>,
    /// Seats online in all.
    seats: usize,
    /// Join and leave notices not yet delivered.
    notices: Notices,
}

impl Table {
    /// Delivers the pending notices, one shared queue entry per member; returns the members
    /// whose queues were full.
    fn flush(&mut self) -> Vec<(String, u64)> {
        if self.notices.is_empty() {
            return Vec::new();
        }
        let batch = self.notices.take();
        let mut slow = Vec::new();
        for member in self.members.values() {
            for seat in &member.seats {
                if let Some(frames) = batch.after(seat.seen)
                    && seat.outbox.deliver(frames) == Delivery::Full
                {
                    slow.push((member.name.clone(), seat.session));
                }
            }
        }
        slow
    }

    /// Queues a notice for everyone online; returns slow members if the batch had to go out
    /// at once because it was full.
    fn notice(&mut self, frame: &[u8]) -> (u64, Vec<(String, u64)>) {
        let seq = self.notices.push(frame);
        let slow = if self.notices.byte_len() >= MAX_BATCH_BYTES {
            self.flush()
        } else {
            Vec::new()
        };
        (seq, slow)
    }
}

/// The online users, keyed by name ignoring case.
///
/// Chat messages are queued for their recipients at once. Join and leave notices are gathered
/// and go out together when [`Registry::flush_notices`] is called (the server does so a short
/// interval after the first one), or at once when a message is about to be delivered, so that a
/// user's messages never overtake the notice of their join.
pub struct Registry {
    table: RwLock<Table>,
    /// The latest broadcast messages, oldest first, at most `recent_max`: what a newcomer
    /// gets as history. Changed only under the table's lock (read or write), so a join sees
    /// a message either here or live, never both, never neither.
    recent: Mutex<VecDeque<StoredMessage>>,
    recent_max: usize,
    max_clients: usize,
    max_per_address: usize,
    /// Woken when notices start waiting.
    noticed: Notify,
}

impl Registry {
    /// An empty registry that admits at most `max_clients` users, and at most
    /// `max_per_address` of them from one source address.
    pub fn new(max_clients: usize, max_per_address: usize) -> Self {
        Self::with_history(max_clients, max_per_address, 0)
    }

    /// As [`Registry::new`], keeping the latest `recent_max` broadcast messages for newcomers.
    pub fn with_history(max_clients: usize, max_per_address: usize, recent_max: usize) -> Self {
        Self {
            table: RwLock::new(Table::default()),
            recent: Mutex::new(VecDeque::with_capacity(recent_max.min(1024))),
            recent_max,
            max_clients,
            max_per_address,
            noticed: Notify::new(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Table> {
        // A panic elsewhere cannot leave the table half-updated (every update is one insert,
        // remove or append), so a poisoned lock is still safe to use.
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of users online.
    pub fn len(&self) -> usize {
        self.read().members.len()
    }

    /// True when nobody is online.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remembers `messages` (oldest first) as the latest broadcast ones, as at start-up.
    pub fn remember(&self, messages: Vec<StoredMessage>) {
        let _table = self.write();
        let mut recent = lock_held(&self.recent);
        recent.extend(messages);
        while recent.len() > self.recent_max {
            recent.pop_front();
        }
    }

    /// Adds `name`, connected from `address` and logged in to `account` (a guest: `None`),
    /// and queues as its first queue entry `welcome(users)` followed by the latest `history`
    /// broadcast messages (marked as history); everyone else hears of it with the next batch
    /// of notices. An account already online gets one more seat, and nobody hears of it.
    #[allow(clippy::too_many_arguments)]
    pub fn join(
        &self,
        name: &str,
        session: u64,
        address: AddressKey,
        account: Option<AccountId>,
        outbox: Outbox,
        history: usize,
        welcome: impl FnOnce(Vec<String>) -> ServerMsg,
    ) -> Result<(), JoinError> {
        let key = name_key(name);
        let lookalike = lookalike_key(name);
        let slow = {
            let mut table = self.write();
            let again = match table.members.get(&key) {
                Some(m) if account.is_some() && m.account == account => true,
                Some(_) => return Err(JoinError::Taken),
                None => false,
            };
            if !again
                && let Some(twin) = table
                    .lookalikes
                    .get(&lookalike)
                    .and_then(|other| table.members.get(other))
            {
                return Err(JoinError::LooksLike(twin.name.clone()));
            }
            if table.seats >= self.max_clients {
                return Err(JoinError::Full(self.max_clients));
            }
            let from_address = table.per_address.get(&address).copied().unwrap_or(0);
            if from_address >= self.max_per_address {
                return Err(JoinError::AddressFull(self.max_per_address));
            }
            let mut users = Vec::with_capacity(table.members.len() + 1);
            let mut me = (!again).then(|| name.to_owned());
            for (k, member) in &table.members {
                if me.is_some() && k.as_str() > key.as_str() {
                    users.extend(me.take());
                }
                users.push(member.name.clone());
            }
            users.extend(me);
            // The queue is new and empty, so the welcome and its history, one entry, always
            // fit and always come first.
            let mut first = welcome(users).to_frame().to_vec();
            {
                let recent = lock_held(&self.recent);
                let skip = recent.len().saturating_sub(history);
                for msg in recent.iter().skip(skip) {
                    first.extend_from_slice(&history_frame(msg));
                }
            }
            outbox.deliver(Bytes::from(first));
            *table.per_address.entry(address).or_default() += 1;
            table.seats += 1;
            let (seen, slow) = if again {
                (table.notices.last_seq(), Vec::new())
            } else {
                let joined = ServerMsg::Joined {
                    name: name.to_owned(),
                    time: now_millis(),
                }
                .to_frame();
                table.notice(&joined)
            };
            let seat = Seat {
                session,
                outbox,
                address,
                seen,
            };
            if let Some(member) = table.members.get_mut(&key) {
                member.seats.push(seat);
            } else {
                table.lookalikes.insert(lookalike.clone(), key.clone());
                table.members.insert(
                    key,
                    Member {
                        name: name.to_owned(),
                        account,
                        lookalike,
                        seats: vec![seat],
                    },
                );
            }
            slow
        };
        self.noticed.notify_one();
        self.evict(slow);
        Ok(())
    }

    /// The user online under `name` (any case), if any.
    pub fn lookup(&self, name: &str) -> Option<Online> {
        self.read().members.get(&name_key(name)).map(|m| Online {
            name: m.name.clone(),
            account: m.account,
        })
    }

    /// Records that the member `name` (of `session`) is now logged in to `account` (it
    /// registered), or a guest (`None`: its account was deleted; its other seats are closed).
    pub fn set_account(&self, name: &str, session: u64, account: Option<AccountId>) {
        let others = {
            let mut table = self.write();
            let Some(member) = table.members.get_mut(&name_key(name)) else {
                return;
            };
            if !member.seats.iter().any(|s| s.session == session) {
                return;
            }
            member.account = account;
            member
                .seats
                .iter()
                .filter(|s| s.session != session)
                .map(|s| s.session)
                .collect::<Vec<_>>()
        };
        if account.is_none() {
            for other in others {
                self.leave(name, other, CloseReason::AccountDeleted);
            }
        }
    }

    /// The outboxes of every seat of the member `name`, if online.
    pub fn outboxes(&self, name: &str) -> Vec<Outbox> {
        self.read()
            .members
            .get(&name_key(name))
            .map(|m| m.seats.iter().map(|s| s.outbox.clone()).collect())
            .unwrap_or_default()
    }

    /// Removes the user of `session` (if still registered) and tells the others why.
    pub fn leave(&self, name: &str, session: u64, reason: CloseReason) {
        if let Some(slow) = self.remove(name, session, reason) {
            self.evict(slow);
        }
    }

    /// Queues `frame` for every user but the sender's own connection, and remembers
    /// `stored` (the same message) for newcomers.
    pub fn broadcast(&self, from_session: u64, frame: &Bytes, stored: Option<StoredMessage>) {
        let remember = |stored: Option<StoredMessage>| {
            if let Some(msg) = stored
                && self.recent_max > 0
            {
                let mut recent = lock_held(&self.recent);
                if recent.len() >= self.recent_max {
                    recent.pop_front();
                }
                recent.push_back(msg);
            }
        };
        let slow = {
            let table = self.read();
            if table.notices.is_empty() {
                remember(stored);
                fan_out(&table.members, from_session, frame)
            } else {
                drop(table);
                let mut table = self.write();
                let mut slow = table.flush();
                remember(stored);
                slow.extend(fan_out(&table.members, from_session, frame));
                slow
            }
        };
        self.evict(slow);
    }

    /// Queues the private message `frame` from `from_session` for the user called `to`.
    /// Fails with `no_such_user`, or with `rate_limited` when the sender already holds its
    /// share of that user's queue (the recipient is never evicted for others' floods).
    pub fn send_to(&self, from_session: u64, to: &str, frame: Bytes) -> Result<(), ErrorCode> {
        let key = name_key(to);
        let mut slow = Vec::new();
        let delivered = {
            let table = self.read();
            if table.notices.is_empty() {
                deliver_to(&table.members, from_session, &key, frame, &mut slow)
            } else {
                drop(table);
                let mut table = self.write();
                slow = table.flush();
                deliver_to(&table.members, from_session, &key, frame, &mut slow)
            }
        };
        self.evict(slow);
        delivered
    }

    /// Queues a reply for the user of `session` itself, waiting for room in its queue for at
    /// most `stall` (so the session reads no further request meanwhile); a client whose queue
    /// finds no room for it that long is evicted like any slow consumer.
    pub async fn reply(
        &self,
        outbox: &Outbox,
        name: &str,
        session: u64,
        msg: &ServerMsg,
        stall: Duration,
    ) {
        let frame = msg.to_frame();
        if !outbox.wait_room(frame.len(), stall).await {
            if !outbox.is_closed() {
                self.evict(vec![(name.to_owned(), session)]);
            }
            return;
        }
        if outbox.deliver(frame) == Delivery::Full {
            self.evict(vec![(name.to_owned(), session)]);
        }
    }

    /// Frames and bytes waiting in the queue of the user called `name`, if online.
    pub fn queued_for(&self, name: &str) -> Option<(usize, usize)> {
        self.read()
            .members
            .get(&name_key(name))
            .and_then(|m| m.seats.iter().map(|s| s.outbox.queued()).max())
    }

    /// Names online, sorted ignoring case.
    pub fn names(&self) -> Vec<String> {
        self.read()
            .members
            .values()
            .map(|m| m.name.clone())
            .collect()
    }

    /// Delivers the join and leave notices gathered so far.
    pub fn flush_notices(&self) {
        let slow = self.write().flush();
        self.evict(slow);
    }

    /// Resolves when notices are waiting for [`Registry::flush_notices`] (or may be: a wake-up
    /// can find them delivered already by a message that needed them out first).
    pub async fn notices_waiting(&self) {
        self.noticed.notified().await;
    }

    /// Closes every connection with `reason`, telling nobody (everyone is going).
    pub fn close_all(&self, reason: CloseReason) {
        let mut table = self.write();
        table.notices = Notices::default();
        table.lookalikes.clear();
        table.per_address.clear();
        table.seats = 0;
        for member in std::mem::take(&mut table.members).into_values() {
            for seat in member.seats {
                seat.outbox.close(reason);
            }
        }
    }

    /// Removes the seat of `session` from the user `name`, if still there, and closes its
    /// connection; the last seat's going is the user's, and queues the notice of its leaving.
    /// Returns the members found slow if that notice had to go out.
    fn remove(&self, name: &str, session: u64, reason: CloseReason) -> Option<Vec<(String, u64)>> {
        let (seat, shown, slow) = {
            let mut table = self.write();
            let key = name_key(name);
            let member = table.members.get_mut(&key)?;
            let at = member.seats.iter().position(|s| s.session == session)?;
            let seat = member.seats.swap_remove(at);
            let last = member.seats.is_empty();
            let shown = member.name.clone();
            table.seats = table.seats.saturating_sub(1);
            if let Some(count) = table.per_address.get_mut(&seat.address) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    table.per_address.remove(&seat.address);
                }
            }
            let slow = if last {
                if let Some(member) = table.members.remove(&key) {
                    table.lookalikes.remove(&member.lookalike);
                }
                table.notice(&left_frame(&shown, reason)).1
            } else {
                Vec::new()
            };
            (seat, shown, slow)
        };
        if reason == CloseReason::SlowConsumer {
            tracing::info!(user = %shown, "disconnecting slow consumer");
        }
        seat.outbox.close(reason);
        self.noticed.notify_one();
        Some(slow)
    }

    /// Disconnects slow consumers. Announcing their departure can find further slow ones (when
    /// a full batch goes out at once), so this works through a list until it is empty.
    fn evict(&self, mut slow: Vec<(String, u64)>) {
        while let Some((name, session)) = slow.pop() {
            slow.extend(
                self.remove(&name, session, CloseReason::SlowConsumer)
                    .unwrap_or_default(),
            );
        }
    }
}

fn left_frame(name: &str, reason: CloseReason) -> Bytes {
    ServerMsg::Left {
        name: name.to_owned(),
        time: now_millis(),
        reason,
    }
    .to_frame()
}

/// Queues `frame` for every seat but `except`; returns the seats whose queues were full.
fn fan_out(members: &BTreeMap<String, Member>, except: u64, frame: &Bytes) -> Vec<(String, u64)> {
    let mut slow = Vec::new();
    for member in members.values() {
        for seat in member.seats.iter().filter(|s| s.session != except) {
            if seat.outbox.deliver(frame.clone()) == Delivery::Full {
                slow.push((member.name.clone(), seat.session));
            }
        }
    }
    slow
}

/// The frame of a stored broadcast message sent to a newcomer as history.
fn history_frame(msg: &StoredMessage) -> Bytes {
    ServerMsg::Message {
        id: Some(msg.id),
        from: msg.from.clone(),
        text: msg.text.clone(),
        private: false,
        time: msg.time,
        history: true,
        offline: false,
    }
    .to_frame()
}

/// Queues the private message `frame` from session `from` for the member whose key is `key`,
/// noting the member in `slow` if its queue is full.
fn deliver_to(
    members: &BTreeMap<String, Member>,
    from: u64,
    key: &str,
    frame: Bytes,
    slow: &mut Vec<(String, u64)>,
) -> Result<(), ErrorCode> {
    let member = members.get(key).ok_or(ErrorCode::NoSuchUser)?;
    let mut refused = false;
    let mut taken = false;
    for seat in &member.seats {
        match seat.outbox.deliver_private(from, frame.clone()) {
            Delivery::Queued | Delivery::Gone => taken = true,
            Delivery::SenderOverShare => refused = true,
            Delivery::Full => slow.push((member.name.clone(), seat.session)),
        }
    }
    if refused && !taken {
        return Err(ErrorCode::RateLimited);
    }
    Ok(())
}

/// Why a hello's name or connection could not join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// Somebody online has the name, ignoring case.
    Taken,
    /// Somebody online has a name that looks the same (this one).
    LooksLike(String),
    /// The server has its most users (this many).
    Full(usize),
    /// The source address has its most users (this many).
    AddressFull(usize),
}

impl JoinError {
    /// The wire code of the refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Taken | Self::LooksLike(_) => ErrorCode::NameTaken,
            Self::Full(_) | Self::AddressFull(_) => ErrorCode::ServerFull,
        }
    }

    /// Whether the connection may try another hello after it.
    pub fn may_retry(&self) -> bool {
        matches!(self, Self::Taken | Self::LooksLike(_))
    }
}

/// Milliseconds since the Unix epoch: the server's timestamp for messages and notices.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Registry {
        fn new_for_tests(max_clients: usize) -> Self {
            Self::new(max_clients, max_clients)
        }
    }

    fn welcome(users: Vec<String>) -> ServerMsg {
        ServerMsg::Welcome {
            version: 1,
            name: String::new(),
            users,
            server: String::new(),
            account: false,
        }
    }

    fn queue(frames: usize) -> (Outbox, OutboxReceiver) {
        Outbox::new(QueueLimits {
            frames,
            bytes: 1 << 20,
        })
    }

    fn here() -> AddressKey {
        AddressKey::of("127.0.0.1:1".parse().unwrap())
    }

    fn decode(frame: Bytes) -> ServerMsg {
        ServerMsg::decode(&frame[4..]).unwrap()
    }

    #[test]
    fn names_are_unique_ignoring_case_and_capacity_is_enforced() {
        let reg = Registry::new_for_tests(2);
        let (a, _ra) = queue(10);
        let (b, _rb) = queue(10);
        let (c, _rc) = queue(10);
        reg.join("Alice", 1, here(), None, a.clone(), 0, welcome)
            .unwrap();
        assert_eq!(
            reg.join("alice", 2, here(), None, b.clone(), 0, welcome),
            Err(JoinError::Taken)
        );
        reg.join("bob", 2, here(), None, b, 0, welcome).unwrap();
        assert_eq!(
            reg.join("carol", 3, here(), None, c, 0, welcome),
            Err(JoinError::Full(2))
        );
        assert_eq!(reg.names(), vec!["Alice", "bob"]);
    }

    /// Every frame of every queue entry waiting in `rx`, one `Vec` per entry.
    fn drain(rx: &mut OutboxReceiver) -> Vec<Vec<ServerMsg>> {
        let mut entries = Vec::new();
        while let Some(mut entry) = rx.try_recv() {
            let mut msgs = Vec::new();
            while !entry.is_empty() {
                let len = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]) as usize;
                msgs.push(decode(entry.split_to(4 + len)));
            }
            entries.push(msgs);
        }
        entries
    }

    fn joined_names(msgs: &[ServerMsg]) -> Vec<String> {
        msgs.iter()
            .map(|m| match m {
                ServerMsg::Joined { name, .. } => name.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_crowd_joining_reaches_each_member_as_one_queue_entry_of_later_joins_only() {
        let reg = Registry::new_for_tests(100);
        let mut rxs = Vec::new();
        for i in 0..50 {
            let (outbox, rx) = queue(3);
            reg.join(&format!("u{i:02}"), i + 1, here(), None, outbox, 0, welcome)
                .unwrap();
            rxs.push(rx);
        }
        reg.flush_notices();
        let first = drain(&mut rxs[0]);
        assert_eq!(first.len(), 2, "the welcome, then one entry for 49 joins");
        let expected: Vec<String> = (1..50).map(|i| format!("u{i:02}")).collect();
        assert_eq!(joined_names(&first[1]), expected, "in the order of joining");
        // u10's welcome listed u00..u10; it hears of u11 onwards only.
        let tenth = drain(&mut rxs[10]);
        let ServerMsg::Welcome { users, .. } = &tenth[0][0] else {
            panic!()
        };
        assert_eq!(users.len(), 11);
        assert_eq!(joined_names(&tenth[1]), expected[10..]);
        // The last one to join was told everything in its welcome.
        assert_eq!(drain(&mut rxs[49]).len(), 1);
        // Nothing left to send: flushing again queues nothing.
        reg.flush_notices();
        assert!(drain(&mut rxs[0]).is_empty());
    }

    #[test]
    fn a_message_never_overtakes_the_notice_of_its_senders_join() {
        let reg = Registry::new_for_tests(10);
        let (a, mut a_rx) = queue(10);
        let (b, _b_rx) = queue(10);
        reg.join("alice", 1, here(), None, a, 0, welcome).unwrap();
        reg.join("bob", 2, here(), None, b, 0, welcome).unwrap();
        let hi = ServerMsg::message(None, "bob", "hi", false, 0);
        reg.broadcast(2, &hi.to_frame(), None);
        reg.send_to(2, "alice", hi.to_frame()).unwrap();
        let entries = drain(&mut a_rx);
        assert!(matches!(&entries[0][..], [ServerMsg::Welcome { .. }]));
        assert!(matches!(&entries[1][..], [ServerMsg::Joined { name, .. }] if name == "bob"));
        assert_eq!(entries[2..], [vec![hi.clone()], vec![hi]]);
    }

    #[test]
    fn a_full_queue_evicts_only_that_member_and_tells_the_others() {
        let reg = Registry::new_for_tests(10);
        let (slow, _slow_rx) = queue(2);
        let (fast, mut fast_rx) = queue(100);
        let (sender, _sender_rx) = queue(100);
        reg.join("slow", 1, here(), None, slow.clone(), 0, welcome)
            .unwrap();
        reg.join("fast", 2, here(), None, fast, 0, welcome).unwrap();
        reg.flush_notices();
        // slow's queue holds: welcome, the batch with joined(fast); the next batch overflows it.
        assert_eq!(slow.reason(), None, "a batch takes one place in the queue");
        reg.join("sender", 3, here(), None, sender, 0, welcome)
            .unwrap();
        reg.flush_notices();
        assert_eq!(slow.reason(), Some(CloseReason::SlowConsumer));
        assert_eq!(reg.names(), vec!["fast", "sender"]);
        reg.flush_notices();
        let seen: Vec<ServerMsg> = drain(&mut fast_rx).into_iter().flatten().collect();
        assert!(
            seen.iter()
                .any(|m| matches!(m, ServerMsg::Left { name, reason, .. }
            if name == "slow" && reason == "slow_consumer"))
        );
    }

    #[test]
    fn leaves_are_batched_like_joins_and_the_leaver_hears_nothing_more() {
        let reg = Registry::new_for_tests(10);
        let (a, mut a_rx) = queue(10);
        let (b, mut b_rx) = queue(10);
        reg.join("alice", 1, here(), None, a, 0, welcome).unwrap();
        reg.join("bob", 2, here(), None, b, 0, welcome).unwrap();
        reg.leave("bob", 2, CloseReason::Quit);
        reg.flush_notices();
        let entries = drain(&mut a_rx);
        assert!(matches!(
            &entries[1][..],
            [ServerMsg::Joined { .. }, ServerMsg::Left { name, reason, .. }]
            if name == "bob" && reason == "quit"
        ));
        assert_eq!(drain(&mut b_rx).len(), 1, "only its welcome");
    }

    #[test]
    fn leave_of_a_stale_session_does_not_remove_the_new_one() {
        let reg = Registry::new_for_tests(10);
        let (a, _ra) = queue(10);
        reg.join("alice", 7, here(), None, a, 0, welcome).unwrap();
        reg.leave("alice", 6, CloseReason::Disconnected);
        assert_eq!(reg.names(), vec!["alice"]);
        reg.leave("ALICE", 7, CloseReason::Quit);
        assert!(reg.is_empty());
    }

    #[test]
    fn a_name_that_only_looks_like_one_online_is_refused_until_its_owner_leaves() {
        let reg = Registry::new_for_tests(10);
        let (a, _ra) = queue(10);
        let (b, _rb) = queue(10);
        reg.join("alice", 1, here(), None, a, 0, welcome).unwrap();
        assert_eq!(
            reg.join("aIice", 2, here(), None, b.clone(), 0, welcome),
            Err(JoinError::LooksLike("alice".into()))
        );
        reg.leave("alice", 1, CloseReason::Quit);
        reg.join("aIice", 2, here(), None, b, 0, welcome).unwrap();
    }

    #[test]
    fn one_address_holds_at_most_its_share_of_the_users() {
        let reg = Registry::new(10, 2);
        let other = AddressKey::of("127.0.0.2:1".parse().unwrap());
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            reg.join(name, i as u64, here(), None, queue(10).0, 0, welcome)
                .unwrap();
        }
        assert_eq!(
            reg.join("c", 3, here(), None, queue(10).0, 0, welcome),
            Err(JoinError::AddressFull(2))
        );
        reg.join("d", 4, other, None, queue(10).0, 0, welcome)
            .unwrap();
        reg.leave("a", 0, CloseReason::Quit);
        reg.join("c", 3, here(), None, queue(10).0, 0, welcome)
            .unwrap();
    }

    #[test]
    fn a_private_flood_is_refused_at_its_senders_and_never_evicts_the_recipient() {
        let reg = Registry::new_for_tests(100);
        let (target, mut target_rx) = queue(20);
        reg.join("target", 1, here(), None, target.clone(), 0, welcome)
            .unwrap();
        reg.flush_notices();
        let text = ServerMsg::message(None, "x", &"x".repeat(4000), true, 0).to_frame();
        // One sender gets a quarter of the queue; forty together get half of it.
        let sent = (0..10)
            .filter(|_| reg.send_to(2, "target", text.clone()).is_ok())
            .count();
        assert_eq!(sent, 5);
        let crowd = (3..43)
            .filter(|from| reg.send_to(*from, "target", text.clone()).is_ok())
            .count();
        assert_eq!(crowd, 5, "private messages hold half the queue at most");
        assert_eq!(target.reason(), None);
        // Reading frees the senders' room.
        assert_eq!(drain(&mut target_rx).len(), 11);
        assert!(reg.send_to(2, "target", text).is_ok());
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_as_well_as_frames() {
        let (outbox, mut rx) = Outbox::new(QueueLimits {
            frames: 100,
            bytes: 10_000,
        });
        let frame = Bytes::from(vec![0u8; 4_000]);
        assert_eq!(outbox.deliver(frame.clone()), Delivery::Queued);
        assert_eq!(outbox.deliver(frame.clone()), Delivery::Queued);
        assert!(!outbox.has_room(4_000));
        assert_eq!(outbox.deliver(frame.clone()), Delivery::Full);
        assert_eq!(outbox.queued(), (2, 8_000));
        assert!(rx.try_recv().is_some());
        assert!(outbox.has_room(4_000));
        // A frame bigger than the cap still goes into an empty queue.
        assert!(rx.try_recv().is_some());
        assert_eq!(
            outbox.deliver(Bytes::from(vec![0u8; 20_000])),
            Delivery::Queued
        );
    }
}
