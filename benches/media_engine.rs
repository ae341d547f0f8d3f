//! What the pure media engine costs, without sockets: one 20 ms tick with
//! 1, 10 and 100 G.711 calls (each call's packet decoded out of its jitter
//! buffer, every call mixed, a frame encoded and packetized per call, the
//! recorded frames halved to 8 kHz, RTCP and quality when due), and one
//! received RTP packet (parse, RTCP statistics, jitter buffer insert).
//! Simulated time moves 20 ms per iteration and every call receives one
//! packet per tick, so the buffers stay in their steady state however long
//! criterion runs.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use softphoned::audio::{AudioSource, ToneSource};
use softphoned::media::codec::{Codec, Frame, OpusParams, FRAME_SAMPLES};
use softphoned::media::engine::{Engine, EngineConfig, LegId, Port, Seeds, TickSink};
use softphoned::media::g711::encode_ulaw_frame;
use softphoned::media::params::{EventPayloads, MediaDirection, StreamParams};
use softphoned::media::stream::MediaStats;

const TICK: Duration = Duration::from_millis(20);

/// Keeps a checksum of what a tick hands out, so none of it is optimized away.
#[derive(Default)]
struct Discard(u64);

impl TickSink for Discard {
    fn play(&mut self, frame: &Frame) {
        self.0 += frame[0] as u64;
    }
    fn send(&mut self, _leg: LegId, _port: Port, _to: SocketAddr, packet: &[u8]) {
        self.0 += packet.len() as u64;
    }
    fn record(&mut self, _leg: LegId, sent: &[i16], _heard: &[i16]) {
        self.0 += sent[0] as u64;
    }
    fn timeout(&mut self, _leg: LegId) {}
    fn quality(&mut self, _leg: LegId, stats: &MediaStats) {
        self.0 += stats.packets_received;
    }
}

/// `calls` PCMU calls, each recorded at 8 kHz, and the peers' packets.
struct Calls {
    engine: Engine,
    legs: Vec<LegId>,
    /// One peer packet; its sequence number and timestamp are rewritten per tick.
    packet: Vec<u8>,
    sequence: u16,
    now: Instant,
    mic: Frame,
    sink: Discard,
}

/// Call `n`'s peer: where its RTP comes from and ours goes.
fn peer(n: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 20_000 + 2 * n as u16))
}

impl Calls {
    fn new(calls: usize) -> Self {
        let now = Instant::now();
        let mut engine = Engine::new(EngineConfig::default());
        let legs = (0..calls)
            .map(|n| {
                let leg = engine.open(format!("call{n}@softphoned"), now);
                let negotiated = StreamParams {
                    remote: peer(n),
                    codec: Codec::Pcmu,
                    send_pt: 0,
                    receive_pt: 0,
                    telephone_event: Some(EventPayloads { send: 101, receive: 101 }),
                    direction: MediaDirection::SendRecv,
                    srtp: None,
                    opus: OpusParams::offer(),
                };
                let seeds = Seeds { ssrc: n as u32, first_sequence: 0, first_timestamp: 0, rtcp_seed: n as u64 };
                engine.start(leg, negotiated, seeds, now).unwrap();
                engine.set_recording(leg, Some(8000));
                leg
            })
            .collect();
        let mut tone = [0i16; FRAME_SAMPLES];
        ToneSource::new(1000.0).read_frame(&mut tone);
        let narrow: Vec<i16> = tone.iter().step_by(2).copied().collect();
        let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x5e, 0xed, 0, 1];
        packet.extend([0; FRAME_SAMPLES / 2]);
        encode_ulaw_frame(&narrow, &mut packet[12..]);
        let mut mic = [0; FRAME_SAMPLES];
        ToneSource::new(440.0).read_frame(&mut mic);
        let mut calls = Calls { engine, legs, packet, sequence: 0, now, mic, sink: Discard::default() };
        for _ in 0..50 {
            calls.receive_all();
            calls.tick();
        }
        calls
    }

    /// The next packet of every call's peer, arriving now.
    fn receive_all(&mut self) {
        self.next_packet();
        for (n, leg) in self.legs.iter().enumerate() {
            self.engine.receive(*leg, Port::Rtp, peer(n), &self.packet, self.now);
        }
    }

    fn next_packet(&mut self) {
        self.packet[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        self.packet[4..8].copy_from_slice(&(u32::from(self.sequence) * 160).to_be_bytes());
        self.sequence = self.sequence.wrapping_add(1);
    }

    fn tick(&mut self) {
        self.now += TICK;
        self.engine.tick(self.now, 0, &self.mic, &[0; FRAME_SAMPLES], &mut self.sink);
    }
}

fn tick_with_calls(c: &mut Criterion) {
    let mut group = c.benchmark_group("media engine tick, G.711 calls");
    for n in [1, 10, 100] {
        let mut calls = Calls::new(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            // Only the tick is timed; the packets it plays are delivered untimed.
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    calls.receive_all();
                    let start = Instant::now();
                    calls.tick();
                    spent += start.elapsed();
                }
                spent
            })
        });
        black_box(calls.sink.0);
    }
    group.finish();
}

fn one_received_packet(c: &mut Criterion) {
    let mut calls = Calls::new(1);
    let leg = calls.legs[0];
    c.bench_function("media engine, one received G.711 packet", |b| {
        // Only the receive is timed; the tick that plays the packet is not.
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                calls.next_packet();
                let start = Instant::now();
                black_box(calls.engine.receive(leg, Port::Rtp, peer(0), black_box(&calls.packet), calls.now));
                spent += start.elapsed();
                calls.tick();
            }
            spent
        })
    });
    assert_eq!(calls.engine.stats(leg).unwrap().packets_discarded, 0);
}

criterion_group!(benches, tick_with_calls, one_received_packet);
criterion_main!(benches);
