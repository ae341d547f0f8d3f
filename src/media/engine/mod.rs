//! Every call's media as one pure machine: the decisions of the 20 ms tick
//! and of each received datagram, with no socket, thread or clock. It owns
//! the legs (one per call: its stream, mute, conference membership,
//! recording rate), the RTCP demultiplexing of RFC 5761, the mix (what the
//! agent hears, what each call is sent, hold music for a held call), the
//! halving of recorded audio to 8 kHz for narrowband calls, the media
//! timeout and the cadence of quality reports. Time, the NTP wallclock and
//! random starting values are arguments; what a tick produces goes to a
//! [`TickSink`] the shell implements (sockets, sound card, recorder, events).
//!
//! Nothing here allocates per packet or per tick once a leg's stream runs:
//! legs live in a slab addressed by a `Copy` [`LegId`], so the receive path
//! carries no call name and looks nothing up by hashing a string.
//!
//! A tick can be split into lanes, each a contiguous run of the slab with
//! its own scratch and its own sink, which the shell's [`Fork`] may run on
//! several threads at once: every lane reads and plays out its legs, the
//! lanes' mixes are added up and played, then every lane sends its legs'
//! frames. The engine never starts a thread itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::codec::{Frame, FRAME_SAMPLES, PCM_RATE};
use super::dtmf::DtmfError;
use super::mixer::{LegMix, Mixer};
use super::stream::{MediaStats, MediaStream, StreamConfig, StreamError};
use crate::media::params::StreamParams;

#[cfg(test)]
mod tests;

/// Largest packet we build (RTP with SRTP's tag, or a compound RTCP report).
const MAX_PACKET: usize = 1500;
/// RFC 5761 §4: RTCP multiplexed on the RTP port is told apart by its
/// second octet, an RTCP packet type of 192-223 (RTP payload types 64-95
/// with the marker bit would collide, which is why SDP never assigns them).
const MUXED_RTCP: std::ops::RangeInclusive<u8> = 192..=223;

/// The tunables of every leg, as plain values.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub jitter_min_ms: u32,
    pub jitter_max_ms: u32,
    /// Nominal RTCP report interval (randomized ±50 % per stream).
    pub rtcp_interval: Duration,
    pub dtmf_tone_ms: u32,
    pub dtmf_gap_ms: u32,
    /// RFC 6263 keep-alive interval while a leg sends no audio; zero = never.
    pub rtp_keepalive: Duration,
    /// No RTP for longer than this, while we expect it, times the leg out; zero = never.
    pub media_timeout: Duration,
    /// How often each leg reports its quality; zero = never.
    pub quality_interval: Duration,
}

/// The daemon's own defaults (`[media]` with nothing set).
impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            jitter_min_ms: 20,
            jitter_max_ms: 200,
            rtcp_interval: Duration::from_secs(5),
            dtmf_tone_ms: 100,
            dtmf_gap_ms: 60,
            rtp_keepalive: Duration::from_secs(15),
            media_timeout: Duration::from_secs(30),
            quality_interval: Duration::from_secs(5),
        }
    }
}

/// A new stream's random starting values (RFC 3550 §5.1), drawn by the caller.
#[derive(Debug, Clone, Copy)]
pub struct Seeds {
    pub ssrc: u32,
    pub first_sequence: u16,
    pub first_timestamp: u32,
    pub rtcp_seed: u64,
}

/// One leg of the engine. A stale id (its leg closed) is ignored, even if
/// the slot was reused since: a datagram queued before a call ended must
/// not reach the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LegId {
    slot: u32,
    generation: u32,
}

/// Which of a leg's two ports a datagram came to, or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Rtp,
    Rtcp,
}

/// Takes one datagram that came for a leg: the port, its source, its bytes
/// and when it arrived; returns the key an RFC 4733 event's first packet
/// carried.
pub type Deliver<'a> = dyn FnMut(Port, SocketAddr, &[u8], Instant) -> Option<char> + 'a;

