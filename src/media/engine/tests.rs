//! The engine's decisions in simulated time, with a sink that keeps what a
//! tick produced: timeouts, quality cadence, RTCP on the RTP port, the
//! narrowband halving of recordings, hold music and mute.

use std::time::{Duration, Instant};

use super::*;
use crate::audio::analysis::{dominant_frequency, rms};
use crate::audio::{AudioSource, ToneSource};
use crate::media::codec::{Codec, OpusParams};
use crate::media::g711::ulaw_decode;
use crate::media::params::{EventPayloads, MediaDirection};
use crate::media::report::QualityEvent;

const TICK: Duration = Duration::from_millis(20);

fn config() -> EngineConfig {
    EngineConfig {
        jitter_min_ms: 20,
        jitter_max_ms: 200,
        rtcp_interval: Duration::from_secs(1),
        dtmf_tone_ms: 100,
        dtmf_gap_ms: 60,
        rtp_keepalive: Duration::from_secs(15),
        media_timeout: Duration::from_secs(2),
        quality_interval: Duration::from_secs(1),
    }
}

fn pcmu(direction: MediaDirection, remote_port: u16) -> StreamParams {
    StreamParams {
        remote: SocketAddr::from(([127, 0, 0, 1], remote_port)),
        codec: Codec::Pcmu,
        send_pt: 0,
        receive_pt: 0,
        telephone_event: Some(EventPayloads { send: 101, receive: 101 }),
        direction,
        srtp: None,
        opus: OpusParams::offer(),
    }
}

fn seeds(ssrc: u32) -> Seeds {
    Seeds { ssrc, first_sequence: 1, first_timestamp: 0, rtcp_seed: 7 }
}

/// Everything one or more ticks produced, by leg.
#[derive(Default)]
struct Kept {
    played: usize,
    sent: Vec<(LegId, Port, SocketAddr, Vec<u8>)>,
    recorded: Vec<(LegId, Vec<i16>, Vec<i16>)>,
    timeouts: Vec<LegId>,
    quality: Vec<LegId>,
    /// (loss %, MOS) of each quality report.
    reported: Vec<(f64, f64)>,
    /// Datagrams waiting for the next tick's `drain`: leg, source, bytes, arrival.
    inbox: Vec<(LegId, SocketAddr, Vec<u8>, Instant)>,
    /// Legs drained by this sink.
    drained: Vec<LegId>,
}

impl TickSink for Kept {
    fn drain(&mut self, leg: LegId, deliver: &mut Deliver) {
        self.drained.push(leg);
        for (_, from, packet, at) in self.inbox.iter().filter(|(to, ..)| *to == leg) {
            deliver(Port::Rtp, *from, packet, *at);
        }
        self.inbox.retain(|(to, ..)| *to != leg);
    }
    fn play(&mut self, _frame: &Frame) {
        self.played += 1;
    }
    fn send(&mut self, leg: LegId, port: Port, to: SocketAddr, packet: &[u8]) {
        self.sent.push((leg, port, to, packet.to_vec()));
    }
    fn record(&mut self, leg: LegId, sent: &[i16], heard: &[i16]) {
        self.recorded.push((leg, sent.to_vec(), heard.to_vec()));
    }
    fn timeout(&mut self, leg: LegId) {
        self.timeouts.push(leg);
    }
    fn quality(&mut self, leg: LegId, stats: &MediaStats) {
        self.quality.push(leg);
        self.reported.push((QualityEvent::new(String::new(), stats).loss_percent, stats.mos));
    }
}

impl Kept {
    /// The G.711 payloads sent to `leg`, decoded.
    fn audio_to(&self, leg: LegId) -> Vec<i16> {
        let packets = self.sent.iter().filter(|(l, port, ..)| *l == leg && *port == Port::Rtp);
        packets.flat_map(|(.., packet)| packet[12..].iter().map(|code| ulaw_decode(*code))).collect()
    }
}

fn tone(hz: f64) -> Frame {
    let mut frame = [0; FRAME_SAMPLES];
    ToneSource::new(hz).read_frame(&mut frame);
    frame
}

