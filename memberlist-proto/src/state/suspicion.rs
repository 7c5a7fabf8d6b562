//! Lifeguard suspicion timeouts.
//!
//! When a node is suspected, a timer starts. Its length depends on the cluster size `n` and
//! shrinks as other nodes independently confirm the suspicion:
//!
//! * `min = suspicion_mult · max(1, log10(max(1, n))) · probe_interval`, with the logarithm
//!   taken to three decimals (⌊1000 · log10 n⌋ / 1000), exactly as Go does;
//! * `max = suspicion_max_timeout_mult · min`;
//! * `k = suspicion_mult − 2` confirmations are expected, or none when `n − 2 < k` (there are not
//!   enough other nodes to confirm);
//! * with `c` confirmations so far the timeout is
//!   `max(⌊max − (ln(c + 1) / ln(k + 1)) · (max − min)⌋ms, min)`, measured from the start of the
//!   suspicion. With no confirmations it is `max` (or `min` when `k = 0`).
//!
//! The accuser itself is not a confirmation, each confirming node counts once, and counting
//! stops at `k`. Everything is integer arithmetic (see [`super::fixed_log`]).

use std::collections::BTreeSet;
use std::time::Duration;

use super::fixed_log::{log10_milli, log_ratio_fixed, FRAC_BITS};
use crate::time::Instant;

fn nanos(d: Duration) -> u128 {
    d.as_nanos()
}

fn duration(ns: u128) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// Go's `suspicionTimeout`: `mult · max(1000, ⌊1000 · log10 n⌋) · interval / 1000`.
pub fn suspicion_timeout(suspicion_mult: usize, n: usize, interval: Duration) -> Duration {
    let milli = log10_milli(n.max(1) as u64).max(1000);
    duration(suspicion_mult as u128 * u128::from(milli) * nanos(interval) / 1000)
}

/// Go's `remainingSuspicionTime`: the timeout after `confirmations` of `k` expected
/// confirmations, minus the time already `elapsed` (may be negative: fire now).
pub fn remaining_suspicion_time(confirmations: u32, k: u32, elapsed: Duration, min: Duration, max: Duration) -> i128 {
    let (min_ns, max_ns) = (nanos(min), nanos(max));
    let frac = log_ratio_fixed(u64::from(confirmations) + 1, u64::from(k) + 1);
    let span = max_ns.saturating_sub(min_ns);
    // raw = max − frac · span, floored to whole milliseconds.
    let cut = (frac * span) >> FRAC_BITS;
    let raw_ms = max_ns.saturating_sub(cut) / 1_000_000;
    let timeout = (raw_ms * 1_000_000).max(min_ns);
    i128::try_from(timeout).unwrap_or(i128::MAX) - i128::try_from(nanos(elapsed)).unwrap_or(i128::MAX)
}

/// The suspicion of one node: when it started, who confirmed it, and when it fires.
#[derive(Debug, Clone)]
pub struct Suspicion {
    k: u32,
    min: Duration,
    max: Duration,
    start: Instant,
    confirmations: BTreeSet<String>,
    confirmed: u32,
    deadline: Instant,
}

impl Suspicion {
    /// Starts a suspicion raised by `from` at `now`.
    pub fn new(from: &str, k: u32, min: Duration, max: Duration, now: Instant) -> Self {
        let timeout = if k < 1 { min } else { max };
        let mut confirmations = BTreeSet::new();
        confirmations.insert(from.to_owned());
        Suspicion { k, min, max, start: now, confirmations, confirmed: 0, deadline: now + timeout }
    }

    /// Records a confirmation from `from`. Returns true when it is new (and then should be
    /// gossiped on); the deadline moves earlier accordingly.
    pub fn confirm(&mut self, from: &str, now: Instant) -> bool {
        if self.confirmed >= self.k || self.confirmations.contains(from) {
            return false;
        }
        self.confirmations.insert(from.to_owned());
        self.confirmed += 1;
        let elapsed = now - self.start;
        let remaining = remaining_suspicion_time(self.confirmed, self.k, elapsed, self.min, self.max);
        self.deadline = if remaining > 0 { now + duration(remaining.unsigned_abs()) } else { now };
        true
    }

