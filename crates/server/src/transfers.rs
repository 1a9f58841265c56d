//! Downloads: the pool of UDP ports, the queue of requests waiting for one, and the running
//! transfers of every client.
//!
//! A port is leased when a transfer starts and comes back when the transfer task ends, however
//! it ends (done, failed, cancelled, client gone), because the task owns the socket and hands it
//! back on exit. Handing it back starts the next queued request.

use crate::catalog::SharedFile;
use crate::limit::AddressKey;
use crate::registry::Outbox;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use wire::{ErrorCode, ServerMsg};

/// Which UDP ports transfers use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpPorts {
    /// Exactly these ports (the `--udp-ports LO-HI` flag).
    Range(std::ops::RangeInclusive<u16>),
    /// This many ports chosen by the OS (port 0): for tests that run side by side.
    Ephemeral(usize),
}

impl UdpPorts {
    /// Binds every socket of the pool now, so a port in use is an error at start-up rather than
    /// a failed download later.
    pub fn bind(&self, ip: std::net::IpAddr) -> std::io::Result<Vec<UdpSocket>> {
        let addrs: Vec<SocketAddr> = match self {
            Self::Range(range) => range.clone().map(|p| SocketAddr::new(ip, p)).collect(),
            Self::Ephemeral(n) => (0..*n).map(|_| SocketAddr::new(ip, 0)).collect(),
        };
        addrs
            .into_iter()
            .map(|addr| {
                let socket = std::net::UdpSocket::bind(addr).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("cannot bind UDP port {addr}: {e}"))
                })?;
                socket.set_nonblocking(true)?;
                let socket = UdpSocket::from_std(socket)?;
                transport::driver::tune_socket(&socket);
                Ok(socket)
            })
            .collect()
    }
}

/// What a client asked for, ready to be served.
pub struct Request {
    /// The asking session.
    pub session: u64,
    /// The asking user's name.
    pub user: String,
    /// Where its offers go.
    pub outbox: Outbox,
    /// The file's name as the client asked for it.
    pub file: String,
    /// The file, open: what was hashed is what is served.
    pub shared: SharedFile,
    /// Its BLAKE3 hash, of the version opened.
    pub hash: wire::FileHash,
}

/// How a request was answered.
pub enum Admitted {
    /// A port was free: the transfer runs; send this offer.
    Ready(ServerMsg),
    /// It waits its turn; send this notice.
    Queued(ServerMsg),
}

/// A transfer as the server window shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferInfo {
    /// Transfer id.
    pub id: u64,
    /// File name.
    pub file: String,
    /// UDP port, or `None` while queued.
    pub port: Option<u16>,
    /// The downloading user.
    pub user: String,
    /// Stream bytes sent so far, retransmissions included (for rates).
    pub bytes_sent: u64,
}

struct Queued {
    id: u64,
    req: Request,
    address: AddressKey,
}

struct Active {
    session: u64,
    address: AddressKey,
    user: String,
    file: String,
    port: u16,
    cancel: CancellationToken,
    sent: Arc<AtomicU64>,
}

/// A request whose file is still being hashed (see [`Transfers::prepare`]).
struct Preparing {
    session: u64,
    user: String,
    file: String,
}

#[derive(Default)]
struct State {
    free: Vec<UdpSocket>,
    queue: VecDeque<Queued>,
    active: HashMap<u64, Active>,
    preparing: HashMap<u64, Preparing>,
    /// The source address of every session that may ask for downloads.
    addresses: HashMap<u64, AddressKey>,
    next_id: u64,
}

impl State {
    /// Transfers of `session`: running, queued or being prepared.
    fn of_session(&self, session: u64) -> usize {
        self.active
            .values()
            .filter(|a| a.session == session)
            .count()
            + self
                .queue
                .iter()
                .filter(|q| q.req.session == session)
                .count()
            + self
                .preparing
                .values()
                .filter(|p| p.session == session)
                .count()
    }

    /// Requests that wait (for a port or for their hash).
    fn waiting(&self) -> usize {
        self.queue.len() + self.preparing.len()
    }

