//! A deterministic network around one jitter buffer: a sender of 20 ms G.711
//! packets whose clock may drift, a network that loses, delays (and thereby
//! reorders) and duplicates them, and a receiver that asks for 20 ms of audio
//! every 20 ms of its own clock. All times are simulated, all randomness seeded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const PACKET_MS: f64 = 20.0;
const PACKET_TS: u32 = 160;

#[derive(Debug, Clone, Copy)]
pub(super) enum Spread {
    /// Extra delay uniform in `0..jitter_ms`.
    Uniform,
    /// Extra delay exponential with mean `jitter_ms / 3` (95 % below `jitter_ms`), unbounded.
    Exponential,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Network {
    pub base_ms: f64,
    pub jitter_ms: f64,
    pub spread: Spread,
    pub loss: f64,
    pub duplicate: f64,
}

impl Network {
    pub(super) fn jitter(jitter_ms: f64) -> Self {
        Network { base_ms: 40.0, jitter_ms, spread: Spread::Uniform, loss: 0.0, duplicate: 0.0 }
    }

    fn delay_ms(&self, rng: &mut StdRng) -> f64 {
        let extra = match self.spread {
            Spread::Uniform => rng.random::<f64>() * self.jitter_ms,
            Spread::Exponential => -(1.0 - rng.random::<f64>()).ln() * self.jitter_ms / 3.0,
        };
        self.base_ms + extra
    }
}

/// One played packet, with the simulated times (ms) it went through.
#[derive(Debug, Clone, Copy)]
pub(super) struct Played {
    pub ssrc: u32,
    pub timestamp: u32,
    pub sent_ms: f64,
    pub arrived_ms: f64,
    pub popped_ms: f64,
}

impl Played {
    /// Time spent in the jitter buffer.
    pub(super) fn wait_ms(&self) -> f64 {
        self.popped_ms - self.arrived_ms
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Packet { ssrc: u32, timestamp: u32 },
    Lost { timestamp: u32 },
    Stretch,
    Silence,
}

struct Flight {
    sent_ms: f64,
    arrival_ms: f64,
    meta: PacketMeta,
}

pub(super) struct Sim {
    pub buffer: JitterBuffer,
    pub network: Network,
    rng: StdRng,
    start: Instant,
    now_ms: f64,
    /// Sender clock speed relative to the receiver's: 1.005 sends 0.5 % fast.
    pub sender_rate: f64,
    sender_clock_ms: f64,
    next_send_ms: f64,
    pub ssrc: u32,
    sequence: u16,
    timestamp: u32,
    next_tick_ms: f64,
    in_flight: Vec<Flight>,
    /// (ssrc, timestamp) → (sent, first arrival), for what was delivered.
    delivered: HashMap<(u32, u32), (f64, f64)>,
    pub dropped: Vec<(u32, u32)>,
    pub played: Vec<Played>,
    pub outcomes: Vec<(f64, Outcome)>,
    pub sent: u64,
    pub duplicated: u64,
}

impl Sim {
    pub(super) fn new(seed: u64, network: Network) -> Self {
        Self::starting_at(seed, network, 0x1234, 0x5678_9abc)
    }

    pub(super) fn starting_at(seed: u64, network: Network, sequence: u16, timestamp: u32) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let receiver_phase = rng.random::<f64>() * PACKET_MS;
        Sim {
            buffer: JitterBuffer::new(JitterConfig::new(8000)),
            network,
            rng,
            start: Instant::now(),
            now_ms: 0.0,
            sender_rate: 1.0,
            sender_clock_ms: 0.0,
            next_send_ms: 0.0,
            ssrc: 0xabcd,
            sequence,
            timestamp,
            next_tick_ms: receiver_phase,
            in_flight: Vec::new(),
            delivered: HashMap::new(),
            dropped: Vec::new(),
            played: Vec::new(),
            outcomes: Vec::new(),
            sent: 0,
            duplicated: 0,
        }
    }

    fn instant(&self, ms: f64) -> Instant {
        self.start + Duration::from_nanos((ms * 1e6) as u64)
    }

    /// The sender starts over as a new source: new SSRC, sequence and timestamp.
    pub(super) fn restart_sender(&mut self, ssrc: u32, sequence: u16, timestamp: u32) {
        (self.ssrc, self.sequence, self.timestamp) = (ssrc, sequence, timestamp);
    }

    /// The sender's timestamp leaps by `by` (a PBX switching media source).
    pub(super) fn jump_timestamp(&mut self, by: u32) {
        self.timestamp = self.timestamp.wrapping_add(by);
    }

