//! One call's audio stream: encodes the agent's 20 ms frames into RTP,
//! decodes the peer's RTP into a short playout queue, and counts both ways.
//! The playout queue is a stand-in for the adaptive jitter buffer to come:
//! it plays packets in arrival order and pads underruns with silence.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use serde::Serialize;

use super::rtp::{self, RtpSender};
use super::{Codec, FRAME_SAMPLES};
use crate::sip::sdp::Negotiated;

/// Most audio the playout queue holds before it drops the oldest: 200 ms,
/// enough for a burst on loopback without letting latency grow unbounded.
const PLAYOUT_CAPACITY: usize = FRAME_SAMPLES * 10;

/// Per-stream counters, as reported in `call.list` and the demo summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct StreamStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Datagrams that were not RTP, or carried a payload type not negotiated.
    pub packets_discarded: u64,
    /// Frames the sink got as silence because nothing had arrived.
    pub playout_underruns: u64,
    /// How far packet arrivals stray from the spacing their timestamps
    /// promise (20 ms for our frames): mean and worst, in microseconds.
    pub arrival_deviation_mean_us: u64,
    pub arrival_deviation_max_us: u64,
}

/// The media half of a connected call.
pub struct MediaStream {
    negotiated: Negotiated,
    sender: RtpSender,
    encoded: [u8; FRAME_SAMPLES],
    decoded: [i16; FRAME_SAMPLES],
    playout: VecDeque<i16>,
    stats: StreamStats,
    last_arrival: Option<(Instant, u32)>,
    deviation_sum_us: u64,
}

impl MediaStream {
    /// `ssrc`, `seq` and `timestamp` are the random initial RTP values.
    pub fn new(negotiated: Negotiated, ssrc: u32, seq: u16, timestamp: u32) -> Self {
        MediaStream {
            sender: RtpSender::new(ssrc, seq, timestamp, negotiated.payload_type),
            negotiated,
            encoded: [0; FRAME_SAMPLES],
            decoded: [0; FRAME_SAMPLES],
            playout: VecDeque::with_capacity(PLAYOUT_CAPACITY),
            stats: StreamStats::default(),
            last_arrival: None,
            deviation_sum_us: 0,
        }
    }

    pub fn codec(&self) -> Codec {
        self.negotiated.codec
    }

    /// Where RTP for this call goes.
    pub fn remote(&self) -> SocketAddr {
        self.negotiated.remote
    }

    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// Encode one 20 ms frame of the agent's audio into an RTP packet in `out`.
    pub fn send_frame(&mut self, pcm: &[i16; FRAME_SAMPLES], out: &mut Vec<u8>) {
        self.negotiated.codec.encode(pcm, &mut self.encoded);
        self.sender.write_packet(&self.encoded, FRAME_SAMPLES as u32, out);
        self.stats.packets_sent += 1;
    }

    /// Take one datagram from the peer. Anything that is not RTP in the
    /// negotiated payload type is counted and dropped: a stray packet must
    /// not disturb the call.
    pub fn receive(&mut self, datagram: &[u8], now: Instant) {
        let Ok(view) = rtp::parse(datagram) else {
            self.stats.packets_discarded += 1;
            return;
        };
        if view.payload_type != self.negotiated.payload_type {
            // telephone-event is decoded by the DTMF layer, not played.
            self.stats.packets_discarded += u64::from(Some(view.payload_type) != self.negotiated.telephone_event);
            return;
        }
        self.stats.packets_received += 1;
        self.note_arrival(now, view.timestamp);
        let payload = &datagram[view.payload_offset..view.payload_offset + view.payload_len];
        for chunk in payload.chunks(FRAME_SAMPLES) {
            let decoded = &mut self.decoded[..chunk.len()];
            self.negotiated.codec.decode(chunk, decoded);
            let overflow = (self.playout.len() + decoded.len()).saturating_sub(PLAYOUT_CAPACITY);
            self.playout.drain(..overflow);
            self.playout.extend(decoded.iter().copied());
        }
    }

    fn note_arrival(&mut self, now: Instant, timestamp: u32) {
        if let Some((previous, previous_ts)) = self.last_arrival {
            let promised_us =
                u64::from(timestamp.wrapping_sub(previous_ts)) * 1_000_000 / u64::from(self.codec().clock_rate());
            let actual_us = now.saturating_duration_since(previous).as_micros() as u64;
            let deviation = actual_us.abs_diff(promised_us);
            self.deviation_sum_us += deviation;
            self.stats.arrival_deviation_max_us = self.stats.arrival_deviation_max_us.max(deviation);
            self.stats.arrival_deviation_mean_us = self.deviation_sum_us / (self.stats.packets_received - 1);
        }
        self.last_arrival = Some((now, timestamp));
    }

