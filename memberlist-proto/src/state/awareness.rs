//! Lifeguard's local health multiplier ("awareness").
//!
//! An integer score in `[0, max − 1]`, 0 being healthy. It rises by one for every refutation this
//! node has to make and by the number of missed nacks (or one, without nack-capable relays) for
//! every failed probe, and falls by one for every successful probe. Probe intervals and probe
//! deadlines are multiplied by `score + 1`, so a node that is itself slow or cut off probes more
//! slowly and gives its peers more time before it suspects them.

use std::time::Duration;

/// The awareness score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Awareness {
    max: u32,
    score: u32,
}

impl Awareness {
    /// A healthy score with the given `AwarenessMaxMultiplier`.
    pub fn new(max_multiplier: u32) -> Self {
        Awareness { max: max_multiplier.max(1), score: 0 }
    }

    /// Adds `delta`, clamping to `[0, max − 1]`. Returns whether the score changed.
    pub fn apply_delta(&mut self, delta: i64) -> bool {
        let top = i64::from(self.max - 1);
        let new = (i64::from(self.score) + delta).clamp(0, top);
        // `new` is within [0, max − 1], which fits u32.
        let new = u32::try_from(new).unwrap_or(0);
        let changed = new != self.score;
        self.score = new;
        changed
    }

    /// The current score (Go's `GetHealthScore`): 0 is healthy.
    pub fn score(&self) -> u32 {
        self.score
    }

    /// `d · (score + 1)`.
    pub fn scale(&self, d: Duration) -> Duration {
        d * (self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_awareness_table() {
        let deltas = [0, -1, -10, 1, -1, 10, -1, -1, -1, -1, -1, -1, -1, -1];
        let scores = [0, 0, 0, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0, 0];
        let mut a = Awareness::new(8);
        for (d, s) in deltas.iter().zip(scores) {
            a.apply_delta(*d);
            assert_eq!(a.score(), s);
            assert_eq!(a.scale(Duration::from_secs(1)), Duration::from_secs(u64::from(s) + 1));
        }
    }
}
