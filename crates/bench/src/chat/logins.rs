//! A login storm: many registered accounts log in at once (each costs the server an Argon2id
//! check, slow on purpose) while a crowd already online chats at a steady rate. Reports how
//! long the logins took and the crowd's delivery latency before and during the storm.

use super::{
    Link, Load, Member, Peer, Server, Tally, join_messenger, percentile, receive_messenger,
};
use anyhow::Context;
use client::Trust;
use server::accounts::{Passwords, Secret};
use server::store::{Store, Write, sqlite};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use wire::{ClientMsg, PROTOCOL_VERSION};

/// Options of the login benchmark.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Accounts registered first, then logging in all at once.
    #[arg(long, default_value_t = 1000)]
    accounts: usize,
    /// Guests online and chatting meanwhile.
    #[arg(long, default_value_t = 100)]
    online: usize,
    /// Of those, how many send.
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Messages per second each sender sends to everyone.
    #[arg(long, default_value_t = 60.0)]
    rate: f64,
    /// Private messages per second each sender sends to one guest picked at random.
    #[arg(long, default_value_t = 10.0)]
    private_rate: f64,
    /// Seconds of chat measured before the storm.
    #[arg(long, default_value_t = 3)]
    baseline: u64,
    /// Logged-in accounts stay online (and receive the chat) until the end, rather than
    /// quitting after their welcome.
    #[arg(long)]
    stay: bool,
    /// A flag added to messenger-server's command line (repeat for more).
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,
}

