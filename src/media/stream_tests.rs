//! Two streams wired back to back, with explicit time: audio, loss, keys,
//! mute and SRTP as the far end receives them.

use std::time::{Duration, Instant};

use super::*;
use crate::audio::analysis::{dominant_frequency, rms};
use crate::audio::{AudioSource, ToneSource};
use crate::media::codec::OpusParams;
use crate::media::params::{EventPayloads, MediaDirection, SrtpKeys, StreamParams};
use crate::media::srtp::{CryptoSuite, SdesCrypto};

fn negotiated(codec: Codec, srtp: Option<SrtpKeys>) -> StreamParams {
    let pt = codec.static_payload_type().unwrap_or(111);
    let events = if codec.rtp_clock_rate() == 48000 { 102 } else { 101 };
    StreamParams {
        remote: "127.0.0.1:4000".parse().unwrap(),
        codec,
        send_pt: pt,
        receive_pt: pt,
        telephone_event: Some(EventPayloads { send: events, receive: events }),
        direction: MediaDirection::SendRecv,
        srtp,
        opus: OpusParams::offer(),
    }
}

fn config(ssrc: u32) -> StreamConfig {
    StreamConfig {
        ssrc,
        first_sequence: 100,
        first_timestamp: 5000,
        jitter_min_ms: 20,
        jitter_max_ms: 200,
        rtcp_interval: Duration::from_secs(5),
        rtcp_seed: 1,
        cname: "test".into(),
        dtmf_tone_ms: 100,
        dtmf_gap_ms: 60,
        rtp_keepalive: Duration::from_secs(15),
    }
}

/// Alice sends `ticks` frames of a 1 kHz tone to Bob, dropping the packets
/// `drop` picks; returns what Bob played and the keys he heard.
fn talk(
    alice: &mut MediaStream,
    bob: &mut MediaStream,
    ticks: usize,
    drop: impl Fn(usize) -> bool,
) -> (Vec<i16>, String) {
    let t0 = Instant::now();
    let mut tone = ToneSource::new(1000.0);
    let (mut heard, mut keys) = (Vec::new(), String::new());
    let mut packet = Vec::new();
    for n in 0..ticks {
        let now = t0 + Duration::from_millis(20 * n as u64);
        let mut frame = [0i16; FRAME_SAMPLES];
        tone.read_frame(&mut frame);
        if alice.send_frame(&frame, now, &mut packet) && !drop(n) {
            keys.extend(bob.receive_rtp(&packet, "127.0.0.1:4000".parse().unwrap(), now));
        }
        let mut mix = [0i16; FRAME_SAMPLES];
        bob.mix_playout(now, &mut mix);
        heard.extend_from_slice(&mix);
    }
    (heard, keys)
}

#[test]
fn every_codec_carries_the_tone_and_srtp_protects_it() {
    let keys = |tag| SdesCrypto::generate(tag, CryptoSuite::AesCm128HmacSha1_80, [tag as u8; 30]);
    let srtp_a = SrtpKeys { local: keys(1), remote: keys(2) };
    let srtp_b = SrtpKeys { local: keys(2), remote: keys(1) };
    let cases = [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus].map(|c| (c, None, None));
    for (codec, a, b) in cases.into_iter().chain([(Codec::Pcmu, Some(srtp_a), Some(srtp_b))]) {
        let now = Instant::now();
        let mut alice = MediaStream::new(negotiated(codec, a.clone()), &config(1), now).unwrap();
        let mut bob = MediaStream::new(negotiated(codec, b), &config(2), now).unwrap();
        let (heard, _) = talk(&mut alice, &mut bob, 100, |_| false);
        let settled = &heard[heard.len() / 2..];
        assert_eq!(dominant_frequency(settled, PCM_RATE), Some(1000.0), "{codec:?} secure={}", a.is_some());
        assert_eq!(bob.stats().packets_received, 100, "{codec:?}");
        assert_eq!(bob.stats().secure, a.is_some());
    }
}

#[test]
fn tampered_srtp_is_discarded_not_played() {
    let keys = |tag| SdesCrypto::generate(tag, CryptoSuite::AesCm128HmacSha1_32, [tag as u8; 30]);
    let now = Instant::now();
    let mut alice =
        MediaStream::new(negotiated(Codec::Pcmu, Some(SrtpKeys { local: keys(1), remote: keys(2) })), &config(1), now)
            .unwrap();
    let mut bob =
        MediaStream::new(negotiated(Codec::Pcmu, Some(SrtpKeys { local: keys(3), remote: keys(3) })), &config(2), now)
            .unwrap();
    talk(&mut alice, &mut bob, 10, |_| false);
    assert_eq!((bob.stats().packets_received, bob.stats().packets_discarded), (0, 10), "wrong key: nothing plays");
}

#[test]
fn lost_packets_are_concealed_without_gaps() {
    for codec in [Codec::Pcmu, Codec::G722, Codec::Opus] {
        let now = Instant::now();
        let mut alice = MediaStream::new(negotiated(codec, None), &config(1), now).unwrap();
        let mut bob = MediaStream::new(negotiated(codec, None), &config(2), now).unwrap();
        let (heard, _) = talk(&mut alice, &mut bob, 150, |n| n > 20 && n % 10 == 0);
        let stats = bob.stats().jitter_buffer;
        assert!(stats.lost >= 10, "{codec:?}: {stats:?}");
        let frames: Vec<&[i16]> = heard.chunks(FRAME_SAMPLES).skip(10).take(130).collect();
        let silent = frames.iter().filter(|f| rms(f) < 500.0).count();
        assert!(silent <= 2, "{codec:?}: {silent} near-silent frames where packets were lost");
    }
}

#[test]
fn keys_go_out_as_events_and_come_back_as_digits() {
    let now = Instant::now();
    let mut alice = MediaStream::new(negotiated(Codec::Pcma, None), &config(1), now).unwrap();
    let mut bob = MediaStream::new(negotiated(Codec::Pcma, None), &config(2), now).unwrap();
    alice.queue_dtmf("19#").unwrap();
    let (_, keys) = talk(&mut alice, &mut bob, 60, |_| false);
    assert_eq!(keys, "19#");
}

#[test]
fn a_held_direction_stops_sending() {
    let now = Instant::now();
    let mut alice = MediaStream::new(negotiated(Codec::Pcmu, None), &config(1), now).unwrap();
    let mut recv_only = negotiated(Codec::Pcmu, None);
    recv_only.direction = MediaDirection::RecvOnly;
    assert!(alice.can_update_to(&recv_only));
    alice.update(recv_only);
    let mut packet = Vec::new();
    // RFC 6263 §4.6: an empty packet at once and then every 15 s keeps the
    // NAT's mapping of our port; no audio in between.
    assert!(alice.send_frame(&[1000; FRAME_SAMPLES], now, &mut packet), "a keep-alive at once");
    assert_eq!(packet.len(), 12, "an RTP header and no payload");
    let mut sent_at = Vec::new();
    for tick in 1..=1600u64 {
        let at = now + Duration::from_millis(20 * tick);
        if alice.send_frame(&[1000; FRAME_SAMPLES], at, &mut packet) {
            assert_eq!(packet.len(), 12);
            sent_at.push(20 * tick);
        }
    }
    assert_eq!(sent_at, [15_000, 30_000], "the peer holds us: only keep-alives");
}
