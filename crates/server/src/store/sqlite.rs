//! The store on SQLite: one file, `messenger.db`, in the server's data folder, in WAL mode
//! (readers never wait for the writer), its schema brought up to date at start-up.

use super::{
    Account, AccountId, Backend, HistoryQuery, NewMessage, PRUNE_CHUNK, Page, Reader, StoreError,
    Write, Written,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use wire::{StoredMessage, name_key};

/// The database's file name inside the data folder.
pub const DB_FILE: &str = "messenger.db";

/// The schema, one step per version: a database at version `n` gets steps `n..` at start-up,
/// each in its own transaction. Steps are never edited once released; a change is a new step.
const MIGRATIONS: &[&str] = &[
    // 1: accounts, messages, and messages waiting for offline accounts.
    "CREATE TABLE accounts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        password TEXT NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time INTEGER NOT NULL,
        from_name TEXT NOT NULL,
        from_key TEXT NOT NULL,
        from_account INTEGER,
        to_name TEXT,
        to_key TEXT,
        to_account INTEGER,
        text TEXT NOT NULL
    );
    CREATE INDEX messages_broadcast ON messages(id) WHERE to_key IS NULL;
    CREATE INDEX messages_sent ON messages(from_account, to_key, id)
        WHERE from_account IS NOT NULL AND to_key IS NOT NULL;
    CREATE INDEX messages_received ON messages(to_account, from_key, id)
        WHERE to_account IS NOT NULL;
    CREATE INDEX messages_time ON messages(time);
    CREATE TABLE waiting (
        account INTEGER NOT NULL,
        message INTEGER NOT NULL,
        PRIMARY KEY (account, message)
    ) WITHOUT ROWID;",
    // 2: the private conversations' indexes hold every column a page shows, so a page is read
    // from them alone, in order (a few pages of the file), not row by row from all over the
    // table: from a cold disk, a page of 200 read 200 places. Private texts are stored once
    // more per account party for it.
    "CREATE INDEX messages_sent_page
        ON messages(from_account, to_key, id, from_name, to_name, text, time)
        WHERE from_account IS NOT NULL AND to_key IS NOT NULL;
    CREATE INDEX messages_received_page
        ON messages(to_account, from_key, id, from_name, to_name, text, time)
        WHERE to_account IS NOT NULL;
    DROP INDEX messages_sent;
    DROP INDEX messages_received;",
];

/// A page of a private conversation: `?1` the account reading, `?2` the other party's key,
/// `?3` the id it comes before, `?4` the most messages. Each side is read from its covering
/// index alone, in order (a test checks SQLite's plan).
const PRIVATE_PAGE: &str = "SELECT id, from_name, to_name, text, time FROM (
        SELECT * FROM (
            SELECT id, from_name, to_name, text, time FROM messages
            WHERE from_account = ?1 AND to_key = ?2 AND id < ?3
            ORDER BY id DESC LIMIT ?4)
        UNION ALL
        SELECT * FROM (
            SELECT id, from_name, to_name, text, time FROM messages
            WHERE to_account = ?1 AND from_key = ?2 AND id < ?3
            ORDER BY id DESC LIMIT ?4)
    ) ORDER BY id DESC LIMIT ?4";

/// How a database is opened.
#[derive(Debug, Clone)]
pub struct Options {
    /// The database file.
    pub path: PathBuf,
    /// Most bytes the database may use; the oldest messages go beyond it.
    pub max_bytes: u64,
    /// `synchronous=FULL` (a commit survives a power cut) rather than `NORMAL` (it survives a
    /// crash of the server, not of the machine).
    pub full_sync: bool,
}

/// Opens (or makes) the database of `options`, brings its schema up to date, and gives its
/// writing and reading halves.
pub fn open(options: &Options) -> Result<(Writer, Readers), StoreError> {
    let mut conn = Connection::open(&options.path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Before the first table: freed pages can then be given back to the file system.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "the database is not in WAL mode");
    }
    let sync = if options.full_sync { "FULL" } else { "NORMAL" };
    conn.pragma_update(None, "synchronous", sync)?;
    // A checkpointed WAL is cut back to this size.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    migrate(&mut conn)?;
    let writer = Writer {
        conn,
        max_bytes: options.max_bytes,
        appended: 0,
    };
    let readers = Readers {
        path: options.path.clone(),
        idle: Mutex::new(Vec::new()),
    };
    Ok((writer, readers))
}

