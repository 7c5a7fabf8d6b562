//! The virtual network: latency, loss and partitions.
//!
//! Every datagram draws its fate from the simulator's single network RNG, in the order the
//! datagrams are sent, so a run is a pure function of its seed. Streams are reliable and ordered
//! (fixed latency); they fail to connect when the peer is down or cut off, and under loss their
//! handshake is delayed as TCP's is: each lost SYN or SYN-ACK costs a retransmission timeout
//! (1 s, doubling), so a TCP fallback ping through a lossy link misses its deadline.

use std::collections::BTreeSet;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

/// Per-link behaviour.
#[derive(Debug, Clone)]
pub struct NetworkModel {
    /// Fixed one-way latency.
    pub latency: Duration,
    /// Extra latency drawn uniformly from `[0, jitter)` for every datagram.
    pub jitter: Duration,
    /// Probability that any datagram is lost, in parts per million.
    pub loss_ppm: u32,
    /// Per node: probability (ppm) that a datagram it sends is lost.
    pub egress_loss_ppm: Vec<u32>,
    /// Per node: probability (ppm) that a datagram sent to it is lost.
    pub ingress_loss_ppm: Vec<u32>,
    /// Per node: the partition group it is in (all 0 = no partition).
    pub group: Vec<u32>,
    /// Directed group pairs that cannot reach each other, `(from, to)`.
    pub blocked: BTreeSet<(u32, u32)>,
}

impl NetworkModel {
    /// A LAN-like network for `n` nodes: 1 ms ± 0.5 ms, no loss, no partition.
    pub fn lan(n: usize) -> Self {
        NetworkModel {
            latency: Duration::from_micros(750),
            jitter: Duration::from_micros(500),
            loss_ppm: 0,
            egress_loss_ppm: vec![0; n],
            ingress_loss_ppm: vec![0; n],
            group: vec![0; n],
            blocked: BTreeSet::new(),
        }
    }

    /// Makes room for node `i`.
    pub fn ensure(&mut self, i: usize) {
        if self.group.len() <= i {
            self.egress_loss_ppm.resize(i + 1, 0);
            self.ingress_loss_ppm.resize(i + 1, 0);
            self.group.resize(i + 1, 0);
        }
    }

    /// Whether `from` can reach `to` at all.
    pub fn reachable(&self, from: usize, to: usize) -> bool {
        let g = |i: usize| self.group.get(i).copied().unwrap_or(0);
        !self.blocked.contains(&(g(from), g(to)))
    }

    /// Splits the nodes into groups that cannot reach each other in either direction.
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        self.heal();
        for (gi, members) in groups.iter().enumerate() {
            for &m in members {
                self.ensure(m);
                self.group[m] = gi as u32 + 1;
            }
        }
        let ids: Vec<u32> = (1..=groups.len() as u32).collect();
        for &a in &ids {
            for &b in &ids {
                if a != b {
                    self.blocked.insert((a, b));
                }
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
        self.blocked.clear();
    }

    /// Decides the fate of one datagram: `None` if lost, else its latency.
    pub fn datagram(&self, from: usize, to: usize, rng: &mut ChaCha8Rng) -> Option<Duration> {
        if !self.reachable(from, to) {
            return None;
        }
        let lose = |ppm: u32, rng: &mut ChaCha8Rng| ppm > 0 && rng.next_u32() % 1_000_000 < ppm;
        let egress = self.egress_loss_ppm.get(from).copied().unwrap_or(0);
        let ingress = self.ingress_loss_ppm.get(to).copied().unwrap_or(0);
        if lose(self.loss_ppm, rng) || lose(egress, rng) || lose(ingress, rng) {
            return None;
        }
        let jitter_ns = u64::try_from(self.jitter.as_nanos()).unwrap_or(0);
        let extra = if jitter_ns > 0 { rng.next_u64() % jitter_ns } else { 0 };
        Some(self.latency + Duration::from_nanos(extra))
    }

    /// Extra time a connection from `from` to `to` takes to be established: attempt k (0, 1, …)
    /// loses its SYN or its SYN-ACK with the links' loss probabilities and then waits Linux's
    /// retransmission timeout, 1 s · 2^k, before the next. Draws nothing when there is no loss.
    pub fn handshake_delay(&self, from: usize, to: usize, rng: &mut ChaCha8Rng) -> Duration {
        let p = |a: usize, b: usize| {
            let e = self.egress_loss_ppm.get(a).copied().unwrap_or(0);
            let i = self.ingress_loss_ppm.get(b).copied().unwrap_or(0);
            (self.loss_ppm, e, i)
        };
        let (fwd, back) = (p(from, to), p(to, from));
        if fwd == (0, 0, 0) && back == (0, 0, 0) {
            return Duration::ZERO;
        }
        let lose = |ppm: u32, rng: &mut ChaCha8Rng| ppm > 0 && rng.next_u32() % 1_000_000 < ppm;
        let lost = |(a, b, c): (u32, u32, u32), rng: &mut ChaCha8Rng| lose(a, rng) || lose(b, rng) || lose(c, rng);
        let mut delay = Duration::ZERO;
        for k in 0..6u32 {
            if !lost(fwd, rng) && !lost(back, rng) {
                break;
            }
            delay += Duration::from_secs(1u64 << k);
        }
        delay
    }

    /// Latency of stream traffic (fixed, so streams stay ordered).
    pub fn stream_latency(&self) -> Duration {
        self.latency
    }
}

/// Fisher–Yates shuffle with the simulator's generator.
pub fn shuffle_with<T>(rng: &mut ChaCha8Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u32() as usize) % (i + 1);
        items.swap(i, j);
    }
}