    /// Run the three parties until `until_ms` of simulated time.
    pub(super) fn run_until(&mut self, until_ms: f64) {
        loop {
            let next_arrival = self.in_flight.iter().map(|f| f.arrival_ms).fold(f64::INFINITY, f64::min);
            let next = self.next_send_ms.min(next_arrival).min(self.next_tick_ms);
            if next > until_ms {
                self.now_ms = until_ms;
                return;
            }
            self.now_ms = next;
            if next == self.next_send_ms {
                self.send();
            } else if next == next_arrival {
                self.deliver_first();
            } else {
                self.tick();
            }
        }
    }

    fn send(&mut self) {
        let meta = PacketMeta {
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            marker: false,
            duration: PACKET_TS,
        };
        self.sent += 1;
        if self.rng.random::<f64>() < self.network.loss {
            self.dropped.push((meta.ssrc, meta.timestamp));
        } else {
            let copies = if self.rng.random::<f64>() < self.network.duplicate { 2 } else { 1 };
            self.duplicated += copies - 1;
            for _ in 0..copies {
                let arrival_ms = self.now_ms + self.network.delay_ms(&mut self.rng);
                self.in_flight.push(Flight { sent_ms: self.now_ms, arrival_ms, meta });
            }
        }
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(PACKET_TS);
        self.sender_clock_ms += PACKET_MS;
        self.next_send_ms = self.sender_clock_ms / self.sender_rate;
    }

    fn deliver_first(&mut self) {
        let index = (0..self.in_flight.len())
            .min_by(|&a, &b| self.in_flight[a].arrival_ms.total_cmp(&self.in_flight[b].arrival_ms))
            .expect("called with a packet in flight");
        let flight = self.in_flight.swap_remove(index);
        let meta = flight.meta;
        self.delivered.entry((meta.ssrc, meta.timestamp)).or_insert((flight.sent_ms, flight.arrival_ms));
        let mut payload = [0u8; PACKET_TS as usize];
        payload[..4].copy_from_slice(&meta.ssrc.to_le_bytes());
        payload[4..8].copy_from_slice(&meta.timestamp.to_le_bytes());
        let at = self.instant(flight.arrival_ms);
        self.buffer.insert(meta, &payload, at);
    }

    fn tick(&mut self) {
        let at = self.instant(self.now_ms);
        let mut needed = i64::from(PACKET_TS);
        // A 20 ms need is met by one or two pops of any sensible kind.
        for _ in 0..8 {
            if needed <= 0 {
                break;
            }
            let (duration, outcome) = match self.buffer.pop(at) {
                Popped::Packet { payload, timestamp, duration } => {
                    let ssrc = u32::from_le_bytes(payload[..4].try_into().unwrap());
                    assert_eq!(payload[4..8], timestamp.to_le_bytes(), "payload belongs to its timestamp");
                    (duration, Outcome::Packet { ssrc, timestamp })
                }
                Popped::Lost { timestamp, duration, .. } => (duration, Outcome::Lost { timestamp }),
                Popped::Stretch { duration } => (duration, Outcome::Stretch),
                Popped::Silence { duration } => (duration, Outcome::Silence),
            };
            if let Outcome::Packet { ssrc, timestamp } = outcome {
                let (sent_ms, arrived_ms) = self.delivered[&(ssrc, timestamp)];
                self.played.push(Played { ssrc, timestamp, sent_ms, arrived_ms, popped_ms: self.now_ms });
            }
            self.outcomes.push((self.now_ms, outcome));
            needed -= i64::from(duration);
        }
        self.next_tick_ms += PACKET_MS;
    }
}

pub(super) fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "median of nothing");
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[test]
fn explore() {
    for (name, network, rate) in [
        ("zero", Network::jitter(0.0), 1.0),
        ("j30", Network::jitter(30.0), 1.0),
        ("exp30", Network { spread: Spread::Exponential, ..Network::jitter(30.0) }, 1.0),
        ("loss5", Network { loss: 0.05, ..Network::jitter(0.0) }, 1.0),
        ("fast", Network::jitter(10.0), 1.005),
        ("slow", Network::jitter(10.0), 0.995),
    ] {
        let mut sim = Sim::new(7, network);
        sim.sender_rate = rate;
        sim.run_until(60_000.0);
        let waits: Vec<f64> = sim.played.iter().map(Played::wait_ms).collect();
        let e2e: Vec<f64> = sim.played.iter().map(|p| p.popped_ms - p.sent_ms - 40.0).collect();
        println!(
            "{name}: sent {} dropped {} played {} wait {:.1} e2e {:.1} {:?}",
            sim.sent,
            sim.dropped.len(),
            sim.played.len(),
            median(waits),
            median(e2e),
            sim.buffer.stats()
        );
    }
}
