//! One client connection: the TLS handshake, the hello, then a loop reading requests, with a
//! writer task draining the client's bounded outbox onto the connection.

use crate::Shared;
use crate::chat::{self, Me, Pipeline};
use crate::inbound::FrameReader;
use crate::limit::{AddressKey, PendingSlot, TokenBucket};
use crate::login::{self, LoggedIn};
use crate::registry::{CloseReason, JoinError, Outbox, OutboxReceiver, QueueLimits};
use crate::transfers::{Admitted, Request};
use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use wire::{
    ClientMsg, ErrorCode, FileEntry, FrameError, MAX_FILES_PAGE, MAX_FILES_PAGE_BYTES,
    PROTOCOL_VERSION, ServerMsg,
};

/// Most bytes the writer gathers from the outbox into one socket write.
const WRITE_BATCH: usize = 64 * 1024;
/// Most frames in one socket write (well under the system's limit of 1024 buffers).
const MAX_SLICES: usize = 64;
/// How long a closing connection may take to flush its last frames, and then to close its end.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes read and dropped from a closing connection while waiting for its end.
const DRAIN: usize = 64 * 1024;

/// A client's connection once its TLS handshake is done.
type Tls = tokio_rustls::server::TlsStream<TcpStream>;
type Frames = FrameReader<ReadHalf<Tls>>;
type Writer = WriteHalf<Tls>;

/// A connection's place among those still in their TLS handshake or hello, in all and from its
/// address: both are given back when this is dropped.
pub(crate) struct Pending {
    /// The server-wide place.
    pub(crate) _permit: tokio::sync::OwnedSemaphorePermit,
    /// The place among its source address's connections.
    pub(crate) _slot: PendingSlot,
}

/// Serves one connection until it ends.
///
/// `pending` is this connection's place among those still in their handshake or hello; it is
/// given back as soon as the hello is over, either way. A handshake that is not done within
/// `handshake_timeout` (or fails: plain text, another protocol, TLS 1.2) ends the connection
/// without a word, since there is no channel to say it on.
pub(crate) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    session: u64,
    pending: Pending,
) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10));
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);

    let handshake = tokio::select! {
        done = timeout(
            shared.config.handshake_timeout,
            shared.handshakes.pace(shared.tls.accept(stream)),
        ) => done,
        () = shared.shutdown.cancelled() => return,
    };
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            tracing::debug!(%peer, %err, "TLS handshake failed");
            return;
        }
        Err(_elapsed) => {
            tracing::debug!(%peer, "TLS handshake not done in time; closed");
            return;
        }
    };

    let (rd, mut wr) = tokio::io::split(stream);
    // A small buffer of its own; big frames are buffered within the server-wide budget.
    let max_frame = shared.config.max_frame.max(crate::MIN_MAX_FRAME);
    let mut frames = FrameReader::new(rd, max_frame, shared.inbound.clone());
    let (outbox, rx) = Outbox::new(QueueLimits {
        frames: shared.config.queue_limit,
        bytes: shared.config.queue_bytes,
    });

    let address = AddressKey::of(peer);
    let joined = hello(&mut frames, &mut wr, &shared, &outbox, session, address).await;
    drop(pending);
    let Some((name, account)) = joined else {
        let _ = timeout(LINGER, wr.shutdown()).await;
        let _ = timeout(LINGER, frames.drain(DRAIN)).await;
        return;
    };
    tracing::info!(%peer, user = %name, account = account.is_some(), "joined");
    shared.transfers.open_session(session, peer.ip());
    let writer = tokio::spawn(write_loop(wr, rx, outbox.clone()));
    if let Some(account) = &account {
        tokio::spawn(crate::login::deliver_waiting(
            Arc::clone(&shared),
            account.id,
            outbox.clone(),
        ));
    }
    let mut me = Me {
        name: name.clone(),
        session,
        address,
        outbox: outbox.clone(),
        account,
    };
    let pipe = Pipeline::new(shared.config.queue_limit);
    let reason = read_loop(&mut frames, &shared, &mut me, &pipe).await;
    // Messages already stored still go out before the user is gone.
    pipe.finish().await;
    tracing::info!(%peer, user = %name, reason = reason.as_str(), "left");
    shared.registry.leave(&name, session, reason);
    shared.transfers.end_session(session);
    outbox.close(reason);
    let _ = writer.await;
    let _ = timeout(LINGER, frames.drain(DRAIN)).await;
}