/// `ticks` ticks from `from`, the microphone playing `mic`; returns the time after the last.
fn run(engine: &mut Engine, from: Instant, ticks: u32, mic: &Frame, music: &Frame, kept: &mut Kept) -> Instant {
    for n in 0..ticks {
        engine.tick(from + TICK * n, 0, mic, music, kept);
    }
    from + TICK * ticks
}

#[test]
fn the_media_timeout_fires_once_after_silence_and_rearms_on_resume() {
    let t0 = Instant::now();
    let mut engine = Engine::new(config());
    let leg = engine.open("a".into(), t0);
    engine.start(leg, pcmu(MediaDirection::SendRecv, 4000), seeds(1), t0).unwrap();
    let silent = [0; FRAME_SAMPLES];
    let mut kept = Kept::default();
    // 2 s of silence is the limit, not yet beyond it.
    let t = run(&mut engine, t0, 101, &silent, &silent, &mut kept);
    assert!(kept.timeouts.is_empty());
    let t = run(&mut engine, t, 200, &silent, &silent, &mut kept);
    assert_eq!(kept.timeouts, [leg], "once, however long the silence lasts");

    // We hold the peer (nothing to expect), then resume: a new 2 s start.
    engine.start(leg, pcmu(MediaDirection::SendOnly, 4000), seeds(1), t).unwrap();
    let t = run(&mut engine, t, 200, &silent, &silent, &mut kept);
    engine.start(leg, pcmu(MediaDirection::SendRecv, 4000), seeds(1), t).unwrap();
    let t = run(&mut engine, t, 100, &silent, &silent, &mut kept);
    assert_eq!(kept.timeouts.len(), 1, "held and then resumed: the clock restarted");
    run(&mut engine, t, 10, &silent, &silent, &mut kept);
    assert_eq!(kept.timeouts, [leg, leg]);
}

#[test]
fn a_reconfigured_engine_gives_new_settings_to_new_legs_only() {
    let t0 = Instant::now();
    let mut engine = Engine::new(config());
    let live = engine.open("live".into(), t0);
    engine.start(live, pcmu(MediaDirection::SendRecv, 4000), seeds(1), t0).unwrap();
    engine.reconfigure(EngineConfig { media_timeout: Duration::from_millis(500), ..config() });
    let new = engine.open("new".into(), t0);
    engine.start(new, pcmu(MediaDirection::SendRecv, 4002), seeds(2), t0).unwrap();
    let silent = [0; FRAME_SAMPLES];
    let mut kept = Kept::default();
    // 1 s of silence: past the new leg's 500 ms, within the live one's 2 s.
    let t = run(&mut engine, t0, 50, &silent, &silent, &mut kept);
    assert_eq!(kept.timeouts, [new]);
    run(&mut engine, t, 60, &silent, &silent, &mut kept);
    assert_eq!(kept.timeouts, [new, live], "the live leg kept the 2 s it was opened with");
}

#[test]
fn packets_keep_the_timeout_away() {
    let t0 = Instant::now();
    let mut engine = Engine::new(config());
    let (a, b) = (engine.open("a".into(), t0), engine.open("b".into(), t0));
    engine.start(a, pcmu(MediaDirection::SendRecv, 4000), seeds(1), t0).unwrap();
    engine.start(b, pcmu(MediaDirection::SendRecv, 4002), seeds(2), t0).unwrap();
    let mic = tone(1000.0);
    let mut kept = Kept::default();
    for n in 0..300 {
        let now = t0 + TICK * n;
        engine.tick(now, 0, &mic, &mic, &mut kept);
        // a's packets come back to it (as if the peer echoed them); b hears nothing.
        for (_, _, to, packet) in kept.sent.drain(..).filter(|(leg, port, ..)| *leg == a && *port == Port::Rtp) {
            engine.receive(a, Port::Rtp, to, &packet, now);
        }
    }
    assert_eq!(kept.timeouts, [b]);
}

