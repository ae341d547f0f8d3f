//! The adaptive jitter buffer of one received RTP stream, sans-IO and
//! codec-agnostic: packets go in as they arrive, and the media tick takes
//! them out in timestamp order whenever it needs audio, decoding the payloads
//! itself. The buffer owns reordering, duplicate and late-packet handling,
//! loss detection, the playout delay (adapted to the measured jitter) and the
//! correction of clock drift between the sender and the sound card.
//!
//! Timing model: each packet's transit (arrival minus its timestamp in µs) is
//! measured against the fastest recent transit, the floor. The buffer aims to
//! play the slot at timestamp `t` when `t + floor + target` comes, where the
//! target covers 99 % of recent delays above the floor. The lag actually
//! achieved moves in steps of whole frames, so it is held within a band of
//! ±12 ms around the target: above it for a while, one packet is dropped (a
//! drift skip; the sender's clock is fast or the jitter fell); below it, one
//! 20 ms frame of concealment is played without consuming the stream (a
//! stretch; the sender is slow or the target rose). Skips drop whichever
//! packet is next, provided its successor is already here so no concealment
//! follows it: the payload is opaque, so there is no way to prefer silence.
//!
//! A packet from another SSRC, or a sequence or timestamp jump, is held
//! aside; if the next packet agrees with it, the buffer restarts on the new
//! stream (a reset). A single stray packet therefore never disturbs a call.

mod estimate;
mod playout;
mod queue;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use std::time::Instant;

use serde::Serialize;

use super::rtp::RtpView;
use estimate::DelayEstimator;
use playout::Playout;
use queue::{Entry, Queue};
pub use queue::{MAX_PAYLOAD, SLOTS};

/// Packets a sequence number may fall behind the highest seen before it is
/// taken for a jump (RFC 3550 A.1's MAX_MISORDER)...
const MAX_MISORDER: i16 = 100;
/// ...and run ahead of it (MAX_DROPOUT).
const MAX_DROPOUT: i16 = 3000;
/// A transit this far from the floor means the timestamps jumped.
const TIMESTAMP_JUMP_US: i64 = 1_000_000;
/// After a reset to another SSRC, the old one's stragglers are dropped
/// for this long instead of being taken for yet another new stream.
const RETIRED_SSRC_US: i64 = 500_000;
/// A held packet and the next must be this close to confirm a new stream.
const CONFIRM_MAX_SEQUENCE_STEP: u16 = 16;
/// Lag band half-width: half a 20 ms frame plus a margin against timing noise.
const LAG_BAND_US: i64 = 12_000;

/// What a buffer is for: one stream's clock and the delay it may add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream's payload type (8000 for G.711 and G.722, 48000 for Opus).
    pub clock_rate: u32,
    /// The delay never aims lower than this, however quiet the network.
    pub min_delay_ms: u32,
    /// ...nor higher than this, however noisy.
    pub max_delay_ms: u32,
}

impl JitterConfig {
    /// 20–200 ms of delay for a stream at `clock_rate`.
    pub fn new(clock_rate: u32) -> Self {
        JitterConfig { clock_rate, min_delay_ms: 20, max_delay_ms: 200 }
    }
}

/// The RTP header fields the buffer needs, and how long the payload lasts.
/// The marker bit is not among them: talk spurts show in the sequence
/// numbers and timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketMeta {
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Timestamp units the payload lasts, from the codec; 0 means a 20 ms frame.
    pub duration: u32,
}

impl PacketMeta {
    pub fn from_rtp(view: &RtpView, duration: u32) -> Self {
        PacketMeta { sequence: view.sequence_number, timestamp: view.timestamp, ssrc: view.ssrc, duration }
    }
}

/// What became of an inserted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Queued,
    /// Already queued or already played: dropped.
    Duplicate,
    /// Its slot was already played or concealed: dropped.
    Late,
    /// Does not belong to the current stream (another SSRC, a sequence or
    /// timestamp jump): held aside, and queued if the next packet confirms
    /// a new stream.
    Stray,
    /// It confirmed the stray packet before it: the buffer restarted on the
    /// new stream with both queued.
    Reset,
    /// Payload longer than [`MAX_PAYLOAD`]: dropped.
    TooLarge,
}

