//! `cargo bench -p bench [-- SUBCOMMAND ...]`: every benchmark (or the one named, as for the
//! `bench` binary), with quinn (a QUIC stream, the peer we compare our
//! transport with) added to the download comparison. quinn is a dev-dependency of this crate
//! only; the product never uses it.

use anyhow::{Context, bail};
use bench::download::{CHUNK, Contender, Job, Sides, check_and_remove, send_file};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    bench::main_with(&|| vec![Box::new(Quinn::default()) as Box<dyn Contender>])
}

/// A quinn server sending the file on a unidirectional stream to a quinn client, with 1 MiB
/// positional reads and writes, flow-control windows opened wide and the datagram size pinned
/// (MTU discovery off) to the job's or [`QUINN_MAX_DATAGRAM`], whichever is smaller. quinn
/// batches its datagrams with GSO and GRO.
#[derive(Default)]
struct Quinn {
    server: Option<quinn::Endpoint>,
    client: Option<quinn::Endpoint>,
}

/// Flow-control windows large enough for a fast link.
const WINDOW: u32 = 64 << 20;

/// quinn's datagrams: its own default upper bound for path MTU discovery (1452 bytes), or the
/// job's if smaller. (Pinned to 16 KiB or more, quinn 0.11 never finished a transfer here.)
const QUINN_MAX_DATAGRAM: usize = 1452;

fn transport_config(datagram: usize) -> anyhow::Result<Arc<quinn::TransportConfig>> {
    let mtu = u16::try_from(datagram.min(QUINN_MAX_DATAGRAM)).context("datagram size")?;
    let mut config = quinn::TransportConfig::default();
    config
        .stream_receive_window(quinn::VarInt::from_u32(WINDOW))
        .receive_window(quinn::VarInt::from_u32(2 * WINDOW))
        .send_window(u64::from(2 * WINDOW))
        .initial_mtu(mtu)
        .min_mtu(mtu.min(1200))
        .mtu_discovery_config(None);
    Ok(Arc::new(config))
}

fn endpoint_config(datagram: usize) -> anyhow::Result<quinn::EndpointConfig> {
    let mut config = quinn::EndpointConfig::default();
    let size = datagram.min(QUINN_MAX_DATAGRAM);
    config.max_udp_payload_size(u16::try_from(size).context("datagram size")?)?;
    Ok(config)
}

impl Contender for Quinn {
    fn name(&self) -> String {
        "quinn (QUIC stream)".into()
    }

    fn prepare(&mut self, sides: &Sides, job: &Job) -> anyhow::Result<()> {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
        let cert_der = rustls::pki_types::CertificateDer::from(cert.cert);
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
        let mut server_config =
            quinn::ServerConfig::with_single_cert(vec![cert_der.clone()], key.into())?;
        server_config.transport_config(transport_config(job.datagram)?);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert_der)?;
        let mut client_config = quinn::ClientConfig::with_root_certificates(Arc::new(roots))?;
        client_config.transport_config(transport_config(job.datagram)?);

        let datagram = job.datagram;
        let server = sides.on_send(async move {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
            quinn::Endpoint::new(
                endpoint_config(datagram)?,
                Some(server_config),
                socket,
                quinn::default_runtime().context("no async runtime")?,
            )
            .context("server endpoint")
        })?;
        let mut client = sides.on_recv(async move {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
            quinn::Endpoint::new(
                endpoint_config(datagram)?,
                None,
                socket,
                quinn::default_runtime().context("no async runtime")?,
            )
            .context("client endpoint")
        })?;
        client.set_default_client_config(client_config);
        self.server = Some(server);
        self.client = Some(client);
        Ok(())
    }

    fn run(&mut self, sides: &Sides, job: &Job) -> anyhow::Result<()> {
        let (Some(server), Some(client)) = (&self.server, &self.client) else {
            bail!("not prepared");
        };
        let addr = server.local_addr()?;
        let server = server.clone();
        let src = std::fs::File::open(job.source())?;
        let size = job.size;
        let sender = sides.send.spawn(async move {
            let conn = server.accept().await.context("no connection")?.await?;
            let mut stream = conn.open_uni().await?;
            send_file(&src, size, &mut stream).await?;
            stream.finish()?;
            // The receiver closes the connection once it has everything.
            conn.closed().await;
            anyhow::Ok(())
        });
        let dst = job.dest.join("quinn.bin");
        let out_path = dst.clone();
        let client = client.clone();
        sides.on_recv(async move {
            let conn = client.connect(addr, "localhost")?.await?;
            let mut stream = conn.accept_uni().await?;
            let out = std::fs::File::create(&out_path)?;
            while let Some(chunk) = stream.read_chunk(CHUNK, false).await? {
                out.write_all_at(&chunk.bytes, chunk.offset)?;
            }
            out.sync_data()?;
            conn.close(0u32.into(), b"done");
            anyhow::Ok(())
        })?;
        sides.send.block_on(sender)??;
        check_and_remove(&dst, job)
    }
}