/// Waits for a valid hello, logs it in (a guest, or an account) and registers the user. A
/// refused name may be retried on the same connection until the hello deadline.
async fn hello(
    frames: &mut Frames,
    wr: &mut Writer,
    shared: &Shared,
    outbox: &Outbox,
    session: u64,
    address: AddressKey,
) -> Option<(String, Option<LoggedIn>)> {
    let deadline = Instant::now() + shared.config.hello_timeout;
    // Retrying names is paced per connection and per address, so a squatter hammering hello
    // cannot grab a name the instant its owner's connection closes.
    let mut attempts =
        TokenBucket::new(1.0, crate::HELLOS_PER_CONNECTION, std::time::Instant::now());
    let mut shutdown = std::pin::pin!(shared.shutdown.cancelled());
    loop {
        let next = tokio::select! {
            next = timeout_at(deadline, frames.next()) => next,
            () = &mut shutdown => {
                send_now(wr, &ServerMsg::bye(CloseReason::ServerShutdown)).await;
                return None;
            }
        };
        let payload = match next {
            Err(_elapsed) => {
                send_now(wr, &ServerMsg::bye(CloseReason::Timeout)).await;
                return None;
            }
            Ok(None) => return None,
            Ok(Some(Err(err))) => {
                refuse(wr, ErrorCode::BadRequest, &err.to_string()).await;
                return None;
            }
            Ok(Some(Ok(payload))) => payload,
        };
        let (version, name, password, register) = match ClientMsg::decode(&payload) {
            Ok(ClientMsg::Hello {
                version,
                name,
                password,
                register,
            }) => (version, name, password, register),
            Ok(_) => {
                refuse(
                    wr,
                    ErrorCode::BadRequest,
                    "the first message must be a hello",
                )
                .await;
                continue;
            }
            Err(err) => {
                refuse(wr, ErrorCode::BadRequest, &err.to_string()).await;
                continue;
            }
        };
        let now = std::time::Instant::now();
        let paced = if attempts.allow(now) {
            shared.addresses.allow_hello(address, now)
        } else {
            Err(attempts.wait())
        };
        if let Err(wait) = paced {
            let text = format!(
                "too many hello attempts; try again in {} ms",
                wait.as_millis().max(1)
            );
            refuse(wr, ErrorCode::RateLimited, &text).await;
            continue;
        }
        if version < 1 {
            let text = format!("this server speaks protocol version {PROTOCOL_VERSION}");
            refuse(wr, ErrorCode::UnsupportedVersion, &text).await;
            return None;
        }
        if let Err(err) = wire::validate_name(&name) {
            refuse(wr, ErrorCode::InvalidName, &err.to_string()).await;
            continue;
        }
        let account = match login::authenticate(shared, &name, password, register, address).await {
            Ok(account) => account,
            Err((code, text)) => {
                refuse(wr, code, &text).await;
                continue;
            }
        };
        // An account joins under its name as registered (its case), whatever was typed.
        let name = account.as_ref().map_or(name, |a| a.name.clone());
        let version = version.min(PROTOCOL_VERSION);
        let welcome = |users| ServerMsg::Welcome {
            version,
            name: name.clone(),
            users,
            server: concat!("messenger-server ", env!("CARGO_PKG_VERSION")).into(),
            account: account.is_some(),
        };
        // History on join is protocol 3's: an older client would show it as live messages.
        let history = if version >= 3 {
            shared.config.history_on_join
        } else {
            0
        };
        let id = account.as_ref().map(|a| a.id);
        match shared.registry.join(
            &name,
            session,
            address,
            id,
            outbox.clone(),
            history,
            welcome,
        ) {
            Ok(()) => return Some((name, account)),
            Err(err) => {
                let text = match &err {
                    JoinError::Taken => format!("the name {name:?} is already taken"),
                    JoinError::LooksLike(other) => {
                        format!("the name {name:?} looks too much like {other:?}, who is online")
                    }
                    JoinError::Full(max) => format!("the server is full ({max} users)"),
                    JoinError::AddressFull(max) => {
                        format!("the server is full for your address ({max} users from it)")
                    }
                };
                refuse(wr, err.code(), &text).await;
                if !err.may_retry() {
                    return None;
                }
            }
        }
    }
}