#[test]
fn quality_reports_come_every_interval_from_the_start() {
    let t0 = Instant::now();
    let mut engine = Engine::new(config());
    let leg = engine.open("a".into(), t0);
    let silent = [0; FRAME_SAMPLES];
    let mut kept = Kept::default();
    let t = run(&mut engine, t0, 25, &silent, &silent, &mut kept);
    assert!(kept.quality.is_empty() && kept.played == 0, "no media yet: the tick does nothing");
    engine.start(leg, pcmu(MediaDirection::SendRecv, 4000), seeds(1), t).unwrap();
    assert!(engine.is_active());
    // 1 s after the start, then every second: 3.5 s hold three reports.
    run(&mut engine, t, 175, &silent, &silent, &mut kept);
    assert_eq!(kept.quality, [leg; 3]);
    assert_eq!(kept.played, 175);

    let mut quiet = Engine::new(EngineConfig { quality_interval: Duration::ZERO, ..config() });
    let leg = quiet.open("b".into(), t0);
    quiet.start(leg, pcmu(MediaDirection::SendRecv, 4000), seeds(1), t0).unwrap();
    let mut kept = Kept::default();
    run(&mut quiet, t0, 200, &silent, &silent, &mut kept);
    assert!(kept.quality.is_empty(), "an interval of zero: never");
}

#[test]
fn rtcp_on_the_rtp_port_is_told_apart_by_its_packet_type() {
    for pt in 192..=223u8 {
        assert!(is_rtcp(Port::Rtp, &[0x80, pt, 0, 1]));
    }
    for second in [0x00, 0x80, 101, 0x80 | 101, 96, 0x80 | 63, 224] {
        assert!(!is_rtcp(Port::Rtp, &[0x80, second, 0, 1]), "{second}");
    }
    assert!(is_rtcp(Port::Rtcp, &[0x80, 0, 0, 1]), "anything on the RTCP port");
    assert!(!is_rtcp(Port::Rtp, &[0x80]));

    // Two engines back to back; b's reports reach a on a's RTP port.
    let t0 = Instant::now();
    let (mut a, mut b) = (Engine::new(config()), Engine::new(config()));
    let (leg_a, leg_b) = (a.open("a".into(), t0), b.open("b".into(), t0));
    a.start(leg_a, pcmu(MediaDirection::SendRecv, 4000), seeds(1), t0).unwrap();
    b.start(leg_b, pcmu(MediaDirection::SendRecv, 4002), seeds(2), t0).unwrap();
    let mic = tone(1000.0);
    let (mut from_a, mut from_b) = (Kept::default(), Kept::default());
    for n in 0..200 {
        let now = t0 + TICK * n;
        a.tick(now, 0, &mic, &mic, &mut from_a);
        b.tick(now, 0, &mic, &mic, &mut from_b);
        // Each is the other's remote: a at 127.0.0.1:4002, b at 127.0.0.1:4000.
        for (_, port, _, packet) in from_a.sent.drain(..) {
            b.receive(leg_b, port, SocketAddr::from(([127, 0, 0, 1], 4002)), &packet, now);
        }
        for (_, _, _, packet) in from_b.sent.drain(..) {
            a.receive(leg_a, Port::Rtp, SocketAddr::from(([127, 0, 0, 1], 4000)), &packet, now);
        }
    }
    let stats = a.stats(leg_a).unwrap();
    assert!(stats.rtcp.remote_reports > 0, "b's reports were read as RTCP");
    assert_eq!(stats.packets_discarded, 0, "and none was taken for bad RTP");
}

#[test]
fn halving_averages_each_pair() {
    let mut frame = [0i16; FRAME_SAMPLES];
    for (i, s) in frame.iter_mut().enumerate() {
        *s = i as i16 * 3;
    }
    frame[0] = i16::MAX;
    frame[1] = i16::MAX;
    let mut out = [0; FRAME_SAMPLES / 2];
    halve(&frame, &mut out);
    assert_eq!(out[0], i16::MAX, "no overflow");
    for (i, o) in out.iter().enumerate().skip(1) {
        assert_eq!(i32::from(*o), (6 * i as i32 * 2 + 3) / 2);
    }
}

