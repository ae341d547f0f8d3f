//! The media hot path allocates nothing: a simulated 10 s G.711 call played
//! through the pure engine (500 RTP packets with arrival jitter, one pair
//! arriving in swapped order, some carrying a CSRC and a header extension; the peer's RTCP
//! on its port and multiplexed on the RTP port; 500 ticks 20 ms apart),
//! with a global allocator that counts what the engine's thread allocates
//! while a datagram is received and while a tick runs. The same call with
//! SRTP shows the one allocation per packet `rtc-srtp` makes, and no other.

#[path = "alloc/counting.rs"]
mod counting;

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use counting::Counting;
use softphoned::audio::analysis::dominant_frequency;
use softphoned::audio::{AudioSource, ToneSource};
use softphoned::media::codec::{Codec, Frame, OpusParams, FRAME_SAMPLES, PCM_RATE};
use softphoned::media::engine::{Engine, EngineConfig, LegId, Port, Seeds, TickSink};
use softphoned::media::g711::encode_ulaw_frame;
use softphoned::media::params::{EventPayloads, MediaDirection, SrtpKeys, StreamParams};
use softphoned::media::srtp::{CryptoSuite, SdesCrypto, SrtpSession};
use softphoned::media::stream::MediaStats;

/// The peer: its SDP's address, where its packets come from.
const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);

thread_local! {
    /// Each thread counts its own, and only while asked: the harness runs
    /// the tests on threads of their own, beside threads of its own.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.set(ALLOCATIONS.get() + 1);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting(note);

/// Run `f`, returning how many allocations it made on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.get();
    COUNTING.set(true);
    f();
    COUNTING.set(false);
    ALLOCATIONS.get() - before
}

const PACKETS: u32 = 500;
/// Packets and ticks before counting starts: the first playout and the first
/// packets may size what is sized once.
const WARM_UP: u32 = 5;
const OUR_SSRC: u32 = 0x0102_0304;
const PEER_SSRC: u32 = 0x0a0b_0c0d;
const TICK: Duration = Duration::from_millis(20);

/// What the shell would do with a tick, without allocating: count, and keep
/// the agent's last frame.
#[derive(Default)]
struct Wire {
    sent: [u32; 2],
    qualities: u32,
    timeouts: u32,
    played: Option<Frame>,
}

impl TickSink for Wire {
    fn play(&mut self, frame: &Frame) {
        self.played = Some(*frame);
    }
    fn send(&mut self, _leg: LegId, port: Port, _to: SocketAddr, _packet: &[u8]) {
        self.sent[usize::from(port == Port::Rtcp)] += 1;
    }
    fn record(&mut self, _leg: LegId, _sent: &[i16], _heard: &[i16]) {}
    fn timeout(&mut self, _leg: LegId) {
        self.timeouts += 1;
    }
    fn quality(&mut self, _leg: LegId, _stats: &MediaStats) {
        self.qualities += 1;
    }
}

/// The peer's RTP: PCMU, every fifth packet with a CSRC and an RFC 8285
/// one-byte header extension (an audio level), as mixers and browsers send.
fn rtp(sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let extended = sequence % 5 == 0;
    let mut packet = vec![if extended { 0x91 } else { 0x80 }, 0];
    packet.extend(sequence.to_be_bytes());
    packet.extend(timestamp.to_be_bytes());
    packet.extend(PEER_SSRC.to_be_bytes());
    if extended {
        packet.extend(0x1111_2222u32.to_be_bytes());
        packet.extend([0xBE, 0xDE, 0, 1, 0x10, 0x85, 0, 0]);
    }
    packet.extend(payload);
    packet
}

/// A report block about our stream.
fn block(extended_sequence: u32) -> Vec<u8> {
    let mut block = OUR_SSRC.to_be_bytes().to_vec();
    block.extend([0x10, 0, 0, 3]);
    block.extend(extended_sequence.to_be_bytes());
    block.extend([0; 12]);
    block
}

