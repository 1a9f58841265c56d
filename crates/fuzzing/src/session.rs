//! The server's whole message handler: arbitrary bytes on a real connection to a real server,
//! against a model of what the server must answer.
//!
//! One server runs for the whole process (on its own tokio runtime), with a well-behaved
//! *watcher* client online throughout. Each input is a script of typed requests, frames and
//! raw bytes ([`Session`]); its byte stream is written, as it is, inside TLS on a fresh
//! connection (only as far as the server reads it: see [`model`]), and the connection is
//! closed. Then a well-behaved *probe* client joins, chats and leaves. The model predicts,
//! from the bytes alone, every frame the server sends back on the connection, and every frame
//! the watcher sees, up to the probe's message; both are compared frame by frame.

use crate::control::{End, split};
use crate::script::Session;
use bytes::Bytes;
use server::{Config, Server, ServerHandle};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use wire::{
    ClientMsg, ErrorCode, FileEntry, MAX_FRAME_LEN, MAX_TEXT_LEN, ServerMsg, name_key,
    validate_name,
};

/// The one file the server shares.
pub const SHARED_FILE: &str = "hello.txt";
const SHARED_BYTES: &[u8] = b"hello from the fuzzed server\n";
/// Names of the two well-behaved clients.
pub(crate) const WATCHER: &str = "watcher";
pub(crate) const PROBE: &str = "probe";
/// Longest wait for the server before the case fails as a hang.
const PATIENCE: Duration = Duration::from_secs(10);
/// Name of the server's threads, so a panic there is told from one in the target's thread.
const THREAD_NAME: &str = "fuzz-server";

static SERVER_PANICKED: AtomicBool = AtomicBool::new(false);

