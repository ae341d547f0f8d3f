//! A deterministic network around one jitter buffer: a sender of G.711
//! packets (20 ms unless set) whose clock may drift, a network that loses, delays (and thereby
//! reorders) and duplicates them, and a receiver that asks for 20 ms of audio
//! every 20 ms of its own clock. All times are simulated, all randomness seeded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

/// The receiver's tick, and the default packet length.
const TICK_MS: f64 = 20.0;
const TICK_TS: u32 = 160;

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
    /// Length of each packet sent, in timestamp units.
    pub packet_ts: u32,
    sender_clock_ms: f64,
    next_send_ms: f64,
    pub ssrc: u32,
    sequence: u16,
    timestamp: u32,
    next_tick_ms: f64,
    /// Audio popped but not yet played out by the receiver, in timestamp units.
    audio_ahead: i64,
    in_flight: Vec<Flight>,
    /// (ssrc, timestamp) → (sent, first arrival), for what was delivered.
    delivered: HashMap<(u32, u32), (f64, f64)>,
    pub dropped: Vec<(u32, u32)>,
    /// Packets the buffer called late, by (ssrc, timestamp).
    pub late: Vec<(u32, u32)>,
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
        let receiver_phase = rng.random::<f64>() * TICK_MS;
        Sim {
            buffer: JitterBuffer::new(JitterConfig::new(8000)),
            network,
            rng,
            start: Instant::now(),
            now_ms: 0.0,
            sender_rate: 1.0,
            packet_ts: TICK_TS,
            sender_clock_ms: 0.0,
            next_send_ms: 0.0,
            ssrc: 0xabcd,
            sequence,
            timestamp,
            next_tick_ms: receiver_phase,
            audio_ahead: 0,
            in_flight: Vec::new(),
            delivered: HashMap::new(),
            dropped: Vec::new(),
            late: Vec::new(),
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
            duration: self.packet_ts,
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
        self.timestamp = self.timestamp.wrapping_add(self.packet_ts);
        self.sender_clock_ms += f64::from(self.packet_ts) / 8.0;
        self.next_send_ms = self.sender_clock_ms / self.sender_rate;
    }

    fn deliver_first(&mut self) {
        let index = (0..self.in_flight.len())
            .min_by(|&a, &b| self.in_flight[a].arrival_ms.total_cmp(&self.in_flight[b].arrival_ms))
            .expect("called with a packet in flight");
        let flight = self.in_flight.swap_remove(index);
        let meta = flight.meta;
        self.delivered.entry((meta.ssrc, meta.timestamp)).or_insert((flight.sent_ms, flight.arrival_ms));
        let mut payload = [0u8; 8];
        payload[..4].copy_from_slice(&meta.ssrc.to_le_bytes());
        payload[4..8].copy_from_slice(&meta.timestamp.to_le_bytes());
        let at = self.instant(flight.arrival_ms);
        if self.buffer.insert(meta, &payload, at) == Inserted::Late {
            self.late.push((meta.ssrc, meta.timestamp));
        }
    }

    fn tick(&mut self) {
        let at = self.instant(self.now_ms);
        // Audio left over from a long packet serves the following ticks;
        // a 20 ms need is met by at most a few pops of any sensible kind.
        for _ in 0..8 {
            if self.audio_ahead >= i64::from(TICK_TS) {
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
            self.audio_ahead += i64::from(duration);
        }
        self.audio_ahead -= i64::from(TICK_TS);
        self.next_tick_ms += TICK_MS;
    }
}

pub(super) fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "median of nothing");
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Played packets popped within `from_ms..to_ms`.
fn played_between(sim: &Sim, from_ms: f64, to_ms: f64) -> impl Iterator<Item = &Played> {
    sim.played.iter().filter(move |p| (from_ms..to_ms).contains(&p.popped_ms))
}