#[test]
fn a_narrowband_recording_gets_half_the_samples_of_a_wideband_one() {
    let t0 = Instant::now();
    let mut engine = Engine::new(config());
    let (narrow, wide, unrecorded) =
        (engine.open("n".into(), t0), engine.open("w".into(), t0), engine.open("u".into(), t0));
    for (n, leg) in [narrow, wide, unrecorded].into_iter().enumerate() {
        engine.start(leg, pcmu(MediaDirection::SendRecv, 4000 + 2 * n as u16), seeds(n as u32), t0).unwrap();
    }
    engine.set_recording(narrow, Some(8000));
    engine.set_recording(wide, Some(PCM_RATE));
    let mic = tone(1000.0);
    let mut kept = Kept::default();
    run(&mut engine, t0, 1, &mic, &mic, &mut kept);
    let lengths: Vec<_> = kept.recorded.iter().map(|(leg, sent, heard)| (*leg, sent.len(), heard.len())).collect();
    assert_eq!(lengths, [(narrow, 160, 160), (wide, 320, 320)]);
    let (_, narrow_sent, _) = &kept.recorded[0];
    assert_eq!(dominant_frequency(narrow_sent, 8000).map(f64::round), Some(1000.0));
}

#[test]
fn a_held_leg_gets_the_music_and_a_muted_one_silence() {
    let t0 = Instant::now();
    let mut engine = Engine::new(config());
    let (held, muted, plain) = (engine.open("h".into(), t0), engine.open("m".into(), t0), engine.open("p".into(), t0));
    engine.start(held, pcmu(MediaDirection::SendOnly, 4000), seeds(1), t0).unwrap();
    engine.start(muted, pcmu(MediaDirection::SendRecv, 4002), seeds(2), t0).unwrap();
    engine.start(plain, pcmu(MediaDirection::SendRecv, 4004), seeds(3), t0).unwrap();
    engine.set_muted(muted, true);
    let (mic, music) = (tone(1000.0), tone(400.0));
    let mut kept = Kept::default();
    run(&mut engine, t0, 10, &mic, &music, &mut kept);
    assert_eq!(dominant_frequency(&kept.audio_to(held), 8000).map(f64::round), Some(400.0));
    assert_eq!(dominant_frequency(&kept.audio_to(plain), 8000).map(f64::round), Some(1000.0));
    assert!(rms(&kept.audio_to(muted)) < 10.0);
    // RTCP goes to the port above the peer's RTP.
    engine.close(plain);
    let (to_rtcp, sent) = (SocketAddr::from(([127, 0, 0, 1], 4001)), kept.sent.len());
    run(&mut engine, t0 + TICK * 10, 100, &mic, &music, &mut kept);
    assert!(kept.sent[sent..].iter().any(|(leg, port, to, _)| *leg == held && *port == Port::Rtcp && *to == to_rtcp));
    assert!(kept.sent[sent..].iter().all(|(leg, ..)| *leg != plain), "a closed leg is gone");
}

