//! The tokio driver over real UDP sockets on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use transport::driver::{self, Control};
use transport::{Config, Event};

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7919) as u8).collect()
}

async fn transfer(len: usize, offset: u64, config: Config) -> (Vec<u8>, Event) {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    driver::tune_socket(&server);
    let addr = server.local_addr().unwrap();
    let source = data(len);
    let token = [7u8; 16];
    let cfg = config.clone();
    let served = tokio::spawn(async move {
        driver::serve(&server, token, source, cfg, std::future::pending()).await
    });
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    driver::tune_socket(&client);
    let (_tx, control) = watch::channel(Control::Run);
    let mut sink = vec![0u8; offset as usize];
    let (outcome, _) = tokio::time::timeout(
        Duration::from_secs(30),
        driver::fetch(
            &client,
            driver::FetchOptions {
                server: addr,
                token,
                offset,
                pause_at: None,
                config,
            },
            &mut sink,
            control,
            None,
        ),
    )
    .await
    .expect("transfer timed out");
    let served = served.await.unwrap();
    assert!(matches!(served.event, Event::Finished { .. }), "{served:?}");
    (sink, outcome.event)
}

#[tokio::test]
async fn a_few_megabytes_arrive_exactly_over_loopback() {
    let len = 5_000_003;
    let (got, event) = transfer(len, 0, Config::default()).await;
    let expected = data(len);
    assert_eq!(
        event,
        Event::Finished {
            total: len as u64,
            last_byte: expected.last().copied()
        }
    );
    assert!(got == expected, "bytes differ");
}

#[tokio::test]
async fn small_datagrams_and_resume_from_an_offset() {
    let len = 300_000;
    let config = Config {
        max_datagram: 1200,
        ..Config::default()
    };
    let (got, event) = transfer(len, 100_000, config).await;
    assert!(matches!(event, Event::Finished { total: 300_000, .. }));
    assert_eq!(&got[100_000..], &data(len)[100_000..]);
}

#[tokio::test]
async fn an_empty_stream_finishes() {
    let (got, event) = transfer(0, 0, Config::default()).await;
    assert_eq!(
        event,
        Event::Finished {
            total: 0,
            last_byte: None
        }
    );
    assert!(got.is_empty());
}