/// A frame the model expects, with the fields it can predict.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Error(ErrorCode, Option<u64>),
    Welcome {
        /// The version both speak: the lower of the client's and ours.
        version: u32,
        name: String,
        users: Vec<String>,
    },
    Users {
        req: Option<u64>,
        names: Vec<String>,
    },
    Files {
        req: Option<u64>,
    },
    Pong,
    /// A page of the broadcast history (its messages depend on the cases before).
    History {
        req: Option<u64>,
    },
    /// The guest's name made an account.
    Registered {
        req: Option<u64>,
        name: String,
    },
    PasswordChanged(Option<u64>),
    AccountDeleted(Option<u64>),
    Message {
        from: String,
        text: String,
        private: bool,
    },
    /// `download_ready` for the shared file, or `busy` (every port in use).
    Offer {
        req: Option<u64>,
    },
    /// `cancelled` for a transfer we were offered, or `no_such_transfer`.
    CancelAnswer {
        req: Option<u64>,
        id: u64,
    },
    Bye(&'static str),
    Joined(String),
    Left(String, &'static str),
}

/// What the model predicts for one connection.
#[derive(Debug, Default)]
struct Prediction {
    /// Bytes the server reads before it stops reading (and closes).
    consumed: usize,
    /// Frames the server sends on the connection.
    replies: Vec<Expect>,
    /// Frames the watcher gets because of the connection.
    watcher: Vec<Expect>,
}

/// What the server must do with `stream`, by `docs/PROTOCOL.md`, given that only the watcher
/// is online and the shared folder holds [`SHARED_FILE`].
fn model(stream: &[u8]) -> Prediction {
    let mut out = Prediction::default();
    let frames = split(stream, MAX_FRAME_LEN);
    let mut name: Option<String> = None;
    // The password of the account the connection registered, if it did.
    let mut account: Option<String> = None;
    for payload in frames.frames {
        out.consumed += 4 + payload.len();
        let msg = ClientMsg::decode(payload);
        let Some(me) = &name else {
            match msg {
                Ok(ClientMsg::Hello { version: 0, .. }) => {
                    out.replies
                        .push(Expect::Error(ErrorCode::UnsupportedVersion, None));
                    return out;
                }
                Ok(ClientMsg::Hello {
                    name: wanted,
                    version,
                    ..
                }) => {
                    if validate_name(&wanted).is_err() {
                        out.replies
                            .push(Expect::Error(ErrorCode::InvalidName, None));
                    } else if name_key(&wanted) == WATCHER {
                        out.replies.push(Expect::Error(ErrorCode::NameTaken, None));
                    } else {
                        out.replies.push(Expect::Welcome {
                            version: version.min(wire::PROTOCOL_VERSION),
                            name: wanted.clone(),
                            users: online_with(&wanted),
                        });
                        out.watcher.push(Expect::Joined(wanted.clone()));
                        name = Some(wanted);
                    }
                }
                Ok(_) | Err(_) => out.replies.push(Expect::Error(ErrorCode::BadRequest, None)),
            }
            continue;
        };
        let me = me.clone();
        let too_long = |text: &str, req| {
            (text.len() > MAX_TEXT_LEN).then_some(Expect::Error(ErrorCode::TooLong, req))
        };
        let reply = match msg {
            // A refused request still gets its `req` back, when it has a readable one.
            Err(_) => Some(Expect::Error(
                ErrorCode::BadRequest,
                ClientMsg::req_of(payload),
            )),
            Ok(ClientMsg::Hello { .. }) => Some(Expect::Error(ErrorCode::BadRequest, None)),
            Ok(ClientMsg::Ping) => Some(Expect::Pong),
            Ok(ClientMsg::Quit) => {
                out.replies.push(Expect::Bye("quit"));
                out.watcher.push(Expect::Left(me, "quit"));
                return out;
            }
            Ok(ClientMsg::SendAll { text, req }) => too_long(&text, req).or_else(|| {
                out.watcher.push(Expect::Message {
                    from: me.clone(),
                    text,
                    private: false,
                });
                None
            }),
            Ok(ClientMsg::SendPrivate { to, text, req }) => too_long(&text, req).or_else(|| {
                let msg = Expect::Message {
                    from: me.clone(),
                    text,
                    private: true,
                };
                if name_key(&to) == name_key(&me) {
                    Some(msg)
                } else if name_key(&to) == WATCHER {
                    out.watcher.push(msg);
                    None
                } else {
                    Some(Expect::Error(ErrorCode::NoSuchUser, req))
                }
            }),
            Ok(ClientMsg::ListUsers { req }) => Some(Expect::Users {
                req,
                names: online_with(&me),
            }),
            Ok(ClientMsg::ListFiles { req, .. }) => Some(Expect::Files { req }),
            Ok(ClientMsg::Download { file, req }) => Some(if file == SHARED_FILE {
                Expect::Offer { req }
            } else {
                Expect::Error(ErrorCode::NoSuchFile, req)
            }),
            Ok(ClientMsg::Cancel { id, req }) => Some(Expect::CancelAnswer { req, id }),
            Ok(ClientMsg::History {
                with: None, req, ..
            }) => Some(Expect::History { req }),
            // Private history is an account's; this connection's is only if it registered
            // (and then it has no private conversation with anyone: an empty page).
            Ok(ClientMsg::History {
                with: Some(_), req, ..
            }) => Some(match account {
                None => Expect::Error(ErrorCode::NotRegistered, req),
                Some(_) => Expect::History { req },
            }),
            Ok(ClientMsg::Register { password, req }) => Some(if account.is_some() {
                Expect::Error(ErrorCode::NameTaken, req)
            } else if !password_fits(&password) {
                Expect::Error(ErrorCode::InvalidPassword, req)
            } else {
                account = Some(password);
                Expect::Registered {
                    req,
                    name: me.clone(),
                }
            }),
            Ok(ClientMsg::ChangePassword {
                password,
                new_password,
                req,
            }) => Some(match &account {
                None => Expect::Error(ErrorCode::NotRegistered, req),
                Some(_) if !password_fits(&new_password) => {
                    Expect::Error(ErrorCode::InvalidPassword, req)
                }
                Some(current) if *current != password => Expect::Error(ErrorCode::AuthFailed, req),
                Some(_) => {
                    account = Some(new_password);
                    Expect::PasswordChanged(req)
                }
            }),
            Ok(ClientMsg::DeleteAccount { password, req }) => Some(match &account {
                None => Expect::Error(ErrorCode::NotRegistered, req),
                Some(current) if *current != password => Expect::Error(ErrorCode::AuthFailed, req),
                Some(_) => {
                    account = None;
                    Expect::AccountDeleted(req)
                }
            }),
        };
        out.replies.extend(reply);
    }
    match (frames.end, name) {
        (End::Clean, None) => out.consumed = stream.len(),
        (End::Partial, None) => {
            out.consumed = stream.len();
            out.replies.push(Expect::Error(ErrorCode::BadRequest, None));
        }
        (End::BadLength(_), None) => {
            out.consumed += 4;
            out.replies.push(Expect::Error(ErrorCode::BadRequest, None));
        }
        (End::Clean | End::Partial, Some(me)) => {
            out.consumed = stream.len();
            out.watcher.push(Expect::Left(me, "disconnected"));
        }
        (End::BadLength(_), Some(me)) => {
            out.consumed += 4;
            out.replies.push(Expect::Error(ErrorCode::BadRequest, None));
            out.replies.push(Expect::Bye("protocol_error"));
            out.watcher.push(Expect::Left(me, "protocol_error"));
        }
    }
    out
}

/// Whether a new password has an acceptable length.
fn password_fits(password: &str) -> bool {
    (wire::MIN_PASSWORD_LEN..=wire::MAX_PASSWORD_LEN).contains(&password.len())
}

/// The names online while `name` is, in the server's order (by name, ignoring case).
fn online_with(name: &str) -> Vec<String> {
    let mut names = vec![name.to_owned(), WATCHER.to_owned()];
    names.sort_by_key(|n| name_key(n));
    names
}

/// The server, its runtime and the watcher, shared by every case in the process.
struct Harness {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    /// Trust in the server's key, for every connection to it.
    trust: client::Trust,
    /// Size and hash of the shared file.
    shared: (u64, wire::FileHash),
    /// Frames the watcher received, as they come.
    watcher: mpsc::UnboundedReceiver<Result<ServerMsg, String>>,
    /// Cases run so far.
    cases: u64,
    _server: ServerHandle,
    _files: tempfile::TempDir,
}

fn harness() -> &'static Mutex<Harness> {
    static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();
    HARNESS.get_or_init(|| match Harness::start() {
        Ok(h) => Mutex::new(h),
        Err(err) => panic!("cannot start the server under test: {err}"),
    })
}