/// The schema version this server makes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", step as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = step + 1, "database schema updated");
    }
    Ok(())
}

/// The writing half: the one connection that writes, owned by the writer thread.
pub struct Writer {
    conn: Connection,
    max_bytes: u64,
    /// Bytes of messages stored since the size was last checked.
    appended: u64,
}

/// Bytes a message takes in the database, roughly (its row and index entries; a private one's
/// text is also in the page index of each party that has an account).
fn footprint(msg: &NewMessage) -> u64 {
    let copies = match &msg.to {
        None => 1,
        Some(to) => 1 + usize::from(msg.from.account.is_some()) + usize::from(to.account.is_some()),
    };
    (copies * (msg.text.len() + 2 * msg.from.name.len()) + 80) as u64
}

impl Backend for Writer {
    fn apply(&mut self, writes: &[&Write]) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        let tx = self.conn.transaction()?;
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            if let Write::Message(msg) = write {
                self.appended += footprint(msg);
            }
            results.push(apply_one(&tx, write, self.max_bytes));
        }
        tx.commit()?;
        if writes.iter().any(|w| matches!(w, Write::Prune { .. })) {
            self.appended = 0;
            // Gives freed pages back to the file system, so the file shrinks too.
            self.conn.execute_batch("PRAGMA incremental_vacuum;")?;
        }
        Ok(results)
    }

    fn wants_prune(&mut self) -> Option<Write> {
        // Checked every 1% of the bound (at least every MiB), so the file never passes the
        // bound by more than that between the periodic prunes.
        let step = (self.max_bytes / 100).max(1 << 20);
        (self.appended >= step).then_some(Write::Prune {
            before: None,
            max_bytes: self.max_bytes,
        })
    }
}

fn apply_one(tx: &Transaction<'_>, write: &Write, max_bytes: u64) -> Result<Written, StoreError> {
    match write {
        Write::Message(msg) => store_message(tx, msg).map(Written::Message),
        Write::TakeWaiting { account, limit } => take_waiting(tx, *account, *limit),
        Write::CreateAccount {
            name,
            password,
            time,
            max_accounts,
        } => {
            let accounts: i64 = tx
                .prepare_cached("SELECT count(*) FROM accounts")?
                .query_row([], |row| row.get(0))?;
            if accounts as u64 >= *max_accounts as u64 {
                return Err(StoreError::TooManyAccounts);
            }
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO accounts (key, name, password, created) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key) DO NOTHING",
                )?
                .execute(params![name_key(name), name, password, *time as i64])?;
            if inserted == 0 {
                return Err(StoreError::Exists);
            }
            Ok(Written::Account(tx.last_insert_rowid()))
        }
        Write::SetPassword { account, password } => {
            tx.prepare_cached("UPDATE accounts SET password = ?2 WHERE id = ?1")?
                .execute(params![account, password])?;
            Ok(Written::Done)
        }
        Write::DeleteAccount { account } => {
            tx.prepare_cached("DELETE FROM waiting WHERE account = ?1")?
                .execute(params![account])?;
            tx.prepare_cached("DELETE FROM accounts WHERE id = ?1")?
                .execute(params![account])?;
            Ok(Written::Done)
        }
        Write::Prune {
            before,
            max_bytes: bound,
        } => prune(tx, *before, (*bound).min(max_bytes)),
    }
}