/// Where a tick's results go, and where it takes what arrived. The engine
/// calls these in a fixed order: per leg `drain`, then `play` once (on the
/// first lane's sink), then per leg `record`, `send` (RTP, then RTCP when
/// due), `timeout`, `quality`.
pub trait TickSink {
    /// Hand `deliver` every datagram that came for `leg` since the last
    /// tick, oldest first. A shell that pushes datagrams through
    /// [`Engine::receive`] has nothing to hand over here.
    fn drain(&mut self, _leg: LegId, _deliver: &mut Deliver) {}
    /// What the agent hears this frame: every leg's playout mixed.
    fn play(&mut self, frame: &Frame);
    /// A packet for a leg's peer.
    fn send(&mut self, leg: LegId, port: Port, to: SocketAddr, packet: &[u8]);
    /// One frame of a recorded leg at its recording rate: what it was sent
    /// (the agent, or the conference mix) and what it was heard saying.
    fn record(&mut self, leg: LegId, sent: &[i16], heard: &[i16]);
    /// The leg received no RTP for longer than the media timeout.
    fn timeout(&mut self, leg: LegId);
    /// Time for the leg's periodic quality report.
    fn quality(&mut self, leg: LegId, stats: &MediaStats);
}

/// Runs two parts of a tick, at once when the shell has the threads for it.
pub trait Fork: Sync {
    fn join<A: FnOnce() + Send, B: FnOnce() + Send>(&self, a: A, b: B);
}

/// One part after the other, on the calling thread: a tick in one lane.
pub struct InTurn;

impl Fork for InTurn {
    fn join<A: FnOnce() + Send, B: FnOnce() + Send>(&self, a: A, b: B) {
        a();
        b();
    }
}

/// One call's part of the media.
struct Leg {
    stream: Option<MediaStream>,
    /// RTCP's CNAME for every stream of this leg.
    cname: String,
    muted: bool,
    /// In the local conference: it hears the other members, they hear it.
    conference: bool,
    /// This tick's playout of the leg.
    heard: Frame,
    /// Recording at this rate (the call's audio rate), when it is.
    record_rate: Option<u32>,
    /// When the stream (re)started receiving, for the media timeout.
    expecting_since: Instant,
    timed_out: bool,
    next_quality: Instant,
    /// The settings the leg was opened with: a reload changes new legs only.
    config: Arc<EngineConfig>,
}

struct Slot {
    generation: u32,
    leg: Option<Leg>,
}

/// See the module documentation.
pub struct Engine {
    /// What legs opened from now on get.
    config: Arc<EngineConfig>,
    slots: Vec<Slot>,
    /// Empty slots, reused before the slab grows.
    free: Vec<u32>,
    /// Each lane's scratch; as many as the widest tick asked for.
    lanes: Vec<Lane>,
    /// Every lane's mix added up: what the agent hears, what a conference member is sent.
    mix: Mixer,
    played: Frame,
}

/// What one lane of a tick works in, so lanes share nothing they write.
struct Lane {
    mixer: Mixer,
    /// A leg's outgoing frame when it is a mix.
    outgoing: Frame,
    /// The two sides of a recorded frame at 8 kHz, for narrowband calls.
    narrow: ([i16; FRAME_SAMPLES / 2], [i16; FRAME_SAMPLES / 2]),
    /// The packet being handed to the sink; reused by every leg.
    packet: Vec<u8>,
}

impl Lane {
    fn new() -> Lane {
        Lane {
            mixer: Mixer::default(),
            outgoing: [0; FRAME_SAMPLES],
            narrow: ([0; FRAME_SAMPLES / 2], [0; FRAME_SAMPLES / 2]),
            packet: Vec::with_capacity(MAX_PACKET),
        }
    }
}

