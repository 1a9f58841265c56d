//! The connection to the server (TLS 1.3 over TCP): a reader task turning frames into
//! [`Event`]s and answers, and a writer task sending requests and keepalives.

use crate::download::{DownloadOptions, Downloads, Offer, TransferStatus};
use crate::event::time_from_millis;
use crate::fetch::Control;
use crate::tls::Tls;
use crate::{ClientError, Event, ServerKey, Trust};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tokio_util::codec::FramedRead;
use wire::{ClientMsg, FileEntry, FrameCodec, PROTOCOL_VERSION, ServerMsg};

/// How long connecting and each request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often we ping an otherwise quiet server (well within its idle timeout).
const PING_EVERY: Duration = Duration::from_secs(15);
/// Events buffered for a front end that is busy. Past this, events are dropped and counted
/// (the front end hears of it as [`Event::Lagged`]): the reader never waits for the front end,
/// so an answer to a request never waits behind a flood of chat.
const EVENT_QUEUE: usize = 1024;
/// Requests buffered for the writer.
const OUTBOX: usize = 256;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Incoming>>>>;

/// What came from the server: a message, or a `download_ready` that did not decode (its hash or
/// secret is not 64 lowercase hex digits), of which only the request and the transfer are
/// known.
#[derive(Debug)]
enum Incoming {
    Msg(ServerMsg),
    MalformedOffer { req: Option<u64>, id: u64 },
}

/// What a request for a malformed offer fails with.
const MALFORMED_OFFER: &str = "the server offered the file with a malformed secret or hash";
type Frames = FramedRead<ReadHalf<Tls>, FrameCodec>;

/// A handle on a connection to the server. Cheap to clone; every clone drives the same
/// connection.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    outbox: mpsc::Sender<ClientMsg>,
    pending: Pending,
    downloads: Arc<Downloads>,
    next_req: Arc<AtomicU64>,
    name: String,
    server: SocketAddr,
    server_key: ServerKey,
    users_at_join: Vec<String>,
}

/// The stream of [`Event`]s of one connection; ends after [`Event::Disconnected`].
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event, or `None` once the connection is gone and every event was read.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is ready now (for UIs polling once per frame).
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

impl Client {
    /// Connects to `addr` (`host:port`) over TLS 1.3, checks the server's key as `trust`
    /// says, and joins as `name`. Nothing is sent to a server whose key is not trusted.
    ///
    /// Fails with [`ClientError::ServerKeyChanged`] when the key is not the one trusted for
    /// the server, [`ClientError::NewServerKey`] when it is new and `trust` says to ask, and
    /// [`ClientError::Server`] when the server refuses the name (`name_taken`,
    /// `invalid_name`) or is full (`server_full`).
    pub async fn connect(
        addr: &str,
        name: &str,
        trust: &Trust,
    ) -> Result<(Client, Events), ClientError> {
        Self::connect_from(addr, name, None, trust).await
    }