/// The next piece of playout. Durations are in timestamp units; the caller
/// keeps pulling until it has the audio it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Popped<'a> {
    /// Decode and play this packet.
    Packet { payload: &'a [u8], timestamp: u32, duration: u32 },
    /// The packet for `timestamp` never came: conceal it. `next` is the
    /// payload that follows the gap if it is already here (Opus in-band FEC).
    Lost { timestamp: u32, duration: u32, next: Option<&'a [u8]> },
    /// Conceal one frame without consuming the stream: the buffer is growing
    /// its delay (the sender's clock is slow, or the jitter rose).
    Stretch { duration: u32 },
    /// Play silence or comfort noise: nothing received yet, still buffering,
    /// or the sender is silent.
    Silence { duration: u32 },
}

/// Counters and delay figures, for call statistics and tuning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct JitterStats {
    /// The playout delay aimed for beyond the fastest recent packet.
    pub target_delay_ms: u32,
    /// How long played packets waited in the buffer, smoothed over about 16 packets.
    pub current_delay_ms: u32,
    /// RFC 3550 interarrival jitter.
    pub jitter_ms: u32,
    /// Packets of the current or an earlier stream, duplicates and late ones included.
    pub packets_received: u64,
    pub duplicates: u64,
    pub late: u64,
    /// `Lost` frames reported: gaps concealed.
    pub lost: u64,
    /// Packets that arrived after one with a higher sequence number.
    pub reordered: u64,
    /// Packets dropped to shrink the delay.
    pub drift_skips: u64,
    /// `Stretch` frames reported to grow the delay.
    pub drift_stretches: u64,
    pub resets: u64,
}

/// Identity of the stream being played and the references that unwrap its
/// sequence numbers and timestamps.
struct Stream {
    ssrc: u32,
    highest_sequence: i64,
    highest_timestamp: i64,
    /// Bit `n` set: sequence `highest_sequence - n` has arrived.
    received: u128,
}

/// A stray packet kept in the queue's spare slot.
#[derive(Clone, Copy)]
struct Held {
    meta: PacketMeta,
    arrival_us: i64,
}

/// See the module documentation.
pub struct JitterBuffer {
    clock_rate: i64,
    min_delay_us: i64,
    max_delay_us: i64,
    /// 20 ms in timestamp units: the unit of silence and of stretching.
    tick: u32,
    queue: Queue,
    estimator: DelayEstimator,
    target_us: i64,
    current_delay_us: i64,
    epoch: Option<Instant>,
    stream: Option<Stream>,
    held: Option<Held>,
    retired_ssrc: Option<(u32, i64)>,
    playout: Playout,
    stats: JitterStats,
}

impl JitterBuffer {
    /// All storage (about 42 KB) is allocated here, none later. A clock rate
    /// of 0 is taken as 1, and a maximum delay below the minimum as the minimum.
    pub fn new(config: JitterConfig) -> Self {
        let clock_rate = config.clock_rate.max(1);
        let min_delay_us = i64::from(config.min_delay_ms) * 1000;
        let max_delay_us = i64::from(config.max_delay_ms).max(i64::from(config.min_delay_ms)) * 1000;
        JitterBuffer {
            clock_rate: i64::from(clock_rate),
            min_delay_us,
            max_delay_us,
            tick: (clock_rate / 50).max(1),
            queue: Queue::new(),
            estimator: DelayEstimator::new(max_delay_us),
            target_us: min_delay_us,
            current_delay_us: 0,
            epoch: None,
            stream: None,
            held: None,
            retired_ssrc: None,
            playout: Playout::Buffering,
            stats: JitterStats { target_delay_ms: config.min_delay_ms, ..JitterStats::default() },
        }
    }

    pub fn stats(&self) -> JitterStats {
        JitterStats {
            target_delay_ms: (self.target_us / 1000) as u32,
            current_delay_ms: (self.current_delay_us / 1000) as u32,
            jitter_ms: (self.estimator.jitter_us() / 1000) as u32,
            ..self.stats
        }
    }

    /// Take one arriving packet; `now` is when it arrived.
    pub fn insert(&mut self, meta: PacketMeta, payload: &[u8], now: Instant) -> Inserted {
        if payload.len() > MAX_PAYLOAD {
            return Inserted::TooLarge;
        }
        let meta = PacketMeta { duration: if meta.duration == 0 { self.tick } else { meta.duration }, ..meta };
        let now_us = self.micros_since_epoch(now);
        let Some(stream) = &self.stream else {
            self.start_stream(&meta);
            return self.accept(meta, payload, now_us);
        };
        if self.fits_stream(stream, &meta, now_us) {
            self.held = None;
            return self.accept(meta, payload, now_us);
        }
        self.take_stray(meta, payload, now_us)
    }

    fn micros_since_epoch(&mut self, now: Instant) -> i64 {
        let epoch = *self.epoch.get_or_insert(now);
        now.saturating_duration_since(epoch).as_micros() as i64
    }

    fn timestamp_us(&self, timestamp: i64) -> i64 {
        timestamp * 1_000_000 / self.clock_rate
    }

    fn us_to_timestamp(&self, us: i64) -> i64 {
        us * self.clock_rate / 1_000_000
    }

    fn start_stream(&mut self, meta: &PacketMeta) {
        self.stream = Some(Stream {
            ssrc: meta.ssrc,
            highest_sequence: i64::from(meta.sequence),
            highest_timestamp: i64::from(meta.timestamp),
            received: 0,
        });
        self.playout = Playout::Buffering;
    }