#[test]
fn a_stale_leg_id_reaches_nothing_even_when_its_slot_is_reused() {
    let t0 = Instant::now();
    let mut engine = Engine::new(config());
    let old = engine.open("old".into(), t0);
    engine.close(old);
    let new = engine.open("new".into(), t0);
    assert_ne!(old, new);
    engine.start(new, pcmu(MediaDirection::SendRecv, 4000), seeds(1), t0).unwrap();
    engine.start(old, pcmu(MediaDirection::SendRecv, 4000), seeds(1), t0).unwrap();
    let mut packet = vec![0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
    packet.extend([0xFF; 160]);
    let peer = SocketAddr::from(([127, 0, 0, 1], 4000));
    assert_eq!(engine.receive(old, Port::Rtp, peer, &packet, t0), None);
    assert_eq!(engine.stats(new).unwrap().packets_received, 0);
    assert!(engine.stats(old).is_none());
    engine.receive(new, Port::Rtp, peer, &packet, t0);
    assert_eq!(engine.stats(new).unwrap().packets_received, 1);
}

#[test]
fn rtp_from_anyone_but_the_peer_is_never_heard() {
    let t0 = Instant::now();
    let (mut engine, mut peer, mut intruder) = (Engine::new(config()), Engine::new(config()), Engine::new(config()));
    let leg = engine.open("a".into(), t0);
    engine.start(leg, pcmu(MediaDirection::SendRecv, 4000), seeds(1), t0).unwrap();
    engine.set_recording(leg, Some(8000));
    // The peer is silent; the intruder shouts a stream that looks like the
    // peer's own (same SSRC and numbering), from other addresses.
    let (peer_leg, intruder_leg) = (peer.open("b".into(), t0), intruder.open("b".into(), t0));
    peer.start(peer_leg, pcmu(MediaDirection::SendRecv, 4002), seeds(2), t0).unwrap();
    intruder.start(intruder_leg, pcmu(MediaDirection::SendRecv, 4002), seeds(2), t0).unwrap();
    let (loud, quiet) = (tone(1000.0), [0; FRAME_SAMPLES]);
    let (mut kept, mut from_peer, mut from_intruder) = (Kept::default(), Kept::default(), Kept::default());
    let the_peer = |port| SocketAddr::from(([127, 0, 0, 1], if port == Port::Rtp { 4000 } else { 4001 }));
    let intruders = [SocketAddr::from(([127, 0, 0, 1], 4444)), SocketAddr::from(([192, 0, 2, 66], 4000))];
    for n in 0..100 {
        let now = t0 + TICK * n;
        peer.tick(now, 0, &quiet, &quiet, &mut from_peer);
        intruder.tick(now, 0, &loud, &loud, &mut from_intruder);
        for (_, _, _, packet) in from_intruder.sent.drain(..).filter(|(_, port, ..)| *port == Port::Rtp) {
            intruders.iter().for_each(|&from| _ = engine.receive(leg, Port::Rtp, from, &packet, now));
        }
        for (_, port, _, packet) in from_peer.sent.drain(..) {
            engine.receive(leg, port, the_peer(port), &packet, now);
        }
        engine.tick(now, 0, &quiet, &quiet, &mut kept);
    }
    let heard: Vec<i16> = kept.recorded.iter().flat_map(|(_, _, heard)| heard.iter().copied()).collect();
    assert!(heard.iter().all(|s| s.unsigned_abs() < 100), "the intruder's tone reached the call");
    let stats = engine.stats(leg).unwrap();
    assert!(stats.packets_received >= 90, "the peer was heard: {stats:?}");
    assert!(stats.packets_discarded >= 180, "both intruders counted: {stats:?}");
}

#[test]
fn an_outage_shows_in_the_quality_report_while_it_lasts() {
    let t0 = Instant::now();
    let (mut engine, mut peer) = (Engine::new(config()), Engine::new(config()));
    let leg = engine.open("a".into(), t0);
    engine.start(leg, pcmu(MediaDirection::SendRecv, 4000), seeds(1), t0).unwrap();
    let peer_leg = peer.open("b".into(), t0);
    peer.start(peer_leg, pcmu(MediaDirection::SendRecv, 4002), seeds(2), t0).unwrap();
    let mic = tone(1000.0);
    let (mut kept, mut from_peer) = (Kept::default(), Kept::default());
    // 3 s of audio, 1.5 s of nothing (within the 2 s media timeout), 2 s of audio again.
    for n in 0..325 {
        let now = t0 + TICK * n;
        peer.tick(now, 0, &mic, &mic, &mut from_peer);
        let outage = (150..225).contains(&n);
        for (_, _, _, packet) in from_peer.sent.drain(..).filter(|(_, port, ..)| *port == Port::Rtp) {
            if !outage {
                engine.receive(leg, Port::Rtp, SocketAddr::from(([127, 0, 0, 1], 4000)), &packet, now);
            }
        }
        engine.tick(now, 0, &mic, &mic, &mut kept);
    }
    // One report a second, from 1 s on: the one at 4 s covers a second of nothing.
    let loss: Vec<f64> = kept.reported.iter().map(|(loss, _)| loss.round()).collect();
    let mos: Vec<f64> = kept.reported.iter().map(|(_, mos)| *mos).collect();
    assert!(loss[1..3].iter().all(|&l| l == 0.0), "before: {loss:?}");
    assert!(loss[3] >= 90.0, "the second with no audio at all: {loss:?}");
    assert!(mos[3] < 2.0 && mos[2] > 4.0, "MOS falls with it: {mos:?}");
    assert_eq!(loss[5], 0.0, "and recovers: {loss:?}");
    assert!(kept.timeouts.is_empty(), "1.5 s is no media timeout");
}

/// Every part on a thread of its own, as the shell's pool may run them.
struct Threads;

impl Fork for Threads {
    fn join<A: FnOnce() + Send, B: FnOnce() + Send>(&self, a: A, b: B) {
        std::thread::scope(|scope| {
            scope.spawn(b);
            a();
        });
    }
}

#[test]
fn a_tick_in_lanes_on_threads_keeps_each_leg_in_its_lane_and_the_conference_whole() {
    let t0 = Instant::now();
    let mut engine = Engine::new(config());
    let legs: Vec<LegId> = (0..8).map(|n| engine.open(format!("{n}"), t0)).collect();
    for (n, leg) in legs.iter().enumerate() {
        engine.start(*leg, pcmu(MediaDirection::SendRecv, 4000 + 2 * n as u16), seeds(n as u32), t0).unwrap();
    }
    // The first and the last leg: one in each lane, both in the conference.
    let (first, last) = (legs[0], legs[7]);
    engine.set_conference(first, true);
    engine.set_conference(last, true);
    let mut peers: Vec<(Engine, Frame, Kept)> = [(4000u16, 700.0), (4014, 1100.0)]
        .into_iter()
        .map(|(port, hz)| {
            let mut peer = Engine::new(config());
            let leg = peer.open("peer".into(), t0);
            peer.start(leg, pcmu(MediaDirection::SendRecv, port), seeds(9), t0).unwrap();
            (peer, tone(hz), Kept::default())
        })
        .collect();
    let mic = tone(400.0);
    let mut lanes = [Kept::default(), Kept::default()];
    for n in 0..50 {
        let now = t0 + TICK * n;
        for ((peer, voice, from_peer), (ours, lane)) in peers.iter_mut().zip([(first, 0), (last, 1)]) {
            peer.tick(now, 0, voice, voice, from_peer);
            let from = SocketAddr::from(([127, 0, 0, 1], 4000 + 2 * ours.slot as u16));
            for (_, port, _, packet) in from_peer.sent.drain(..) {
                if port == Port::Rtp {
                    lanes[lane].inbox.push((ours, from, packet, now));
                }
            }
        }
        engine.tick_in_lanes(now, 0, &mic, &mic, &mut lanes, &Threads);
    }
    let [lane_a, lane_b] = &lanes;
    assert_eq!((lane_a.played, lane_b.played), (50, 0), "the agent's frame is played once, by the first lane");
    assert!(lane_a.drained.iter().all(|leg| legs[..4].contains(leg)), "the first lane reads the first half");
    assert!(lane_b.drained.iter().all(|leg| legs[4..].contains(leg)), "the second lane the rest");
    assert!(lane_a.sent.iter().all(|(leg, ..)| legs[..4].contains(leg)));
    assert!(lane_b.sent.iter().all(|(leg, ..)| legs[4..].contains(leg)));
    let level = |audio: &[i16], hz| crate::audio::analysis::tone_amplitude(&audio[audio.len() / 2..], 8000, hz);
    let (to_first, to_last) = (lane_a.audio_to(first), lane_b.audio_to(last));
    assert!(level(&to_first, 1100.0) > 1000.0, "the first hears the last's peer across lanes");
    assert!(level(&to_last, 700.0) > 1000.0, "and the last the first's");
    assert!(level(&to_first, 400.0) > 1000.0 && level(&to_last, 400.0) > 1000.0, "both hear the agent");
    assert!(level(&to_first, 700.0) < 300.0, "nobody hears itself");
}