/// Reads requests until the connection ends; returns why it ended.
async fn read_loop(
    frames: &mut Frames,
    shared: &Arc<Shared>,
    me: &mut Me,
    pipe: &Pipeline,
) -> CloseReason {
    let outbox = me.outbox.clone();
    let outbox = &outbox;
    let idle = shared.config.idle_timeout;
    let mut bucket = TokenBucket::new(
        shared.config.rate_limit,
        shared.config.rate_burst,
        std::time::Instant::now(),
    );
    loop {
        let next = tokio::select! {
            next = timeout(idle, frames.next()) => next,
            () = outbox.closed() => return outbox.reason().unwrap_or(CloseReason::Disconnected),
            () = shared.shutdown.cancelled() => return CloseReason::ServerShutdown,
        };
        let payload = match next {
            Err(_elapsed) => return CloseReason::Timeout,
            Ok(None) => return CloseReason::Disconnected,
            Ok(Some(Err(FrameError::Io(_)))) => return CloseReason::Disconnected,
            Ok(Some(Err(err @ FrameError::BadLength { .. }))) => {
                let msg = ServerMsg::error(None, ErrorCode::BadRequest, err.to_string());
                pipe.reply(shared, me, msg).await;
                return CloseReason::ProtocolError;
            }
            Ok(Some(Ok(payload))) => payload,
        };
        let reply = match ClientMsg::decode(&payload) {
            Ok(ClientMsg::Ping) => Some(ServerMsg::Pong.into()),
            Ok(msg) if msg != ClientMsg::Quit && !bucket.allow(std::time::Instant::now()) => {
                let text = format!(
                    "slow down: at most {} requests a second (bursts of {}); try again in {} ms",
                    shared.config.rate_limit,
                    shared.config.rate_burst,
                    bucket.wait().as_millis().max(1)
                );
                Some(ServerMsg::error(msg.req(), ErrorCode::RateLimited, text).into())
            }
            Ok(msg) => handle(msg, shared, me, pipe).await,
            Err(err) => Some(
                ServerMsg::error(
                    ClientMsg::req_of(&payload),
                    ErrorCode::BadRequest,
                    err.to_string(),
                )
                .into(),
            ),
        };
        match reply {
            Some(Reply::Quit) => return CloseReason::Quit,
            Some(Reply::Send(msg)) => pipe.reply(shared, me, msg).await,
            None => {}
        }
        // Let the writers woken by this request run before the next one: a client that pipelines
        // many messages would otherwise fill its recipients' queues in one burst, before any of
        // them had a chance to drain, and get healthy readers evicted as slow.
        tokio::task::yield_now().await;
    }
}

enum Reply {
    Send(ServerMsg),
    Quit,
}

impl From<ServerMsg> for Reply {
    fn from(msg: ServerMsg) -> Self {
        Self::Send(msg)
    }
}