/// The peer's compound SR + SDES CNAME, as on its RTCP port.
fn sender_report(ntp: u64, extended_sequence: u32) -> Vec<u8> {
    let mut packet = vec![0x81, 200, 0, 12];
    packet.extend(PEER_SSRC.to_be_bytes());
    packet.extend(ntp.to_be_bytes());
    packet.extend([0; 12]);
    packet.extend(block(extended_sequence));
    packet.extend([0x81, 202, 0, 3]);
    packet.extend(PEER_SSRC.to_be_bytes());
    packet.extend([1, 4, b'p', b'e', b'e', b'r', 0, 0]);
    packet
}

/// A receiver report multiplexed on the RTP port (RFC 5761).
fn receiver_report(extended_sequence: u32) -> Vec<u8> {
    let mut packet = vec![0x81, 201, 0, 7];
    packet.extend(PEER_SSRC.to_be_bytes());
    packet.extend(block(extended_sequence));
    packet
}

/// What one simulated call allocated after warm-up, and what it did.
struct Counts {
    receiving: u64,
    datagrams: u32,
    /// RTP packets with a CSRC and a header extension among them.
    extended: u32,
    ticking: u64,
    ticks: u32,
    /// The RTP and RTCP packets the engine sent.
    sent: [u32; 2],
}