impl Harness {
    fn start() -> std::io::Result<Self> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(THREAD_NAME) {
                SERVER_PANICKED.store(true, Ordering::SeqCst);
            }
            previous(info);
        }));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()?;
        let files = tempfile::tempdir()?;
        let path = files.path().join(SHARED_FILE);
        std::fs::write(&path, SHARED_BYTES)?;
        let shared = (SHARED_BYTES.len() as u64, server::hash_file(&path)?);
        let mut config = Config::local(files.path(), 2);
        // Nothing the model does not know about: no rate limit, no slow-consumer eviction, no
        // queue for downloads (a queued one would be offered at an unpredictable moment), no
        // idle timeout for the watcher.
        config.rate_limit = 1e12;
        config.rate_burst = u32::MAX;
        config.queue_limit = 1 << 20;
        config.queue_bytes = 1 << 40;
        config.max_queued = 0;
        // Every connection comes from 127.0.0.1: no per-address limits, no pacing of hellos.
        config.max_pending_per_address = config.max_pending;
        config.max_clients_per_address = config.max_clients;
        config.hello_rate = 1e12;
        config.hello_burst = u32::MAX;
        config.registrations_per_hour = u32::MAX;
        config.idle_timeout = Duration::from_secs(24 * 3600);
        // No history on join: the welcome is followed by nothing the model cannot see.
        config.history_on_join = 0;
        let (server, watcher) = runtime.block_on(async {
            let server = Server::bind(config).await?.spawn()?;
            let watcher =
                watch(server.addr(), &client::Trust::pinned(server.fingerprint())).await?;
            Ok::<_, std::io::Error>((server, watcher))
        })?;
        Ok(Self {
            addr: server.addr(),
            trust: client::Trust::pinned(server.fingerprint()),
            runtime,
            shared,
            watcher,
            cases: 0,
            _server: server,
            _files: files,
        })
    }

    fn run(&mut self, stream: &[u8]) {
        let prediction = model(stream);
        let written = &stream[..prediction.consumed.min(stream.len())];
        let (addr, trust) = (self.addr, &self.trust);
        let answer = self.runtime.block_on(async {
            tokio::time::timeout(PATIENCE, exchange(addr, trust, written)).await
        });
        let answer = match answer {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(err)) => panic!("the connection failed: {err}"),
            Err(_) => panic!("the server did not close the connection"),
        };
        let replies = frames_of(&answer);
        compare(
            &prediction.replies,
            &replies,
            &self.shared,
            "the connection",
        );

        // A well-behaved client still joins and chats, and the watcher saw exactly what the
        // model says, then the probe.
        let text = format!("probe {}", self.cases);
        let probe = self
            .runtime
            .block_on(async { tokio::time::timeout(PATIENCE, probe(addr, trust, &text)).await });
        match probe {
            Ok(Ok(())) => {}
            Ok(Err(err)) => panic!("a well-behaved client failed after the input: {err}"),
            Err(_) => panic!("a well-behaved client got no answer after the input"),
        }
        let mut expected = Vec::new();
        if self.cases > 0 {
            expected.push(Expect::Left(PROBE.into(), "quit"));
        }
        expected.extend(prediction.watcher);
        expected.push(Expect::Joined(PROBE.into()));
        expected.push(Expect::Message {
            from: PROBE.into(),
            text: text.clone(),
            private: false,
        });
        let seen = self.runtime.block_on(async {
            let mut seen = Vec::new();
            loop {
                let next = tokio::time::timeout(PATIENCE, self.watcher.recv()).await;
                let msg = match next {
                    Ok(Some(Ok(msg))) => msg,
                    Ok(Some(Err(err))) => panic!("the watcher got a bad frame: {err}"),
                    Ok(None) => panic!("the watcher was disconnected"),
                    Err(_) => panic!("the watcher never saw the probe; it saw {seen:#?}"),
                };
                let last = matches!(&msg, ServerMsg::Message { from, text: t, .. } if from == PROBE && *t == text);
                seen.push(msg);
                if last {
                    return seen;
                }
            }
        });
        compare(&expected, &seen, &self.shared, "the watcher");
        self.cases += 1;
        assert!(
            !SERVER_PANICKED.load(Ordering::SeqCst),
            "a server task panicked"
        );
    }
}