    /// When the suspicion turns into a death.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// When the suspicion started (the suspect's state change it belongs to).
    pub fn started(&self) -> Instant {
        self.start
    }

    /// Independent confirmations so far.
    pub fn confirmations(&self) -> u32 {
        self.confirmed
    }

    /// Confirmations expected.
    pub fn k(&self) -> u32 {
        self.k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn go_suspicion_timeout_table() {
        for (n, want_ms) in [(5, 1000u32), (10, 1000), (50, 1698), (100, 2000), (500, 2698), (1000, 3000)] {
            assert_eq!(suspicion_timeout(3, n, Duration::from_secs(1)) / 3, want_ms * MS, "n = {n}");
        }
        // The LAN table: 4 s at 2–10 nodes, 8 s at 100, 16 s at 10 000.
        assert_eq!(suspicion_timeout(4, 2, Duration::from_secs(1)), Duration::from_secs(4));
        assert_eq!(suspicion_timeout(4, 100, Duration::from_secs(1)), Duration::from_secs(8));
        assert_eq!(suspicion_timeout(4, 10_000, Duration::from_secs(1)), Duration::from_secs(16));
    }

    #[test]
    fn go_remaining_time_table() {
        let (min, max) = (Duration::from_secs(2), Duration::from_secs(30));
        let cases: [(u32, u64, i128); 6] =
            [(0, 0, 30_000), (1, 2, 14_000), (2, 3, 4_810), (3, 4, -2_000), (4, 5, -3_000), (5, 10, -8_000)];
        for (n, elapsed_s, want_ms) in cases {
            let got = remaining_suspicion_time(n, 3, Duration::from_secs(elapsed_s), min, max);
            assert_eq!(got, want_ms * 1_000_000, "n = {n}");
        }
    }

    #[test]
    fn go_dogpile_timeouts() {
        // ProbeInterval 100 ms, SuspicionMult 5, max mult 2: min 500 ms, max 1 s, k = 3.
        let min = suspicion_timeout(5, 6, Duration::from_millis(100));
        assert_eq!(min, 500 * MS);
        let max = 2 * min;
        let t0 = Instant::ZERO;
        // Go's test measures wall-clock time with a tolerance and lists 604 ms for two
        // confirmations; the exact value is ⌊1000 − 0.792 · 500⌋ = 603 ms.
        for (confirmations, want) in [(0usize, 1000u32), (1, 750), (2, 603), (3, 500), (4, 500)] {
            let mut s = Suspicion::new("accuser", 3, min, max, t0);
            for i in 0..confirmations {
                s.confirm(&format!("peer{i}"), t0);
            }
            assert_eq!(s.deadline() - t0, want * MS, "{confirmations} confirmations");
        }
        // k = 0: the minimum, and no confirmation counts.
        let mut s = Suspicion::new("a", 0, min, max, t0);
        assert_eq!(s.deadline() - t0, min);
        assert!(!s.confirm("b", t0));
    }

    #[test]
    fn confirmations_are_distinct_and_exclude_the_accuser() {
        let t0 = Instant::ZERO;
        let mut s = Suspicion::new("a", 3, Duration::from_secs(2), Duration::from_secs(30), t0);
        assert!(!s.confirm("a", t0));
        assert!(s.confirm("b", t0));
        assert!(!s.confirm("b", t0));
        assert!(s.confirm("c", t0));
        assert!(s.confirm("d", t0));
        assert!(!s.confirm("e", t0));
        assert_eq!(s.confirmations(), 3);
        assert_eq!(s.deadline(), t0 + Duration::from_secs(2));
        // A confirmation that arrives after the reduced timeout has passed fires at once.
        let mut s = Suspicion::new("a", 3, Duration::from_secs(2), Duration::from_secs(30), t0);
        let later = t0 + Duration::from_secs(20);
        assert!(s.confirm("b", later));
        assert_eq!(s.deadline(), later);
    }
}
