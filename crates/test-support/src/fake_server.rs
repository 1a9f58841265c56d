//! A server that lies: it speaks the control protocol over TLS, with an identity of its own,
//! and answers each request with whatever frames a test scripts, so that tests can attack the
//! client as a hostile server would. File data, when a script wants it served, goes over the
//! real transport.

use bytes::Bytes;
use futures_util::StreamExt;
use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::codec::FramedRead;
use wire::{ClientMsg, FrameCodec, ServerMsg};

/// Answers one client request with frames to send, in order.
pub type Script = Box<dyn FnMut(&ClientMsg) -> Vec<Bytes> + Send>;

/// A fake server accepting any number of clients, each answered by a fresh [`Script`].
pub struct FakeServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The fingerprint of its key.
    pub key: wire::Fingerprint,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Listens on 127.0.0.1 (port 0); every client is welcomed under the name it asked for,
    /// and its requests answered by `script()`.
    pub async fn start(script: impl Fn() -> Script + Send + Sync + 'static) -> Self {
        Self::greeting(
            |name| {
                vec![
                    ServerMsg::Welcome {
                        version: wire::PROTOCOL_VERSION,
                        name: name.to_owned(),
                        users: vec![name.to_owned()],
                        server: "fake".into(),
                        account: false,
                    }
                    .to_frame(),
                ]
            },
            script,
        )
        .await
    }

    /// As [`FakeServer::start`], answering each hello (given the name asked for) with
    /// `greet`'s frames.
    pub async fn greeting(
        greet: impl Fn(&str) -> Vec<Bytes> + Send + Sync + 'static,
        script: impl Fn() -> Script + Send + Sync + 'static,
    ) -> Self {
        let greet = std::sync::Arc::new(greet);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (config, key) = crate::identity::ephemeral();
        let tls = tokio_rustls::TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let mut answer = script();
                let greet = std::sync::Arc::clone(&greet);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let Ok(stream) = tls.accept(stream).await else {
                        return;
                    };
                    let (rd, mut wr) = tokio::io::split(stream);
                    let mut frames = FramedRead::new(rd, FrameCodec::default());
                    while let Some(Ok(payload)) = frames.next().await {
                        let Ok(msg) = ClientMsg::decode(&payload) else {
                            continue;
                        };
                        let out = match &msg {
                            ClientMsg::Hello { name, .. } => greet(name),
                            ClientMsg::Ping => vec![ServerMsg::Pong.to_frame()],
                            ClientMsg::Quit => return,
                            other => answer(other),
                        };
                        for frame in out {
                            if wr.write_all(&frame).await.is_err() {
                                return;
                            }
                        }
                        if wr.flush().await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, key, task }
    }

    /// Trust in this server's key (and no other).
    #[cfg(feature = "client")]
    pub fn trust(&self) -> client::Trust {
        client::Trust::pinned(self.key)
    }
}

/// The `download_ready` frame of a transfer with these details.
pub fn ready(req: Option<u64>, id: u64, file: &str, data: &[u8], port: u16) -> Bytes {
    ServerMsg::DownloadReady {
        req,
        id,
        file: file.into(),
        size: data.len() as u64,
        hash: wire::FileHash(*blake3::hash(data).as_bytes()),
        secret: wire::TransferSecret([0; 32]),
        port,
    }
    .to_frame()
}

/// A new UDP socket on 127.0.0.1 (port 0), from inside the runtime, without awaiting.
pub fn udp_socket() -> UdpSocket {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    UdpSocket::from_std(socket).unwrap()
}

/// Serves `data` once over the real transport, to whoever knows the all-zero secret, on a new
/// UDP port of 127.0.0.1; returns the port.
pub fn serve_once(data: Vec<u8>) -> u16 {
    let socket = udp_socket();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        let config = transport::Config::default();
        let _ = transport::driver::serve(
            &socket,
            &transport::Secret([0; 32]),
            data,
            config,
            std::future::pending::<()>(),
        )
        .await;
    });
    port
}

/// A stream of `len` bytes made up as they are read (a byte is its offset's low bits): a file
/// far larger than any test keeps in memory, for a transfer that is still running when the
/// test acts on it.
pub struct Endless(pub u64);

impl transport::Source for Endless {
    fn len(&self) -> u64 {
        self.0
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0.saturating_sub(offset) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = (offset + i as u64) as u8;
        }
        Ok(n)
    }
}

/// Serves an [`Endless`] stream of `len` bytes once, as [`serve_once`] does; returns the port.
pub fn serve_endless(len: u64) -> u16 {
    let socket = udp_socket();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = transport::driver::serve(
            &socket,
            &transport::Secret([0; 32]),
            Endless(len),
            transport::Config::default(),
            std::future::pending::<()>(),
        )
        .await;
    });
    port
}

/// A server that is slow to answer one request: it offers `big.bin` (transfer 1, an
/// [`Endless`] stream of 4 GiB, under a hash it does not check) at once, but answers a
/// download of `slow.bin` only with a chat message from `bob`, as if it were still hashing
/// the file. The client's request for it waits until its timeout.
pub async fn slow_to_answer() -> FakeServer {
    FakeServer::start(|| {
        Box::new(|msg: &ClientMsg| match msg {
            ClientMsg::Download { file, req } if file == "big.bin" => vec![
                ServerMsg::DownloadReady {
                    req: *req,
                    id: 1,
                    file: file.clone(),
                    size: 4 << 30,
                    hash: wire::FileHash([0; 32]),
                    secret: wire::TransferSecret([0; 32]),
                    port: serve_endless(4 << 30),
                }
                .to_frame(),
            ],
            ClientMsg::Download { file, .. } if file == "slow.bin" => {
                vec![ServerMsg::message(Some(1), "bob", "still there?", false, 0).to_frame()]
            }
            _ => Vec::new(),
        })
    })
    .await
}
