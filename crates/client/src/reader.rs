//! The connection's reader task: frames from the server become answers to the requests that
//! wait for them, starts and ends of transfers, and [`Event`]s for the front end, which it
//! never waits for.

use crate::event::time_from_millis;
use crate::tls::Tls;
use crate::transfer::Offer;
use crate::transfers::Downloads;
use crate::{ClientError, Event};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::ReadHalf;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;
use wire::{FrameCodec, ServerMsg};

/// Requests waiting for their answer, by request number.
pub(crate) type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Incoming>>>>;

/// What came from the server: a message, or a `download_ready` that did not decode (its hash or
/// secret is not 64 lowercase hex digits), of which only the request and the transfer are
/// known.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A message that decoded.
    Msg(ServerMsg),
    /// A `download_ready` for transfer `id` whose secret or hash did not decode.
    MalformedOffer {
        /// The request it answers, if any.
        req: Option<u64>,
        /// The server's id of the transfer.
        id: u64,
    },
}

/// What a request for a malformed offer fails with.
pub(crate) const MALFORMED_OFFER: &str =
    "the server offered the file with a malformed secret or hash";
pub(crate) type Frames = FramedRead<ReadHalf<Tls>, FrameCodec>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The map is only ever inserted into or removed from; a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A message's type as the wire names it (`download_ready`, ...): what an error may show of
/// a message it did not expect (its fields may hold a transfer's secret).
pub(crate) fn kind(msg: &ServerMsg) -> String {
    let value = serde_json::to_value(msg).ok();
    let kind = value.as_ref().and_then(|v| v.get("type")?.as_str());
    format!("`{}`", kind.unwrap_or("message"))
}

/// The next message from the server, as it came.
pub(crate) async fn next_msg(frames: &mut Frames) -> Result<Incoming, ClientError> {
    match frames.next().await {
        Some(Ok(payload)) => match ServerMsg::decode(&payload) {
            Ok(msg) => Ok(Incoming::Msg(msg)),
            Err(err) => match ServerMsg::refused_offer(&payload) {
                Some((req, id)) => Ok(Incoming::MalformedOffer { req, id }),
                None => Err(ClientError::Protocol(err.to_string())),
            },
        },
        // The connection ending without TLS's close_notify (a server killed, a reset) is the
        // connection lost, not a broken protocol; a stream cut mid-frame still is one.
        Some(Err(wire::FrameError::Io(err))) if err.kind() != std::io::ErrorKind::Other => {
            Err(ClientError::Disconnected)
        }
        Some(Err(err)) => Err(ClientError::Protocol(err.to_string())),
        None => Err(ClientError::Disconnected),
    }
}

