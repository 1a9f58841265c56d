//! Passwords and failed logins.
//!
//! Passwords are hashed with Argon2id into PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`),
//! which carry their parameters and salt, so that a hash made with other parameters still
//! verifies after they change. Hashing is slow on purpose (about 20 ms of one core and 19 MiB
//! at the default parameters): it runs on blocking threads, at most [`Passwords::permits`] at a
//! time, so a crowd logging in at once waits its turn rather than taking every core (and
//! memory) from the chat of those online.
//!
//! Failed logins are counted per name and per source address; each failure makes the next
//! attempt wait longer (doubling, up to a cap). An attempt during the wait is refused with
//! `rate_limited` before any hashing, so guessing costs the guesser time and the server
//! nothing.

use crate::limit::AddressKey;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Argon2id's cost: memory in KiB, passes, lanes. The defaults are OWASP's first choice
/// (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Memory, KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub passes: u32,
    /// Lanes (threads one hash may use; we use 1).
    pub lanes: u32,
}

impl Default for Cost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            passes: 2,
            lanes: 1,
        }
    }
}

/// A password, whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Hashes and checks passwords off the async workers, a few at a time.
#[derive(Clone)]
pub struct Passwords {
    cost: Cost,
    permits: Arc<Semaphore>,
    /// A hash of a password nobody has, checked when a name has no account, so that the
    /// answer takes as long as for a wrong password.
    decoy: Arc<String>,
}

impl Passwords {
    /// Hashing at `cost`, at most `permits` hashes at once.
    pub fn new(cost: Cost, permits: usize) -> Result<Self, String> {
        let decoy = hash_blocking(cost, "not anybody's password")?;
        Ok(Self {
            cost,
            permits: Arc::new(Semaphore::new(permits.max(1))),
            decoy: Arc::new(decoy),
        })
    }

    /// Hashes at once at most half the cores (at least one), so chat keeps the rest.
    pub fn default_permits() -> usize {
        std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
    }

    async fn run<T>(&self, work: impl FnOnce() -> T + Send + 'static) -> T
    where
        T: Default + Send + 'static,
    {
        // The semaphore is never closed, so a permit always comes.
        let Ok(_permit) = self.permits.acquire().await else {
            return T::default();
        };
        tokio::task::spawn_blocking(work).await.unwrap_or_default()
    }

    /// The PHC string of `password` with a new random salt.
    pub async fn hash(&self, password: Secret) -> Result<String, String> {
        let cost = self.cost;
        let hashed = self
            .run(move || Some(hash_blocking(cost, &password.0)))
            .await;
        hashed.unwrap_or_else(|| Err("hashing failed".into()))
    }

    /// Whether `password` matches the PHC string `hash`; `None` checks against the decoy
    /// (always false, as slow as a real check).
    pub async fn verify(&self, password: Secret, hash: Option<String>) -> bool {
        let hash = hash.unwrap_or_else(|| self.decoy.as_ref().clone());
        self.run(move || verify_blocking(&password.0, &hash)).await
    }
}

fn hasher(cost: Cost) -> Result<Argon2<'static>, String> {
    let params =
        Params::new(cost.memory_kib, cost.passes, cost.lanes, None).map_err(|e| e.to_string())?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(cost: Cost, password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    hasher(cost)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    // The parameters come from the stored string, so old hashes verify after a change.
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// The first wait after a failed login; each further failure doubles it.
const FIRST_WAIT: Duration = Duration::from_millis(500);
/// The longest wait per name: an attacker who keeps guessing one name gets a guess a minute;
/// its owner, locked out at worst as long.
const MAX_NAME_WAIT: Duration = Duration::from_secs(60);
/// The longest wait per source address.
const MAX_ADDRESS_WAIT: Duration = Duration::from_secs(300);
/// Failures are forgotten this long after the last one.
const FORGET: Duration = Duration::from_secs(3600);
/// Most names, and most addresses, whose failures are remembered; past it the stalest go.
pub const MAX_REMEMBERED: usize = 100_000;

/// Keeps `map` under [`MAX_REMEMBERED`] entries before `key` is added: entries whose time
/// (`time_of`) is `stale` old go first, and if the map is still full of recent ones, the
/// oldest half goes.
fn make_room<K: std::hash::Hash + Eq, V>(
    map: &mut HashMap<K, V>,
    key: &K,
    now: Instant,
    stale: Duration,
    time_of: impl Fn(&V) -> Instant,
) {
    if map.len() < MAX_REMEMBERED || map.contains_key(key) {
        return;
    }
    map.retain(|_, v| now.duration_since(time_of(v)) < stale);
    if map.len() >= MAX_REMEMBERED {
        let mut times: Vec<Instant> = map.values().map(&time_of).collect();
        let mid = times.len() / 2;
        let (_, cut, _) = times.select_nth_unstable(mid);
        let cut = *cut;
        map.retain(|_, v| time_of(v) > cut);
    }
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    fails: u32,
    last: Instant,
    until: Instant,
}

#[derive(Debug)]
struct Ledger<K> {
    entries: HashMap<K, Strikes>,
}

impl<K: std::hash::Hash + Eq + Clone> Ledger<K> {
    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        let strikes = self.entries.get(key)?;
        (strikes.until > now).then(|| strikes.until - now)
    }

    fn fail(&mut self, key: K, now: Instant, cap: Duration) {
        make_room(&mut self.entries, &key, now, FORGET, |s| s.last);
        let strikes = self.entries.entry(key).or_insert(Strikes {
            fails: 0,
            last: now,
            until: now,
        });
        if now.duration_since(strikes.last) >= FORGET {
            strikes.fails = 0;
        }
        strikes.fails = strikes.fails.saturating_add(1);
        strikes.last = now;
        let wait = FIRST_WAIT
            .saturating_mul(1u32 << (strikes.fails - 1).min(16))
            .min(cap);
        strikes.until = now + wait;
    }
}

impl<K> Default for Ledger<K> {
    fn default() -> Self {
        Ledger {
            entries: HashMap::new(),
        }
    }
}

/// Failed logins per name and per source address.
#[derive(Debug, Default)]
pub struct LoginGuard {
    inner: Mutex<(Ledger<String>, Ledger<AddressKey>)>,
}

impl LoginGuard {
    /// How long a login for the name key `name` from `address` must still wait, if at all.
    pub fn wait(&self, name: &str, address: AddressKey, now: Instant) -> Option<Duration> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let by_name = inner.0.wait(&name.to_owned(), now);
        let by_address = inner.1.wait(&address, now);
        by_name.max(by_address)
    }

