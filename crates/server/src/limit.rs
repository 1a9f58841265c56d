//! Flood protection: token buckets, and what each source address may hold.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Allows `rate` requests a second on average and bursts of up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: rate.max(0.0),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// True when the bucket has refilled to its burst by `now`: forgetting it then loses
    /// nothing, since a new bucket starts full.
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.tokens + elapsed.as_secs_f64() * self.rate >= self.burst
    }

    /// How long until the next token.
    pub fn wait(&self) -> Duration {
        if self.tokens >= 1.0 || self.rate == 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

/// A source of connections, as the per-address limits count it: an IPv4 address, or the /64
/// prefix of an IPv6 address (one host usually holds a whole /64, so counting single IPv6
/// addresses would limit nothing). IPv4-mapped IPv6 addresses count as their IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    /// The key of a peer's address.
    pub fn of(peer: SocketAddr) -> Self {
        Self::of_ip(peer.ip())
    }

    /// The key of an IP address.
    pub fn of_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

impl std::fmt::Display for AddressKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => v4.fmt(f),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Most addresses remembered with no connection open (for their hello bucket) before the
/// forgotten ones are swept out; the table never holds more than this plus one entry per open
/// connection.
const MAX_IDLE_ADDRESSES: usize = 4096;

/// What one source address holds: its connections still in their hello, and its bucket of
/// hello attempts.
#[derive(Debug)]
struct AddressState {
    pending: usize,
    hellos: TokenBucket,
}

/// Per-address limits on connections still in their hello and on hello attempts, so that one
/// address can neither fill the server's pending slots nor retry names without pause.
#[derive(Debug)]
pub struct Addresses {
    table: Mutex<HashMap<AddressKey, AddressState>>,
    max_pending: usize,
    hello_rate: f64,
    hello_burst: u32,
}

/// A connection's place among its address's pending connections; given back when dropped.
#[derive(Debug)]
pub struct PendingSlot {
    addresses: Arc<Addresses>,
    key: AddressKey,
}

impl Addresses {
    /// Limits of `max_pending` connections in their hello per address, and hello attempts at
    /// `hello_rate` a second (bursts of `hello_burst`) per address.
    pub fn new(max_pending: usize, hello_rate: f64, hello_burst: u32) -> Self {
        Self {
            table: Mutex::new(HashMap::new()),
            max_pending: max_pending.max(1),
            hello_rate,
            hello_burst,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<AddressKey, AddressState>> {
        // Every update is a counter change or an insert or remove: still consistent if poisoned.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pending slot for a new connection from `key`, or `None` when that address has
    /// `max_pending` connections in their hello already.
    pub fn try_pending(self: &Arc<Self>, key: AddressKey, now: Instant) -> Option<PendingSlot> {
        let mut table = self.lock();
        if table.len() >= MAX_IDLE_ADDRESSES && !table.contains_key(&key) {
            table.retain(|_, state| state.pending > 0);
        }
        let state = table.entry(key).or_insert_with(|| AddressState {
            pending: 0,
            hellos: TokenBucket::new(self.hello_rate, self.hello_burst, now),
        });
        if state.pending >= self.max_pending {
            return None;
        }
        state.pending += 1;
        Some(PendingSlot {
            addresses: Arc::clone(self),
            key,
        })
    }

    /// Takes one hello attempt from `key`'s bucket, or says how long until there is one.
    pub fn allow_hello(&self, key: AddressKey, now: Instant) -> Result<(), Duration> {
        let mut table = self.lock();
        let Some(state) = table.get_mut(&key) else {
            // Only connections holding a pending slot say hello, and the slot keeps the entry.
            return Ok(());
        };
        if state.hellos.allow(now) {
            Ok(())
        } else {
            Err(state.hellos.wait())
        }
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut table = self.addresses.lock();
        if let Some(state) = table.get_mut(&self.key) {
            state.pending = state.pending.saturating_sub(1);
            // An address that closes everything and comes back must not find a fresh bucket of
            // hellos: its entry stays until the bucket has refilled (or the table is swept).
            if state.pending == 0 && state.hellos.is_full(Instant::now()) {
                table.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_prefix_and_mapped_ipv4_as_ipv4() {
        let a: SocketAddr = "[2001:db8:1:2:aaaa::1]:5".parse().unwrap();
        let b: SocketAddr = "[2001:db8:1:2:bbbb::9]:6".parse().unwrap();
        let c: SocketAddr = "[2001:db8:1:3::1]:5".parse().unwrap();
        assert_eq!(AddressKey::of(a), AddressKey::of(b));
        assert_ne!(AddressKey::of(a), AddressKey::of(c));
        let mapped: SocketAddr = "[::ffff:127.0.0.2]:1".parse().unwrap();
        let plain: SocketAddr = "127.0.0.2:2".parse().unwrap();
        assert_eq!(AddressKey::of(mapped), AddressKey::of(plain));
        assert_eq!(AddressKey::of(a).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn pending_slots_are_counted_per_address_and_given_back() {
        let t0 = Instant::now();
        let table = Arc::new(Addresses::new(2, 1.0, 1));
        let one = AddressKey::of("127.0.0.1:1".parse().unwrap());
        let two = AddressKey::of("127.0.0.2:1".parse().unwrap());
        let a = table.try_pending(one, t0).unwrap();
        let _b = table.try_pending(one, t0).unwrap();
        assert!(table.try_pending(one, t0).is_none());
        assert!(table.try_pending(two, t0).is_some());
        drop(a);
        let _c = table.try_pending(one, t0).unwrap();
        assert!(table.try_pending(one, t0).is_none());
    }

    #[test]
    fn hellos_are_limited_per_address_even_across_reconnections() {
        let t0 = Instant::now();
        let table = Arc::new(Addresses::new(8, 0.001, 2));
        let one = AddressKey::of("127.0.0.1:1".parse().unwrap());
        let slot = table.try_pending(one, t0).unwrap();
        assert!(table.allow_hello(one, t0).is_ok());
        assert!(table.allow_hello(one, t0).is_ok());
        assert!(table.allow_hello(one, t0).is_err());
        // Closing and reconnecting does not refill the bucket.
        drop(slot);
        let _slot = table.try_pending(one, t0).unwrap();
        assert!(table.allow_hello(one, t0).is_err());
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 5, t0);
        assert_eq!((0..8).filter(|_| bucket.allow(t0)).count(), 5);
        assert!(!bucket.allow(t0));
        // 10 per second: one more every 100 ms.
        assert!(bucket.allow(t0 + Duration::from_millis(100)));
        assert!(!bucket.allow(t0 + Duration::from_millis(150)));
        // Refills up to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..8).filter(|_| bucket.allow(later)).count(), 5);
    }
}
