//! The media engine's receive path, as a call's sockets feed it: RTP and
//! RTCP datagrams (RFC 5761 muxed or on their own port), plain or SRTP,
//! interleaved with 20 ms ticks that play out and decode what the jitter
//! buffer releases and send our own RTP and RTCP.
//!
//! Input: one setup byte, then records `[kind][len: u16 BE][len bytes]`
//! (see `Record`), so real packets can be seeds as they are.
//!
//! Setup byte: bits 0-1 codec (PCMU, PCMA, G722, Opus); bit 2 SRTP; bit 3
//! AES_CM_128_HMAC_SHA1_32 instead of _80; bits 4-5 MKI length (none, 1, 4,
//! 128 bytes); bit 6 a small key lifetime (20 packets); bit 7 no
//! telephone-event.
//!
//! With SRTP, a "sealed" record is protected with the peer's key first, so
//! what follows unprotect (RTP/RTCP parsing, DTMF, the jitter buffer, the
//! decoders) is reached with fuzzed content; a "raw" record goes in as is
//! and fuzzes unprotect itself (MKI, tag, index, replay).

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rtc_shared::marshal::{MarshalSize, Unmarshal};
use softphoned::media::codec::{Codec, OpusParams};
use softphoned::media::engine::{Engine, EngineConfig, LegId, Port, Seeds, TickSink};
use softphoned::media::params::{EventPayloads, MediaDirection, SrtpKeys, StreamParams};
use softphoned::media::srtp::{CryptoSuite, Mki, SdesCrypto, SrtpSession};
use softphoned::media::stream::MediaStats;
use softphoned::media::{Frame, FRAME_SAMPLES};

const TICK: Duration = Duration::from_millis(20);
/// Bounds the work of one input (ticks encode and decode audio).
const MAX_TICKS: u32 = 64;

struct Discard;

impl TickSink for Discard {
    fn play(&mut self, _frame: &Frame) {}
    fn send(&mut self, _leg: LegId, _port: Port, _to: SocketAddr, _packet: &[u8]) {}
    fn record(&mut self, _leg: LegId, _sent: &[i16], _heard: &[i16]) {}
    fn timeout(&mut self, _leg: LegId) {}
    fn quality(&mut self, _leg: LegId, _stats: &MediaStats) {}
}

fn key(tag: u32, setup: u8, fill: u8) -> SdesCrypto {
    let suite = if setup & 0x08 != 0 { CryptoSuite::AesCm128HmacSha1_32 } else { CryptoSuite::AesCm128HmacSha1_80 };
    let mut key = SdesCrypto::generate(tag, suite, [fill; 30]);
    key.mki = match setup >> 4 & 3 {
        0 => None,
        1 => Some(Mki { value: 1, length: 1 }),
        2 => Some(Mki { value: 0x0102_0304, length: 4 }),
        _ => Some(Mki { value: u64::MAX, length: 128 }),
    };
    key.lifetime = (setup & 0x40 != 0).then_some(20);
    key
}

fn params(setup: u8, direction: MediaDirection) -> StreamParams {
    let (codec, pt) = [(Codec::Pcmu, 0), (Codec::Pcma, 8), (Codec::G722, 9), (Codec::Opus, 111)][usize::from(setup & 3)];
    let event_pt = if codec == Codec::Opus { 102 } else { 101 };
    StreamParams {
        remote: PEER,
        codec,
        send_pt: pt,
        receive_pt: pt,
        telephone_event: (setup & 0x80 == 0).then_some(EventPayloads { send: event_pt, receive: event_pt }),
        direction,
        srtp: (setup & 0x04 != 0).then(|| SrtpKeys { local: key(1, setup, 0x11), remote: key(1, setup, 0x22) }),
        opus: OpusParams::offer(),
    }
}

/// What one record asks for (its kind byte, modulo 7).
#[derive(Clone, Copy)]
enum Record {
    /// The bytes arrive at the RTP port as they are.
    RawRtp,
    /// The bytes arrive at the RTCP port as they are.
    RawRtcp,
    /// The peer protects the bytes as SRTP (when SRTP is on), to the RTP port.
    SealedRtp,
    /// The peer protects the bytes as SRTCP, to the RTCP port.
    SealedRtcp,
    /// The peer protects the bytes as SRTCP, muxed on the RTP port.
    SealedRtcpMuxed,
    /// A 20 ms tick (the bytes are ignored).
    Tick,
    /// A re-offer: the direction from the first byte (a hold or resume keeps
    /// the stream; the same params restart nothing).
    Restart,
}

