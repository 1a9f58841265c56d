//! History pages from a big database: builds one of many messages (broadcasts, and private
//! conversations between a few accounts), then times pages of history read through the
//! server's own [`Store::read`] and [`Reader::history`], as a `history` request runs them.
//!
//! The database gets its schema from the server's `sqlite::open`, so it is the real one; the
//! rows are then inserted directly, in one transaction with one prepared statement, because
//! the writer thread would take minutes for ten million.

use anyhow::Context;
use rusqlite::params;
use server::store::{HistoryQuery, Reader, Store, sqlite};
use std::path::{Path, PathBuf};
use std::time::Instant;
use wire::{MAX_HISTORY_PAGE, MAX_HISTORY_PAGE_BYTES, name_key};

/// Options of the history benchmark.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Messages in the database.
    #[arg(long, default_value_t = 10_000_000)]
    messages: u64,
    /// One message in this many is private, between two of the accounts.
    #[arg(long, default_value_t = 10)]
    private_every: u64,
    /// Accounts the private messages pass between.
    #[arg(long, default_value_t = 4)]
    accounts: usize,
    /// Pages read of each kind (latest, deep, private).
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Keep the database in this folder and reuse it when it holds as many messages already
    /// (otherwise a temporary folder under /tmp, removed after).
    #[arg(long, value_name = "PATH")]
    keep: Option<PathBuf>,
    /// Empty the kernel's page cache before every page read (root only: writes
    /// /proc/sys/vm/drop_caches), so each page comes from the disk, as on a server whose old
    /// history left memory long ago. Give fewer `--queries` with it: each drop takes a moment.
    #[arg(long)]
    cold: bool,
}

/// Asks the kernel to drop its page cache, so the next reads of the database at `path` come
/// from the disk. The kernel drops clean pages only, so the database (just built, perhaps) is
/// written out first.
fn drop_page_cache(path: &Path) -> anyhow::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    std::fs::write("/proc/sys/vm/drop_caches", "1\n")
        .context("--cold needs root, to write /proc/sys/vm/drop_caches")
}

/// Runs the benchmark and prints its table (markdown) on stdout.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let temporary;
    let dir = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            temporary = tempfile::tempdir()?;
            temporary.path().to_owned()
        }
    };
    let path = dir.join(sqlite::DB_FILE);
    let options = sqlite::Options {
        path: path.clone(),
        max_bytes: u64::MAX,
        full_sync: server::Config::default().db_full_sync,
    };
    let (writer, readers) = sqlite::open(&options)?;
    let (stored, _) = readers.stats()?;
    if stored == args.messages {
        eprintln!("reusing {} ({stored} messages)", path.display());
    } else {
        anyhow::ensure!(
            stored == 0,
            "{} holds {stored} messages, not {}: remove it or give another --keep",
            path.display(),
            args.messages
        );
        eprintln!("building {} messages in {}", args.messages, path.display());
        let building = Instant::now();
        build(&path, &args)?;
        let secs = building.elapsed().as_secs_f64();
        eprintln!(
            "built in {secs:.1} s ({:.0} rows/s)",
            args.messages as f64 / secs
        );
    }
    let (stored, bytes) = readers.stats()?;
    // The store as the server makes it: reads on tokio's blocking threads.
    let store = Store::start(Box::new(writer), std::sync::Arc::new(readers))?;
    println!(
        "Database: {stored} messages, {:.0} MiB; pages of at most {MAX_HISTORY_PAGE}{}.",
        bytes as f64 / 1_048_576.0,
        if args.cold {
            "; the page cache dropped before each read"
        } else {
            ""
        }
    );
    println!();
    println!("| query | pages | messages per page | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    for kind in Kind::ALL {
        let mut latencies = Vec::with_capacity(args.queries);
        let mut messages = 0;
        for _ in 0..args.queries {
            let query = kind.query(&mut rng, stored);
            if args.cold {
                drop_page_cache(&path)?;
            }
            let started = Instant::now();
            let got = store.read(move |r| r.history(&query)).await?;
            latencies.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
            messages += got.messages.len();
        }
        latencies.sort_unstable();
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
            kind.what(),
            args.queries,
            messages as f64 / args.queries.max(1) as f64,
            crate::chat::percentile(&latencies, 0.5),
            crate::chat::percentile(&latencies, 0.99),
            crate::chat::percentile(&latencies, 1.0),
        );
    }
    Ok(())
}