    fn extended(stream: &Stream, meta: &PacketMeta) -> (i64, i64) {
        let sequence_step = meta.sequence.wrapping_sub(stream.highest_sequence as u16) as i16;
        let timestamp_step = meta.timestamp.wrapping_sub(stream.highest_timestamp as u32) as i32;
        (stream.highest_sequence + i64::from(sequence_step), stream.highest_timestamp + i64::from(timestamp_step))
    }

    fn fits_stream(&self, stream: &Stream, meta: &PacketMeta, now_us: i64) -> bool {
        let sequence_step = meta.sequence.wrapping_sub(stream.highest_sequence as u16) as i16;
        if meta.ssrc != stream.ssrc || !(-MAX_MISORDER..=MAX_DROPOUT).contains(&sequence_step) {
            return false;
        }
        let (_, timestamp) = Self::extended(stream, meta);
        let transit_us = now_us - self.timestamp_us(timestamp);
        self.estimator.floor_us().is_none_or(|floor| (transit_us - floor).abs() <= TIMESTAMP_JUMP_US)
    }

    /// Queue a packet of the current stream, or say why not.
    fn accept(&mut self, meta: PacketMeta, payload: &[u8], now_us: i64) -> Inserted {
        self.accept_with(meta, now_us, |queue, entry| queue.push(entry, payload))
    }

    /// `accept`, with the payload stored by `store` (from the caller's
    /// buffer, or from the spare slot for a held packet).
    fn accept_with(&mut self, meta: PacketMeta, now_us: i64, store: impl FnOnce(&mut Queue, Entry)) -> Inserted {
        let stream = self.stream.as_mut().expect("a stream is set before packets are accepted");
        let (sequence, timestamp) = Self::extended(stream, &meta);
        self.stats.packets_received += 1;
        let behind = stream.highest_sequence - sequence;
        if behind >= 0 {
            // `fits_stream` keeps `behind` within MAX_MISORDER, inside the window.
            let bit = 1u128 << behind.min(127);
            if stream.received & bit != 0 {
                self.stats.duplicates += 1;
                return Inserted::Duplicate;
            }
            stream.received |= bit;
            self.stats.reordered += u64::from(behind > 0);
        } else {
            let ahead = -behind;
            stream.received = if ahead >= 128 { 0 } else { stream.received << ahead } | 1;
            stream.highest_sequence = sequence;
        }
        stream.highest_timestamp = stream.highest_timestamp.max(timestamp);

        let transit_us = now_us - self.timestamp_us(timestamp);
        self.estimator.record(now_us, transit_us);
        self.target_us = (self.estimator.covering_delay_us() + LAG_BAND_US).clamp(self.min_delay_us, self.max_delay_us);

        if let Playout::Playing(position) = &self.playout {
            if timestamp < position.timestamp {
                self.stats.late += 1;
                return Inserted::Late;
            }
        }
        if self.queue.contains_timestamp(timestamp) {
            self.stats.duplicates += 1;
            return Inserted::Duplicate;
        }
        if self.queue.is_full() {
            self.drop_first();
        }
        store(&mut self.queue, Entry::new(sequence, timestamp, meta.duration, now_us));
        Inserted::Queued
    }

    /// Hold a packet that does not fit the stream, or restart on it and the
    /// one held before if the two agree.
    fn take_stray(&mut self, meta: PacketMeta, payload: &[u8], now_us: i64) -> Inserted {
        if self.retired_ssrc.is_some_and(|(ssrc, until_us)| ssrc == meta.ssrc && now_us < until_us) {
            return Inserted::Stray;
        }
        let confirms = self.held.is_some_and(|held| {
            let sequence_step = meta.sequence.wrapping_sub(held.meta.sequence);
            let timestamp_step = meta.timestamp.wrapping_sub(held.meta.timestamp);
            held.meta.ssrc == meta.ssrc
                && (1..=CONFIRM_MAX_SEQUENCE_STEP).contains(&sequence_step)
                && i64::from(timestamp_step) <= self.clock_rate
        });
        let Some(held) = self.held.take().filter(|_| confirms) else {
            self.queue.hold(payload);
            self.held = Some(Held { meta, arrival_us: now_us });
            return Inserted::Stray;
        };
        let old_ssrc = self.stream.as_ref().map(|stream| stream.ssrc).filter(|&ssrc| ssrc != meta.ssrc);
        self.retired_ssrc = old_ssrc.map(|ssrc| (ssrc, now_us + RETIRED_SSRC_US));
        self.stats.resets += 1;
        self.queue.clear();
        self.estimator.restart_stream();
        self.start_stream(&held.meta);
        self.accept_with(held.meta, held.arrival_us, Queue::push_held);
        self.accept(meta, payload, now_us);
        Inserted::Reset
    }

    /// Make room by dropping the oldest packet, moving playout past it.
    fn drop_first(&mut self) {
        let Some(first) = self.queue.remove_first() else { return };
        self.stats.drift_skips += 1;
        if let Playout::Playing(position) = &mut self.playout {
            position.timestamp = position.timestamp.max(first.end());
            position.next_sequence = first.sequence + 1;
            position.frame = first.duration;
        }
    }
}
