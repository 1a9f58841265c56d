//! Who is online, and how to reach them.
//!
//! The registry is the single owner of the user table. Its lock is never held across an await:
//! delivering a message is a `try_send` into the recipient's bounded outbox, so a slow client
//! can never stall the sender or anyone else; it is disconnected instead.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wire::{ErrorCode, ServerMsg, name_key};

/// Why the server closes a connection: sent to the client in its last frame and to the others
/// in the `left` notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client said goodbye.
    Quit,
    /// The connection ended without a goodbye (crash, reset, network gone).
    Disconnected,
    /// The client stayed silent past the idle timeout.
    Timeout,
    /// The client did not read fast enough; its outbound queue filled up.
    SlowConsumer,
    /// The client broke the framing (e.g. announced an oversized frame).
    ProtocolError,
    /// The server is stopping.
    ServerShutdown,
}

impl CloseReason {
    /// The reason as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quit => "quit",
            Self::Disconnected => "disconnected",
            Self::Timeout => "timeout",
            Self::SlowConsumer => "slow_consumer",
            Self::ProtocolError => "protocol_error",
            Self::ServerShutdown => "server_shutdown",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Self::Quit => "goodbye",
            Self::Disconnected => "the connection ended",
            Self::Timeout => "nothing received from the client for too long",
            Self::SlowConsumer => "the client fell too far behind reading its messages",
            Self::ProtocolError => "the client broke the protocol's framing",
            Self::ServerShutdown => "the server is shutting down",
        }
    }

    /// The `bye` frame that tells the client about it.
    pub fn bye(self) -> ServerMsg {
        ServerMsg::Bye {
            reason: self.as_str().into(),
            message: self.explain().into(),
        }
    }
}

/// The sending side of one client's outbound queue, plus the switch that disconnects it.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Bytes>,
    closed: CancellationToken,
    reason: Arc<OnceLock<CloseReason>>,
}

/// Outcome of trying to queue a frame for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Queued,
    Full,
    Gone,
}

impl Outbox {
    /// A new queue holding at most `limit` frames, and its receiving end for the writer task.
    pub fn new(limit: usize) -> (Self, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(limit.max(1));
        let outbox = Self {
            tx,
            closed: CancellationToken::new(),
            reason: Arc::new(OnceLock::new()),
        };
        (outbox, rx)
    }