fn store_message(tx: &Transaction<'_>, msg: &NewMessage) -> Result<u64, StoreError> {
    let to_account = msg.to.as_ref().and_then(|to| to.account);
    if let (Some(max), Some(account)) = (msg.hold_for_recipient, to_account) {
        let waiting: i64 = tx
            .prepare_cached("SELECT count(*) FROM waiting WHERE account = ?1")?
            .query_row(params![account], |r| r.get(0))?;
        if waiting as u64 >= max as u64 {
            return Err(StoreError::MailboxFull);
        }
    }
    tx.prepare_cached(
        "INSERT INTO messages
         (time, from_name, from_key, from_account, to_name, to_key, to_account, text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        msg.time as i64,
        msg.from.name,
        name_key(&msg.from.name),
        msg.from.account,
        msg.to.as_ref().map(|to| to.name.as_str()),
        msg.to.as_ref().map(|to| name_key(&to.name)),
        to_account,
        msg.text,
    ])?;
    let id = tx.last_insert_rowid();
    if let (Some(_), Some(account)) = (msg.hold_for_recipient, to_account) {
        tx.prepare_cached("INSERT INTO waiting (account, message) VALUES (?1, ?2)")?
            .execute(params![account, id])?;
    }
    Ok(id as u64)
}

fn take_waiting(
    tx: &Transaction<'_>,
    account: AccountId,
    limit: usize,
) -> Result<Written, StoreError> {
    let mut messages = tx
        .prepare_cached(
            "SELECT m.id, m.from_name, m.to_name, m.text, m.time
             FROM waiting w JOIN messages m ON m.id = w.message
             WHERE w.account = ?1 ORDER BY w.message LIMIT ?2",
        )?
        .query_map(params![account, limit as i64 + 1], row_message)?
        .collect::<Result<Vec<_>, _>>()?;
    let more = messages.len() > limit;
    messages.truncate(limit);
    match (more, messages.last()) {
        (true, Some(last)) => {
            tx.prepare_cached("DELETE FROM waiting WHERE account = ?1 AND message <= ?2")?
                .execute(params![account, last.id as i64])?;
        }
        _ => {
            tx.prepare_cached("DELETE FROM waiting WHERE account = ?1")?
                .execute(params![account])?;
        }
    }
    Ok(Written::Taken { messages, more })
}

fn row_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: row.get::<_, i64>(0)? as u64,
        from: row.get(1)?,
        to: row.get(2)?,
        text: row.get(3)?,
        time: row.get::<_, i64>(4)? as u64,
    })
}

