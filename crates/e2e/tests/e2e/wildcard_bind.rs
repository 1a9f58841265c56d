//! A server on a wildcard address (its default, `0.0.0.0`) answers each client from the address
//! the client wrote to: a client that reaches it at 127.0.0.2, or at `::1` on a `[::]` bind, gets
//! its transfer's packets from that address (from another, it drops them and the download
//! fails).

use crate::common::{TestServer, make_file, next_of, opts, start_with};
use client::{Client, TransferState};
use server::UdpPorts;
use std::net::SocketAddr;
use std::time::Duration;

/// A server bound to `wildcard` (TCP and its pool of UDP ports), reached at `reach`.
async fn download_through(wildcard: SocketAddr, reach: std::net::IpAddr) {
    let server: TestServer = start_with(|c| {
        c.bind = wildcard;
        c.udp_ports = UdpPorts::Ephemeral(2);
    })
    .await;
    let port = server.handle.addr().port();
    let size = 3_000_001;
    let expected = make_file(server.files.path(), "f.bin", size);
    let dest = tempfile::tempdir().unwrap();
    let addr = SocketAddr::new(reach, port).to_string();
    let (client, mut events) = Client::connect(&addr, "wild", &server.trust())
        .await
        .unwrap();
    let id = client.download("f.bin", opts(dest.path())).await.unwrap();
    // The client gives up on a silent server after 30 s: long before, the test says why.
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match next_of(&mut events, id).await {
                TransferState::Done { bytes, hash, .. } => break Ok((bytes, hash.to_hex())),
                state @ (TransferState::Failed { .. } | TransferState::Cancelled) => {
                    break Err(state);
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no download from {reach} through a {wildcard} bind"));
    assert_eq!(ended, Ok((size, expected)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reaches_a_wildcard_server_at_127_0_0_2_downloads() {
    download_through(([0, 0, 0, 0], 0).into(), [127, 0, 0, 2].into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reaches_an_ipv6_wildcard_server_at_ipv6_loopback_downloads() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() || std::net::UdpSocket::bind("[::]:0").is_err()
    {
        eprintln!("no IPv6 loopback on this machine: test skipped");
        return;
    }
    let wildcard = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0));
    download_through(wildcard, std::net::Ipv6Addr::LOCALHOST.into()).await;
    // An IPv4 client of the dual-stack socket, at an address other than 127.0.0.1.
    download_through(wildcard, [127, 0, 0, 2].into()).await;
}
