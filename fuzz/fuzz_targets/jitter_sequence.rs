//! Packet sequences through the jitter buffer: arrivals with fuzzed
//! sequence numbers, timestamps, SSRCs, durations, sizes and arrival times
//! (reordering, loss, duplicates, jumps, wraps, stray streams, clock drift),
//! interleaved with the playout's pops.
//!
//! Input: `[clock][min_delay_ms][max_delay_ms / 4]`, then 8-byte records
//! `[op][a][b][c][d][e][f][g]`, op modulo 4:
//! - 0, the next packet: sequence + 1, timestamp + one 20 ms frame, after
//!   `a` ms plus `b` / 8 ms of jitter, `c` payload bytes;
//! - 1, a relative packet: sequence + `a` (signed), timestamp + `bc` (signed,
//!   in frames of `d` / 16 of 20 ms), the SSRC changed when `e` is odd,
//!   duration `f` × clock / 1000 (0: a 20 ms frame), after `g` ms;
//! - 2, playout: up to four pops after `a` ms (and `b` µs × 64);
//! - 3, an absolute packet: sequence `ab`, timestamp `cdef`, after `g` ms.
//!
//! Checked beyond "no panic": what is played is a packet that was inserted
//! with that timestamp, no longer than `MAX_PAYLOAD`, and no piece of
//! playout lasts zero time.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use softphoned::media::jitter::{JitterBuffer, JitterConfig, PacketMeta, Popped, MAX_PAYLOAD};

/// Payloads carry their own timestamp so playout can be checked against it.
fn payload(buf: &mut Vec<u8>, timestamp: u32, len: usize) {
    buf.clear();
    buf.extend(timestamp.to_be_bytes().iter().cycle().take(len));
}

fuzz_target!(|input: &[u8]| {
    let [clock, min_ms, max_ms, records @ ..] = input else { return };
    let clock_rate = [8000u32, 16000, 48000, u32::from(*clock) * 100][usize::from(*clock & 3)];
    let config =
        JitterConfig { clock_rate, min_delay_ms: u32::from(*min_ms), max_delay_ms: u32::from(*max_ms) * 4 };
    let mut buffer = JitterBuffer::new(config);
    let frame = (clock_rate / 50).max(1);
    let mut now = Instant::now();
    let (mut sequence, mut timestamp, mut ssrc) = (0u16, 0u32, 0x5eed_u32);
    let mut bytes = Vec::with_capacity(2048);
    for r in records.chunks_exact(8) {
        let [op, a, b, c, d, e, f, g] = [r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]];
        let (meta, len) = match op % 4 {
            0 => {
                sequence = sequence.wrapping_add(1);
                timestamp = timestamp.wrapping_add(frame);
                now += Duration::from_millis(u64::from(a)) + Duration::from_micros(u64::from(b) * 125);
                (PacketMeta { sequence, timestamp, ssrc, duration: 0 }, usize::from(c))
            }
            1 => {
                sequence = sequence.wrapping_add_signed(i16::from(a as i8));
                let step = i64::from(i16::from_be_bytes([b, c])) * i64::from(frame) * i64::from(d) / 16;
                timestamp = timestamp.wrapping_add(step as u32);
                if e & 1 == 1 {
                    ssrc = ssrc.wrapping_mul(2_654_435_761).wrapping_add(1);
                }
                now += Duration::from_millis(u64::from(g));
                let duration = u32::from(f) * clock_rate / 1000;
                (PacketMeta { sequence, timestamp, ssrc, duration }, usize::from(e) * 8)
            }
            2 => {
                now += Duration::from_millis(u64::from(a)) + Duration::from_micros(u64::from(b) * 64);
                for _ in 0..4 {
                    match buffer.pop(now) {
                        Popped::Packet { payload, timestamp, duration } => {
                            assert!(payload.len() <= MAX_PAYLOAD);
                            assert!(duration > 0, "a packet that lasts no time");
                            if payload.len() >= 4 {
                                assert_eq!(payload[..4], timestamp.to_be_bytes(), "played under another timestamp");
                            }
                        }
                        Popped::Lost { duration, next, .. } => {
                            assert!(duration > 0, "a loss that lasts no time");
                            assert!(next.is_none_or(|n| n.len() <= MAX_PAYLOAD));
                        }
                        Popped::Stretch { duration } => assert!(duration > 0),
                        Popped::Silence { duration } => {
                            assert!(duration > 0);
                            break;
                        }
                    }
                }
                continue;
            }
            _ => {
                sequence = u16::from_be_bytes([a, b]);
                timestamp = u32::from_be_bytes([c, d, e, f]);
                now += Duration::from_millis(u64::from(g));
                (PacketMeta { sequence, timestamp, ssrc, duration: 0 }, 160)
            }
        };
        payload(&mut bytes, meta.timestamp, len);
        buffer.insert(meta, &bytes, now);
    }
    let _ = buffer.stats();
});
