//! A transfer whose network is stepped by hand: two queues of datagrams, one towards each end,
//! and a virtual clock that moves only when told. Where [`crate::run`] lets seeded links decide
//! what happens to each datagram, a [`Pair`] lets its caller decide (deliver, drop, duplicate,
//! reorder, inject, wait), one datagram at a time: the bench of the fuzz targets, whose typed
//! operations say what the network does.

use crate::transfer::{Side, Transfer};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use transport::{Event, Sink, Source};

/// Most datagrams one end may send in one [`Pair::pump`]: an end that never stops would hang
/// its caller.
const PUMP_LIMIT: usize = 1000;

/// What a caller sees of the datagrams a [`Pair`] moves, as they move.
pub trait Observer<S, K> {
    /// `side` sent `datagram` (it is now queued towards the other end).
    fn sent(&mut self, _transfer: &Transfer<S, K>, _side: Side, _datagram: &[u8]) {}

    /// `datagram` was handed to `side`, which counted `rejected` more datagrams as rejected
    /// (`None` when no live end was there to count: a sender not yet open, or an end that had
    /// already finished or given up).
    fn handed(&mut self, _side: Side, _datagram: &[u8], _rejected: Option<u64>) {}
}

/// Sees nothing.
impl<S, K> Observer<S, K> for () {}

/// One transfer and a network stepped by hand.
#[derive(Debug)]
pub struct Pair<S, K> {
    /// The virtual clock.
    pub now: Instant,
    /// When the transfer began.
    pub start: Instant,
    /// The two ends.
    pub transfer: Transfer<S, K>,
    to_sender: VecDeque<Vec<u8>>,
    to_receiver: VecDeque<Vec<u8>>,
    sender_events: Vec<Event>,
    receiver_events: Vec<Event>,
    buf: Vec<u8>,
}

impl<S: Source, K: Sink> Pair<S, K> {
    /// `transfer`, begun at `now`, with nothing on the way.
    pub fn new(now: Instant, transfer: Transfer<S, K>) -> Self {
        Self {
            now,
            start: now,
            transfer,
            to_sender: VecDeque::new(),
            to_receiver: VecDeque::new(),
            sender_events: Vec::new(),
            receiver_events: Vec::new(),
            buf: vec![0u8; transport::MAX_DATAGRAM],
        }
    }

    /// Datagrams on their way to `side`, oldest first.
    pub fn queue(&self, side: Side) -> &VecDeque<Vec<u8>> {
        match side {
            Side::Sender => &self.to_sender,
            Side::Receiver => &self.to_receiver,
        }
    }

    /// Datagrams on their way to `side`, to change at will.
    pub fn queue_mut(&mut self, side: Side) -> &mut VecDeque<Vec<u8>> {
        match side {
            Side::Sender => &mut self.to_sender,
            Side::Receiver => &mut self.to_receiver,
        }
    }

    /// Every event of `side` so far.
    pub fn events(&self, side: Side) -> &[Event] {
        match side {
            Side::Sender => &self.sender_events,
            Side::Receiver => &self.receiver_events,
        }
    }

    /// True once `side` finished or gave up: it opens nothing more.
    pub fn ended(&self, side: Side) -> bool {
        self.events(side)
            .iter()
            .any(|e| matches!(e, Event::Finished { .. } | Event::Aborted { .. }))
    }

    /// True once either end gave up or was told to.
    pub fn aborted(&self) -> bool {
        self.receiver_events
            .iter()
            .chain(&self.sender_events)
            .any(|e| matches!(e, Event::Aborted { .. }))
    }

    /// True once the receiver finished.
    pub fn finished(&self) -> bool {
        self.receiver_events
            .iter()
            .any(|e| matches!(e, Event::Finished { .. }))
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.transfer.poll_event(Side::Receiver) {
            self.receiver_events.push(event);
        }
        while let Some(event) = self.transfer.poll_event(Side::Sender) {
            self.sender_events.push(event);
        }
    }

    /// Everything `side` has to send now, queued towards the other end; returns how many.
    pub fn pump(&mut self, side: Side, observer: &mut impl Observer<S, K>) -> usize {
        let mut sent = 0;
        while sent < PUMP_LIMIT {
            let Some(n) = self.transfer.poll_transmit(side, self.now, &mut self.buf) else {
                break;
            };
            observer.sent(&self.transfer, side, &self.buf[..n]);
            let datagram = self.buf[..n].to_vec();
            self.queue_mut(side.peer()).push_back(datagram);
            sent += 1;
        }
        self.drain_events();
        sent
    }