    /// As [`Client::connect`], from the local address `local` (`None`: the system's choice),
    /// for hosts with several addresses.
    pub async fn connect_from(
        addr: &str,
        name: &str,
        local: Option<IpAddr>,
        trust: &Trust,
    ) -> Result<(Client, Events), ClientError> {
        let (stream, server_key) = connect_tls_from(addr, local, trust).await?;
        let server = stream
            .get_ref()
            .0
            .peer_addr()
            .map_err(|source| ClientError::Unreachable {
                addr: addr.to_owned(),
                source,
            })?;
        let (rd, mut wr) = tokio::io::split(stream);
        let mut frames = FramedRead::new(rd, FrameCodec::default());

        let hello = ClientMsg::Hello {
            version: PROTOCOL_VERSION,
            name: name.to_owned(),
        };
        write_frame(&mut wr, &hello.to_frame())
            .await
            .map_err(|_| ClientError::Disconnected)?;
        let welcome = timeout(REQUEST_TIMEOUT, next_msg(&mut frames))
            .await
            .map_err(|_| ClientError::Timeout)??;
        let Incoming::Msg(welcome) = welcome else {
            return Err(ClientError::Protocol(
                "expected a welcome, got `download_ready`".into(),
            ));
        };
        let (name, users_at_join) = match welcome {
            ServerMsg::Welcome { name, users, .. } => (name, users),
            ServerMsg::Error { code, message, .. } => {
                return Err(ClientError::Server { code, message });
            }
            ServerMsg::Bye { message, .. } => return Err(ClientError::Protocol(message)),
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected a welcome, got {}",
                    kind(&other)
                )));
            }
        };

        let (out_tx, out_rx) = mpsc::channel(OUTBOX);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let pending = Pending::default();
        let next_req = Arc::new(AtomicU64::new(1));
        let downloads = Downloads::new(
            server.ip(),
            ev_tx.clone(),
            out_tx.downgrade(),
            Arc::clone(&next_req),
        );
        tokio::spawn(write_loop(wr, out_rx));
        tokio::spawn(read_loop(
            frames,
            ev_tx,
            Arc::clone(&pending),
            Arc::clone(&downloads),
        ));
        let inner = Inner {
            outbox: out_tx,
            pending,
            downloads,
            next_req,
            name,
            server,
            server_key,
            users_at_join,
        };
        Ok((
            Client {
                inner: Arc::new(inner),
            },
            Events { rx: ev_rx },
        ))
    }

    /// The name we joined with, as the server spelled it.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.inner.server
    }

    /// The server's key, and why it was trusted.
    pub fn server_key(&self) -> &ServerKey {
        &self.inner.server_key
    }

    /// Who was online when we joined (ourselves included).
    pub fn users_at_join(&self) -> &[String] {
        &self.inner.users_at_join
    }

    /// Sends `text` to every other user. Errors the server reports (e.g. `too_long`) arrive as
    /// [`Event::Error`].
    pub async fn send_all(&self, text: impl Into<String>) -> Result<(), ClientError> {
        let req = Some(self.next_req());
        self.send(ClientMsg::SendAll {
            text: text.into(),
            req,
        })
        .await
    }

    /// Sends `text` to the user called `to`. Errors (`no_such_user`, `too_long`) arrive as
    /// [`Event::Error`].
    pub async fn send_private(
        &self,
        to: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<(), ClientError> {
        let req = Some(self.next_req());
        self.send(ClientMsg::SendPrivate {
            to: to.into(),
            text: text.into(),
            req,
        })
        .await
    }

    /// The users online now, sorted.
    pub async fn users(&self) -> Result<Vec<String>, ClientError> {
        let req = self.next_req();
        match self
            .request(req, ClientMsg::ListUsers { req: Some(req) })
            .await?
        {
            ServerMsg::Users { names, .. } => Ok(names),
            other => Err(unexpected(other)),
        }
    }

    /// The files the server shares, sorted by name: every page of the listing, asked for one
    /// after the other until the server says there are no more.
    pub async fn files(&self) -> Result<Vec<FileEntry>, ClientError> {
        /// More entries than any honest folder we serve: a server paging without end is
        /// refused here rather than filling our memory.
        const MAX_LISTED: usize = 1_000_000;
        /// At most this much of names, all pages together (an entry counts its name plus 32).
        const MAX_LISTED_BYTES: usize = 64 * 1024 * 1024;
        /// No file system has longer names (Linux: 255 bytes).
        const MAX_NAME: usize = 1024;
        let mut all: Vec<FileEntry> = Vec::new();
        let mut bytes = 0usize;
        let mut after: Option<String> = None;
        loop {
            let req = self.next_req();
            let ask = ClientMsg::ListFiles {
                req: Some(req),
                after: after.clone(),
                limit: None,
            };
            let (files, next) = match self.request(req, ask).await? {
                ServerMsg::Files { files, next, .. } => (files, next),
                other => return Err(unexpected(other)),
            };
            if next.is_some() && files.is_empty() {
                return Err(ClientError::Protocol(
                    "the server sent an empty page of files with more to come".into(),
                ));
            }
            for entry in &files {
                if entry.name.len() > MAX_NAME {
                    return Err(ClientError::Protocol(format!(
                        "the server lists a file name of {} bytes",
                        entry.name.len()
                    )));
                }
                bytes += entry.name.len() + 32;
            }
            all.extend(files);
            if all.len() > MAX_LISTED || bytes > MAX_LISTED_BYTES {
                return Err(ClientError::Protocol(format!(
                    "the server lists more than {MAX_LISTED} files or {} MiB of names",
                    MAX_LISTED_BYTES >> 20
                )));
            }
            match next {
                // Each cursor must move forward, or a lying server could keep us asking.
                Some(next) if after.as_ref().is_none_or(|prev| next > *prev) => {
                    after = Some(next);
                }
                Some(next) => {
                    return Err(ClientError::Protocol(format!(
                        "the server's listing went back to {next:?}"
                    )));
                }
                None => return Ok(all),
            }
        }
    }

    /// Benchmarks only: this connection's transfers go unprotected, to measure what sealing
    /// costs. Only a server made with `unprotected_transfers` accepts them; nothing in the
    /// product calls this.
    #[doc(hidden)]
    pub fn unprotected_transfers(&self, unprotected: bool) {
        self.inner.downloads.set_unprotected(unprotected);
    }

    /// Asks for the shared file `file` and downloads it into `opts.dir` in the background.
    /// Returns the transfer id at once (the transfer may be queued); progress and the result
    /// arrive as [`Event::Transfer`]. Fails with `no_such_file` or `busy`.
    pub async fn download(&self, file: &str, opts: DownloadOptions) -> Result<u64, ClientError> {
        let req = self.next_req();
        self.inner.downloads.asked(req, file.to_owned(), opts)?;
        let msg = ClientMsg::Download {
            file: file.to_owned(),
            req: Some(req),
        };
        let answer = self.answer(req, msg).await;
        match answer {
            Ok(Incoming::MalformedOffer { id, .. }) => {
                // Nothing was started for it: say so now, rather than leave a transfer that
                // never moves (and a name that stays taken).
                self.inner.downloads.forget(req);
                let _ = self.send(ClientMsg::Cancel { id, req: None }).await;
                Err(ClientError::Protocol(MALFORMED_OFFER.into()))
            }
            Ok(Incoming::Msg(
                ServerMsg::DownloadReady { id, .. } | ServerMsg::DownloadQueued { id, .. },
            )) => Ok(id),
            Ok(Incoming::Msg(ServerMsg::Error { code, message, .. })) => {
                self.inner.downloads.forget(req);
                Err(ClientError::Server { code, message })
            }
            Ok(Incoming::Msg(other)) => {
                self.inner.downloads.forget(req);
                Err(unexpected(other))
            }
            Err(err) => {
                self.inner.downloads.forget(req);
                Err(err)
            }
        }
    }

    /// Pauses transfer `id`: the receiver stops granting window, the flow stays open cheaply.
    pub fn pause(&self, id: u64) -> Result<(), ClientError> {
        self.inner.downloads.control(id, Control::Pause)
    }

    /// Resumes a paused transfer. If the server took its port back meanwhile (it was paused
    /// longer than the server allows), this asks for the file again: the transfer continues,
    /// under the same id, from the data already on disk.
    pub fn resume(&self, id: u64) -> Result<(), ClientError> {
        self.inner.downloads.control(id, Control::Run)
    }

    /// Cancels transfer `id` (running or queued); its `.part` file is removed.
    pub async fn cancel(&self, id: u64) -> Result<(), ClientError> {
        let local = self.inner.downloads.control(id, Control::Cancel);
        let req = self.next_req();
        let server_id = self.inner.downloads.server_id(id);
        let remote = self
            .request(
                req,
                ClientMsg::Cancel {
                    id: server_id,
                    req: Some(req),
                },
            )
            .await;
        // Either side knowing the transfer is enough: it may have ended on one side already.
        match (local, remote) {
            (Err(err), Err(_)) => Err(err),
            _ => Ok(()),
        }
    }

    /// Every download of this connection.
    pub fn transfers(&self) -> Vec<TransferStatus> {
        self.inner.downloads.list()
    }

    /// Leaves the chat. The server confirms with a `bye`, which arrives as
    /// [`Event::Disconnected`] with reason `quit`.
    pub async fn quit(&self) -> Result<(), ClientError> {
        self.send(ClientMsg::Quit).await
    }

    fn next_req(&self) -> u64 {
        self.inner.next_req.fetch_add(1, Ordering::Relaxed)
    }

    async fn send(&self, msg: ClientMsg) -> Result<(), ClientError> {
        self.inner
            .outbox
            .send(msg)
            .await
            .map_err(|_| ClientError::Disconnected)
    }

    /// Sends a request and waits for the answer carrying the same `req`.
    async fn request(&self, req: u64, msg: ClientMsg) -> Result<ServerMsg, ClientError> {
        match self.answer(req, msg).await? {
            Incoming::Msg(ServerMsg::Error { code, message, .. }) => {
                Err(ClientError::Server { code, message })
            }
            Incoming::Msg(msg) => Ok(msg),
            Incoming::MalformedOffer { .. } => Err(ClientError::Protocol(MALFORMED_OFFER.into())),
        }
    }

    /// Sends request `req` and waits for what answers it, as it came.
    async fn answer(&self, req: u64, msg: ClientMsg) -> Result<Incoming, ClientError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pending).insert(req, tx);
        let answer = async {
            self.send(msg).await?;
            timeout(REQUEST_TIMEOUT, rx)
                .await
                .map_err(|_| ClientError::Timeout)?
                .map_err(|_| ClientError::Disconnected)
        }
        .await;
        lock(&self.inner.pending).remove(&req);
        answer
    }
}