    /// The address `session` connected from (the unspecified address if it never said).
    fn address_of(&self, session: u64) -> AddressKey {
        self.addresses
            .get(&session)
            .copied()
            .unwrap_or(AddressKey::of_ip(IpAddr::V4(
                std::net::Ipv4Addr::UNSPECIFIED,
            )))
    }

    /// Ports held by `session`, and by `address`.
    fn held(&self, session: u64, address: AddressKey) -> (usize, usize) {
        self.active.values().fold((0, 0), |(s, a), t| {
            (
                s + usize::from(t.session == session),
                a + usize::from(t.address == address),
            )
        })
    }

    /// Requests from `address` waiting for a port or their hash.
    fn waiting_from(&self, address: AddressKey) -> usize {
        self.queue.iter().filter(|q| q.address == address).count()
            + self
                .preparing
                .values()
                .filter(|p| self.address_of(p.session) == address)
                .count()
    }
}

/// How the pool is shared out, so that no client and no source address can hold every port or
/// fill the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    /// Most requests waiting for a port (or for their hash), all clients together.
    pub max_queue: usize,
    /// Most transfers one client may have running, queued or being prepared.
    pub per_client: usize,
    /// Most ports one client may hold at once; its further requests wait.
    pub ports_per_client: usize,
    /// Most ports the clients of one source address may hold at once; further requests wait.
    pub ports_per_address: usize,
    /// Most requests from one source address that may wait; more get `busy`.
    pub queued_per_address: usize,
}

/// The function that moves a file over one UDP socket:
/// `serve(socket, secret, file, cancel, bytes_sent)`. It returns when the transfer ends for any
/// reason; the socket then goes back to the pool. It counts the bytes it sends in `bytes_sent`.
pub type ServeFn = Arc<
    dyn Fn(
            Arc<UdpSocket>,
            transport::Secret,
            SharedFile,
            CancellationToken,
            Arc<AtomicU64>,
        ) -> futures_util::future::BoxFuture<'static, ()>
        + Send
        + Sync,
>;

/// All transfers of the server.
pub struct Transfers {
    state: Mutex<State>,
    pool_size: usize,
    max_queue: usize,
    per_client: usize,
    shares: Shares,
    serve: ServeFn,
}

impl Transfers {
    /// A manager over `sockets`, sharing them out as `shares` says.
    pub fn new(sockets: Vec<UdpSocket>, shares: Shares, serve: ServeFn) -> Self {
        Self {
            pool_size: sockets.len(),
            state: Mutex::new(State {
                free: sockets,
                next_id: 1,
                ..State::default()
            }),
            max_queue: shares.max_queue,
            per_client: shares.per_client,
            shares,
            serve,
        }
    }

    /// Session `session` connected from `ip`: its requests count against that address.
    pub fn open_session(&self, session: u64, ip: IpAddr) {
        self.lock().addresses.insert(session, AddressKey::of_ip(ip));
    }