/// Runs the benchmark and prints its tables (markdown) on stdout.
pub async fn run(args: Args) -> anyhow::Result<()> {
    eprintln!("registering {} accounts", args.accounts);
    let dir = tempfile::tempdir()?;
    let registering = Instant::now();
    register_all(dir.path(), args.accounts).await?;
    let register_secs = registering.elapsed().as_secs_f64();
    let server = Server::start_in(
        Peer::Messenger,
        args.accounts + args.online,
        dir,
        &args.server_args,
    )?;
    let (addr, trust) = (server.addr.clone(), server.trust.clone());

    eprintln!("joining {} guests", args.online);
    let tally = Arc::new(Tally {
        epoch: Instant::now(),
        measuring: AtomicBool::new(true),
    });
    let mut links = Vec::with_capacity(args.online);
    let mut readers = Vec::with_capacity(args.online);
    for i in 0..args.online {
        let hello = ClientMsg::hello(PROTOCOL_VERSION, super::name(i));
        let Member { wr, rx } = join_messenger(&addr, &trust, &hello).await?;
        let tally = Arc::clone(&tally);
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            receive_messenger(rx, |text, _| seen.extend(Delivery::of(&tally, text))).await;
            seen
        }));
        links.push(Link::Messenger(wr));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    let idle = links.split_off(args.senders.min(links.len()));
    for (me, link) in links.into_iter().enumerate() {
        let load = Load {
            me,
            clients: args.online,
            rate: args.rate,
            private_rate: args.private_rate,
            deadline: Instant::now() + Duration::from_secs(24 * 3600),
            stop: Arc::clone(&stop),
        };
        senders.push(tokio::spawn(load.send(link, Arc::clone(&tally))));
    }

    let chat_from = tally.now_us();
    tokio::time::sleep(Duration::from_secs(args.baseline)).await;
    eprintln!("{} accounts logging in at once", args.accounts);
    // The logging-in clients run on a runtime (a thread) of their own, at the lowest priority:
    // they stand for a thousand other machines, and their TLS handshakes, a thousand at once,
    // would otherwise queue on the threads that time the chat or take the server's CPU, and
    // the stall measured would be the load generator's, not the server's. (They still send
    // their thousand ClientHellos at once: generating one is cheap.)
    let storm = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("storm")
        .on_thread_start(|| {
            if nice_failed(rustix::process::setpriority_process(None, 19)) {
                eprintln!("could not lower the storm thread's priority; measuring anyway");
            }
        })
        .enable_all()
        .build()?;
    let storm_from = tally.now_us();
    let logins: Vec<JoinHandle<anyhow::Result<Login>>> = (0..args.accounts)
        .map(|i| {
            let (addr, trust, stay) = (addr.clone(), trust.clone(), args.stay);
            let epoch = tally.epoch;
            storm.spawn(async move { log_in(&addr, &trust, i, stay, epoch).await })
        })
        .collect();
    let mut took = Vec::with_capacity(args.accounts);
    let mut welcomed_at = Vec::with_capacity(args.accounts);
    let mut failed = 0;
    let mut kept = Vec::new();
    for login in logins {
        match login.await? {
            Ok(login) => {
                took.push(login.took_us);
                welcomed_at.push(login.done_us);
                kept.extend(login.online);
            }
            Err(err) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("a login failed: {err:#}");
                }
            }
        }
    }
    let storm_to = tally.now_us();
    // A second more of chat after the storm, so the last messages sent in it are delivered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    let mut links = idle;
    for sender in senders {
        let (link, all, private) = sender.await?;
        sent += all + private;
        links.push(link);
    }
    tokio::time::sleep(super::DRAIN).await;
    for link in &mut links {
        link.quit().await;
    }
    let mut seen = Vec::new();
    for reader in readers {
        if let Ok(Ok(part)) = tokio::time::timeout(Duration::from_secs(10), reader).await {
            seen.extend(part);
        }
    }
    drop(kept);
    storm.shutdown_background();
    took.sort_unstable();
    let storm_secs = (storm_to - storm_from) as f64 / 1e6;
    println!(
        "| accounts | hashed and stored in | logged in at once in | login p50 ms | login p99 ms | login max ms | failed |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.1} s | {:.1} s | {:.0} | {:.0} | {:.0} | {} |",
        args.accounts,
        register_secs,
        storm_secs,
        percentile(&took, 0.5),
        percentile(&took, 0.99),
        percentile(&took, 1.0),
        failed,
    );
    println!();
    println!(
        "Chat meanwhile: {} guests online, {} x {}/s (+ {}/s private); {} messages sent, {} deliveries.",
        args.online,
        args.senders,
        args.rate,
        args.private_rate,
        sent,
        seen.len()
    );
    println!();
    println!("| chat, messages sent | seconds | deliveries/s | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (what, from, to) in [
        ("before the storm", chat_from, storm_from),
        ("during the storm", storm_from, storm_to),
    ] {
        let mut latencies: Vec<u32> = seen
            .iter()
            .filter(|d| (from..to).contains(&d.sent_us))
            .map(|d| d.latency_us)
            .collect();
        latencies.sort_unstable();
        let secs = (to - from).max(1) as f64 / 1e6;
        println!(
            "| {what} | {secs:.1} | {:.0} | {:.2} | {:.2} | {:.2} |",
            latencies.len() as f64 / secs,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
        );
    }
    print_timeline(&seen, &welcomed_at, storm_from, storm_to);
    Ok(())
}

/// True (after the first failure only, so it is said once) when `setpriority` failed.
fn nice_failed(result: rustix::io::Result<()>) -> bool {
    static SAID: AtomicBool = AtomicBool::new(false);
    result.is_err() && !SAID.swap(true, Ordering::Relaxed)
}

/// The chat's latency during the storm second by second (by when a message was sent), beside
/// how many logins were welcomed in that second: where the tail falls, not only how long it is.
fn print_timeline(seen: &[Delivery], welcomed_at: &[u64], from: u64, to: u64) {
    let seconds = usize::try_from((to.saturating_sub(from)).div_ceil(1_000_000)).unwrap_or(0);
    let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); seconds];
    for d in seen.iter().filter(|d| (from..to).contains(&d.sent_us)) {
        let at = usize::try_from((d.sent_us - from) / 1_000_000).unwrap_or(usize::MAX);
        if let Some(bucket) = buckets.get_mut(at) {
            bucket.push(d.latency_us);
        }
    }
    let mut welcomed = vec![0usize; seconds];
    for &at in welcomed_at.iter().filter(|&&at| at >= from) {
        let at = usize::try_from((at - from) / 1_000_000).unwrap_or(usize::MAX);
        if let Some(count) = welcomed.get_mut(at) {
            *count += 1;
        }
    }
    println!();
    println!("| second of the storm | logins welcomed | deliveries | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (second, (mut latencies, welcomed)) in buckets.into_iter().zip(welcomed).enumerate() {
        latencies.sort_unstable();
        println!(
            "| {second} | {welcomed} | {} | {:.2} | {:.2} | {:.2} |",
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
        );
    }
}

