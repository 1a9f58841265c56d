//! CUBIC (RFC 9438): window growth as a cubic function of the time since the last congestion
//! event, with a Reno-friendly floor; multiplicative decrease by 0.7.

use super::{AckSample, Controller};
use crate::rtt::RttEstimator;
use std::time::Instant;

const C: f64 = 0.4;
const BETA: f64 = 0.7;
const INITIAL_PACKETS: u64 = 10;

/// CUBIC congestion control.
#[derive(Debug)]
pub struct Cubic {
    mss: f64,
    cwnd: f64,
    ssthresh: f64,
    w_max: f64,
    k: f64,
    w_est: f64,
    epoch: Option<Instant>,
    recovery_start: Option<Instant>,
}

impl Cubic {
    /// Starts with ten packets of `mss` bytes.
    pub fn new(mss: u64) -> Self {
        let mss = mss as f64;
        Self {
            mss,
            cwnd: mss * INITIAL_PACKETS as f64,
            ssthresh: f64::INFINITY,
            w_max: 0.0,
            k: 0.0,
            w_est: 0.0,
            epoch: None,
            recovery_start: None,
        }
    }
}

impl Controller for Cubic {
    fn on_ack(&mut self, now: Instant, ack: &AckSample, rtt: &RttEstimator, _in_flight: u64) {
        if self.recovery_start.is_some_and(|start| ack.sent <= start) {
            return; // sent before the last congestion event: no growth in recovery
        }
        let bytes = ack.bytes as f64;
        if self.cwnd < self.ssthresh {
            self.cwnd += bytes;
            return;
        }
        let epoch = *self.epoch.get_or_insert_with(|| {
            self.w_est = self.cwnd;
            now
        });
        let t = now.saturating_duration_since(epoch).as_secs_f64() + rtt.min().as_secs_f64();
        let w_cubic = (C * (t - self.k).powi(3) + self.w_max / self.mss) * self.mss;
        // Reno-friendly estimate (RFC 9438 4.3).
        let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
        self.w_est += alpha * bytes * self.mss / self.cwnd;
        let target = w_cubic.max(self.w_est).min(self.cwnd * 1.5);
        if target > self.cwnd {
            self.cwnd += (target - self.cwnd) / self.cwnd * bytes;
        }
    }

    fn on_loss(&mut self, now: Instant, sent: Instant, _lost: u64, _in_flight: u64) {
        if self.recovery_start.is_some_and(|start| sent <= start) {
            return; // one reduction per round trip
        }
        self.recovery_start = Some(now);
        self.w_max = self.cwnd;
        self.cwnd = (self.cwnd * BETA).max(2.0 * self.mss);
        self.ssthresh = self.cwnd;
        self.k = (self.w_max / self.mss * (1.0 - BETA) / C).cbrt();
        self.epoch = Some(now);
        self.w_est = self.cwnd;
    }

    fn window(&self) -> u64 {
        self.cwnd as u64
    }

    fn pacing_rate(&self, rtt: &RttEstimator) -> f64 {
        // As Linux does for loss-based controllers: twice the window per RTT in slow start,
        // 1.25 times after.
        let gain = if self.cwnd < self.ssthresh { 2.0 } else { 1.25 };
        gain * self.cwnd / rtt.smoothed().as_secs_f64().max(1e-6)
    }

    fn describe(&self) -> String {
        format!(
            "ssthresh={:.0} w_max={:.0} w_est={:.0}",
            self.ssthresh, self.w_max, self.w_est
        )
    }
}
