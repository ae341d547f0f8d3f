//! Hand-placed packets and pops: each test states the arrivals and the
//! playout it expects. Times are ms after `t0`; packets last 20 ms (160 units)
//! unless said otherwise, and carry their timestamp as payload.

use std::time::{Duration, Instant};

use super::*;

const FRAME: u32 = 160;

/// A pop, reduced to what the tests compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Got {
    Packet(u32),
    Lost(u32),
    Stretch,
    Silence(u32),
}

struct Rig {
    buffer: JitterBuffer,
    t0: Instant,
}

impl Rig {
    fn new() -> Self {
        Self::with_min_delay(20)
    }

    /// At the 20 ms minimum only 8 ms of lateness is covered; tests that
    /// reorder by more raise the floor of the delay.
    fn with_min_delay(min_delay_ms: u32) -> Self {
        let config = JitterConfig { min_delay_ms, ..JitterConfig::new(8000) };
        Rig { buffer: JitterBuffer::new(config), t0: Instant::now() }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn send(&mut self, ssrc: u32, sequence: u16, timestamp: u32, duration: u32, arrival_ms: u64) -> Inserted {
        let meta = PacketMeta { sequence, timestamp, ssrc, duration };
        self.buffer.insert(meta, &timestamp.to_le_bytes(), self.at(arrival_ms))
    }

    /// Packet `n` of SSRC 1: sequence `n`, timestamp `n` frames.
    fn packet(&mut self, n: u16, arrival_ms: u64) -> Inserted {
        self.send(1, n, u32::from(n) * FRAME, FRAME, arrival_ms)
    }

    fn pop(&mut self, ms: u64) -> Got {
        match self.buffer.pop(self.at(ms)) {
            Popped::Packet { payload, timestamp, .. } => {
                assert_eq!(payload, timestamp.to_le_bytes(), "the payload travels with its timestamp");
                Got::Packet(timestamp)
            }
            Popped::Lost { timestamp, .. } => Got::Lost(timestamp),
            Popped::Stretch { .. } => Got::Stretch,
            Popped::Silence { duration } => Got::Silence(duration),
        }
    }
}

#[test]
fn playout_starts_once_the_first_packet_has_waited_about_the_target() {
    let mut rig = Rig::new();
    assert_eq!(rig.pop(0), Got::Silence(FRAME), "nothing received yet");
    assert_eq!(rig.packet(0, 0), Inserted::Queued);
    assert_eq!(rig.pop(5), Got::Silence(FRAME), "still buffering");
    assert_eq!(rig.pop(10), Got::Packet(0), "the 20 ms target, less half a frame");
    assert_eq!(rig.buffer.stats().target_delay_ms, 20);
}

#[test]
fn reordered_packets_play_in_timestamp_order() {
    let mut rig = Rig::with_min_delay(60);
    rig.packet(0, 0);
    rig.packet(2, 40);
    rig.packet(1, 45);
    rig.packet(3, 60);
    let played: Vec<Got> = [50, 70, 90, 110].map(|ms| rig.pop(ms)).into();
    assert_eq!(played, [Got::Packet(0), Got::Packet(FRAME), Got::Packet(2 * FRAME), Got::Packet(3 * FRAME)]);
    let stats = rig.buffer.stats();
    assert_eq!((stats.reordered, stats.lost, stats.late), (1, 0, 0));
}

#[test]
fn a_gap_is_concealed_once_with_the_following_payload_offered_for_fec() {
    let mut rig = Rig::new();
    rig.packet(0, 0);
    rig.packet(2, 40);
    assert_eq!(rig.pop(10), Got::Packet(0));
    let t = rig.at(50);
    match rig.buffer.pop(t) {
        Popped::Lost { timestamp, duration, next } => {
            assert_eq!((timestamp, duration), (FRAME, FRAME));
            assert_eq!(next, Some(&(2 * FRAME).to_le_bytes()[..]));
        }
        other => panic!("expected the gap concealed, got {other:?}"),
    }
    assert_eq!(rig.pop(70), Got::Packet(2 * FRAME));
    assert_eq!(rig.packet(1, 75), Inserted::Late, "its slot was concealed");
    let stats = rig.buffer.stats();
    assert_eq!((stats.lost, stats.late), (1, 1));
}

#[test]
fn a_missing_packet_is_not_concealed_before_its_time() {
    let mut rig = Rig::new();
    rig.packet(0, 0);
    assert_eq!(rig.pop(10), Got::Packet(0));
    // The next slot is due at 40 ms (20 ms of stream plus the 20 ms target).
    assert_eq!(rig.pop(15), Got::Stretch, "an early pop waits rather than conceal");
    rig.packet(1, 20);
    assert_eq!(rig.pop(30), Got::Packet(FRAME));
    assert_eq!(rig.buffer.stats().lost, 0);
}

#[test]
fn a_missing_tail_is_concealed_briefly_then_taken_for_silence() {
    let mut rig = Rig::new();
    for n in 0..3 {
        rig.packet(n, 20 * u64::from(n));
    }
    let mut got: Vec<Got> = (0..8).map(|tick| rig.pop(10 + 20 * tick)).collect();
    assert_eq!(got.drain(..3).collect::<Vec<_>>(), [0, 1, 2].map(|n| Got::Packet(n * FRAME)));
    assert_eq!(
        got,
        [3, 4, 5].map(|n| Got::Lost(n * FRAME)).into_iter().chain([Got::Silence(FRAME); 2]).collect::<Vec<_>>()
    );
    // The sender resumes in step with its clock, as after a silent spell.
    rig.send(1, 3, 8 * FRAME, FRAME, 160);
    assert_eq!(rig.pop(170), Got::Packet(8 * FRAME));
    assert_eq!(rig.buffer.stats().lost, 3);
}

#[test]
fn a_timestamp_gap_without_a_sequence_gap_is_silence_not_loss() {
    let mut rig = Rig::with_min_delay(60);
    rig.packet(0, 0);
    // Next in sequence, but 40 ms of discontinuous transmission later.
    rig.send(1, 1, 3 * FRAME, FRAME, 60);
    let got: Vec<Got> = [50, 70, 90, 110].map(|ms| rig.pop(ms)).into();
    assert_eq!(got, [Got::Packet(0), Got::Silence(FRAME), Got::Silence(FRAME), Got::Packet(3 * FRAME)]);
    assert_eq!(rig.buffer.stats().lost, 0);
}

#[test]
fn duplicates_are_dropped_whether_queued_or_played() {
    let mut rig = Rig::new();
    assert_eq!(rig.packet(0, 0), Inserted::Queued);
    assert_eq!(rig.packet(0, 1), Inserted::Duplicate);
    assert_eq!(rig.pop(10), Got::Packet(0));
    assert_eq!(rig.packet(0, 12), Inserted::Duplicate, "played already, but a duplicate, not late");
    let stats = rig.buffer.stats();
    assert_eq!((stats.duplicates, stats.late, stats.packets_received), (2, 0, 3));
}

#[test]
fn a_payload_beyond_the_slot_size_is_refused() {
    let mut rig = Rig::new();
    let meta = PacketMeta { sequence: 0, timestamp: 0, ssrc: 1, duration: FRAME };
    let t = rig.at(0);
    assert_eq!(rig.buffer.insert(meta, &[0; MAX_PAYLOAD + 1], t), Inserted::TooLarge);
    assert_eq!(rig.buffer.insert(meta, &[0; MAX_PAYLOAD], t), Inserted::Queued);
}

#[test]
fn one_stray_packet_is_ignored_and_two_agreeing_ones_restart_the_buffer() {
    let mut rig = Rig::new();
    for n in 0..5 {
        rig.packet(n, 20 * u64::from(n));
    }
    assert_eq!(rig.send(2, 900, 77_000, FRAME, 85), Inserted::Stray);
    let got: Vec<Got> = [10, 30, 50, 70, 90].map(|ms| rig.pop(ms)).into();
    assert_eq!(got, [0, 1, 2, 3, 4].map(|n| Got::Packet(n * FRAME)));
    assert_eq!(rig.buffer.stats().resets, 0);

    // A new source takes over: SSRC 2 from timestamp 50,000.
    assert_eq!(rig.send(2, 500, 50_000, FRAME, 100), Inserted::Stray);
    assert_eq!(rig.send(2, 501, 50_000 + FRAME, FRAME, 120), Inserted::Reset);
    // Stragglers of the old source neither play nor flip it back.
    assert_eq!(rig.packet(5, 121), Inserted::Stray);
    assert_eq!(rig.packet(6, 122), Inserted::Stray);
    rig.send(2, 502, 50_000 + 2 * FRAME, FRAME, 140);
    let got: Vec<Got> = [130, 150].map(|ms| rig.pop(ms)).into();
    assert_eq!(got, [Got::Packet(50_000), Got::Packet(50_000 + FRAME)], "the new stream plays within two ticks");
    assert_eq!(rig.buffer.stats().resets, 1);
}

#[test]
fn a_timestamp_leap_backwards_restarts_the_buffer() {
    let mut rig = Rig::new();
    rig.packet(100, 0);
    assert_eq!(rig.pop(10), Got::Packet(100 * FRAME));
    // The sender restarted with the same SSRC and sequence but an earlier clock.
    assert_eq!(rig.send(1, 101, 0, FRAME, 20), Inserted::Stray);
    assert_eq!(rig.send(1, 102, FRAME, FRAME, 40), Inserted::Reset);
    assert_eq!(rig.pop(40), Got::Packet(0));
}

#[test]
fn sequence_numbers_and_timestamps_wrap_around() {
    let mut rig = Rig::with_min_delay(60);
    let before_wrap = u32::MAX - FRAME + 1;
    rig.send(1, 65_535, before_wrap, FRAME, 0);
    rig.send(1, 1, FRAME, FRAME, 41);
    rig.send(1, 0, 0, FRAME, 42);
    let got: Vec<Got> = [50, 70, 90].map(|ms| rig.pop(ms)).into();
    assert_eq!(got, [Got::Packet(before_wrap), Got::Packet(0), Got::Packet(FRAME)]);
    let stats = rig.buffer.stats();
    assert_eq!((stats.lost, stats.late, stats.reordered, stats.resets), (0, 0, 1, 0));
}

#[test]
fn packets_of_any_length_play_back_to_back() {
    let mut rig = Rig::new();
    // 10 ms, 10 ms, 60 ms, 20 ms: the caller pulls until each tick is full.
    let packets = [(0u16, 0u32, 80u32), (1, 80, 80), (2, 160, 480), (3, 640, 160)];
    for (sequence, timestamp, duration) in packets {
        rig.send(1, sequence, timestamp, duration, u64::from(timestamp) / 8 + 10);
    }
    let mut played = Vec::new();
    let mut queued_audio = 0i64;
    // Five ticks: the 100 ms the packets last.
    for tick in 0..5u64 {
        let mut pulls = 0;
        while queued_audio < i64::from(FRAME) && pulls < 4 {
            pulls += 1;
            match rig.buffer.pop(rig.at(20 + 20 * tick)) {
                Popped::Packet { timestamp, duration, .. } => {
                    played.push(timestamp);
                    queued_audio += i64::from(duration);
                }
                Popped::Lost { duration, .. } | Popped::Stretch { duration } | Popped::Silence { duration } => {
                    queued_audio += i64::from(duration)
                }
            }
        }
        queued_audio -= i64::from(FRAME);
    }
    assert_eq!(played, [0, 80, 160, 640]);
    let stats = rig.buffer.stats();
    assert_eq!((stats.lost, stats.drift_skips, stats.drift_stretches), (0, 0, 0));
}

#[test]
fn a_caller_that_stops_pulling_gets_the_recent_audio_not_the_backlog() {
    let mut rig = Rig::new();
    for n in 0..50 {
        rig.packet(n, 20 * u64::from(n));
    }
    let stats = rig.buffer.stats();
    assert_eq!(stats.drift_skips, 50 - SLOTS as u64, "the oldest made room for the newest");
    let now_ms = 20 * 49 + 10;
    match rig.pop(now_ms) {
        Got::Packet(timestamp) => {
            let lag_ms = now_ms - u64::from(timestamp / 8);
            assert!(lag_ms <= 20 + 12, "played {lag_ms} ms behind the sender");
        }
        other => panic!("expected a packet, got {other:?}"),
    }
}

#[test]
fn storage_stays_within_its_budget() {
    let heap = (SLOTS + 1) * MAX_PAYLOAD;
    assert!(std::mem::size_of::<JitterBuffer>() + heap <= 48 * 1024);
}

#[test]
fn stats_serialize_for_the_control_protocol() {
    let value = serde_json::to_value(Rig::new().buffer.stats()).unwrap();
    assert_eq!(value["target_delay_ms"], 20);
    assert_eq!(value["drift_stretches"], 0);
}