/// The tick's inputs every lane reads.
struct TickInput<'a> {
    now: Instant,
    ntp_now: u64,
    capture: &'a Frame,
    music: &'a Frame,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Engine {
            config: Arc::new(config),
            slots: Vec::new(),
            free: Vec::new(),
            lanes: vec![Lane::new()],
            mix: Mixer::default(),
            played: [0; FRAME_SAMPLES],
        }
    }

    /// Settings for the legs opened from now on (a reload); the legs
    /// already open keep theirs to the end of their call.
    pub fn reconfigure(&mut self, config: EngineConfig) {
        self.config = Arc::new(config);
    }

    /// A new leg, silent until [`start`](Self::start); `cname` names its
    /// streams in RTCP.
    pub fn open(&mut self, cname: String, now: Instant) -> LegId {
        let leg = Leg {
            stream: None,
            cname,
            muted: false,
            conference: false,
            heard: [0; FRAME_SAMPLES],
            record_rate: None,
            expecting_since: now,
            timed_out: false,
            next_quality: now,
            config: self.config.clone(),
        };
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot { generation: 0, leg: None });
                (self.slots.len() - 1) as u32
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.leg = Some(leg);
        LegId { slot, generation: entry.generation }
    }

    /// The leg and its stream are gone; its id is stale from now on.
    pub fn close(&mut self, id: LegId) {
        if self.leg_mut(id).is_some() {
            let slot = &mut self.slots[id.slot as usize];
            slot.leg = None;
            slot.generation = slot.generation.wrapping_add(1);
            self.free.push(id.slot);
        }
    }

    /// Media starts, or changes after a re-offer. A change of codec,
    /// address or keys starts a new stream from `seeds`; a hold or resume
    /// keeps the stream. Resuming reception restarts the media timeout.
    pub fn start(
        &mut self,
        id: LegId,
        negotiated: StreamParams,
        seeds: Seeds,
        now: Instant,
    ) -> Result<(), StreamError> {
        let Some(leg) = leg_in(&mut self.slots, id) else { return Ok(()) };
        let config = &*leg.config;
        let receives = negotiated.direction.receives();
        let was_receiving = leg.stream.as_ref().is_some_and(|s| s.direction().receives());
        match &mut leg.stream {
            Some(stream) if stream.can_update_to(&negotiated) => stream.update(negotiated),
            _ => {
                // A stream that cannot start leaves the leg without media.
                leg.stream = None;
                leg.stream = Some(MediaStream::new(negotiated, &stream_config(config, seeds, &leg.cname), now)?);
            }
        }
        if receives && !was_receiving {
            leg.expecting_since = now;
            leg.timed_out = false;
        }
        if !config.quality_interval.is_zero() && leg.next_quality <= now {
            leg.next_quality = now + config.quality_interval;
        }
        Ok(())
    }

    pub fn set_muted(&mut self, id: LegId, muted: bool) {
        if let Some(leg) = self.leg_mut(id) {
            leg.muted = muted;
        }
    }

    /// Hand the leg's frames to the sink's `record` at `rate` (8000 or 16000), or stop.
    pub fn set_recording(&mut self, id: LegId, rate: Option<u32>) {
        if let Some(leg) = self.leg_mut(id) {
            leg.record_rate = rate;
        }
    }

    /// Take the leg into the local conference, or out of it.
    pub fn set_conference(&mut self, id: LegId, conference: bool) {
        if let Some(leg) = self.leg_mut(id) {
            leg.conference = conference;
        }
    }

    /// Keys to send as RFC 4733 events; nothing happens before media starts.
    pub fn queue_dtmf(&mut self, id: LegId, digits: &str) -> Result<(), DtmfError> {
        match self.leg_mut(id).and_then(|leg| leg.stream.as_mut()) {
            Some(stream) => stream.queue_dtmf(digits),
            None => Ok(()),
        }
    }

    /// A datagram from `from` that arrived at `port` of a leg at `now`;
    /// returns the key it carried, if it was the first packet of an RFC
    /// 4733 event.
    pub fn receive(&mut self, id: LegId, port: Port, from: SocketAddr, datagram: &[u8], now: Instant) -> Option<char> {
        receive_on(self.leg_mut(id)?.stream.as_mut()?, port, from, datagram, now)
    }

    /// Whether any leg has media: without one, a tick does nothing (not even
    /// play silence) and the shell need not read the microphone.
    pub fn is_active(&self) -> bool {
        self.slots.iter().any(|slot| slot.leg.as_ref().is_some_and(|leg| leg.stream.is_some()))
    }

    /// How many legs are open, with media or not.
    pub fn legs(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// One 20 ms step for every leg: play the mix to the agent, send each
    /// leg its frame (`capture` is the agent's microphone, `music` what a
    /// held party hears), record, send RTCP when due, report. `ntp_now` is
    /// the wallclock for RTCP sender reports.
    pub fn tick(
        &mut self,
        now: Instant,
        ntp_now: u64,
        capture: &Frame,
        music: &Frame,
        sink: &mut (impl TickSink + Send),
    ) {
        self.tick_in_lanes(now, ntp_now, capture, music, std::slice::from_mut(sink), &InTurn);
    }

    /// [`tick`](Self::tick) in as many lanes as there are `sinks`, which
    /// `fork` may run at once. Each lane takes an equal run of the slab; a
    /// leg's frames go to its lane's sink, and the agent's frame to the
    /// first. Two parts with a join between them: a conference member's
    /// frame is heard by the others in this same tick, whichever lane they
    /// are in, so the split adds no delay.
    pub fn tick_in_lanes<S: TickSink + Send>(
        &mut self,
        now: Instant,
        ntp_now: u64,
        capture: &Frame,
        music: &Frame,
        sinks: &mut [S],
        fork: &impl Fork,
    ) {
        if !self.is_active() || sinks.is_empty() {
            return;
        }
        if self.lanes.len() < sinks.len() {
            self.lanes.resize_with(sinks.len(), Lane::new);
        }
        let Engine { slots, lanes, mix, played, .. } = self;
        let lanes = &mut lanes[..sinks.len()];
        let per_lane = slots.len().div_ceil(sinks.len()).max(1);
        let input = TickInput { now, ntp_now, capture, music };
        across_lanes(fork, slots, 0, per_lane, lanes, sinks, &|legs, first, lane, sink| {
            play_out(legs, first, lane, sink, input.now)
        });
        mix.start_frame();
        for lane in lanes.iter() {
            mix.add_sums(&lane.mixer);
        }
        sinks[0].play(mix.agent_frame(played));
        let mix = &*mix;
        across_lanes(fork, slots, 0, per_lane, lanes, sinks, &|legs, first, lane, sink| {
            send_out(legs, first, lane, sink, mix, &input)
        });
    }

    pub fn stats(&self, id: LegId) -> Option<MediaStats> {
        let slot = self.slots.get(id.slot as usize).filter(|s| s.generation == id.generation)?;
        Some(slot.leg.as_ref()?.stream.as_ref()?.stats())
    }

    fn leg_mut(&mut self, id: LegId) -> Option<&mut Leg> {
        leg_in(&mut self.slots, id)
    }
}