/// A TLS connection to the server (nothing sent on it yet).
async fn connect(addr: SocketAddr, trust: &client::Trust) -> std::io::Result<client::TlsStream> {
    let (stream, _) = client::connect_tls(&addr.to_string(), trust)
        .await
        .map_err(std::io::Error::other)?;
    Ok(stream)
}

/// Writes `bytes` on a new connection, closes its sending half and returns everything the
/// server sends until it closes.
async fn exchange(
    addr: SocketAddr,
    trust: &client::Trust,
    bytes: &[u8],
) -> std::io::Result<Vec<u8>> {
    let stream = connect(addr, trust).await?;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let write = async {
        wr.write_all(bytes).await?;
        wr.shutdown().await
    };
    let read = async {
        let mut out = Vec::new();
        rd.read_to_end(&mut out).await.map(|_| out)
    };
    let (written, read) = tokio::join!(write, read);
    written?;
    read
}

/// The server's frames, which must be well-formed messages, ending at a frame boundary.
fn frames_of(bytes: &[u8]) -> Vec<ServerMsg> {
    let split = split(bytes, MAX_FRAME_LEN);
    assert_eq!(split.end, End::Clean, "the server's stream ends mid-frame");
    split
        .frames
        .iter()
        .map(|payload| match ServerMsg::decode(payload) {
            Ok(msg) => msg,
            Err(err) => panic!(
                "the server sent a frame that is no message ({err}): {}",
                String::from_utf8_lossy(payload)
            ),
        })
        .collect()
}

/// Joins as the watcher and forwards what it receives.
async fn watch(
    addr: SocketAddr,
    trust: &client::Trust,
) -> std::io::Result<mpsc::UnboundedReceiver<Result<ServerMsg, String>>> {
    let mut stream = connect(addr, trust).await?;
    stream.write_all(&hello(WATCHER)).await?;
    stream.flush().await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let welcome = read_frame(&mut stream).await?;
    if !matches!(welcome, ServerMsg::Welcome { .. }) {
        return Err(std::io::Error::other(format!(
            "the watcher got {welcome:?}"
        )));
    }
    tokio::spawn(async move {
        // The stream (its write half too) stays open: a closed one reads as a goodbye.
        loop {
            let next = read_frame(&mut stream).await.map_err(|e| e.to_string());
            let failed = next.is_err();
            if tx.send(next).is_err() || failed {
                return;
            }
        }
    });
    Ok(rx)
}

