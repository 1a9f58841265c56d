//! Congestion control: how much data may be in flight and how fast to pace it. One controller
//! per file behind [`Controller`], as quinn does.

mod bbr;
mod cubic;

pub use bbr::Bbr;
pub use cubic::Cubic;

use crate::rtt::RttEstimator;
use std::time::Instant;

/// What a controller learns from one acknowledged packet.
#[derive(Debug, Clone, Copy)]
pub struct AckSample {
    /// When the acked packet was sent.
    pub sent: Instant,
    /// Its size in bytes.
    pub bytes: u64,
    /// Bytes delivered (acked) in all, this packet included.
    pub delivered: u64,
    /// `delivered` when the packet was sent.
    pub delivered_at_send: u64,
    /// When `delivered_at_send` was reached.
    pub delivered_time_at_send: Instant,
    /// When the packet acked at `delivered_time_at_send` had been sent: the delivery rate is
    /// measured over the longer of the send and the ack intervals, so acks that arrive
    /// bunched never make it look faster than we sent (draft-cheng-iccrg-delivery-rate).
    pub first_sent_at_send: Instant,
    /// True if the sender had nothing more to send when this packet left (the rate sample is
    /// then limited by the application, not the network).
    pub app_limited: bool,
}

/// A congestion controller.
pub trait Controller: Send + std::fmt::Debug {
    /// A packet was acknowledged.
    fn on_ack(&mut self, now: Instant, ack: &AckSample, rtt: &RttEstimator, in_flight: u64);
    /// Every packet one acknowledgement newly covers went to [`Controller::on_ack`]: a
    /// controller that works its window and rate out once per acknowledgement does it here.
    fn on_acks_done(&mut self) {}
    /// Whether packets found lost now, with the path's RTT as it is, mean congestion (a full
    /// queue) rather than random loss. Only those reach [`Controller::on_loss`]; the others are
    /// resent and otherwise ignored.
    fn loss_is_congestion(&self, _rtt: &RttEstimator) -> bool {
        true
    }
    /// Packets were lost; `sent` is when the newest lost one was sent.
    fn on_loss(&mut self, now: Instant, sent: Instant, lost_bytes: u64, in_flight: u64);
    /// Bytes that may be in flight.
    fn window(&self) -> u64;
    /// Bytes per second to pace at.
    fn pacing_rate(&self, rtt: &RttEstimator) -> f64;
    /// The controller's own state in a few words, for traces.
    fn describe(&self) -> String {
        String::new()
    }
}

/// Which controller a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// Model-based: bottleneck bandwidth and min RTT (the default).
    #[default]
    Bbr,
    /// Loss-based, RFC 9438.
    Cubic,
}

impl Algorithm {
    /// A fresh controller for packets of `mss` bytes; `seed` varies its random choices from
    /// one connection to another.
    pub fn build(self, mss: u64, now: Instant, seed: u64) -> Box<dyn Controller> {
        match self {
            Self::Bbr => Box::new(Bbr::new(mss, now, seed)),
            Self::Cubic => Box::new(Cubic::new(mss)),
        }
    }
}