    /// Counts a failed login.
    pub fn failed(&self, name: &str, address: AddressKey, now: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.0.fail(name.to_owned(), now, MAX_NAME_WAIT);
        inner.1.fail(address, now, MAX_ADDRESS_WAIT);
    }

    /// Forgets the name's failures after a successful login (the address's stay).
    pub fn succeeded(&self, name: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.0.entries.remove(name);
    }
}

/// The window in which an address's new accounts are counted (`--registrations-per-hour`).
pub const REGISTRATION_WINDOW: Duration = Duration::from_secs(3600);

/// New accounts per source address, so that one address cannot fill the server's accounts
/// (`--max-accounts`) and lock everybody else out of registering.
#[derive(Debug, Default)]
pub struct RegistrationGuard {
    /// Per address: registrations in its current window, and when the window began.
    inner: Mutex<HashMap<AddressKey, (u32, Instant)>>,
}

impl RegistrationGuard {
    /// Takes one of the `limit` registrations `address` has per window, or says how long
    /// until it has one again.
    pub fn take(&self, address: AddressKey, now: Instant, limit: u32) -> Result<(), Duration> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        make_room(
            &mut inner,
            &address,
            now,
            REGISTRATION_WINDOW,
            |(_, start)| *start,
        );
        let (count, start) = inner.entry(address).or_insert((0, now));
        if now.duration_since(*start) >= REGISTRATION_WINDOW {
            (*count, *start) = (0, now);
        }
        if *count >= limit {
            return Err(REGISTRATION_WINDOW - now.duration_since(*start));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Cost {
        Cost {
            memory_kib: 64,
            passes: 1,
            lanes: 1,
        }
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_carries_its_parameters() {
        let passwords = Passwords::new(cheap(), 1).unwrap();
        let hash = passwords
            .hash(Secret("correct horse".into()))
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        assert!(
            passwords
                .verify(Secret("correct horse".into()), Some(hash.clone()))
                .await
        );
        assert!(
            !passwords
                .verify(Secret("correct horsf".into()), Some(hash.clone()))
                .await
        );
        assert!(!passwords.verify(Secret("correct horse".into()), None).await);
        // Verified with the parameters stored in the hash, whatever today's are.
        let stronger = Passwords::new(Cost::default(), 1).unwrap();
        assert!(
            stronger
                .verify(Secret("correct horse".into()), Some(hash))
                .await
        );
        assert_eq!(format!("{:?}", Secret("x".into())), "Secret(..)");
    }

    #[test]
    fn each_failure_doubles_the_wait_up_to_a_cap_and_success_clears_the_name() {
        let guard = LoginGuard::default();
        let here = AddressKey::of("127.0.0.1:1".parse().unwrap());
        let there = AddressKey::of("127.0.0.2:1".parse().unwrap());
        let t0 = Instant::now();
        assert_eq!(guard.wait("alice", here, t0), None);
        guard.failed("alice", here, t0);
        assert_eq!(guard.wait("alice", here, t0), Some(FIRST_WAIT));
        // The name waits from any address.
        assert_eq!(guard.wait("alice", there, t0), Some(FIRST_WAIT));
        for _ in 0..20 {
            guard.failed("alice", here, t0);
        }
        assert_eq!(guard.wait("alice", there, t0), Some(MAX_NAME_WAIT));
        assert_eq!(guard.wait("bob", here, t0), Some(MAX_ADDRESS_WAIT));
        assert_eq!(guard.wait("bob", there, t0), None);
        guard.succeeded("alice");
        assert_eq!(guard.wait("alice", there, t0), None);
        let later = t0 + MAX_ADDRESS_WAIT;
        assert_eq!(guard.wait("bob", here, later), None);
    }

    #[test]
    fn an_address_makes_a_few_accounts_an_hour() {
        let guard = RegistrationGuard::default();
        let here = AddressKey::of("127.0.0.1:1".parse().unwrap());
        let there = AddressKey::of("127.0.0.2:1".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(guard.take(here, t0, 10), Ok(()));
        }
        let later = t0 + Duration::from_secs(60);
        assert_eq!(
            guard.take(here, later, 10),
            Err(REGISTRATION_WINDOW - Duration::from_secs(60))
        );
        assert_eq!(guard.take(there, later, 10), Ok(()));
        assert_eq!(guard.take(here, t0 + REGISTRATION_WINDOW, 10), Ok(()));
    }

    #[test]
    fn the_ledger_stays_bounded_under_a_flood_of_names() {
        let mut ledger = Ledger::<u32>::default();
        let now = Instant::now();
        for i in 0..(MAX_REMEMBERED as u32 + 10) {
            ledger.fail(i, now + Duration::from_micros(u64::from(i)), MAX_NAME_WAIT);
        }
        assert!(ledger.entries.len() <= MAX_REMEMBERED);
        assert!(ledger.entries.contains_key(&(MAX_REMEMBERED as u32 + 9)));
    }
}
