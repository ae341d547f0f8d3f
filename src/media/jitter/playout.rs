//! The playout side of the jitter buffer: where playout stands, and for
//! each pop whether to play, conceal, stretch, skip or stay silent.

use std::time::Instant;

use super::queue::Entry;
use super::{JitterBuffer, Popped, LAG_BAND_US};

/// Playout starts once the first packet's lag is this close below target,
/// which puts it within ±10 ms of the target whatever the tick phase.
const START_BEFORE_TARGET_US: i64 = 10_000;
/// The lag must stay above the band this long before one packet is skipped.
const SKIP_AFTER_US: i64 = 200_000;
/// Consecutive pops below the band before one frame is stretched, when the
/// next packet is here to be played meanwhile.
const STRETCH_AFTER_POPS: u32 = 2;
/// Lag this far above target is dropped at once (after a stall).
const FAST_FORWARD_US: i64 = 100_000;
/// With nothing queued, this much of a missing tail is reported `Lost`; past
/// it the sender is taken to be silent (DTX, hold) and `Silence` follows.
const TAIL_CONCEAL_US: i64 = 60_000;
/// Pops closer together than this belong to the same media tick, so their
/// audio plays back to back rather than at the same instant.
const SAME_TICK_US: i64 = 1_000;

pub(super) enum Playout {
    /// Waiting until the first packet has been here long enough.
    Buffering,
    Playing(Position),
}

/// Where playout stands in the stream, and how its lag has been behaving.
pub(super) struct Position {
    /// Timestamp of the next audio to play.
    pub(super) timestamp: i64,
    /// Sequence number the next packet should carry; the gap up to the next
    /// queued packet tells how many packets went missing.
    pub(super) next_sequence: i64,
    /// Duration of the last packet played, the size of a concealed frame.
    pub(super) frame: u32,
    /// How much of a gap with nothing queued has been reported `Lost`.
    tail_concealed_us: i64,
    last_pop_us: i64,
    last_pop_end_us: i64,
    above_band_since_us: Option<i64>,
    pops_below_band: u32,
}

/// What `pop` decided, before the payload is borrowed for the answer.
enum Decision {
    Play(Entry),
    Lost { timestamp: i64, duration: u32, next_is_first: bool },
    Stretch,
    Silence(u32),
}