    /// True if `session` (from `address`) may take one more port now.
    fn may_hold_another(&self, st: &State, session: u64, address: AddressKey) -> bool {
        let (mine, theirs) = st.held(session, address);
        mine < self.shares.ports_per_client && theirs < self.shares.ports_per_address
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `request` on a free port, or queues it, or refuses it with `busy`.
    pub fn request(
        self: &Arc<Self>,
        req: Request,
        req_no: Option<u64>,
    ) -> Result<Admitted, ErrorCode> {
        let mut st = self.lock();
        if st.of_session(req.session) >= self.per_client {
            return Err(ErrorCode::Busy);
        }
        let address = st.address_of(req.session);
        let would_wait = st.free.is_empty() || !self.may_hold_another(&st, req.session, address);
        if would_wait
            && (st.waiting() >= self.max_queue
                || st.waiting_from(address) >= self.shares.queued_per_address)
        {
            return Err(ErrorCode::Busy);
        }
        let id = st.next_id;
        st.next_id += 1;
        Ok(self.admit(&mut st, id, req, req_no))
    }

    /// Runs `req` as transfer `id` on a free port, or queues it.
    fn admit(
        self: &Arc<Self>,
        st: &mut State,
        id: u64,
        req: Request,
        req_no: Option<u64>,
    ) -> Admitted {
        let address = st.address_of(req.session);
        if self.may_hold_another(st, req.session, address)
            && let Some(socket) = st.free.pop()
        {
            return Admitted::Ready(self.start(st, id, req, socket, req_no));
        }
        let notice = ServerMsg::DownloadQueued {
            req: req_no,
            id,
            file: req.file.clone(),
            position: u32::try_from(st.queue.len()).unwrap_or(u32::MAX),
            preparing: false,
        };
        st.queue.push_back(Queued { id, req, address });
        Admitted::Queued(notice)
    }

    /// Takes a request for `file` whose hash is not known yet, under the same limits as
    /// [`Transfers::request`] (it counts as waiting): returns its id and the notice that tells
    /// the client it is being prepared. [`Transfers::prepared`] carries on once it is hashed.
    pub fn prepare(
        &self,
        session: u64,
        user: &str,
        file: &str,
        req_no: Option<u64>,
    ) -> Result<(u64, ServerMsg), ErrorCode> {
        let mut st = self.lock();
        let address = st.address_of(session);
        if st.of_session(session) >= self.per_client
            || st.waiting() >= self.max_queue
            || st.waiting_from(address) >= self.shares.queued_per_address
        {
            return Err(ErrorCode::Busy);
        }
        let id = st.next_id;
        st.next_id += 1;
        let preparing = Preparing {
            session,
            user: user.to_owned(),
            file: file.to_owned(),
        };
        st.preparing.insert(id, preparing);
        let notice = ServerMsg::DownloadQueued {
            req: req_no,
            id,
            file: file.to_owned(),
            position: 0,
            preparing: true,
        };
        Ok((id, notice))
    }

    /// The file of prepared transfer `id` is hashed: it starts or queues, and its client hears
    /// so. Nothing happens if it was cancelled (or its client left) meanwhile.
    pub fn prepared(self: &Arc<Self>, id: u64, req: Request) {
        let mut st = self.lock();
        if st.preparing.remove(&id).is_none() {
            return;
        }
        let outbox = req.outbox.clone();
        match self.admit(&mut st, id, req, None) {
            Admitted::Ready(msg) | Admitted::Queued(msg) => outbox.send_or_close(&msg),
        }
    }

    /// Transfer `id` could not be prepared (the file is gone or unreadable): its client hears
    /// why, and that the transfer is over.
    pub fn prepare_failed(&self, id: u64, outbox: &Outbox, code: ErrorCode, message: String) {
        if self.lock().preparing.remove(&id).is_none() {
            return;
        }
        outbox.send_or_close(&ServerMsg::error(None, code, message));
        outbox.send_or_close(&ServerMsg::Cancelled { req: None, id });
    }

    /// Cancels transfer `id` of `session`, queued or running.
    pub fn cancel(&self, session: u64, id: u64) -> Result<(), ErrorCode> {
        let mut st = self.lock();
        if let Some(active) = st.active.get(&id).filter(|a| a.session == session) {
            active.cancel.cancel(); // its task ends and hands the port back
            return Ok(());
        }
        if st.preparing.get(&id).is_some_and(|p| p.session == session) {
            st.preparing.remove(&id); // its hashing carries on for the cache; nobody is told
            return Ok(());
        }
        let before = st.queue.len();
        st.queue
            .retain(|q| !(q.id == id && q.req.session == session));
        if st.queue.len() < before {
            Ok(())
        } else {
            Err(ErrorCode::NoSuchTransfer)
        }
    }

    /// Ends every transfer of a session that is going away.
    pub fn end_session(&self, session: u64) {
        let mut st = self.lock();
        st.queue.retain(|q| q.req.session != session);
        st.preparing.retain(|_, p| p.session != session);
        st.addresses.remove(&session);
        for active in st.active.values().filter(|a| a.session == session) {
            active.cancel.cancel();
        }
    }

    /// Ports not in use now.
    pub fn free_ports(&self) -> usize {
        self.lock().free.len()
    }

    /// Ports in the pool.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// Every transfer, running, queued or being prepared.
    pub fn list(&self) -> Vec<TransferInfo> {
        let st = self.lock();
        let mut out: Vec<TransferInfo> = st
            .active
            .iter()
            .map(|(id, a)| TransferInfo {
                id: *id,
                file: a.file.clone(),
                port: Some(a.port),
                user: a.user.clone(),
                bytes_sent: a.sent.load(Ordering::Relaxed),
            })
            .chain(st.queue.iter().map(|q| TransferInfo {
                id: q.id,
                file: q.req.file.clone(),
                port: None,
                user: q.req.user.clone(),
                bytes_sent: 0,
            }))
            .chain(st.preparing.iter().map(|(id, p)| TransferInfo {
                id: *id,
                file: p.file.clone(),
                port: None,
                user: p.user.clone(),
                bytes_sent: 0,
            }))
            .collect();
        out.sort_by_key(|t| t.id);
        out
    }

    /// Runs transfer `id` on `socket` and returns the offer that tells the client so.
    fn start(
        self: &Arc<Self>,
        st: &mut State,
        id: u64,
        req: Request,
        socket: UdpSocket,
        req_no: Option<u64>,
    ) -> ServerMsg {
        // Fresh for every transfer, and told only to its client, inside the TLS channel.
        let secret = transport::random_secret();
        let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
        let cancel = CancellationToken::new();
        let sent = Arc::new(AtomicU64::new(0));
        let address = st.address_of(req.session);
        st.active.insert(
            id,
            Active {
                session: req.session,
                address,
                user: req.user.clone(),
                file: req.file.clone(),
                port,
                cancel: cancel.clone(),
                sent: Arc::clone(&sent),
            },
        );
        let socket = Arc::new(socket);
        let size = req.shared.version.size;
        let wire_secret = wire::TransferSecret(secret.0);
        let serve = (self.serve)(Arc::clone(&socket), secret, req.shared, cancel, sent);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            serve.await;
            this.finish(id, socket);
        });
        ServerMsg::DownloadReady {
            req: req_no,
            id,
            file: req.file,
            size,
            hash: req.hash,
            secret: wire_secret,
            port,
        }
    }

    /// A transfer task ended: its port goes back, and the next queued request (if any) starts.
    fn finish(self: &Arc<Self>, id: u64, socket: Arc<UdpSocket>) {
        let mut st = self.lock();
        st.active.remove(&id);
        // The serve future is gone, so we hold the only reference.
        let Ok(socket) = Arc::try_unwrap(socket) else {
            tracing::error!(
                id,
                "transfer socket still shared after its task ended; port lost"
            );
            return;
        };
        st.free.push(socket);
        self.serve_queue(&mut st);
    }

    /// Gives free ports to waiting requests that may take one.
    ///
    /// A port goes to the waiting request whose address holds the fewest ports, then whose
    /// client does, then the oldest: round robin between addresses and between clients, so a
    /// crowd of requests from one place cannot keep everyone else waiting.
    fn serve_queue(self: &Arc<Self>, st: &mut State) {
        // A request whose connection is closing (the client left, the server shuts down) gets
        // no port: it could never use it.
        st.queue.retain(|q| q.req.outbox.reason().is_none());
        while !st.free.is_empty() {
            let next = st
                .queue
                .iter()
                .enumerate()
                .filter(|(_, q)| self.may_hold_another(st, q.req.session, q.address))
                .min_by_key(|(i, q)| {
                    let (mine, theirs) = st.held(q.req.session, q.address);
                    (theirs, mine, *i)
                })
                .map(|(i, _)| i);
            let Some(next) = next.and_then(|i| st.queue.remove(i)) else {
                return;
            };
            let Some(socket) = st.free.pop() else {
                st.queue.push_front(next); // cannot happen: the loop checked
                return;
            };
            let outbox = next.req.outbox.clone();
            let offer = self.start(st, next.id, next.req, socket, None);
            outbox.send_or_close(&offer);
        }
    }
}

impl std::fmt::Debug for Transfers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfers")
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}