/// The pages read.
#[derive(Clone, Copy)]
enum Kind {
    /// The newest page of the broadcast conversation (what a client asks first).
    Latest,
    /// A broadcast page before a random id.
    Deep,
    /// The newest page of one private conversation (accounts 1 and 2).
    LatestPrivate,
    /// A page of that conversation before a random id.
    DeepPrivate,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::Latest,
        Kind::Deep,
        Kind::LatestPrivate,
        Kind::DeepPrivate,
    ];

    fn what(self) -> &'static str {
        match self {
            Kind::Latest => "latest broadcast page",
            Kind::Deep => "broadcast page, random `before`",
            Kind::LatestPrivate => "latest private page",
            Kind::DeepPrivate => "private page, random `before`",
        }
    }

    /// The query, in a database whose ids run from 1 to `last`.
    fn query(self, rng: &mut XorShift, last: u64) -> HistoryQuery {
        let mut before = || Some(1 + rng.below(last));
        match self {
            Kind::Latest => page(None, None),
            Kind::Deep => page(None, before()),
            Kind::LatestPrivate => page(Some((1, key(2))), None),
            Kind::DeepPrivate => page(Some((1, key(2))), before()),
        }
    }
}

/// Random ids without a dependency.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// A page as the server asks for one: the most messages and bytes a request may get.
fn page(private: Option<(i64, String)>, before: Option<u64>) -> HistoryQuery {
    HistoryQuery {
        private,
        before,
        limit: MAX_HISTORY_PAGE,
        max_bytes: MAX_HISTORY_PAGE_BYTES,
    }
}

/// The name of account `i` (ids start at 1, in the order they are made).
fn account_name(i: usize) -> String {
    format!("Account{i}")
}

fn key(i: usize) -> String {
    name_key(&account_name(i))
}

/// Inserts the accounts and `args.messages` messages, oldest first, in one transaction.
fn build(path: &Path, args: &Args) -> anyhow::Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    // Nothing is lost if this crashes: the database is rebuilt. The server's settings come
    // back when it is opened again.
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -1_048_576)?;
    let tx = conn.transaction()?;
    let accounts = args.accounts.max(2);
    for i in 1..=accounts {
        tx.execute(
            "INSERT INTO accounts (id, key, name, password, created) VALUES (?1, ?2, ?3, ?4, 0)",
            params![i as i64, key(i), account_name(i), "$argon2id$bench"],
        )?;
    }
    // Each pair of accounts in turn, each way.
    let pairs: Vec<(usize, usize)> = (1..=accounts)
        .flat_map(|a| (1..=accounts).filter(move |&b| b != a).map(move |b| (a, b)))
        .collect();
    let guests: Vec<String> = (0..50).map(|i| format!("guest{i}")).collect();
    let start_ms = 1_700_000_000_000i64;
    {
        let mut insert = tx.prepare(
            "INSERT INTO messages
             (id, time, from_name, from_key, from_account, to_name, to_key, to_account, text)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let mut text = String::new();
        for id in 1..=args.messages {
            text.clear();
            use std::fmt::Write as _;
            write!(text, "message {id}: a line of chat of an ordinary length")?;
            let time = start_ms + id as i64 * 10;
            if args.private_every > 0 && id.is_multiple_of(args.private_every) {
                let (from, to) = pairs[(id / args.private_every) as usize % pairs.len()];
                insert.execute(params![
                    id as i64,
                    time,
                    account_name(from),
                    key(from),
                    from as i64,
                    account_name(to),
                    key(to),
                    to as i64,
                    text,
                ])?;
            } else {
                let guest = &guests[(id % guests.len() as u64) as usize];
                insert.execute(params![
                    id as i64,
                    time,
                    guest,
                    name_key(guest),
                    None::<i64>,
                    None::<&str>,
                    None::<&str>,
                    None::<i64>,
                    text,
                ])?;
            }
        }
    }
    tx.commit().context("committing the built database")?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(())
}
