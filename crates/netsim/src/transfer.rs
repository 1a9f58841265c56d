//! One transfer's two ends, run the way the driver runs them: the receiver hands its data to a
//! sink as soon as it has some, the sender reads from its source whenever it asks, and the
//! sender exists only once a datagram at its port opened the flow. The simulator ([`crate::run`])
//! and the hand-stepped [`crate::Pair`] both move datagrams through this one type.

use std::time::Instant;
use transport::{Config, Event, Keys, Receiver, Refused, Secret, Sender, Sink, Source};

/// Which end of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The end that serves the stream (the server).
    Sender,
    /// The end that asked for it (the client).
    Receiver,
}

impl Side {
    /// The other end.
    pub fn peer(self) -> Self {
        match self {
            Side::Sender => Side::Receiver,
            Side::Receiver => Side::Sender,
        }
    }
}

/// A receiver asking for `source`, and the sender that serves it once the receiver's HELLO
/// reaches it.
#[derive(Debug)]
pub struct Transfer<S, K> {
    /// The receiving end.
    pub receiver: Receiver,
    /// The sending end, once a HELLO sealed with the transfer's keys reached it.
    pub sender: Option<Sender>,
    /// The sender's keys until a HELLO opens the flow (each refusal gives them back, as
    /// [`Sender::accept`] does to the driver).
    sender_keys: Option<Keys>,
    secret: Secret,
    config: Config,
    /// The stream the sender serves.
    pub source: S,
    /// Where the receiver's data goes.
    pub sink: K,
}

impl<S: Source, K: Sink> Transfer<S, K> {
    /// A receiver of connection `conn_id` asking for `source` from `offset`, both ends with
    /// `config` and the keys of `secret`.
    pub fn new(
        now: Instant,
        conn_id: u64,
        secret: &Secret,
        offset: u64,
        config: Config,
        source: S,
        sink: K,
    ) -> Self {
        let receiver = Receiver::new(now, conn_id, secret, offset, config.clone());
        Self {
            receiver,
            sender: None,
            sender_keys: None,
            secret: transport::Secret(secret.0),
            config,
            source,
            sink,
        }
    }

    /// The settings of both ends.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Hands `datagram` to `to`: the receiver handles it and stores what it can; the sender
    /// handles it or, until the flow is open, tries it as the HELLO that opens it.
    pub fn handle_datagram(&mut self, to: Side, now: Instant, datagram: &mut [u8]) {
        match to {
            Side::Receiver => {
                self.receiver.handle_datagram(now, datagram);
                self.store(now);
            }
            Side::Sender => match &mut self.sender {
                Some(sender) => sender.handle_datagram(now, datagram),
                None => {
                    let keys = self
                        .sender_keys
                        .take()
                        .unwrap_or_else(|| Keys::for_sender(&self.secret));
                    let total = self.source.len();
                    match Sender::accept(now, datagram, keys, total, self.config.clone()) {
                        Ok(sender) => self.sender = Some(sender),
                        Err(Refused { keys }) => self.sender_keys = Some(keys),
                    }
                }
            },
        }
    }

    /// Hands the sink whatever the receiver holds. A sink that fails is the sink's business
    /// (the in-memory ones never do).
    fn store(&mut self, now: Instant) {
        let _ = self.receiver.write_to(now, &mut self.sink);
    }

    /// The next datagram `side` has to send now, written into `buf`: its length.
    pub fn poll_transmit(&mut self, side: Side, now: Instant, buf: &mut [u8]) -> Option<usize> {
        match side {
            Side::Sender => {
                let sender = self.sender.as_mut()?;
                sender.read_from(&mut self.source);
                sender.poll_transmit(now, buf)
            }
            Side::Receiver => {
                self.store(now);
                self.receiver.poll_transmit(now, buf)
            }
        }
    }

    /// When `side` next wants [`Transfer::handle_timeout`].
    pub fn poll_timeout(&self, side: Side) -> Option<Instant> {
        match side {
            Side::Sender => self.sender.as_ref()?.poll_timeout(),
            Side::Receiver => self.receiver.poll_timeout(),
        }
    }

    /// Runs `side`'s timers due at `now`.
    pub fn handle_timeout(&mut self, side: Side, now: Instant) {
        match side {
            Side::Sender => {
                if let Some(sender) = &mut self.sender {
                    sender.handle_timeout(now);
                }
            }
            Side::Receiver => {
                self.receiver.handle_timeout(now);
                self.store(now);
            }
        }
    }

    /// `side`'s next event.
    pub fn poll_event(&mut self, side: Side) -> Option<Event> {
        match side {
            Side::Sender => self.sender.as_mut()?.poll_event(),
            Side::Receiver => self.receiver.poll_event(),
        }
    }

    /// Datagrams `side` refused so far (none for a sender not yet open).
    pub fn rejected(&self, side: Side) -> u64 {
        match side {
            Side::Sender => self
                .sender
                .as_ref()
                .map_or(0, |s| s.stats().packets_rejected),
            Side::Receiver => self.receiver.stats().packets_rejected,
        }
    }
}