/// The peer's RTP address, as its SDP gave it; its RTCP comes from the next port.
const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 20)), 5004);

/// Whether rtc-srtp can encrypt this as RTP without panicking.
fn sealable_rtp(plain: &[u8]) -> bool {
    let mut buf = plain;
    rtc_rtp::header::Header::unmarshal(&mut buf).is_ok_and(|header| header.marshal_size() <= plain.len())
}

fn deliver(
    engine: &mut Engine,
    leg: LegId,
    peer: Option<&mut SrtpSession>,
    sealed: Option<bool>,
    port: Port,
    bytes: &[u8],
    now: Instant,
) {
    let mut protected = Vec::new();
    let datagram = match (peer, sealed) {
        // rtc-srtp 0.21.1 panics when it encrypts an RTP packet whose header,
        // as it re-measures it, is longer than the packet (see the README,
        // regressions/media_receive/): never on our own packets, so such a
        // plaintext is sent raw rather than sealed.
        (Some(_), Some(false)) if !sealable_rtp(bytes) => bytes,
        (Some(peer), Some(rtcp)) => {
            let result =
                if rtcp { peer.protect_rtcp(bytes, &mut protected) } else { peer.protect_rtp(bytes, &mut protected) };
            if result.is_ok() { &protected[..] } else { bytes }
        }
        _ => bytes,
    };
    let from = match port {
        Port::Rtp => PEER,
        Port::Rtcp => SocketAddr::new(PEER.ip(), PEER.port() + 1),
    };
    if let Some(key) = engine.receive(leg, port, from, datagram, now) {
        assert!("0123456789*#ABCD".contains(key), "not a DTMF key: {key:?}");
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&setup, mut rest)) = input.split_first() else { return };
    let config = EngineConfig {
        jitter_min_ms: 20,
        jitter_max_ms: 200,
        rtcp_interval: Duration::from_millis(500),
        dtmf_tone_ms: 100,
        dtmf_gap_ms: 60,
        rtp_keepalive: Duration::from_secs(15),
        media_timeout: Duration::from_secs(1),
        quality_interval: Duration::from_millis(200),
    };
    let mut now = Instant::now();
    let mut engine = Engine::new(config);
    let leg = engine.open("fuzz@example.invalid".into(), now);
    let seeds = Seeds { ssrc: 0x1234_5678, first_sequence: 1, first_timestamp: 0, rtcp_seed: 7 };
    let negotiated = params(setup, MediaDirection::SendRecv);
    // The peer's side of the SRTP session: our remote key is its local one.
    let mut peer = match &negotiated.srtp {
        Some(keys) => Some(SrtpSession::new(&keys.remote, &keys.local).expect("valid keys")),
        None => None,
    };
    engine.start(leg, negotiated, seeds, now).expect("the stream starts");

    let capture: Frame = std::array::from_fn(|i| ((i as i32 * 997) % 8000 - 4000) as i16);
    let music = [0i16; FRAME_SAMPLES];
    let mut ticks = 0;
    while let [kind, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        let record = [
            Record::RawRtp,
            Record::RawRtcp,
            Record::SealedRtp,
            Record::SealedRtcp,
            Record::SealedRtcpMuxed,
            Record::Tick,
            Record::Restart,
        ][usize::from(*kind % 7)];
        match record {
            Record::RawRtp => deliver(&mut engine, leg, None, None, Port::Rtp, bytes, now),
            Record::RawRtcp => deliver(&mut engine, leg, None, None, Port::Rtcp, bytes, now),
            Record::SealedRtp => deliver(&mut engine, leg, peer.as_mut(), Some(false), Port::Rtp, bytes, now),
            Record::SealedRtcp => deliver(&mut engine, leg, peer.as_mut(), Some(true), Port::Rtcp, bytes, now),
            Record::SealedRtcpMuxed => deliver(&mut engine, leg, peer.as_mut(), Some(true), Port::Rtp, bytes, now),
            Record::Tick => {
                if ticks == MAX_TICKS {
                    continue;
                }
                ticks += 1;
                engine.tick(now, u64::from(ticks) << 32, &capture, &music, &mut Discard);
                now += TICK;
            }
            Record::Restart => {
                let direction = [
                    MediaDirection::SendRecv,
                    MediaDirection::SendOnly,
                    MediaDirection::RecvOnly,
                    MediaDirection::Inactive,
                ][usize::from(bytes.first().copied().unwrap_or(0) & 3)];
                let _ = engine.start(leg, params(setup, direction), seeds, now);
            }
        }
    }
    let _ = engine.stats(leg);
});