/// Joins as the probe, says `text` to everyone and leaves, checking every answer.
async fn probe(addr: SocketAddr, trust: &client::Trust, text: &str) -> std::io::Result<()> {
    let mut stream = connect(addr, trust).await?;
    stream.write_all(&hello(PROBE)).await?;
    stream.flush().await?;
    let welcome = read_frame(&mut stream).await?;
    let users = online_with(PROBE);
    if !matches!(&welcome, ServerMsg::Welcome { name, users: u, .. } if name == PROBE && *u == users)
    {
        return Err(std::io::Error::other(format!(
            "the probe's welcome is {welcome:?}"
        )));
    }
    let mut out = ClientMsg::SendAll {
        text: text.into(),
        req: None,
    }
    .to_frame()
    .to_vec();
    out.extend_from_slice(&ClientMsg::Quit.to_frame());
    stream.write_all(&out).await?;
    stream.flush().await?;
    let bye = read_frame(&mut stream).await?;
    if !matches!(&bye, ServerMsg::Bye { reason, .. } if *reason == wire::CloseReason::Quit) {
        return Err(std::io::Error::other(format!(
            "the probe's goodbye is {bye:?}"
        )));
    }
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await?;
    if !rest.is_empty() {
        return Err(std::io::Error::other("the server sent more after its bye"));
    }
    Ok(())
}

fn hello(name: &str) -> Bytes {
    ClientMsg::hello(wire::PROTOCOL_VERSION, name).to_frame()
}

async fn read_frame(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<ServerMsg> {
    let len = stream.read_u32().await?;
    if len == 0 || len as usize > MAX_FRAME_LEN {
        return Err(std::io::Error::other(format!("a frame of {len} bytes")));
    }
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).await?;
    ServerMsg::decode(&payload).map_err(std::io::Error::other)
}

/// Compares what came with what the model expects, frame by frame.
fn compare(expected: &[Expect], got: &[ServerMsg], shared: &(u64, wire::FileHash), whom: &str) {
    // Transfers offered on this connection, and those already cancelled once.
    let mut offered = HashSet::new();
    let mut cancelled = HashSet::new();
    let mut fits = |e: &Expect, m: &ServerMsg| match (e, m) {
        (
            Expect::Error(code, req),
            ServerMsg::Error {
                code: c, req: r, ..
            },
        ) => code == c && req == r,
        (
            Expect::Welcome {
                version,
                name,
                users,
            },
            ServerMsg::Welcome {
                version: v,
                name: n,
                users: u,
                ..
            },
        ) => version == v && name == n && users == u,
        (Expect::Users { req, names }, ServerMsg::Users { req: r, names: n }) => {
            req == r && names == n
        }
        (Expect::Files { req }, ServerMsg::Files { req: r, files, .. }) => {
            req == r
                && *files
                    == [FileEntry {
                        name: SHARED_FILE.into(),
                        size: shared.0,
                    }]
        }
        (Expect::Pong, ServerMsg::Pong) => true,
        (Expect::History { req }, ServerMsg::History { req: r, .. }) => req == r,
        (Expect::Registered { req, name }, ServerMsg::Registered { req: r, name: n }) => {
            req == r && name == n
        }
        (Expect::PasswordChanged(req), ServerMsg::PasswordChanged { req: r }) => req == r,
        (Expect::AccountDeleted(req), ServerMsg::AccountDeleted { req: r }) => req == r,
        (
            Expect::Message {
                from,
                text,
                private,
            },
            ServerMsg::Message {
                from: f,
                text: t,
                private: p,
                ..
            },
        ) => from == f && text == t && private == p,
        (
            Expect::Offer { req },
            ServerMsg::DownloadReady {
                req: r,
                id,
                file,
                size,
                hash,
                secret,
                port,
            },
        ) => {
            offered.insert(*id);
            req == r
                && file == SHARED_FILE
                && *size == shared.0
                && *hash == shared.1
                && is_fresh_secret(&secret.to_hex())
                && *port != 0
        }
        (Expect::Offer { req }, ServerMsg::Error { code, req: r, .. }) => {
            *code == ErrorCode::Busy && req == r
        }
        (Expect::CancelAnswer { req, id }, ServerMsg::Cancelled { req: r, id: i }) => {
            cancelled.insert(*id);
            req == r && id == i && offered.contains(id)
        }
        // Only a transfer cancelled before may be gone already (its task ends on its own time).
        (Expect::CancelAnswer { req, id }, ServerMsg::Error { code, req: r, .. }) => {
            *code == ErrorCode::NoSuchTransfer
                && req == r
                && (!offered.contains(id) || cancelled.contains(id))
        }
        (Expect::Bye(reason), ServerMsg::Bye { reason: r, .. }) => r.as_str() == *reason,
        (Expect::Joined(name), ServerMsg::Joined { name: n, .. }) => name == n,
        (
            Expect::Left(name, reason),
            ServerMsg::Left {
                name: n, reason: r, ..
            },
        ) => name == n && r.as_str() == *reason,
        _ => false,
    };
    let mismatch =
        expected.len() != got.len() || expected.iter().zip(got).any(|(e, m)| !fits(e, m));
    assert!(
        !mismatch,
        "{whom} got other frames than the model expects:\nexpected {expected:#?}\ngot {got:#?}"
    );
}