    fn deliver(&self, frame: Bytes) -> Delivery {
        match self.tx.try_send(frame) {
            Ok(()) => Delivery::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Delivery::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Gone,
        }
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

struct Member {
    name: String,
    session: u64,
    outbox: Outbox,
}

/// The online users, keyed by name ignoring case.
pub struct Registry {
    members: RwLock<HashMap<String, Member>>,
    max_clients: usize,
}

impl Registry {
    /// An empty registry that admits at most `max_clients` users.
    pub fn new(max_clients: usize) -> Self {
        Self {
            members: RwLock::new(HashMap::new()),
            max_clients,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Member>> {
        // A panic elsewhere cannot leave the map half-updated (every update is one insert or
        // remove), so a poisoned lock is still safe to use.
        self.members.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Member>> {
        self.members.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of users online.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when nobody is online.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `name` and queues `welcome(users)` as its first frame, then tells everyone else.
    pub fn join(
        &self,
        name: &str,
        session: u64,
        outbox: Outbox,
        welcome: impl FnOnce(Vec<String>) -> ServerMsg,
    ) -> Result<(), ErrorCode> {
        let key = name_key(name);
        let slow = {
            let mut members = self.write();
            if members.contains_key(&key) {
                return Err(ErrorCode::NameTaken);
            }
            if members.len() >= self.max_clients {
                return Err(ErrorCode::ServerFull);
            }
            let mut users: Vec<String> = members.values().map(|m| m.name.clone()).collect();
            users.push(name.to_owned());
            users.sort_by_key(|n| name_key(n));
            // The queue is new and empty, so the welcome always fits and always comes first.
            outbox.deliver(welcome(users).to_frame());
            let joined = ServerMsg::Joined {
                name: name.to_owned(),
                time: now_millis(),
            }
            .to_frame();
            let slow = fan_out(&members, session, &joined);
            members.insert(
                key,
                Member {
                    name: name.to_owned(),
                    session,
                    outbox,
                },
            );
            slow
        };
        self.evict(slow);
        Ok(())
    }

    /// Removes the user of `session` (if still registered) and tells the others why.
    pub fn leave(&self, name: &str, session: u64, reason: CloseReason) {
        let removed = {
            let mut members = self.write();
            let key = name_key(name);
            match members.get(&key) {
                Some(m) if m.session == session => members.remove(&key),
                _ => None,
            }
        };
        if let Some(member) = removed {
            member.outbox.close(reason);
            self.announce_left(&member.name, reason);
        }
    }

    /// Queues `frame` for every user but the sender.
    pub fn broadcast(&self, from_session: u64, frame: &Bytes) {
        let slow = fan_out(&self.read(), from_session, frame);
        self.evict(slow);
    }

    /// Queues `frame` for the user called `to`.
    pub fn send_to(&self, to: &str, frame: Bytes) -> Result<(), ErrorCode> {
        let delivery = {
            let members = self.read();
            let member = members.get(&name_key(to)).ok_or(ErrorCode::NoSuchUser)?;
            (
                member.outbox.deliver(frame),
                member.session,
                member.name.clone(),
            )
        };
        if let (Delivery::Full, session, name) = delivery {
            self.evict(vec![(name, session)]);
        }
        Ok(())
    }

    /// Queues a reply for the user of `session` itself; a client that cannot take even its own
    /// replies is evicted like any slow consumer.
    pub fn reply(&self, outbox: &Outbox, name: &str, session: u64, msg: &ServerMsg) {
        if outbox.deliver(msg.to_frame()) == Delivery::Full {
            self.evict(vec![(name.to_owned(), session)]);
        }
    }

    /// Names online, sorted ignoring case.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().values().map(|m| m.name.clone()).collect();
        names.sort_by_key(|n| name_key(n));
        names
    }

    /// Closes every connection with `reason`, telling nobody (everyone is going).
    pub fn close_all(&self, reason: CloseReason) {
        for member in self.write().drain().map(|(_, m)| m) {
            member.outbox.close(reason);
        }
    }

    /// Disconnects slow consumers. Announcing their departure can find further slow ones, so
    /// this works through a list until it is empty.
    fn evict(&self, mut slow: Vec<(String, u64)>) {
        while let Some((name, session)) = slow.pop() {
            let removed = {
                let mut members = self.write();
                let key = name_key(&name);
                match members.get(&key) {
                    Some(m) if m.session == session => members.remove(&key),
                    _ => None,
                }
            };
            let Some(member) = removed else { continue };
            tracing::info!(user = %member.name, "disconnecting slow consumer");
            member.outbox.close(CloseReason::SlowConsumer);
            let left = left_frame(&member.name, CloseReason::SlowConsumer);
            slow.extend(fan_out(&self.read(), session, &left));
        }
    }

    fn announce_left(&self, name: &str, reason: CloseReason) {
        let frame = left_frame(name, reason);
        // The leaver is no longer registered, so session 0 (never used) excludes nobody.
        self.broadcast(0, &frame);
    }
}

fn left_frame(name: &str, reason: CloseReason) -> Bytes {
    ServerMsg::Left {
        name: name.to_owned(),
        time: now_millis(),
        reason: reason.as_str().into(),
    }
    .to_frame()
}

/// Queues `frame` for every member but `except`; returns the members whose queues were full.
fn fan_out(members: &HashMap<String, Member>, except: u64, frame: &Bytes) -> Vec<(String, u64)> {
    let mut slow = Vec::new();
    for member in members.values().filter(|m| m.session != except) {
        if member.outbox.deliver(frame.clone()) == Delivery::Full {
            slow.push((member.name.clone(), member.session));
        }
    }
    slow
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

    fn welcome(users: Vec<String>) -> ServerMsg {
        ServerMsg::Welcome {
            version: 1,
            name: String::new(),
            users,
            server: String::new(),
        }
    }

    fn decode(frame: Bytes) -> ServerMsg {
        ServerMsg::decode(&frame[4..]).unwrap()
    }

    #[test]
    fn names_are_unique_ignoring_case_and_capacity_is_enforced() {
        let reg = Registry::new(2);
        let (a, _ra) = Outbox::new(10);
        let (b, _rb) = Outbox::new(10);
        let (c, _rc) = Outbox::new(10);
        reg.join("Alice", 1, a.clone(), welcome).unwrap();
        assert_eq!(
            reg.join("alice", 2, b.clone(), welcome),
            Err(ErrorCode::NameTaken)
        );
        reg.join("bob", 2, b, welcome).unwrap();
        assert_eq!(reg.join("carol", 3, c, welcome), Err(ErrorCode::ServerFull));
        assert_eq!(reg.names(), vec!["Alice", "bob"]);
    }

    #[test]
    fn a_full_queue_evicts_only_that_member_and_tells_the_others() {
        let reg = Registry::new(10);
        let (slow, _slow_rx) = Outbox::new(2);
        let (fast, mut fast_rx) = Outbox::new(100);
        let (sender, _sender_rx) = Outbox::new(100);
        reg.join("slow", 1, slow.clone(), welcome).unwrap();
        reg.join("fast", 2, fast, welcome).unwrap();
        reg.join("sender", 3, sender, welcome).unwrap();
        // slow's queue holds: welcome, joined(fast); joined(sender) overflowed it.
        assert_eq!(slow.reason(), Some(CloseReason::SlowConsumer));
        assert_eq!(reg.names(), vec!["fast", "sender"]);
        let mut seen = Vec::new();
        while let Ok(frame) = fast_rx.try_recv() {
            seen.push(decode(frame));
        }
        assert!(
            seen.iter()
                .any(|m| matches!(m, ServerMsg::Left { name, reason, .. }
            if name == "slow" && reason == "slow_consumer"))
        );
    }

    #[test]
    fn leave_of_a_stale_session_does_not_remove_the_new_one() {
        let reg = Registry::new(10);
        let (a, _ra) = Outbox::new(10);
        reg.join("alice", 7, a, welcome).unwrap();
        reg.leave("alice", 6, CloseReason::Disconnected);
        assert_eq!(reg.names(), vec!["alice"]);
        reg.leave("ALICE", 7, CloseReason::Quit);
        assert!(reg.is_empty());
    }
}