impl JitterBuffer {
    /// The next piece of playout; call it whenever the audio output needs more.
    pub fn pop(&mut self, now: Instant) -> Popped<'_> {
        let decision = self.decide(now);
        let timestamp = |t: i64| t as u32;
        match decision {
            Decision::Play(entry) => Popped::Packet {
                payload: self.queue.payload(&entry),
                timestamp: timestamp(entry.timestamp),
                duration: entry.duration,
            },
            Decision::Lost { timestamp: at, duration, next_is_first } => Popped::Lost {
                timestamp: timestamp(at),
                duration,
                next: self.queue.first().filter(|_| next_is_first).map(|entry| self.queue.payload(entry)),
            },
            Decision::Stretch => Popped::Stretch { duration: self.tick },
            Decision::Silence(duration) => Popped::Silence { duration },
        }
    }

    fn decide(&mut self, now: Instant) -> Decision {
        let now_us = self.micros_since_epoch(now);
        let Some(floor_us) = self.estimator.floor_us() else { return Decision::Silence(self.tick) };
        if let Playout::Buffering = self.playout {
            let Some(first) = self.queue.first() else { return Decision::Silence(self.tick) };
            let lag_us = now_us - self.timestamp_us(first.timestamp) - floor_us;
            if lag_us < self.target_us - START_BEFORE_TARGET_US {
                return Decision::Silence(self.tick);
            }
            self.playout = Playout::Playing(Position {
                timestamp: first.timestamp,
                next_sequence: first.sequence,
                frame: first.duration,
                tail_concealed_us: 0,
                last_pop_us: i64::MIN / 2,
                last_pop_end_us: i64::MIN / 2,
                above_band_since_us: None,
                pops_below_band: 0,
            });
        }
        let Playout::Playing(position) = &self.playout else { unreachable!("playout started above") };
        let play_at_us =
            if now_us - position.last_pop_us < SAME_TICK_US { position.last_pop_end_us.max(now_us) } else { now_us };
        let mut lag_us = play_at_us - self.timestamp_us(position.timestamp) - floor_us;
        if lag_us > self.target_us + FAST_FORWARD_US {
            self.fast_forward(lag_us - self.target_us);
        } else if lag_us > self.target_us + LAG_BAND_US {
            lag_us -= self.skip_if_due(now_us, lag_us);
        } else {
            Self::position(&mut self.playout).above_band_since_us = None;
        }
        let below_band = lag_us < self.target_us - LAG_BAND_US;
        let decision = if self.stretch_due(below_band) {
            self.stats.drift_stretches += 1;
            Decision::Stretch
        } else {
            self.serve(play_at_us)
        };
        let duration = match decision {
            Decision::Play(entry) => entry.duration,
            Decision::Lost { duration, .. } | Decision::Silence(duration) => duration,
            Decision::Stretch => self.tick,
        };
        let end_us = play_at_us + self.timestamp_us(i64::from(duration));
        let position = Self::position(&mut self.playout);
        position.last_pop_us = now_us;
        position.last_pop_end_us = end_us;
        decision
    }

    /// Takes the field, not `self`, so the other fields stay usable alongside.
    fn position(playout: &mut Playout) -> &mut Position {
        match playout {
            Playout::Playing(position) => position,
            Playout::Buffering => unreachable!("only called while playing"),
        }
    }

    /// Drop whole packets until the lag is back near target, moving playout
    /// to the first packet kept (or straight to the goal if none is).
    fn fast_forward(&mut self, excess_us: i64) {
        let goal = Self::position(&mut self.playout).timestamp + self.us_to_timestamp(excess_us);
        while self.queue.first().is_some_and(|first| first.end() <= goal) {
            self.drop_first();
        }
        let first_kept = self.queue.first().map(|first| first.timestamp);
        let position = Self::position(&mut self.playout);
        position.timestamp = position.timestamp.max(first_kept.map_or(goal, |first| first.min(goal)));
        position.above_band_since_us = None;
    }

    /// Drop the next packet once the lag has stayed above the band for a
    /// while, if its successor follows it directly and the lag stays within
    /// the band without it (a 60 ms packet is skipped only when the lag is
    /// that far above). Returns the lag removed.
    fn skip_if_due(&mut self, now_us: i64, lag_us: i64) -> i64 {
        let lowest_lag_us = self.target_us - LAG_BAND_US;
        let position = Self::position(&mut self.playout);
        let since = *position.above_band_since_us.get_or_insert(now_us);
        let at = position.timestamp;
        let skippable = match (self.queue.get(0), self.queue.get(1)) {
            (Some(first), Some(second)) => {
                first.timestamp <= at
                    && second.timestamp == first.end()
                    && lag_us - self.timestamp_us(first.end() - at) >= lowest_lag_us
            }
            _ => false,
        };
        if now_us - since < SKIP_AFTER_US || !skippable {
            return 0;
        }
        let skipped = self.queue.first().map_or(0, |first| first.end() - at);
        self.drop_first();
        Self::position(&mut self.playout).above_band_since_us = Some(now_us);
        self.timestamp_us(skipped)
    }

    /// With the lag below the band, stretch once that has lasted a few pops,
    /// or at once if the next slot's packet is missing: it is not due yet,
    /// so concealing it as lost would be premature.
    fn stretch_due(&mut self, below_band: bool) -> bool {
        let position = Self::position(&mut self.playout);
        let next_slot_here = self.queue.first().is_some_and(|first| first.timestamp <= position.timestamp);
        position.pops_below_band = if below_band { position.pops_below_band + 1 } else { 0 };
        let due = below_band && (position.pops_below_band >= STRETCH_AFTER_POPS || !next_slot_here);
        if due {
            position.pops_below_band = 0;
        }
        due
    }

    /// The next slot: its packet, a concealed gap, or silence.
    fn serve(&mut self, play_at_us: i64) -> Decision {
        let tick = self.tick;
        let first = self.queue.first().copied();
        let frame = Self::position(&mut self.playout).frame;
        let frame_us = self.timestamp_us(i64::from(frame));
        let position = Self::position(&mut self.playout);
        match first {
            Some(first) if first.timestamp <= position.timestamp => {
                self.queue.remove_first();
                position.timestamp = position.timestamp.max(first.end());
                position.next_sequence = first.sequence + 1;
                position.frame = first.duration;
                position.tail_concealed_us = 0;
                self.current_delay_us += (play_at_us - first.arrival_us - self.current_delay_us) / 16;
                Decision::Play(first)
            }
            Some(first) => {
                let gap = first.timestamp - position.timestamp;
                let missing = first.sequence - position.next_sequence;
                let frame = i64::from(position.frame);
                let slots = missing.min((gap + frame - 1) / frame);
                if slots <= 0 {
                    let duration = gap.min(i64::from(tick)) as u32;
                    position.timestamp += i64::from(duration);
                    return Decision::Silence(duration);
                }
                let duration = (gap / slots).min(frame);
                let at = position.timestamp;
                position.timestamp += duration;
                position.next_sequence += 1;
                self.stats.lost += 1;
                Decision::Lost {
                    timestamp: at,
                    duration: duration as u32,
                    next_is_first: at + duration == first.timestamp,
                }
            }
            None if position.tail_concealed_us < TAIL_CONCEAL_US => {
                let at = position.timestamp;
                position.timestamp += i64::from(position.frame);
                position.next_sequence += 1;
                position.tail_concealed_us += frame_us;
                self.stats.lost += 1;
                Decision::Lost { timestamp: at, duration: position.frame, next_is_first: false }
            }
            None => {
                position.timestamp += i64::from(tick);
                Decision::Silence(tick)
            }
        }
    }
}