/// True if `secret` is a transfer's secret as `download_ready` spells it (64 lowercase hex
/// digits, 256 bits) and no offer in this process had it before: every transfer gets a fresh
/// one, or whoever saw one transfer's could open another's.
fn is_fresh_secret(secret: &str) -> bool {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let spelled = secret.len() == 2 * transport::SECRET_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let mut seen = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    spelled && seen.insert(secret.to_owned())
}

/// A client's session (a script of requests, frames and raw bytes, written as one byte
/// stream) on a fresh connection to a live server, then a well-behaved client.
///
/// Checks: every frame the server sends on the connection is a well-formed message, the
/// stream ends at a frame boundary, and the frames are exactly what the protocol says
/// (replies, errors with their codes and request numbers, the goodbye) for those bytes; the
/// watcher, online throughout, sees exactly the joins, chat messages and leaves with their
/// reasons that the bytes cause; afterwards a new client joins (its welcome lists only it and
/// the watcher: nobody lingers), chats (the watcher gets it) and leaves with a proper goodbye;
/// no server task panicked. Cases run one at a time (a lock), so the model holds.
pub fn server_session(session: &Session) {
    server_stream(&session.stream());
}

/// [`server_session`] on a byte stream as it is.
pub fn server_stream(stream: &[u8]) {
    let mut harness = harness().lock().unwrap_or_else(|e| e.into_inner());
    harness.run(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(msgs: &[ClientMsg]) -> Vec<u8> {
        msgs.iter().flat_map(|m| m.to_frame().to_vec()).collect()
    }

    #[test]
    fn the_model_follows_a_polite_session() {
        let stream = frames(&[
            ClientMsg::hello(1, "Zed"),
            ClientMsg::SendAll {
                text: "hi".into(),
                req: None,
            },
            ClientMsg::Ping,
            ClientMsg::Quit,
            ClientMsg::Ping,
        ]);
        let p = model(&stream);
        assert_eq!(p.consumed, stream.len() - ClientMsg::Ping.to_frame().len());
        assert_eq!(
            p.replies,
            vec![
                Expect::Welcome {
                    version: 1,
                    name: "Zed".into(),
                    users: vec!["watcher".into(), "Zed".into()]
                },
                Expect::Pong,
                Expect::Bye("quit")
            ]
        );
        assert_eq!(
            p.watcher,
            vec![
                Expect::Joined("Zed".into()),
                Expect::Message {
                    from: "Zed".into(),
                    text: "hi".into(),
                    private: false
                },
                Expect::Left("Zed".into(), "quit")
            ]
        );
    }

    #[test]
    fn the_model_stops_reading_at_a_bad_length() {
        let mut stream = frames(&[ClientMsg::hello(1, "a")]);
        let hello_len = stream.len();
        stream.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        let p = model(&stream);
        assert_eq!(p.consumed, hello_len + 4);
        assert_eq!(p.replies.last(), Some(&Expect::Bye("protocol_error")));
    }
}