/// The longest run of pops that played no packet, from `from_ms` on.
fn longest_gap_in_pops(sim: &Sim, from_ms: f64) -> usize {
    let mut longest = 0;
    let mut current = 0;
    for (_, outcome) in sim.outcomes.iter().filter(|(at, _)| *at >= from_ms) {
        current = if matches!(outcome, Outcome::Packet { .. }) { 0 } else { current + 1 };
        longest = longest.max(current);
    }
    longest
}

#[test]
fn at_zero_jitter_the_added_delay_stays_near_the_minimum() {
    let mut medians = Vec::new();
    // Each seed puts the receiver's tick at another phase against the arrivals.
    for seed in 0..6 {
        let mut sim = Sim::new(seed, Network::jitter(0.0));
        sim.run_until(30_000.0);
        let stats = sim.buffer.stats();
        assert_eq!(stats.target_delay_ms, 20, "seed {seed}: {stats:?}");
        assert_eq!((stats.late, stats.lost, stats.drift_skips, stats.drift_stretches), (0, 0, 0, 0), "seed {seed}");
        let wait = median(played_between(&sim, 1000.0, f64::MAX).map(Played::wait_ms).collect());
        assert!((8.0..=32.0).contains(&wait), "seed {seed}: median wait {wait:.1} ms");
        // Up to five packets are still in flight or queued when the run stops.
        assert!(sim.played.len() as u64 >= sim.sent - 5, "everything sent is played");
        medians.push(wait);
    }
    println!("added delay at 0 ms jitter (median arrival-to-pop per tick phase, ms): {medians:.1?}");
    println!("  overall median: {:.1} ms", median(medians));
}

#[test]
fn thirty_ms_of_jitter_raises_the_target_to_cover_it_and_it_falls_back_after() {
    for spread in [Spread::Uniform, Spread::Exponential] {
        let mut sim = Sim::new(11, Network::jitter(0.0));
        sim.run_until(10_000.0);
        let quiet = sim.buffer.stats();
        let sent_quiet = sim.sent;
        sim.network = Network { spread, ..Network::jitter(30.0) };
        sim.run_until(70_000.0);
        let noisy = sim.buffer.stats();
        let late_share = (noisy.late - quiet.late) as f64 / (sim.sent - sent_quiet) as f64;
        assert!(noisy.target_delay_ms >= 30, "{spread:?}: {noisy:?}");
        assert!(late_share < 0.02, "{spread:?}: {:.2} % late", late_share * 100.0);
        let wait = median(played_between(&sim, 20_000.0, 70_000.0).map(Played::wait_ms).collect());
        let beyond_network =
            median(played_between(&sim, 20_000.0, 70_000.0).map(|p| p.popped_ms - p.sent_ms - 40.0).collect());
        println!(
            "added delay at 30 ms {spread:?} jitter: median arrival-to-pop {wait:.1} ms, \
             median pop beyond the fastest path {beyond_network:.1} ms, target {} ms, late {:.2} %",
            noisy.target_delay_ms,
            late_share * 100.0
        );

        sim.network = Network::jitter(0.0);
        sim.run_until(130_000.0);
        let calm = sim.buffer.stats();
        assert!(calm.target_delay_ms <= 25, "{spread:?}: target stays high after the jitter went: {calm:?}");
        let wait = median(played_between(&sim, 120_000.0, 130_000.0).map(Played::wait_ms).collect());
        assert!(wait <= 32.0, "{spread:?}: the delay shrank back: median wait {wait:.1} ms");
        assert!(calm.drift_skips > noisy.drift_skips, "shrinking is done by skipping");
        assert_eq!(calm.resets, 0);
    }
}