/// Carries out one request; returns what to answer, if anything.
async fn handle(
    msg: ClientMsg,
    shared: &Arc<Shared>,
    me: &mut Me,
    pipe: &Pipeline,
) -> Option<Reply> {
    let (outbox, name, session) = (&me.outbox.clone(), me.name.clone(), me.session);
    let name = name.as_str();
    match msg {
        ClientMsg::SendAll { text, req } => chat::send_all(shared, me, pipe, text, req)
            .await
            .map(Reply::from),
        ClientMsg::SendPrivate { to, text, req } => {
            chat::send_private(shared, me, pipe, to, text, req)
                .await
                .map(Reply::from)
        }
        ClientMsg::History {
            with,
            before,
            limit,
            req,
        } => Some(
            chat::history(shared, me, with, before, limit, req)
                .await
                .into(),
        ),
        ClientMsg::Register { password, req } => {
            Some(chat::register(shared, me, password, req).await.into())
        }
        ClientMsg::ChangePassword {
            password,
            new_password,
            req,
        } => Some(
            chat::change_password(shared, me, password, new_password, req)
                .await
                .into(),
        ),
        ClientMsg::DeleteAccount { password, req } => {
            Some(chat::delete_account(shared, me, password, req).await.into())
        }
        ClientMsg::ListUsers { req } => Some(
            ServerMsg::Users {
                req,
                names: shared.registry.names(),
            }
            .into(),
        ),
        ClientMsg::ListFiles { req, after, limit } => {
            Some(list_files(shared, outbox, req, after, limit).await.into())
        }
        ClientMsg::Download { file, req } => Some(
            download(shared, outbox, name, session, file, req)
                .await
                .into(),
        ),
        ClientMsg::Cancel { id, req } => Some(
            match shared.transfers.cancel(session, id) {
                Ok(()) => ServerMsg::Cancelled { req, id },
                Err(code) => ServerMsg::error(req, code, format!("you have no transfer {id}")),
            }
            .into(),
        ),
        ClientMsg::Ping => Some(ServerMsg::Pong.into()),
        ClientMsg::Quit => Some(Reply::Quit),
        ClientMsg::Hello { .. } => Some(
            ServerMsg::error(
                None,
                ErrorCode::BadRequest,
                "already joined; hello comes once",
            )
            .into(),
        ),
    }
}

/// One page of the shared files, after `after`: at most `limit` (and [`MAX_FILES_PAGE`])
/// entries and [`MAX_FILES_PAGE_BYTES`] of them. Refused with `busy`, before the folder is
/// even read, when the client's queue has no room for a full page: a client that asks and
/// never reads holds one queue's worth of pages, not one page per request.
async fn list_files(
    shared: &Shared,
    outbox: &Outbox,
    req: Option<u64>,
    after: Option<String>,
    limit: Option<u32>,
) -> ServerMsg {
    if !outbox.has_room(MAX_FILES_PAGE_BYTES + 1024) {
        let (_, bytes) = outbox.queued();
        return ServerMsg::error(
            req,
            ErrorCode::Busy,
            format!(
                "{bytes} bytes of replies wait for you to read them; read them, then ask again"
            ),
        );
    }
    let files = match shared.catalog.list_cached().await {
        Ok(files) => files,
        Err(err) => {
            tracing::warn!(%err, "cannot list the shared folder");
            return ServerMsg::error(req, ErrorCode::Internal, "the shared folder cannot be read");
        }
    };
    let limit = limit.map_or(MAX_FILES_PAGE, |l| (l as usize).clamp(1, MAX_FILES_PAGE));
    let (page, next) = files_page(&files, after.as_deref(), limit);
    ServerMsg::Files {
        req,
        files: page,
        next,
    }
}

/// The entries of `files` (sorted by name) after `after`, at most `limit` of them and about
/// [`MAX_FILES_PAGE_BYTES`] of JSON, and the cursor of the next page if any remain.
fn files_page(
    files: &[FileEntry],
    after: Option<&str>,
    limit: usize,
) -> (Vec<FileEntry>, Option<String>) {
    let start = after.map_or(0, |after| {
        files.partition_point(|f| f.name.as_str() <= after)
    });
    let mut page = Vec::new();
    let mut bytes = 0;
    let mut rest = files.iter().skip(start).peekable();
    while let Some(entry) = rest.peek() {
        // An entry's JSON: the name escaped (6 bytes a character at worst), the size, the keys.
        let cost = entry_json_len(entry);
        if page.len() >= limit || (!page.is_empty() && bytes + cost > MAX_FILES_PAGE_BYTES) {
            break;
        }
        bytes += cost;
        page.extend(rest.next().cloned());
    }
    let next = match rest.peek() {
        Some(_) => page.last().map(|f: &FileEntry| f.name.clone()),
        None => None,
    };
    (page, next)
}