/// Reads frames until the connection ends, then fails what still waits and tells the front
/// end, [`Event::Disconnected`] last.
pub(crate) async fn read_loop(
    mut frames: Frames,
    events: mpsc::Sender<Event>,
    pending: Pending,
    downloads: Arc<Downloads>,
) {
    let mut queue = EventQueue {
        events: events.clone(),
        missed: 0,
    };
    let last = loop {
        let next = if queue.missed > 0 {
            // Tell the front end it fell behind as soon as it has room, even if nothing
            // else comes (reading a frame can be cancelled without losing it).
            tokio::select! {
                biased;
                permit = queue.events.reserve() => {
                    let Ok(permit) = permit else { return };
                    permit.send(Event::Lagged { missed: queue.missed });
                    queue.missed = 0;
                    continue;
                }
                next = next_msg(&mut frames) => next,
            }
        } else {
            next_msg(&mut frames).await
        };
        let msg = match next {
            Ok(Incoming::Msg(msg)) => msg,
            Ok(Incoming::MalformedOffer { req, id }) => {
                tracing::warn!(id, "the server sent a malformed secret or hash");
                // An answer to a request is refused by `download`, which waits for it; a later
                // offer for a queued transfer fails that transfer here.
                if let Some(event) = downloads.malformed(id)
                    && !queue.deliver(event)
                {
                    return;
                }
                if let Some(waiter) = req.and_then(|req| lock(&pending).remove(&req)) {
                    let _ = waiter.send(Incoming::MalformedOffer { req, id });
                }
                continue;
            }
            Err(ClientError::Disconnected) => {
                break Event::Disconnected {
                    reason: "connection_lost".into(),
                    message: "the server closed the connection".into(),
                };
            }
            Err(err) => {
                break Event::Disconnected {
                    reason: "protocol_error".into(),
                    message: err.to_string(),
                };
            }
        };
        // Download answers start or queue the transfer before anyone hears of them.
        let told = match &msg {
            ServerMsg::DownloadReady {
                req,
                id,
                file,
                size,
                hash,
                secret,
                port,
            } => downloads.ready(
                *req,
                Offer {
                    id: *id,
                    local: *id,
                    file: file.clone(),
                    size: *size,
                    hash: *hash,
                    secret: transport::Secret(secret.0),
                    port: *port,
                },
            ),
            ServerMsg::DownloadQueued {
                req,
                id,
                file,
                position,
                preparing,
            } => downloads.queued(*req, *id, file.clone(), *position, *preparing),
            ServerMsg::Cancelled { req: None, id } => downloads.ended_by_server(*id),
            _ => None,
        };
        if let Some(event) = told
            && !queue.deliver(event)
        {
            return;
        }
        let waiter = msg.req().and_then(|req| lock(&pending).remove(&req));
        if let (
            None,
            ServerMsg::Error {
                req: Some(req),
                message,
                ..
            },
        ) = (&waiter, &msg)
            && let Some(event) = downloads.refused(*req, message)
            && !queue.deliver(event)
        {
            // A request nobody waits for: a transfer asking again after its port was taken
            // back, and now failed.
            return;
        }
        let msg = match waiter {
            Some(waiter) => match waiter.send(Incoming::Msg(msg)) {
                Ok(()) => continue,
                // The caller gave up waiting; show it as an event instead.
                Err(Incoming::Msg(msg)) => msg,
                Err(Incoming::MalformedOffer { .. }) => continue,
            },
            None => msg,
        };
        let event = match msg {
            ServerMsg::Joined { name, time } => Event::Joined {
                name,
                time: time_from_millis(time),
            },
            ServerMsg::Left { name, time, reason } => Event::Left {
                name,
                reason,
                time: time_from_millis(time),
            },
            ServerMsg::Message {
                id,
                from,
                text,
                private,
                time,
                history,
                offline,
            } => Event::Message {
                id,
                from,
                text,
                private,
                time: time_from_millis(time),
                history,
                offline,
            },
            ServerMsg::MessageQueued { to, id, .. } => Event::Queued { to, id },
            ServerMsg::Users { names, .. } => Event::Users(names),
            ServerMsg::Files { files, .. } => Event::Files(files),
            ServerMsg::Error { code, message, .. } => Event::Error { code, message },
            ServerMsg::Bye { reason, message } => {
                break Event::Disconnected {
                    reason: reason.as_str().into(),
                    message,
                };
            }
            ServerMsg::Pong
            | ServerMsg::Welcome { .. }
            | ServerMsg::DownloadReady { .. }
            | ServerMsg::DownloadQueued { .. }
            | ServerMsg::Cancelled { .. }
            | ServerMsg::History { .. }
            | ServerMsg::Registered { .. }
            | ServerMsg::PasswordChanged { .. }
            | ServerMsg::AccountDeleted { .. } => continue,
        };
        if !queue.deliver(event) {
            return; // nobody listens any more
        }
    };
    // Fail every waiting request now rather than at its timeout.
    lock(&pending).clear();
    downloads.connection_lost().await;
    if queue.missed > 0 {
        let missed = queue.missed;
        let _ = events.send(Event::Lagged { missed }).await;
    }
    let _ = events.send(last).await;
}

/// The reader's side of the event queue: it never waits for the front end.
struct EventQueue {
    events: mpsc::Sender<Event>,
    /// Events dropped since the front end last had room, told as [`Event::Lagged`].
    missed: u64,
}

impl EventQueue {
    /// Queues `event`, or drops and counts it when the front end is behind. False once
    /// nobody listens.
    fn deliver(&mut self, event: Event) -> bool {
        use mpsc::error::TrySendError;
        if self.missed > 0 {
            match self.events.try_send(Event::Lagged {
                missed: self.missed,
            }) {
                Ok(()) => self.missed = 0,
                Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.missed += 1;
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}