/// Run `work` on each lane's run of the slab (`slots` starts at slot
/// `first`), halving the lanes at each `fork` so they may run at once.
fn across_lanes<S, F, W>(
    fork: &F,
    slots: &mut [Slot],
    first: usize,
    per_lane: usize,
    lanes: &mut [Lane],
    sinks: &mut [S],
    work: &W,
) where
    S: TickSink + Send,
    F: Fork,
    W: Fn(&mut [Slot], usize, &mut Lane, &mut S) + Sync,
{
    if let ([lane], [sink]) = (&mut *lanes, &mut *sinks) {
        return work(slots, first, lane, sink);
    }
    let half = lanes.len() / 2;
    let cut = (half * per_lane).min(slots.len());
    let (slots_a, slots_b) = slots.split_at_mut(cut);
    let (lanes_a, lanes_b) = lanes.split_at_mut(half);
    let (sinks_a, sinks_b) = sinks.split_at_mut(half);
    fork.join(
        || across_lanes(fork, slots_a, first, per_lane, lanes_a, sinks_a, work),
        || across_lanes(fork, slots_b, first + cut, per_lane, lanes_b, sinks_b, work),
    );
}

/// A lane's first part: what came for each leg, and its playout into the
/// lane's mix. A leg without media still has its ports emptied.
fn play_out(legs: &mut [Slot], first: usize, lane: &mut Lane, sink: &mut impl TickSink, now: Instant) {
    lane.mixer.start_frame();
    for (slot, entry) in legs.iter_mut().enumerate() {
        let Some(leg) = entry.leg.as_mut() else { continue };
        let id = LegId { slot: (first + slot) as u32, generation: entry.generation };
        sink.drain(id, &mut |port, from, datagram, at| receive_on(leg.stream.as_mut()?, port, from, datagram, at));
        let Some(stream) = leg.stream.as_mut() else { continue };
        leg.heard.fill(0);
        stream.mix_playout(now, &mut leg.heard);
        lane.mixer.add_heard(&leg.heard, leg_mix(leg.muted, leg.conference, stream));
    }
}