    /// Hands `side` any datagram (one from its queue, or one made up).
    pub fn hand(&mut self, side: Side, datagram: &[u8], observer: &mut impl Observer<S, K>) {
        self.drain_events();
        let live = !self.ended(side) && (side == Side::Receiver || self.transfer.sender.is_some());
        let before = self.transfer.rejected(side);
        self.transfer
            .handle_datagram(side, self.now, &mut datagram.to_vec());
        let rejected = self.transfer.rejected(side) - before;
        observer.handed(side, datagram, live.then_some(rejected));
        self.drain_events();
    }

    /// Hands `side` the oldest datagram on its way there; returns it, if there was one.
    pub fn deliver(&mut self, side: Side, observer: &mut impl Observer<S, K>) -> Option<Vec<u8>> {
        let datagram = self.queue_mut(side).pop_front()?;
        self.hand(side, &datagram, observer);
        Some(datagram)
    }

    /// Loses the oldest datagram on its way to `side`.
    pub fn lose(&mut self, side: Side) {
        self.queue_mut(side).pop_front();
    }

    /// Sends the oldest datagram on its way to `side` a second time, behind the others.
    pub fn duplicate(&mut self, side: Side) {
        if let Some(d) = self.queue(side).front().cloned() {
            self.queue_mut(side).push_back(d);
        }
    }

    /// Holds the oldest datagram on its way to `side` back behind `behind` others.
    pub fn reorder(&mut self, side: Side, behind: usize) {
        let queue = self.queue_mut(side);
        if let Some(d) = queue.pop_front() {
            let at = behind % (queue.len() + 1);
            queue.insert(at, d);
        }
    }

    /// A good stretch of network: everything queued arrives, towards the receiver first.
    pub fn deliver_all(&mut self, observer: &mut impl Observer<S, K>) {
        while self.deliver(Side::Receiver, observer).is_some() {}
        while self.deliver(Side::Sender, observer).is_some() {}
    }

    /// Moves the clock on by `by` and runs the timers due.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.run_timers();
    }

    fn run_timers(&mut self) {
        for side in [Side::Receiver, Side::Sender] {
            if self
                .transfer
                .poll_timeout(side)
                .is_some_and(|t| t <= self.now)
            {
                self.transfer.handle_timeout(side, self.now);
            }
        }
        self.drain_events();
    }

    /// Runs the transfer on a perfect network for up to `limit` of virtual time, showing
    /// `observer` every datagram, until the receiver finishes or either end aborts.
    pub fn run_clean(&mut self, limit: Duration, observer: &mut impl Observer<S, K>) {
        let end = self.now + limit;
        for _ in 0..1_000_000 {
            if self.finished() || self.aborted() {
                return;
            }
            let mut moved = self.pump(Side::Sender, observer) > 0;
            moved |= self.pump(Side::Receiver, observer) > 0;
            while self.deliver(Side::Receiver, observer).is_some() {
                moved = true;
            }
            while self.deliver(Side::Sender, observer).is_some() {
                moved = true;
            }
            if moved {
                continue;
            }
            let next = [
                self.transfer.poll_timeout(Side::Receiver),
                self.transfer.poll_timeout(Side::Sender),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else {
                return;
            };
            // Time always moves, even for a timer that is due and does nothing.
            self.now = next.max(self.now + Duration::from_micros(1));
            if self.now > end {
                return;
            }
            self.run_timers();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use transport::{Config, Secret};

    fn pair(len: usize) -> Pair<Vec<u8>, Vec<u8>> {
        let now = Instant::now();
        let source: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let secret = Secret([9; transport::SECRET_LEN]);
        let transfer = Transfer::new(now, 1, &secret, 0, Config::default(), source, Vec::new());
        Pair::new(now, transfer)
    }

    #[test]
    fn a_clean_run_moves_the_whole_stream() {
        let mut pair = pair(50_000);
        pair.run_clean(Duration::from_secs(60), &mut ());
        assert!(pair.finished());
        assert_eq!(pair.transfer.sink, pair.transfer.source);
    }

    #[test]
    fn a_lost_hello_is_sent_again_on_the_receiver_s_timer() {
        let mut pair = pair(3000);
        assert_eq!(pair.pump(Side::Receiver, &mut ()), 1);
        pair.lose(Side::Sender);
        assert!(pair.queue(Side::Sender).is_empty());
        pair.advance(Duration::from_secs(2));
        assert_eq!(pair.pump(Side::Receiver, &mut ()), 1);
        pair.deliver(Side::Sender, &mut ());
        assert!(pair.transfer.sender.is_some(), "the HELLO opened the flow");
    }
}
