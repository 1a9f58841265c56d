//! The connection to the server (TLS 1.3 over TCP): a reader task turning frames into
//! [`Event`]s and answers, and a writer task sending requests and keepalives.

use crate::account::{HistoryPage, HistoryQuery, Login, Password};
use crate::reader::{Incoming, MALFORMED_OFFER, Pending, kind, lock, next_msg, read_loop};
use crate::status::TransferStatus;
use crate::tls::{Tls, connect_tls_from};
use crate::transfer::{Control, DownloadOptions};
use crate::transfers::Downloads;
use crate::{ClientError, Event, ServerKey, Trust};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tokio_util::codec::FramedRead;
use wire::{ClientMsg, FileEntry, FrameCodec, MAX_HISTORY_PAGE, PROTOCOL_VERSION, ServerMsg};

/// How long connecting and each request may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often we ping an otherwise quiet server (well within its idle timeout).
const PING_EVERY: Duration = Duration::from_secs(15);
/// Events buffered for a front end that is busy. Past this, events are dropped and counted
/// (the front end hears of it as [`Event::Lagged`]): the reader never waits for the front end,
/// so an answer to a request never waits behind a flood of chat.
const EVENT_QUEUE: usize = 1024;
/// Requests buffered for the writer.
const OUTBOX: usize = 256;

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
    /// Logged in to an account (rather than a guest); changes with register and delete.
    account: AtomicBool,
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
    /// says, and joins as the guest `name`. Nothing is sent to a server whose key is not
    /// trusted.
    ///
    /// Fails with [`ClientError::ServerKeyChanged`] when the key is not the one trusted for
    /// the server, [`ClientError::NewServerKey`] when it is new and `trust` says to ask, and
    /// [`ClientError::Server`] when the server refuses the name (`name_taken`,
    /// `invalid_name`, `auth_failed` for a registered name) or is full (`server_full`).
    pub async fn connect(
        addr: &str,
        name: &str,
        trust: &Trust,
    ) -> Result<(Client, Events), ClientError> {
        Self::connect_as(addr, &Login::guest(name), None, trust).await
    }

    /// As [`Client::connect`], from the local address `local` (`None`: the system's choice),
    /// for hosts with several addresses.
    pub async fn connect_from(
        addr: &str,
        name: &str,
        local: Option<IpAddr>,
        trust: &Trust,
    ) -> Result<(Client, Events), ClientError> {
        Self::connect_as(addr, &Login::guest(name), local, trust).await
    }

    /// As [`Client::connect_from`], joining as `login` says: a guest, an account with its
    /// password, or a new account. A wrong password (or a registered name without one, or a
    /// guest on a server that admits none) fails with `auth_failed`, too many of them with
    /// `rate_limited`, a password of the wrong length with `invalid_password`.
    pub async fn connect_as(
        addr: &str,
        login: &Login,
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
            name: login.name.clone(),
            password: login.password.as_ref().map(|p| p.expose().to_owned()),
            register: login.register && login.password.is_some(),
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
        let (name, users_at_join, account) = match welcome {
            ServerMsg::Welcome {
                name,
                users,
                account,
                ..
            } => (name, users, account),
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
            account: AtomicBool::new(account),
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

    /// True when this session is logged in to an account (not a guest).
    pub fn is_account(&self) -> bool {
        self.inner.account.load(Ordering::Relaxed)
    }

    /// Makes our (guest) name an account with `password`; from now on the name is ours alone.
    /// Fails with `invalid_password` (too short or too long), `name_taken` (an account already).
    pub async fn register(&self, password: &Password) -> Result<(), ClientError> {
        let req = self.next_req();
        let ask = ClientMsg::Register {
            password: password.expose().to_owned(),
            req: Some(req),
        };
        match self.request(req, ask).await? {
            ServerMsg::Registered { .. } => {
                self.inner.account.store(true, Ordering::Relaxed);
                Ok(())
            }
            other => Err(unexpected(other)),
        }
    }

    /// Changes the account's password from `old` to `new`. Fails with `auth_failed` (`old` is
    /// wrong), `not_registered` (a guest), `invalid_password`.
    pub async fn change_password(&self, old: &Password, new: &Password) -> Result<(), ClientError> {
        let req = self.next_req();
        let ask = ClientMsg::ChangePassword {
            password: old.expose().to_owned(),
            new_password: new.expose().to_owned(),
            req: Some(req),
        };
        match self.request(req, ask).await? {
            ServerMsg::PasswordChanged { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes the account (its name is free again; this session stays on as a guest, its
    /// other sessions are closed). Fails with `auth_failed`, `not_registered`.
    pub async fn delete_account(&self, password: &Password) -> Result<(), ClientError> {
        let req = self.next_req();
        let ask = ClientMsg::DeleteAccount {
            password: password.expose().to_owned(),
            req: Some(req),
        };
        match self.request(req, ask).await? {
            ServerMsg::AccountDeleted { .. } => {
                self.inner.account.store(false, Ordering::Relaxed);
                Ok(())
            }
            other => Err(unexpected(other)),
        }
    }

    /// A page of stored messages, oldest first: of the broadcast conversation, or of the
    /// private one with `query.with` (for an account only: `not_registered` otherwise).
    pub async fn history(&self, query: HistoryQuery) -> Result<HistoryPage, ClientError> {
        let req = self.next_req();
        let ask = ClientMsg::History {
            with: query.with.clone(),
            before: query.before,
            limit: query.limit,
            req: Some(req),
        };
        let (with, messages, more) = match self.request(req, ask).await? {
            ServerMsg::History {
                with,
                messages,
                more,
                ..
            } => (with, messages, more),
            other => return Err(unexpected(other)),
        };
        // What a page may hold, whatever the server says: no more than asked, oldest first,
        // all below `before`, and a page that says more follow is not empty.
        let most = query
            .limit
            .map_or(MAX_HISTORY_PAGE, |l| (l as usize).min(MAX_HISTORY_PAGE));
        let ascending = messages.windows(2).all(|w| w[0].id < w[1].id);
        let below = query
            .before
            .is_none_or(|before| messages.iter().all(|m| m.id < before));
        if messages.len() > most || !ascending || !below || (more && messages.is_empty()) {
            return Err(ClientError::Protocol(format!(
                "the server sent a history page of {} messages out of order or beyond what was asked",
                messages.len()
            )));
        }
        Ok(HistoryPage {
            with: with.or(query.with),
            messages,
            more,
        })
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

    /// Sends `text` to the user called `to`. Errors (`no_such_user`, `too_long`,
    /// `mailbox_full`) arrive as [`Event::Error`]; a message kept for a registered user who is
    /// offline is told as [`Event::Queued`].
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

fn unexpected(msg: ServerMsg) -> ClientError {
    ClientError::Protocol(format!("unexpected answer {}", kind(&msg)))
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