#[test]
fn random_loss_is_reported_lost_exactly_once_per_missing_packet() {
    for (seed, jitter_ms) in [(3, 0.0), (4, 10.0), (5, 30.0)] {
        let mut sim = Sim::new(seed, Network { loss: 0.05, ..Network::jitter(jitter_ms) });
        sim.run_until(60_000.0);
        let mut concealed: Vec<u32> = sim
            .outcomes
            .iter()
            .filter_map(|(_, outcome)| match outcome {
                Outcome::Lost { timestamp } => Some(*timestamp),
                _ => None,
            })
            .collect();
        let reported = concealed.len();
        concealed.sort_unstable();
        concealed.dedup();
        assert_eq!(concealed.len(), reported, "no slot concealed twice");
        let mut missing: Vec<u32> = sim.dropped.iter().chain(&sim.late).map(|&(_, timestamp)| timestamp).collect();
        missing.sort_unstable();
        // Before playout starts nothing is missed; packets still in flight
        // or queued when the run stops are neither played nor missed.
        let first_popped = sim.played.first().expect("something played").timestamp;
        let last_popped = sim.played.last().expect("something played").timestamp;
        missing.retain(|&timestamp| (first_popped..last_popped).contains(&timestamp));
        concealed.retain(|&timestamp| (first_popped..last_popped).contains(&timestamp));
        assert_eq!(concealed, missing, "jitter {jitter_ms}: concealed slots are exactly the dropped and late packets");
        let stats = sim.buffer.stats();
        assert_eq!(stats.lost, reported as u64);
        assert!(sim.dropped.len() > 100, "the network did drop packets");
        assert!(sim.late.len() * 100 < sim.sent as usize * 2, "jitter {jitter_ms}: {stats:?}");
    }
}

#[test]
fn half_a_percent_of_clock_drift_stays_bounded_over_ten_minutes() {
    for (rate, packet_ts) in [(1.005, 160), (0.995, 160), (1.005, 480), (0.995, 480)] {
        let mut sim = Sim::new(21, Network::jitter(10.0));
        sim.sender_rate = rate;
        sim.packet_ts = packet_ts;
        sim.run_until(600_000.0);
        let beyond_network = |from_ms, to_ms| {
            median(played_between(&sim, from_ms, to_ms).map(|p| p.popped_ms - p.sent_ms - 40.0).collect())
        };
        let (early, late) = (beyond_network(5_000.0, 65_000.0), beyond_network(540_000.0, 600_000.0));
        let stats = sim.buffer.stats();
        let packet_ms = packet_ts / 8;
        println!(
            "drift {rate}, {packet_ms} ms packets: delay beyond the network {early:.1} ms in minute 1, \
             {late:.1} ms in minute 10; {stats:?}"
        );
        assert!((early - late).abs() < 10.0, "rate {rate}: delay moved from {early:.1} to {late:.1} ms");
        // Skipping a whole packet must leave the lag in its band, so long
        // packets let it ride up to a packet above the target.
        let highest = f64::from(stats.target_delay_ms + packet_ms) + 5.0;
        assert!(late < highest, "rate {rate}, {packet_ms} ms packets: {late:.1} ms, {stats:?}");
        // 0.5 % of ten minutes is 3 s to drop (in packets) or to add (in 20 ms frames).
        let (corrections, unit_ms) =
            if rate > 1.0 { (stats.drift_skips, packet_ms) } else { (stats.drift_stretches, 20) };
        let expected = u64::from(3000 / unit_ms);
        assert!((expected * 8 / 10..=expected * 13 / 10).contains(&corrections), "rate {rate}: {stats:?}");
        assert!(longest_gap_in_pops(&sim, 1_000.0) <= 3, "rate {rate}: playout ran dry");
        assert!(sim.late.len() as u64 * 100 < sim.sent, "rate {rate}: {stats:?}");
    }
}