/// A lane's second part, once every lane's playout is in `mix`: each leg's
/// frame recorded and sent, RTCP when due, the media timeout, quality.
fn send_out(
    legs: &mut [Slot],
    first: usize,
    lane: &mut Lane,
    sink: &mut impl TickSink,
    mix: &Mixer,
    input: &TickInput,
) {
    let TickInput { now, ntp_now, capture, music } = *input;
    let Lane { outgoing, narrow, packet, .. } = lane;
    for (slot, entry) in legs.iter_mut().enumerate() {
        let Some(leg) = entry.leg.as_mut() else { continue };
        let Some(stream) = leg.stream.as_mut() else { continue };
        let id = LegId { slot: (first + slot) as u32, generation: entry.generation };
        let frame = mix.outgoing(leg_mix(leg.muted, leg.conference, stream), capture, music, &leg.heard, outgoing);
        // The agent's side is what this leg was sent (the mix, in a conference).
        match leg.record_rate {
            Some(PCM_RATE) => sink.record(id, frame, &leg.heard),
            Some(_) => {
                halve(frame, &mut narrow.0);
                halve(&leg.heard, &mut narrow.1);
                sink.record(id, &narrow.0, &narrow.1);
            }
            None => {}
        }
        let remote = stream.negotiated().remote;
        if stream.send_frame(frame, now, packet) {
            sink.send(id, Port::Rtp, remote, packet);
        }
        if stream.poll_rtcp(now, ntp_now, packet) {
            let rtcp_to = SocketAddr::new(remote.ip(), remote.port().wrapping_add(1));
            sink.send(id, Port::Rtcp, rtcp_to, packet);
        }
        let config = &*leg.config;
        if stream.direction().receives() && !leg.timed_out && !config.media_timeout.is_zero() {
            let last = stream.last_received().unwrap_or(leg.expecting_since).max(leg.expecting_since);
            if now.saturating_duration_since(last) > config.media_timeout {
                leg.timed_out = true;
                sink.timeout(id);
            }
        }
        if !config.quality_interval.is_zero() && leg.next_quality <= now {
            leg.next_quality = now + config.quality_interval;
            stream.close_quality_window();
            sink.quality(id, &stream.stats());
        }
    }
}

/// A datagram at a leg's `port`: RTCP (its own port, or RFC 5761 muxed) or
/// RTP, whose first packet of an RFC 4733 event gives the key.
fn receive_on(stream: &mut MediaStream, port: Port, from: SocketAddr, datagram: &[u8], now: Instant) -> Option<char> {
    if is_rtcp(port, datagram) {
        stream.receive_rtcp(datagram, from, now);
        None
    } else {
        stream.receive_rtp(datagram, from, now)
    }
}

/// How a leg takes part in the mix. We hold the peer when we send without
/// receiving: it gets the hold music, not the agent or the conference.
fn leg_mix(muted: bool, conference: bool, stream: &MediaStream) -> LegMix {
    let direction = stream.direction();
    LegMix { muted, held: direction.sends() && !direction.receives(), conference }
}

fn leg_in(slots: &mut [Slot], id: LegId) -> Option<&mut Leg> {
    let slot = slots.get_mut(id.slot as usize).filter(|s| s.generation == id.generation)?;
    slot.leg.as_mut()
}

/// Whether a datagram at `port` is RTCP: everything on the RTCP port, and
/// what RFC 5761 multiplexing puts on the RTP port.
fn is_rtcp(port: Port, datagram: &[u8]) -> bool {
    port == Port::Rtcp || datagram.get(1).is_some_and(|pt| MUXED_RTCP.contains(pt))
}

/// 16 kHz to 8 kHz: each pair averaged, which also filters what G.711
/// could not carry anyway.
fn halve(frame: &Frame, out: &mut [i16; FRAME_SAMPLES / 2]) {
    for (o, pair) in out.iter_mut().zip(frame.chunks_exact(2)) {
        *o = ((i32::from(pair[0]) + i32::from(pair[1])) / 2) as i16;
    }
}

fn stream_config(config: &EngineConfig, seeds: Seeds, cname: &str) -> StreamConfig {
    StreamConfig {
        ssrc: seeds.ssrc,
        first_sequence: seeds.first_sequence,
        first_timestamp: seeds.first_timestamp,
        jitter_min_ms: config.jitter_min_ms,
        jitter_max_ms: config.jitter_max_ms,
        rtcp_interval: config.rtcp_interval,
        rtcp_seed: seeds.rtcp_seed,
        cname: cname.to_owned(),
        dtmf_tone_ms: config.dtmf_tone_ms,
        dtmf_gap_ms: config.dtmf_gap_ms,
        rtp_keepalive: config.rtp_keepalive,
    }
}