/// Play the 10 s call, SRTP-protected when `srtp` is set, and check that
/// it really happened: the agent heard the peer, both sides reported.
fn play(srtp: bool) -> Counts {
    let t0 = Instant::now();
    let mut engine = Engine::new(EngineConfig::default());
    let leg = engine.open("alloc@softphoned".into(), t0);
    let keys = |tag| SdesCrypto::generate(tag, CryptoSuite::AesCm128HmacSha1_80, [tag as u8; 30]);
    let mut peer = srtp.then(|| SrtpSession::new(&keys(2), &keys(1)).unwrap());
    let negotiated = StreamParams {
        remote: PEER,
        codec: Codec::Pcmu,
        send_pt: 0,
        receive_pt: 0,
        telephone_event: Some(EventPayloads { send: 101, receive: 101 }),
        direction: MediaDirection::SendRecv,
        srtp: srtp.then(|| SrtpKeys { local: keys(1), remote: keys(2) }),
        opus: OpusParams::offer(),
    };
    let seeds = Seeds { ssrc: OUR_SSRC, first_sequence: 1000, first_timestamp: 0, rtcp_seed: 3 };
    engine.start(leg, negotiated, seeds, t0).unwrap();
    let mut seal = |plain: Vec<u8>, rtcp: bool| match &mut peer {
        Some(peer) => {
            let mut sealed = Vec::new();
            match rtcp {
                true => peer.protect_rtcp(&plain, &mut sealed).unwrap(),
                false => peer.protect_rtp(&plain, &mut sealed).unwrap(),
            }
            sealed
        }
        None => plain,
    };

    // Everything the peer sends, built before anything is counted: a 1 kHz
    // tone (8 kHz G.711), packet n arriving 0-15 ms after its 20 ms slot.
    let mut peer_tone = ToneSource::new(1000.0);
    let mut packets: Vec<(Instant, Vec<u8>)> = (0..PACKETS)
        .map(|n| {
            let mut wide = [0i16; FRAME_SAMPLES];
            peer_tone.read_frame(&mut wide);
            let narrow: Vec<i16> = wide.iter().step_by(2).copied().collect();
            let mut payload = [0u8; FRAME_SAMPLES / 2];
            encode_ulaw_frame(&narrow, &mut payload);
            let arrival = t0 + TICK * n + Duration::from_millis(u64::from(n * 7919 % 16));
            (arrival, seal(rtp(n as u16, n * 160, &payload), false))
        })
        .collect();
    // One pair reordered on the way: 301 comes in 300's slot and 300 a slot late.
    let (early, late) = packets.split_at_mut(301);
    std::mem::swap(&mut early[300].1, &mut late[0].1);
    let (mut mic, music) = (ToneSource::new(440.0), [0; FRAME_SAMPLES]);
    let mut capture = [0; FRAME_SAMPLES];
    let mut wire = Wire::default();
    let mut counts =
        Counts { receiving: 0, datagrams: 0, extended: 0, ticking: 0, ticks: PACKETS - WARM_UP, sent: [0; 2] };
    for (n, (arrival, packet)) in packets.iter().enumerate() {
        let n = n as u32;
        let rtcp = match n {
            // The first, in the warm-up, meets each source of SRTCP once.
            2 | 100 | 350 => Some((Port::Rtcp, seal(sender_report(u64::from(n) << 32, 1000 + n), true))),
            200 | 450 => Some((Port::Rtp, seal(receiver_report(1000 + n), true))),
            _ => None,
        };
        let received = allocations(|| {
            engine.receive(leg, Port::Rtp, PEER, packet, *arrival);
            if let Some((port, report)) = &rtcp {
                engine.receive(leg, *port, PEER, report, *arrival);
            }
        });
        mic.read_frame(&mut capture);
        let now = t0 + TICK * (n + 1);
        let sent_before = wire.sent;
        let ticked = allocations(|| engine.tick(now, u64::from(n) << 32, &capture, &music, &mut wire));
        if n >= WARM_UP {
            counts.receiving += received;
            counts.ticking += ticked;
            counts.datagrams += 1 + u32::from(rtcp.is_some());
            counts.extended += u32::from(packet[0] & 0x10 != 0);
            for (total, (after, before)) in counts.sent.iter_mut().zip(wire.sent.iter().zip(sent_before)) {
                *total += after - before;
            }
        }
    }
    println!(
        "{}: {} allocations receiving {} datagrams ({} with CSRC and extension), {} in {} ticks ({:.3} per tick) sending {:?} RTP/RTCP packets",
        if srtp { "SRTP" } else { "RTP" },
        counts.receiving,
        counts.datagrams,
        counts.extended,
        counts.ticking,
        counts.ticks,
        counts.ticking as f64 / f64::from(counts.ticks),
        counts.sent,
    );

    let stats = engine.stats(leg).unwrap();
    assert_eq!(stats.packets_received, u64::from(PACKETS));
    assert_eq!(stats.packets_discarded, 0);
    assert!(stats.rtcp.remote_reports >= 4, "{:?}", stats.rtcp);
    assert_eq!(dominant_frequency(&wire.played.unwrap(), PCM_RATE), Some(1000.0));
    assert_eq!(wire.sent[0], PACKETS);
    assert!(wire.sent[1] >= 1 && wire.qualities == 2 && wire.timeouts == 0);
    counts
}

#[test]
fn a_ten_second_call_receives_and_ticks_without_allocating() {
    let counts = play(false);
    assert_eq!(counts.receiving, 0, "the receive path allocated");
    assert_eq!(counts.ticking, 0, "the tick allocated");
}

/// `rtc-srtp` hands every packet it (un)protects back in a fresh buffer
/// (see `media::srtp`), and reads an SRTP packet's header with `rtc-rtp`,
/// which allocates three times for one with a CSRC and an extension. This
/// holds the engine to exactly that, so nothing else creeps in beside it.
#[test]
fn with_srtp_only_rtc_srtp_allocates() {
    let counts = play(true);
    let allowed = u64::from(counts.datagrams + 3 * counts.extended);
    assert!(counts.receiving <= allowed, "{} for {} datagrams", counts.receiving, counts.datagrams);
    // Plus once for the state of our first SRTCP report's source, after the warm-up.
    let sent = u64::from(counts.sent[0] + counts.sent[1]);
    assert!(counts.ticking <= sent + 1, "{} for {sent} packets sent", counts.ticking);
}
