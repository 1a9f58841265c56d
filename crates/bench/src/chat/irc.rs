//! The IRC side of the chat comparison: a minimal IRC client (RFC 2812: NICK, USER, JOIN,
//! PRIVMSG, QUIT) and an ngIRCd process configured for the load. A channel plays the part of
//! "everyone": a channel message reaches every other member, as `send_all` does.

use super::Member;
use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use std::process::{Child, Command, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

/// The channel every client joins.
const CHANNEL: &str = "#load";

/// Starts `ngircd` in the foreground on `port` with limits lifted for the load: no cap on
/// connections per address, no flood penalties, no pings during a run.
pub(super) fn start_server(port: u16, dir: &std::path::Path) -> anyhow::Result<Child> {
    let exe = ["/usr/sbin/ngircd", "/usr/bin/ngircd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .context("ngircd not found: install it with `apt-get install -y ngircd`")?;
    let conf = dir.join("ngircd.conf");
    std::fs::write(
        &conf,
        format!(
            "[Global]\n\
             Name = bench.irc\n\
             Info = messenger benchmark peer\n\
             Listen = 127.0.0.1\n\
             Ports = {port}\n\
             MotdPhrase = load\n\
             PidFile = {pid}\n\
             [Limits]\n\
             MaxConnections = 0\n\
             MaxConnectionsIP = 0\n\
             MaxJoins = 0\n\
             MaxNickLength = 16\n\
             MaxPenaltyTime = 0\n\
             PingTimeout = 3600\n\
             PongTimeout = 3600\n\
             [Options]\n\
             DNS = no\n\
             Ident = no\n\
             PAM = no\n",
            pid = dir.join("ngircd.pid").display()
        ),
    )?;
    Ok(Command::new(exe)
        .arg("--nodaemon")
        .arg("--config")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

/// Lines from the server, read into one reusable buffer.
pub(super) struct Lines {
    rd: OwnedReadHalf,
    buf: BytesMut,
}

impl Lines {
    /// Calls `each` with every complete line (without its CR LF) until `each` returns false or
    /// the connection ends; returns whether `each` stopped it.
    async fn until(&mut self, mut each: impl FnMut(&str) -> bool) -> anyhow::Result<bool> {
        loop {
            while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(&self.buf[..end]);
                let go_on = each(line.trim_end_matches('\r'));
                self.buf.advance(end + 1);
                if !go_on {
                    return Ok(true);
                }
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                return Ok(false);
            }
        }
    }
}

/// Connects, registers as `nick` and joins the channel (the server's NAMES list, like our
/// welcome, names everyone in it).
pub(super) async fn join(
    addr: &str,
    nick: &str,
) -> anyhow::Result<Member<tokio::net::tcp::OwnedWriteHalf, Lines>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (rd, mut wr) = stream.into_split();
    wr.write_all(format!("NICK {nick}\r\nUSER {nick} 0 * :bench\r\nJOIN {CHANNEL}\r\n").as_bytes())
        .await?;
    let mut lines = Lines {
        rd,
        buf: BytesMut::with_capacity(8192),
    };
    let mut refused = None;
    // 366 ends the NAMES list of the JOIN: from then on we are a member of the channel.
    let joined = lines
        .until(|line| {
            let code = line.split(' ').nth(1).unwrap_or("");
            if code.starts_with('4') || line.starts_with("ERROR") {
                refused = Some(line.to_owned());
                return false;
            }
            code != "366"
        })
        .await?;
    if let Some(line) = refused {
        bail!("{nick} refused: {line}");
    }
    if !joined {
        bail!("{nick}: the server closed the connection");
    }
    Ok(Member { wr, rx: lines })
}

/// Reads until the connection ends, passing each chat message's text (and whether it was sent
/// to this client alone) to `each`.
pub(super) async fn receive(mut lines: Lines, mut each: impl FnMut(&str, bool)) {
    let _ = lines
        .until(|line| {
            // :nick!user@host PRIVMSG target :text
            let mut parts = line.splitn(4, ' ');
            if let (Some(_), Some("PRIVMSG"), Some(target), Some(text)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            {
                each(text.trim_start_matches(':'), !target.starts_with('#'));
            }
            true
        })
        .await;
}

/// A channel message, or a private one to `to`, as one line.
pub(super) fn privmsg(to: Option<&str>, text: &str) -> String {
    format!("PRIVMSG {} :{text}\r\n", to.unwrap_or(CHANNEL))
}

/// The line that leaves.
pub(super) const QUIT: &[u8] = b"QUIT\r\n";