/// Bytes the database's pages in use take.
fn used_bytes(conn: &Connection) -> Result<u64, StoreError> {
    let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
    let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    let size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

fn prune(tx: &Transaction<'_>, before: Option<u64>, max_bytes: u64) -> Result<Written, StoreError> {
    let mut deleted = 0u64;
    if let Some(before) = before {
        deleted += tx
            .prepare_cached(
                "DELETE FROM messages WHERE id IN
                 (SELECT id FROM messages WHERE time < ?1 ORDER BY time LIMIT ?2)",
            )?
            .execute(params![before as i64, PRUNE_CHUNK as i64])? as u64;
    }
    // Over the bound: the oldest tenth of a chunk at a time, until under it.
    while deleted < PRUNE_CHUNK as u64 && used_bytes(tx)? > max_bytes {
        let gone = tx
            .prepare_cached(
                "DELETE FROM messages WHERE id IN
                 (SELECT id FROM messages ORDER BY id LIMIT ?1)",
            )?
            .execute(params![(PRUNE_CHUNK / 10) as i64])? as u64;
        if gone == 0 {
            break;
        }
        deleted += gone;
    }
    if deleted > 0 {
        tx.execute(
            "DELETE FROM waiting WHERE message NOT IN (SELECT id FROM messages)",
            [],
        )?;
    }
    let more = deleted >= PRUNE_CHUNK as u64;
    Ok(Written::Pruned { deleted, more })
}

/// The reading half: connections opened read-only, as many as threads read at once (they
/// are kept for the next reads).
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Most idle reading connections kept.
const MAX_IDLE_READERS: usize = 8;

impl Readers {
    fn with<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let result = read(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// The length of `msg` as JSON in a page, roughly (escapes counted at their worst).
fn json_len(msg: &StoredMessage) -> usize {
    let escaped = |s: &str| {
        s.chars()
            .map(|c| match c {
                '"' | '\\' => 2,
                c if (c as u32) < 0x20 => 6,
                c => c.len_utf8(),
            })
            .sum::<usize>()
    };
    escaped(&msg.text) + escaped(&msg.from) + msg.to.as_deref().map_or(0, escaped) + 80
}

impl Reader for Readers {
    fn account(&self, key: &str) -> Result<Option<Account>, StoreError> {
        self.with(|conn| {
            Ok(conn
                .prepare_cached("SELECT id, name, password FROM accounts WHERE key = ?1")?
                .query_row(params![key], |r| {
                    Ok(Account {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        password: r.get(2)?,
                    })
                })
                .optional()?)
        })
    }

    fn history(&self, query: &HistoryQuery) -> Result<Page, StoreError> {
        let before = query
            .before
            .map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
        let want = query.limit as i64 + 1;
        let mut newest_first = self.with(|conn| {
            let rows = match &query.private {
                None => conn
                    .prepare_cached(
                        "SELECT id, from_name, to_name, text, time FROM messages
                         WHERE to_key IS NULL AND id < ?1 ORDER BY id DESC LIMIT ?2",
                    )?
                    .query_map(params![before, want], row_message)?
                    .collect::<Result<Vec<_>, _>>()?,
                Some((account, with_key)) => conn
                    .prepare_cached(PRIVATE_PAGE)?
                    .query_map(params![account, with_key, before, want], row_message)?
                    .collect::<Result<Vec<_>, _>>()?,
            };
            Ok(rows)
        })?;
        let mut more = newest_first.len() > query.limit;
        newest_first.truncate(query.limit);
        let mut bytes = 0;
        let mut keep = 0;
        for msg in &newest_first {
            let cost = json_len(msg);
            if keep > 0 && bytes + cost > query.max_bytes {
                more = true;
                break;
            }
            bytes += cost;
            keep += 1;
        }
        newest_first.truncate(keep);
        newest_first.reverse();
        Ok(Page {
            messages: newest_first,
            more,
        })
    }

    fn latest_broadcast(&self, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
        let page = self.history(&HistoryQuery {
            private: None,
            before: None,
            limit,
            max_bytes: usize::MAX,
        })?;
        Ok(page.messages)
    }

    fn stats(&self) -> Result<(u64, u64), StoreError> {
        self.with(|conn| {
            let count: i64 = conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?;
            Ok((count as u64, used_bytes(conn)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Party;

    fn open_in(dir: &Path, max_bytes: u64) -> (Writer, Readers) {
        open(&Options {
            path: dir.join(DB_FILE),
            max_bytes,
            full_sync: false,
        })
        .unwrap()
    }

    fn guest(name: &str) -> Party {
        Party {
            name: name.into(),
            account: None,
        }
    }

    fn message(from: Party, to: Option<Party>, text: &str, hold: Option<usize>) -> Write {
        Write::Message(NewMessage {
            from,
            to,
            text: text.into(),
            time: 1000,
            hold_for_recipient: hold,
        })
    }

    fn apply(writer: &mut Writer, write: Write) -> Result<Written, StoreError> {
        writer.apply(&[&write]).unwrap().remove(0)
    }

    fn account(writer: &mut Writer, name: &str) -> Party {
        let write = Write::CreateAccount {
            name: name.into(),
            password: "$argon2id$x".into(),
            time: 1,
            max_accounts: usize::MAX,
        };
        let Ok(Written::Account(id)) = apply(writer, write) else {
            panic!("not created")
        };
        Party {
            name: name.into(),
            account: Some(id),
        }
    }

    #[test]
    fn a_database_is_migrated_once_and_one_from_a_newer_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, _) = open_in(dir.path(), u64::MAX);
        apply(&mut writer, message(guest("a"), None, "kept", None)).unwrap();
        drop(writer);
        let (_, readers) = open_in(dir.path(), u64::MAX);
        assert_eq!(readers.latest_broadcast(10).unwrap()[0].text, "kept");
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let err = open(&Options {
            path: dir.path().join(DB_FILE),
            max_bytes: u64::MAX,
            full_sync: false,
        })
        .err()
        .unwrap();
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
    }

    #[test]
    fn a_database_of_the_first_schema_keeps_its_private_history_through_the_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            // The database as the first release left it: schema 1, a private message in it.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO accounts (key, name, password, created) VALUES
                     ('alice', 'alice', 'x', 1), ('bob', 'bob', 'x', 1);
                 INSERT INTO messages
                     (time, from_name, from_key, from_account, to_name, to_key, to_account, text)
                     VALUES (5, 'alice', 'alice', 1, 'bob', 'bob', 2, 'from before');",
            )
            .unwrap();
        }
        let (_, readers) = open_in(dir.path(), u64::MAX);
        for (account, with) in [(1, "bob"), (2, "alice")] {
            let page = readers
                .history(&HistoryQuery {
                    private: Some((account, with.into())),
                    before: None,
                    limit: 10,
                    max_bytes: usize::MAX,
                })
                .unwrap();
            let texts: Vec<_> = page.messages.iter().map(|m| m.text.as_str()).collect();
            assert_eq!(texts, ["from before"]);
        }
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // Both sides of a page come from an index alone, never from the table's rows.
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {PRIVATE_PAGE}"))
            .unwrap()
            .query_map(params![1, "bob", i64::MAX, 201], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let searches: Vec<_> = plan.iter().filter(|d| d.starts_with("SEARCH")).collect();
        assert_eq!(searches.len(), 2, "{plan:?}");
        for (search, index) in searches
            .iter()
            .zip(["messages_sent_page", "messages_received_page"])
        {
            assert!(
                search.contains(&format!("COVERING INDEX {index}")),
                "{plan:?}"
            );
        }
    }

    #[test]
    fn accounts_are_unique_ignoring_case_and_a_deleted_ones_id_is_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, readers) = open_in(dir.path(), u64::MAX);
        let alice = account(&mut writer, "Alice");
        let again = Write::CreateAccount {
            max_accounts: usize::MAX,
            name: "alice".into(),
            password: "x".into(),
            time: 2,
        };
        assert!(matches!(
            apply(&mut writer, again.clone()),
            Err(StoreError::Exists)
        ));
        let found = readers.account("alice").unwrap().unwrap();
        assert_eq!(
            (found.id, found.name.as_str()),
            (alice.account.unwrap(), "Alice")
        );
        let delete = Write::DeleteAccount { account: found.id };
        apply(&mut writer, delete).unwrap();
        assert_eq!(readers.account("alice").unwrap(), None);
        let Ok(Written::Account(new)) = apply(&mut writer, again) else {
            panic!()
        };
        assert!(new > found.id);
    }

    #[test]
    fn pages_go_backwards_and_private_history_is_only_its_parties() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, readers) = open_in(dir.path(), u64::MAX);
        let alice = account(&mut writer, "alice");
        let bob = account(&mut writer, "bob");
        let carol = account(&mut writer, "carol");
        for i in 0..10 {
            apply(
                &mut writer,
                message(guest("g"), None, &format!("b{i}"), None),
            )
            .unwrap();
            let (from, to) = if i % 2 == 0 {
                (&alice, &bob)
            } else {
                (&bob, &alice)
            };
            let text = format!("p{i}");
            apply(
                &mut writer,
                message(from.clone(), Some(to.clone()), &text, None),
            )
            .unwrap();
            let aside = message(carol.clone(), Some(bob.clone()), "carol to bob", None);
            apply(&mut writer, aside).unwrap();
        }
        let page = |private, before, limit| {
            readers
                .history(&HistoryQuery {
                    private,
                    before,
                    limit,
                    max_bytes: usize::MAX,
                })
                .unwrap()
        };
        let latest = page(None, None, 4);
        let texts: Vec<_> = latest.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["b6", "b7", "b8", "b9"]);
        assert!(latest.more);
        let older = page(None, Some(latest.messages[0].id), 100);
        assert_eq!(older.messages.len(), 6);
        assert!(!older.more);
        let ours = page(Some((alice.account.unwrap(), "bob".into())), None, 100);
        let texts: Vec<_> = ours.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, (0..10).map(|i| format!("p{i}")).collect::<Vec<_>>());
        // Pages of both directions at once, merged in order, each one before the last.
        let conversation = Some((alice.account.unwrap(), "bob".to_owned()));
        let newest = page(conversation.clone(), None, 3);
        let texts: Vec<_> = newest.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!((texts, newest.more), (vec!["p7", "p8", "p9"], true));
        let before = Some(newest.messages[0].id);
        let next = page(conversation.clone(), before, 3);
        let texts: Vec<_> = next.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!((texts, next.more), (vec!["p4", "p5", "p6"], true));
        let last = page(conversation, Some(next.messages[0].id - 1), 4);
        let texts: Vec<_> = last.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!((texts, last.more), (vec!["p0", "p1", "p2", "p3"], false));
        // Carol wrote to bob, never to alice: her conversation with alice is empty.
        assert!(
            page(Some((carol.account.unwrap(), "alice".into())), None, 100)
                .messages
                .is_empty()
        );
    }

    #[test]
    fn waiting_messages_are_bounded_and_handed_out_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, _) = open_in(dir.path(), u64::MAX);
        let bob = account(&mut writer, "bob");
        for i in 0..3 {
            let write = message(guest("a"), Some(bob.clone()), &format!("m{i}"), Some(3));
            apply(&mut writer, write).unwrap();
        }
        let full = message(guest("a"), Some(bob.clone()), "m3", Some(3));
        assert!(matches!(
            apply(&mut writer, full),
            Err(StoreError::MailboxFull)
        ));
        let take = Write::TakeWaiting {
            account: bob.account.unwrap(),
            limit: 2,
        };
        let Ok(Written::Taken { messages, more }) = apply(&mut writer, take.clone()) else {
            panic!()
        };
        assert_eq!((messages.len(), more), (2, true));
        assert_eq!(messages[0].text, "m0");
        let Ok(Written::Taken { messages, more }) = apply(&mut writer, take.clone()) else {
            panic!()
        };
        assert_eq!((messages[0].text.as_str(), more), ("m2", false));
        let Ok(Written::Taken { messages, .. }) = apply(&mut writer, take) else {
            panic!()
        };
        assert!(messages.is_empty());
    }

    #[test]
    fn pruning_keeps_the_database_under_its_bound_and_drops_old_messages() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, readers) = open_in(dir.path(), 2 << 20);
        let text = "x".repeat(1000);
        for _ in 0..10 {
            let batch: Vec<Write> = (0..500)
                .map(|_| message(guest("a"), None, &text, None))
                .collect();
            let refs: Vec<&Write> = batch.iter().collect();
            writer.apply(&refs).unwrap();
            if let Some(prune) = writer.wants_prune() {
                writer.apply(&[&prune]).unwrap();
            }
        }
        let (count, bytes) = readers.stats().unwrap();
        assert!(bytes <= (2 << 20) + (1 << 20), "{bytes} bytes");
        assert!(count < 5000 && count > 500, "{count} kept");
        let newest = readers.latest_broadcast(1).unwrap();
        assert_eq!(newest[0].id, 5000, "the newest are the ones kept");
        let by_age = Write::Prune {
            before: Some(1001),
            max_bytes: u64::MAX,
        };
        writer.apply(&[&by_age]).unwrap();
        assert_eq!(readers.stats().unwrap().0, 0);
    }

    /// A crowd of history requests at once: no more than MAX_READS of them hold a blocking
    /// thread (and a connection) at a time; the rest wait their turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crowd_of_reads_runs_a_few_at_a_time() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let (writer, readers) = open_in(dir.path(), u64::MAX);
        let store = crate::store::Store::start(Box::new(writer), Arc::new(readers)).unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut crowd = Vec::new();
        for _ in 0..4 * crate::store::MAX_READS {
            let (store, running, most) = (store.clone(), running.clone(), most.clone());
            crowd.push(tokio::spawn(async move {
                store
                    .read(move |r| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        let page = r.latest_broadcast(10);
                        running.fetch_sub(1, Ordering::SeqCst);
                        page
                    })
                    .await
            }));
        }
        for read in crowd {
            read.await.unwrap().unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            (2..=crate::store::MAX_READS).contains(&most),
            "{most} reads ran at once"
        );
    }
}