/// A TLS connection to the server at `addr` (`host:port`) whose key `trust` accepts, before
/// any hello: for tools that speak the protocol by hand (load generators, fuzzers). Nothing is
/// sent on it yet.
pub async fn connect_tls(addr: &str, trust: &Trust) -> Result<(TlsStream, ServerKey), ClientError> {
    connect_tls_from(addr, None, trust).await
}

/// The TLS connection of a client.
pub type TlsStream = Tls;

/// As [`connect_tls`], from the local address `local` if given.
async fn connect_tls_from(
    addr: &str,
    local: Option<IpAddr>,
    trust: &Trust,
) -> Result<(TlsStream, ServerKey), ClientError> {
    let unreachable = |source| ClientError::Unreachable {
        addr: addr.to_owned(),
        source,
    };
    let stream = timeout(REQUEST_TIMEOUT, open_stream(addr, local))
        .await
        .map_err(|_| unreachable(std::io::ErrorKind::TimedOut.into()))?
        .map_err(unreachable)?;
    let _ = stream.set_nodelay(true);
    timeout(REQUEST_TIMEOUT, crate::tls::handshake(stream, addr, trust))
        .await
        .map_err(|_| ClientError::Tls {
            addr: addr.to_owned(),
            reason: "the TLS handshake did not finish in time".into(),
        })?
}