#[test]
fn a_new_source_mid_stream_resumes_within_a_few_frames() {
    type Switch = fn(&mut Sim);
    let switches: [(&str, Switch); 3] = [
        ("SSRC change", |sim| sim.restart_sender(0x5eed, 777, 123_456)),
        ("timestamp jump", |sim| sim.jump_timestamp(3_000_000)),
        ("sequence jump", |sim| sim.sequence = sim.sequence.wrapping_add(20_000)),
    ];
    for (name, switch) in switches {
        let mut sim = Sim::new(8, Network::jitter(10.0));
        sim.run_until(10_000.0);
        switch(&mut sim);
        let switched_at = sim.next_send_ms;
        let first_new_sequence = sim.sequence;
        sim.run_until(20_000.0);
        let stats = sim.buffer.stats();
        assert_eq!(stats.resets, 1, "{name}: {stats:?}");
        let new_stream: Vec<&Played> = sim.played.iter().filter(|p| p.sent_ms >= switched_at).collect();
        let first_arrival = new_stream.iter().map(|p| p.arrived_ms).fold(f64::INFINITY, f64::min);
        let first_played = new_stream.first().expect("the new stream plays").popped_ms;
        assert!(first_played - first_arrival <= 100.0, "{name}: took {:.0} ms", first_played - first_arrival);
        assert!(new_stream.len() as u64 >= 490, "{name}: {} of ~500 new packets played", new_stream.len());
        let old_after_switch = played_between(&sim, first_played, f64::MAX).filter(|p| p.sent_ms < switched_at).count();
        assert_eq!(old_after_switch, 0, "{name}: nothing of the old stream after the new one started");
        assert!(new_stream.iter().all(|p| p.ssrc == sim.ssrc), "{name}: played under the new SSRC");
        assert_ne!(first_new_sequence, sim.sequence);
    }
}

#[test]
fn sequence_and_timestamp_wrap_around_unnoticed() {
    let mut sim = Sim::starting_at(9, Network::jitter(20.0), 65_400, u32::MAX - 160 * 150);
    sim.run_until(20_000.0);
    let stats = sim.buffer.stats();
    assert_eq!(stats.resets, 0);
    assert!(sim.played.len() as u64 + stats.late + 10 >= sim.sent, "{stats:?}");
    for pair in sim.played.windows(2) {
        let step = pair[1].timestamp.wrapping_sub(pair[0].timestamp);
        assert!(step > 0 && step < 160 * 10, "timestamps {} then {}", pair[0].timestamp, pair[1].timestamp);
    }
    assert!(sim.played.iter().any(|p| p.timestamp < 160 * 100), "the run crossed the wrap");
}

#[test]
fn duplicates_are_counted_and_played_once() {
    let mut sim = Sim::new(10, Network { duplicate: 0.1, ..Network::jitter(20.0) });
    sim.run_until(30_000.0);
    let stats = sim.buffer.stats();
    assert!(sim.duplicated > 100);
    assert_eq!(stats.duplicates, sim.duplicated);
    let mut played: Vec<u32> = sim.played.iter().map(|p| p.timestamp).collect();
    let count = played.len();
    played.sort_unstable();
    played.dedup();
    assert_eq!(played.len(), count, "no packet played twice");
}

#[test]
fn packets_of_ten_to_sixty_ms_play_without_loss_or_oscillation() {
    for packet_ts in [80, 160, 240, 480] {
        let mut sim = Sim::new(12, Network::jitter(10.0));
        sim.packet_ts = packet_ts;
        sim.run_until(60_000.0);
        let stats = sim.buffer.stats();
        let wait = median(sim.played.iter().map(Played::wait_ms).collect());
        println!("{} ms packets at 10 ms jitter: median arrival-to-pop {wait:.1} ms; {stats:?}", packet_ts / 8);
        assert_eq!((stats.lost, stats.late, stats.resets), (0, 0, 0), "{} ms packets", packet_ts / 8);
        assert!(stats.drift_skips + stats.drift_stretches <= 4, "{} ms packets: {stats:?}", packet_ts / 8);
        assert!(
            wait < f64::from(stats.target_delay_ms + packet_ts / 8),
            "{} ms packets: waited {wait:.1} ms",
            packet_ts / 8
        );
        assert!(longest_gap_in_pops(&sim, 1_000.0) == 0, "{} ms packets: playout ran dry", packet_ts / 8);
    }
}