/// One chat message received: when it was sent and how long it took, in microseconds.
struct Delivery {
    sent_us: u64,
    latency_us: u32,
}

impl Delivery {
    /// The delivery of a message whose text starts with its sender's timestamp.
    fn of(tally: &Tally, text: &str) -> Option<Delivery> {
        let sent_us = text.split(' ').next()?.parse::<u64>().ok()?;
        let latency = tally.now_us().saturating_sub(sent_us);
        Some(Delivery {
            sent_us,
            latency_us: u32::try_from(latency).unwrap_or(u32::MAX),
        })
    }
}

/// Account `i`'s name and password.
fn account(i: usize) -> (String, String) {
    (format!("acct{i}"), format!("password of account {i}"))
}

/// Account `i`'s hello, with its password.
fn hello(i: usize) -> ClientMsg {
    let (name, password) = account(i);
    ClientMsg::Hello {
        version: PROTOCOL_VERSION,
        name,
        password: Some(password),
        register: false,
    }
}

/// Registers every account in the database the server will open from `dir`: hashed with
/// the server's own [`Passwords`] at its default cost (on every core here, the server not
/// running yet) and stored through its [`Store`]. Not through hellos: a source address may
/// register only a few accounts an hour, and every client here is 127.0.0.1.
async fn register_all(dir: &std::path::Path, accounts: usize) -> anyhow::Result<()> {
    let data = super::data_dir(dir);
    std::fs::create_dir_all(&data)?;
    let defaults = server::Config::default();
    let options = sqlite::Options {
        path: data.join(sqlite::DB_FILE),
        max_bytes: defaults.max_db_bytes,
        full_sync: defaults.db_full_sync,
    };
    let store = tokio::task::spawn_blocking(move || Store::open_sqlite(&options)).await??;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let passwords = Passwords::new(defaults.password_cost, cores).map_err(anyhow::Error::msg)?;
    let made: Vec<JoinHandle<anyhow::Result<()>>> = (0..accounts)
        .map(|i| {
            let (store, passwords) = (store.clone(), passwords.clone());
            tokio::spawn(async move {
                let (name, password) = account(i);
                let password = passwords
                    .hash(Secret(password))
                    .await
                    .map_err(anyhow::Error::msg)?;
                let write = Write::CreateAccount {
                    name,
                    password,
                    time: 0,
                    max_accounts: usize::MAX,
                };
                store.write(write).await?;
                Ok(())
            })
        })
        .collect();
    for one in made {
        one.await??;
    }
    Ok(())
}

/// A login done: how long it took, when (microseconds from the chat's epoch), and the
/// connection if it stays online.
struct Login {
    took_us: u32,
    done_us: u64,
    online: Option<(Link, JoinHandle<()>)>,
}

/// Logs account `i` in with its password; quits at once unless it `stay`s (reading what it
/// is sent, unmeasured).
async fn log_in(
    addr: &str,
    trust: &Trust,
    i: usize,
    stay: bool,
    epoch: Instant,
) -> anyhow::Result<Login> {
    let started = Instant::now();
    let Member { wr, rx } = join_messenger(addr, trust, &hello(i))
        .await
        .with_context(|| format!("account {i} could not log in"))?;
    let took_us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
    let done_us = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
    let mut link = Link::Messenger(wr);
    let online = if stay {
        let reader = tokio::spawn(receive_messenger(rx, |_, _| {}));
        Some((link, reader))
    } else {
        link.quit().await;
        None
    };
    Ok(Login {
        took_us,
        done_us,
        online,
    })
}