    /// Add the next 20 ms of the peer's audio into `mix` (silence if none came).
    pub fn mix_playout(&mut self, mix: &mut [i16; FRAME_SAMPLES]) {
        if self.playout.len() < FRAME_SAMPLES {
            self.stats.playout_underruns += u64::from(self.stats.packets_received > 0);
        }
        for out in mix.iter_mut() {
            match self.playout.pop_front() {
                Some(s) => *out = out.saturating_add(s),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiated(codec: Codec) -> Negotiated {
        Negotiated {
            remote: "127.0.0.1:4000".parse().unwrap(),
            codec,
            payload_type: codec.static_payload_type(),
            telephone_event: Some(101),
        }
    }

    #[test]
    fn audio_survives_a_trip_through_two_streams() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut alice = MediaStream::new(negotiated(codec), 1, 0, 0);
            let mut bob = MediaStream::new(negotiated(codec), 2, 0, 0);
            let mut frame = [0i16; FRAME_SAMPLES];
            for (i, s) in frame.iter_mut().enumerate() {
                *s = ((i as f64 / 8.0 * std::f64::consts::TAU).sin() * 8000.0) as i16;
            }
            let mut packet = Vec::new();
            alice.send_frame(&frame, &mut packet);
            bob.receive(&packet, Instant::now());
            let mut heard = [0i16; FRAME_SAMPLES];
            bob.mix_playout(&mut heard);
            for (sent, got) in frame.iter().zip(heard.iter()) {
                assert!((*sent as i32 - *got as i32).abs() <= 256, "{codec:?}: {sent} vs {got}");
            }
            assert_eq!(bob.stats().packets_received, 1);
        }
    }

    #[test]
    fn foreign_payloads_are_counted_not_played() {
        let mut s = MediaStream::new(negotiated(Codec::Pcmu), 1, 0, 0);
        s.receive(b"garbage", Instant::now());
        let mut other = RtpSender::new(5, 0, 0, 8);
        let mut pkt = Vec::new();
        other.write_packet(&[0xd5; 160], 160, &mut pkt);
        s.receive(&pkt, Instant::now());
        let mut dtmf = RtpSender::new(5, 0, 0, 101);
        dtmf.write_packet(&[1, 0x8a, 0, 160], 0, &mut pkt);
        s.receive(&pkt, Instant::now());
        let mut mix = [0i16; FRAME_SAMPLES];
        s.mix_playout(&mut mix);
        assert_eq!(mix, [0; FRAME_SAMPLES]);
        assert_eq!((s.stats().packets_received, s.stats().packets_discarded), (0, 2));
    }

    #[test]
    fn arrival_deviation_compares_arrival_spacing_with_timestamps() {
        let mut s = MediaStream::new(negotiated(Codec::Pcmu), 1, 0, 0);
        let mut tx = RtpSender::new(5, 0, 0, 0);
        let mut pkt = Vec::new();
        let t0 = Instant::now();
        for ms in [0u64, 20, 45, 60] {
            tx.write_packet(&[0xff; FRAME_SAMPLES], 160, &mut pkt);
            s.receive(&pkt, t0 + std::time::Duration::from_millis(ms));
        }
        // Gaps of 20, 25 and 15 ms against a promised 20: deviations 0, 5, 5 ms.
        assert_eq!(s.stats().arrival_deviation_max_us, 5000);
        assert_eq!(s.stats().arrival_deviation_mean_us, 3333);
    }

    #[test]
    fn playout_is_bounded_and_drops_the_oldest() {
        let mut s = MediaStream::new(negotiated(Codec::Pcmu), 1, 0, 0);
        let mut tx = RtpSender::new(5, 0, 0, 0);
        let mut pkt = Vec::new();
        for i in 0..20u8 {
            // Distinct μ-law codes per packet so we can tell which survived.
            tx.write_packet(&[0x80 + i; FRAME_SAMPLES], 160, &mut pkt);
            s.receive(&pkt, Instant::now());
        }
        let mut first = [0i16; FRAME_SAMPLES];
        s.mix_playout(&mut first);
        assert_eq!(first[0], crate::media::g711::ulaw_decode(0x80 + 10));
    }
}