/// A TCP connection to `addr` (`host:port`), from `local` if given: each address the name
/// resolves to is tried in turn.
async fn open_stream(addr: &str, local: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect(addr).await;
    };
    let mut last = std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        format!("{addr} has no address of the family of {local}"),
    );
    for peer in tokio::net::lookup_host(addr).await? {
        if peer.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if peer.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(local, 0))?;
        match socket.connect(peer).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last = err,
        }
    }
    Err(last)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The map is only ever inserted into or removed from; a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unexpected(msg: ServerMsg) -> ClientError {
    ClientError::Protocol(format!("unexpected answer {}", kind(&msg)))
}

/// A message's type as the wire names it (`download_ready`, ...): what an error may show of
/// a message it did not expect (its fields may hold a transfer's secret).
fn kind(msg: &ServerMsg) -> String {
    let value = serde_json::to_value(msg).ok();
    let kind = value.as_ref().and_then(|v| v.get("type")?.as_str());
    format!("`{}`", kind.unwrap_or("message"))
}

async fn next_msg(frames: &mut Frames) -> Result<Incoming, ClientError> {
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

/// Writes one frame and flushes it out of TLS onto the socket.
async fn write_frame(wr: &mut WriteHalf<Tls>, frame: &[u8]) -> std::io::Result<()> {
    wr.write_all(frame).await?;
    wr.flush().await
}

async fn write_loop(mut wr: WriteHalf<Tls>, mut rx: mpsc::Receiver<ClientMsg>) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            _ = ping.tick() => Some(ClientMsg::Ping),
        };
        // Every clone of the client dropped: leave politely.
        let msg = msg.unwrap_or(ClientMsg::Quit);
        let quit = msg == ClientMsg::Quit;
        if write_frame(&mut wr, &msg.to_frame()).await.is_err() || quit {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

async fn read_loop(
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
                from,
                text,
                private,
                time,
            } => Event::Message {
                from,
                text,
                private,
                time: time_from_millis(time),
            },
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
            | ServerMsg::Cancelled { .. } => continue,
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