/// The length of `entry` as JSON in a `files` page, its comma included.
fn entry_json_len(entry: &FileEntry) -> usize {
    let name: usize = entry
        .name
        .chars()
        .map(|c| match c {
            '"' | '\\' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum();
    // {"name":"","size":} and a comma: 20 bytes; a u64 has at most 20 digits.
    name + 20 + 20
}

/// Offers `file` for download: resolves it inside the shared folder, hashes it (cached), and
/// starts or queues the transfer.
async fn download(
    shared: &Shared,
    outbox: &Outbox,
    user: &str,
    session: u64,
    file: String,
    req: Option<u64>,
) -> ServerMsg {
    let no_such_file = |file: &str| {
        ServerMsg::error(
            req,
            ErrorCode::NoSuchFile,
            format!("no shared file is called {file:?}"),
        )
    };
    // Opened once, here: this handle is hashed and served, whatever the name becomes.
    let opened = match shared.catalog.open_shared(&file).await {
        Ok(Some(opened)) => opened,
        Ok(None) => return no_such_file(&file),
        Err(err) => {
            tracing::warn!(file, %err, "cannot open a shared file");
            return no_such_file(&file);
        }
    };
    let busy = |code| {
        ServerMsg::error(
            req,
            code,
            "every transfer port is busy and the queue is full, or you have too many transfers; try again later",
        )
    };
    let user = user.to_owned();
    let hash = match shared.hashes.known(&file, &opened.version) {
        Some(hash) => hash,
        None => {
            // Hashing runs on its own task, so that it carries on if this request stops
            // waiting for it.
            let mut hashing = {
                let (hashes, file, opened) = (shared.hashes.clone(), file.clone(), opened.clone());
                tokio::spawn(async move { hashes.get(&file, &opened).await })
            };
            match timeout(PREPARE_GRACE, &mut hashing).await {
                Ok(Ok(Ok(hash))) => hash,
                Ok(Ok(Err(err))) => {
                    tracing::warn!(file, %err, "cannot hash a shared file");
                    return no_such_file(&file);
                }
                Ok(Err(err)) => {
                    tracing::error!(file, %err, "hashing a shared file failed");
                    return no_such_file(&file);
                }
                Err(_still_hashing) => {
                    // A big file (a minute for 40 GiB): the client hears at once that the file
                    // is being prepared, and gets its offer when the hash is known.
                    return match shared.transfers.prepare(session, &user, &file, req) {
                        Ok((id, notice)) => {
                            let request = Unhashed {
                                session,
                                user,
                                outbox: outbox.clone(),
                                file,
                                shared: opened,
                            };
                            let catalog = shared.catalog.clone();
                            let (hashes, transfers) =
                                (shared.hashes.clone(), Arc::clone(&shared.transfers));
                            tokio::spawn(async move {
                                let first =
                                    hashing.await.unwrap_or_else(|e| Err(io::Error::other(e)));
                                prepare(catalog, hashes, transfers, id, request, first).await;
                            });
                            notice
                        }
                        Err(code) => busy(code),
                    };
                }
            }
        }
    };
    let request = Request {
        session,
        user,
        outbox: outbox.clone(),
        file,
        shared: opened,
        hash,
    };
    match shared.transfers.request(request, req) {
        Ok(Admitted::Ready(offer) | Admitted::Queued(offer)) => offer,
        Err(code) => busy(code),
    }
}

/// How long a download request waits for its file's hash before the client is told that the
/// file is being prepared (a small file is hashed well within it, and its offer comes at once).
const PREPARE_GRACE: Duration = Duration::from_secs(1);
/// Times a file that keeps changing while it is hashed is opened and hashed again before its
/// download is given up.
const HASH_ATTEMPTS: usize = 3;

/// A download request whose file is still being hashed: a [`Request`] but for the hash.
struct Unhashed {
    session: u64,
    user: String,
    outbox: Outbox,
    file: String,
    shared: crate::SharedFile,
}

impl Unhashed {
    fn hashed(self, hash: wire::FileHash) -> Request {
        let Self {
            session,
            user,
            outbox,
            file,
            shared,
        } = self;
        Request {
            session,
            user,
            outbox,
            file,
            shared,
            hash,
        }
    }
}

/// Carries on prepared transfer `id` once `first`, the hashing that was under way, has ended:
/// started or queued with its hash, or, if the file keeps changing or is gone, failed with a
/// word to its client.
async fn prepare(
    catalog: crate::FileCatalog,
    hashes: crate::HashCache,
    transfers: Arc<crate::Transfers>,
    id: u64,
    mut request: Unhashed,
    first: io::Result<wire::FileHash>,
) {
    let mut hashed = first;
    for attempt in 1..=HASH_ATTEMPTS {
        match hashed {
            Ok(hash) => {
                transfers.prepared(id, request.hashed(hash));
                return;
            }
            Err(err) => {
                tracing::warn!(file = request.file, %err, attempt, "cannot hash a shared file")
            }
        }
        match catalog.open_shared(&request.file).await {
            Ok(Some(reopened)) => request.shared = reopened,
            _ => break,
        }
        hashed = hashes.get(&request.file, &request.shared).await;
    }
    let message = format!(
        "the shared file {:?} could not be read; transfer {id} is over",
        request.file
    );
    transfers.prepare_failed(id, &request.outbox, ErrorCode::NoSuchFile, message);
}

/// Drains the outbox onto the socket, many frames per write. When the connection is closed it
/// flushes what is queued, sends the `bye` frame and shuts the socket.
///
/// Frames go out with vectored writes straight from the shared buffers they were queued in: a
/// broadcast or a batch of notices is never copied per recipient, and an idle client holds no
/// write buffer.
async fn write_loop(mut wr: Writer, mut rx: OutboxReceiver, outbox: Outbox) {
    let mut frames: VecDeque<Bytes> = VecDeque::new();
    loop {
        let first = tokio::select! {
            biased;
            frame = rx.recv() => frame,
            () = outbox.closed() => None,
        };
        let Some(first) = first else { break };
        let mut bytes = first.len();
        frames.push_back(first);
        while bytes < WRITE_BATCH && frames.len() < MAX_SLICES {
            match rx.try_recv() {
                Some(frame) => {
                    bytes += frame.len();
                    frames.push_back(frame);
                }
                None => break,
            }
        }
        let written = tokio::select! {
            res = write_frames(&mut wr, &mut frames) => res.is_ok(),
            // A client that does not read is evicted once its queue fills; stop waiting then.
            () = outbox.closed() => false,
        };
        if !written {
            break;
        }
        if frames.capacity() > MAX_SLICES {
            frames = VecDeque::new();
        }
    }
    let reason = outbox.reason().unwrap_or(CloseReason::Disconnected);
    let _ = timeout(LINGER, async {
        // A frame cut short by the close is finished first, so the stream stays well-formed.
        if reason != CloseReason::SlowConsumer {
            // Whatever was queued before the close still goes out (e.g. a reply to the request
            // that preceded a quit). A slow consumer gets only the bye.
            while let Some(frame) = rx.try_recv() {
                frames.push_back(frame);
            }
        }
        if reason != CloseReason::Disconnected {
            frames.push_back(ServerMsg::bye(reason).to_frame());
        }
        let _ = write_frames(&mut wr, &mut frames).await;
        let _ = wr.shutdown().await;
    })
    .await;
}

/// Writes `frames` in order, removing each once it is on the socket. If the future is dropped
/// half-way, `frames` holds exactly what was not written yet (a frame cut short keeps its tail).
async fn write_frames(wr: &mut Writer, frames: &mut VecDeque<Bytes>) -> io::Result<()> {
    while !frames.is_empty() {
        // The slices live only while polling, so they do not take room in every idle writer.
        let mut written = std::future::poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = frames.len().min(MAX_SLICES);
            for (slice, frame) in slices.iter_mut().zip(frames.iter()) {
                *slice = IoSlice::new(frame);
            }
            Pin::new(&mut *wr).poll_write_vectored(cx, &slices[..count])
        })
        .await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let Some(front) = frames.front_mut() else {
                break;
            };
            if written >= front.len() {
                written -= front.len();
                frames.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
    }
    // TLS holds what the socket would not take yet: without a flush it could wait there until
    // the next frame.
    wr.flush().await
}

/// Writes one frame straight to the socket, before the writer task exists.
async fn send_now(wr: &mut Writer, msg: &ServerMsg) {
    let _ = timeout(LINGER, wr.write_all(&msg.to_frame())).await;
}

async fn refuse(wr: &mut Writer, code: ErrorCode, message: &str) {
    send_now(wr, &ServerMsg::error(None, code, message)).await;
}
