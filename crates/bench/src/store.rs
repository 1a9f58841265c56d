//! The store's write throughput: many tasks storing chat messages at once through the
//! server's own [`Store`] (its bounded queue, its one writer thread and its batching), into a
//! database on disk with the server's default settings, as sessions do before each delivery.

use server::store::{NewMessage, Party, Store, Write, Written, sqlite};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Options of the store benchmark.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Messages stored in all.
    #[arg(long, default_value_t = 200_000)]
    messages: usize,
    /// Tasks writing at once (sessions, in the server).
    #[arg(long, default_value_t = 64)]
    tasks: usize,
    /// Writes one task has waiting at once (a session pipelines up to 64).
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// One message in this many is private (between two accounts); the rest are broadcasts.
    #[arg(long, default_value_t = 10)]
    private_every: usize,
    /// Commit with `synchronous=NORMAL` instead of the server's default `FULL`.
    #[arg(long)]
    normal_sync: bool,
    /// Folder for the database (a temporary one under it, removed after).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

/// Runs the benchmark and prints its table (markdown) on stdout.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let dir = match &args.dir {
        Some(parent) => tempfile::tempdir_in(parent)?,
        None => tempfile::tempdir()?,
    };
    let defaults = server::Config::default();
    let full_sync = defaults.db_full_sync && !args.normal_sync;
    let options = sqlite::Options {
        path: dir.path().join(sqlite::DB_FILE),
        max_bytes: defaults.max_db_bytes,
        full_sync,
    };
    let store = tokio::task::spawn_blocking(move || Store::open_sqlite(&options)).await??;
    let accounts = make_accounts(&store, 8).await?;
    let tasks = args.tasks.max(1);
    let started = Instant::now();
    let mut workers = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let count = args.messages / tasks + usize::from(task < args.messages % tasks);
        let writer = Writer {
            store: store.clone(),
            accounts: Arc::clone(&accounts),
            task,
            count,
            in_flight: args.in_flight.max(1),
            private_every: args.private_every,
        };
        workers.push(tokio::spawn(writer.run()));
    }
    let mut latencies = Vec::with_capacity(args.messages);
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (stored, bytes) = store.read(|r| r.stats()).await?;
    latencies.sort_unstable();
    println!(
        "| messages | tasks x in flight | sync | messages/s | write p50 ms | write p99 ms | write max ms | stored | database |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} x {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.1} MiB |",
        args.messages,
        tasks,
        args.in_flight,
        if full_sync { "full" } else { "normal" },
        latencies.len() as f64 / elapsed,
        crate::chat::percentile(&latencies, 0.5),
        crate::chat::percentile(&latencies, 0.99),
        crate::chat::percentile(&latencies, 1.0),
        stored,
        bytes as f64 / 1_048_576.0,
    );
    Ok(())
}

/// Registers `n` accounts for the private messages to pass between.
async fn make_accounts(store: &Store, n: usize) -> anyhow::Result<Arc<Vec<Party>>> {
    let mut parties = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("account{i}");
        let write = Write::CreateAccount {
            name: name.clone(),
            password: "$argon2id$v=19$m=19456,t=2,p=1$bench$bench".into(),
            time: now_millis(),
            max_accounts: usize::MAX,
        };
        let Written::Account(id) = store.write(write).await? else {
            anyhow::bail!("no account made");
        };
        parties.push(Party {
            name,
            account: Some(id),
        });
    }
    Ok(Arc::new(parties))
}

/// One writing task: stores its share of the messages, `in_flight` waiting at a time.
struct Writer {
    store: Store,
    accounts: Arc<Vec<Party>>,
    task: usize,
    count: usize,
    in_flight: usize,
    private_every: usize,
}

impl Writer {
    /// Gives the latency of each write (queued to committed), in microseconds.
    async fn run(self) -> anyhow::Result<Vec<u32>> {
        let room = Arc::new(Semaphore::new(self.in_flight));
        let mut answers = Vec::with_capacity(self.count);
        for i in 0..self.count {
            let permit = Arc::clone(&room).acquire_owned().await?;
            let write = Write::Message(self.message(i));
            let queued = Instant::now();
            // As a session does: queue, then wait for the commit while the next is queued.
            let pending = self.store.submit(write).await;
            answers.push(tokio::spawn(async move {
                let answer = pending.await;
                let latency = queued.elapsed();
                drop(permit);
                match answer {
                    Ok(Ok(Written::Message(_))) => Ok(micros(latency)),
                    Ok(Ok(other)) => anyhow::bail!("unexpected answer {other:?}"),
                    Ok(Err(err)) => Err(err.into()),
                    Err(_) => anyhow::bail!("the writer is gone"),
                }
            }));
        }
        let mut latencies = Vec::with_capacity(self.count);
        for answer in answers {
            latencies.push(answer.await??);
        }
        Ok(latencies)
    }

    /// Message `i` of this task: a broadcast from a guest, or every `private_every`th a
    /// private one between two of the accounts.
    fn message(&self, i: usize) -> NewMessage {
        let text = format!("message {i} of task {} with a few words of chat", self.task);
        let private = self.private_every > 0 && i.is_multiple_of(self.private_every);
        let (from, to) = if private {
            let n = self.accounts.len();
            let from = (self.task + i) % n;
            let to = (from + 1 + i % (n - 1)) % n;
            (self.accounts[from].clone(), Some(self.accounts[to].clone()))
        } else {
            let guest = Party {
                name: format!("guest{}", self.task),
                account: None,
            };
            (guest, None)
        };
        NewMessage {
            from,
            to,
            text,
            time: now_millis(),
            hold_for_recipient: None,
        }
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
