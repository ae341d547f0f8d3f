//! RFC 4733 telephone-events as received: RTP datagrams through
//! `media::rtp::parse` into a `DtmfReceiver`, and SIP INFO bodies through
//! `dtmf::parse_info`; then our own sender's packets for fuzzed keys, tone
//! and pause lengths, which the receiver must turn back into those keys.
//!
//! Input: a sender setup `[rate][tone_ms: u16 BE][gap_ms: u16 BE][start
//! timestamp: u32 BE][n][n key bytes]`, then records `[kind][len: u16 BE][len
//! bytes]`: kind 0 an RTP datagram, 1 an `application/dtmf-relay` INFO body,
//! 2 an `application/dtmf` one.
//!
//! Checked beyond "no panic": a key is reported only for an event code that
//! is a key, never twice for the same packet, and what the sender sends is
//! received exactly once per key, in order.

#![no_main]

use libfuzzer_sys::fuzz_target;
use softphoned::media::dtmf::{
    event_to_digit, normalize_digits, parse_info, DtmfReceiver, DtmfSender, DTMF_CONTENT_TYPE, DTMF_RELAY_CONTENT_TYPE,
};
use softphoned::media::rtp;

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Our sender's packets for `keys`, one per tick, fed to a fresh receiver.
fn round_trip(rate: u32, tone_ms: u32, gap_ms: u32, start: u32, keys: &[u8]) {
    let Ok(keys) = std::str::from_utf8(keys) else { return };
    let Ok(keys) = normalize_digits(keys) else { return };
    let Ok(mut sender) = DtmfSender::new(rate, tone_ms, gap_ms) else { return };
    sender.queue(&keys).expect("normalized keys fit the queue");
    let tick = rate / 50;
    let mut receiver = DtmfReceiver::new();
    let mut heard = String::new();
    let mut timestamp = start;
    // 32 keys of at most 2 s with 2 s pauses: 6,400 ticks at most.
    for _ in 0..7_000 {
        if !sender.is_busy() {
            break;
        }
        if let Some(packet) = sender.next_packet(timestamp, tick) {
            heard.extend(receiver.on_packet(packet.timestamp, &packet.payload));
        }
        timestamp = timestamp.wrapping_add(tick);
    }
    assert!(!sender.is_busy(), "the sender never finished {keys:?}");
    assert_eq!(heard, keys, "sent at {rate} Hz, tone {tone_ms} ms, gap {gap_ms} ms from {start}");
}

fuzz_target!(|input: &[u8]| {
    let [rate, t0, t1, g0, g1, s0, s1, s2, s3, n, rest @ ..] = input else { return };
    let n = usize::from(*n).min(rest.len());
    let (keys, mut rest) = rest.split_at(n);
    let rate = [8000, 16000, 48000, 8000 + u32::from(*rate) * 1000][usize::from(*rate & 3)];
    let (tone, gap) = (u32::from(be16(&[*t0, *t1])), u32::from(be16(&[*g0, *g1])));
    round_trip(rate, tone, gap, u32::from_be_bytes([*s0, *s1, *s2, *s3]), keys);

    let mut receiver = DtmfReceiver::new();
    while let [kind, hi, lo, tail @ ..] = rest {
        let len = usize::from(be16(&[*hi, *lo])).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        match kind % 3 {
            0 => {
                let Ok(view) = rtp::parse(bytes) else { continue };
                let payload = &bytes[view.payload_offset..view.payload_offset + view.payload_len];
                if let Some(key) = receiver.on_packet(view.timestamp, payload) {
                    assert_eq!(Some(key), event_to_digit(payload[0]));
                    assert_eq!(receiver.on_packet(view.timestamp, payload), None, "a repeated packet is not a new key");
                }
            }
            kind => {
                let content_type = if kind == 1 { DTMF_RELAY_CONTENT_TYPE } else { DTMF_CONTENT_TYPE };
                let Ok(body) = std::str::from_utf8(bytes) else { continue };
                if let Some(info) = parse_info(content_type, body) {
                    assert!("0123456789*#ABCD".contains(info.digit), "not a key: {:?}", info.digit);
                }
            }
        }
    }
});
