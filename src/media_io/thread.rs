//! The `media` thread: it owns the media engine, every call's ports, the
//! microphone, speaker, hold music and denoiser, and runs the 20 ms tick
//! on its own, away from the tokio run loop, so a busy control socket, a
//! large broadcast, SQLite or logging never delays a frame. Each tick it
//! reads every port once (batched, with kernel arrival times), steps the
//! engine and sends what it produced. Between ticks it sleeps until the
//! [`Pacer`] says to tick, or until woken: by a command (the run loop's
//! handle wakes it after queueing one, so commands are carried out at
//! once) or by the sound card's next frame, when the card is the clock
//! (see [`pacer`](super::pacer)). With no media flowing it only waits: an
//! idle daemon costs nothing here. A tick too big for one thread is
//! spread over the media threads (`media.threads`, one per core): the
//! thread runs in a small rayon pool whose other threads take lanes of the
//! tick, so a thousand calls are read, mixed and sent by every core.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use smallvec::SmallVec;

use super::pacer::{Pacer, Step};
use super::socket::{ArrivalClock, PortPair};
use super::{Gains, MediaAudio, MediaOut};
use crate::audio::clock::CardClock;
use crate::audio::{AudioSink, AudioSource, Denoiser};
use crate::call::CallId;
use crate::config::MediaConfig;
use crate::desk::{MediaReport, RecorderCommand};
use crate::media::codec::{Frame, FRAME_SAMPLES};
use crate::media::engine::{Deliver, Engine, EngineConfig, Fork, LegId, Port, Seeds, TickSink};
use crate::media::level::{apply_gain, LevelMeter};
use crate::media::params::StreamParams;
use crate::media::stream::MediaStats;
use crate::recorder::{FrameBatch, Recorder};

/// RTCP comes every few seconds (and rtcp-mux on the RTP port): its own
/// port is read every fifth tick, which halves the reads per call, and
/// after the tick's sends, so that those reads never shift when RTP leaves.
const RTCP_READ_EVERY: u64 = 5;
/// The recorder gets the frames every fifth tick (100 ms): each hand-over
/// wakes its thread, and on a virtual machine a wake-up costs more than
/// writing a call's 20 ms. Pauses and ends hand over what is held first;
/// a crash loses at most the last second anyway.
const RECORD_EVERY: u64 = 5;
/// The thread's timer slack: Linux's default 50 µs would add to every
/// tick's wake-up; 10 µs keeps send pacing tight.
const TIMER_SLACK_NS: libc::c_ulong = 10_000;
/// The tick is never spread below this many calls: one thread does such
/// a tick in well under a millisecond.
const SPREAD_FROM: usize = 32;
/// A spread tick goes back to one thread when one thread's share would
/// fall below this part of `media.spread_above_ms`, so that it does not
/// flip at every tick around the limit.
const KEEP_BELOW: f64 = 0.7;
/// The most media threads; each has a lane of the tick.
pub(super) const MAX_THREADS: usize = 8;

/// What the run loop asks of the media thread.
pub(super) enum Command {
    /// A call takes its port pair; media may start on it.
    Open {
        call: CallId,
        ports: Box<PortPair>,
    },
    Start {
        call: CallId,
        negotiated: Box<StreamParams>,
    },
    /// Close the call's media and report [`MediaReport::Stopped`].
    Stop {
        call: CallId,
    },
    Mute {
        call: CallId,
        muted: bool,
    },
    Record {
        call: CallId,
        rate: Option<u32>,
    },
    Conference {
        call: CallId,
        joined: bool,
    },
    Dtmf {
        call: CallId,
        digits: String,
    },
    Gains(Gains),
    /// Settings for the calls opened from now on (a reload).
    Reconfigure(Box<EngineConfig>),
    Audio {
        source: Box<dyn AudioSource>,
        sink: Box<dyn AudioSink>,
    },
    Recorder(RecorderCommand),
    /// The figures of these calls, in order (`None`: no media).
    Stats {
        calls: Vec<CallId>,
        reply: oneshot::Sender<Vec<Option<MediaStats>>>,
    },
    /// Answered once every command before it is carried out.
    Flush(oneshot::Sender<()>),
}

/// A call's ports, under the engine's leg id.
struct LegIo {
    call: CallId,
    ports: Box<PortPair>,
}

/// What the thread owns.
pub(super) struct MediaThread {
    engine: Engine,
    legs: HashMap<CallId, LegId>,
    io: HashMap<LegId, LegIo>,
    source: Box<dyn AudioSource>,
    sink: Box<dyn AudioSink>,
    /// The clock of the card that `source` or `sink` is: it paces the ticks.
    clock: Option<CardClock>,
    /// Played to a party we hold; silence without one.
    hold_music: Option<Box<dyn AudioSource>>,
    /// RNNoise on the microphone, when `media.noise_suppression` is on.
    denoiser: Option<Box<Denoiser>>,
    recorder: Recorder,
    /// This tick's recorded frames, handed to the recorder after it.
    recorded: FrameBatch,
    /// The other lanes' recorded frames, appended to `recorded` after each
    /// tick so that a call's frames reach the recorder in order.
    lane_recorded: Vec<FrameBatch>,
    /// Lanes a busy tick is spread over: the media threads.
    threads: usize,
    spreading: Spreading,
    gains: Gains,
    meter: LevelMeter,
    out: mpsc::UnboundedSender<MediaOut>,
    capture: Frame,
    music: Frame,
    ticks: u64,
}

impl MediaThread {
    pub(super) fn new(
        audio: MediaAudio,
        config: &MediaConfig,
        recorder: Recorder,
        out: mpsc::UnboundedSender<MediaOut>,
        threads: usize,
    ) -> MediaThread {
        MediaThread {
            engine: Engine::new(engine_config(config)),
            legs: HashMap::new(),
            io: HashMap::new(),
            clock: card_clock(&*audio.source, &*audio.sink),
            source: audio.source,
            sink: audio.sink,
            hold_music: audio.hold_music,
            denoiser: config.noise_suppression.then(Box::<Denoiser>::default),
            recorded: recorder.batch(),
            lane_recorded: (1..threads).map(|_| FrameBatch::default()).collect(),
            threads,
            spreading: Spreading { above: Duration::from_millis(config.spread_above_ms), ..Spreading::default() },
            recorder,
            gains: Gains::default(),
            meter: LevelMeter::default(),
            out,
            capture: [0; FRAME_SAMPLES],
            music: [0; FRAME_SAMPLES],
            ticks: 0,
        }
    }

    pub(super) fn run(mut self, commands: Receiver<Command>) {
        // SAFETY: prctl(PR_SET_TIMERSLACK) takes a plain integer and only
        // changes this thread's timer slack.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, TIMER_SLACK_NS) };
        let mut pacer = Pacer::default();
        // Parking, not a blocking receive: the card's callback can wake a
        // parked thread without allocating or locking (its `unpark`), and
        // the handle unparks after each command. A wake-up that comes while
        // the thread works is kept, so the next park returns at once.
        loop {
            loop {
                match commands.try_recv() {
                    Ok(command) => self.handle(command),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let active = self.engine.is_active();
            if let Some(clock) = &self.clock {
                clock.listen(active);
            }
            if !active {
                pacer.stop();
                std::thread::park();
                continue;
            }
            let now = Instant::now();
            match pacer.poll(now, self.clock.as_ref().map(CardClock::frames)) {
                Step::Tick => self.tick(now),
                Step::Wait(until) => std::thread::park_timeout(until.saturating_duration_since(now)),
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Open { call, ports } => {
                self.stop(&call);
                let leg = self.engine.open(format!("{call}@softphoned"), Instant::now());
                self.legs.insert(call.clone(), leg);
                self.io.insert(leg, LegIo { call, ports });
            }
            Command::Start { call, negotiated } => {
                let Some(&leg) = self.legs.get(&call) else { return };
                let seeds = Seeds {
                    ssrc: rand::random(),
                    first_sequence: rand::random(),
                    first_timestamp: rand::random(),
                    rtcp_seed: rand::random(),
                };
                if let Err(e) = self.engine.start(leg, *negotiated, seeds, Instant::now()) {
                    tracing::error!(%call, error = %e, "media could not start");
                }
            }
            Command::Stop { call } => {
                let stats = self.stop(&call).map(Box::new);
                let _ = self.out.send(MediaOut::Report(MediaReport::Stopped { call, stats }));
            }
            Command::Mute { call, muted } => self.with_leg(&call, |engine, leg| engine.set_muted(leg, muted)),
            Command::Record { call, rate } => self.with_leg(&call, |engine, leg| engine.set_recording(leg, rate)),
            Command::Conference { call, joined } => {
                self.with_leg(&call, |engine, leg| engine.set_conference(leg, joined))
            }
            Command::Dtmf { call, digits } => self.with_leg(&call, |engine, leg| {
                if let Err(e) = engine.queue_dtmf(leg, &digits) {
                    tracing::warn!(%call, error = %e, "keys not sent");
                }
            }),
            Command::Recorder(command) => self.recorder_command(command),
            Command::Gains(gains) => self.gains = gains,
            Command::Reconfigure(config) => self.engine.reconfigure(*config),
            Command::Audio { source, sink } => {
                if let Some(old) = &self.clock {
                    old.listen(false);
                }
                self.clock = card_clock(&*source, &*sink);
                self.source = source;
                self.sink = sink;
            }
            Command::Stats { calls, reply } => {
                let stats = calls.iter().map(|call| self.engine.stats(*self.legs.get(call)?)).collect();
                let _ = reply.send(stats);
            }
            Command::Flush(reply) => {
                let _ = reply.send(());
            }
        }
    }

    /// Frames held for the recorder go first, so a pause or an end comes
    /// after every frame recorded before it.
    fn recorder_command(&mut self, command: RecorderCommand) {
        match command {
            RecorderCommand::Begin { call, path, rate, format, metadata } => {
                self.recorder.begin(&call, path, rate, format, metadata)
            }
            RecorderCommand::Pause { call, paused } => {
                self.hand_over_recorded();
                self.recorder.pause(&call, paused);
            }
            RecorderCommand::End { call, mut metadata } => {
                self.hand_over_recorded();
                metadata.insert("frames_dropped_total".into(), self.recorder.dropped().into());
                self.recorder.end(&call, metadata);
            }
        }
    }

    fn hand_over_recorded(&mut self) {
        if !self.recorded.is_empty() {
            let batch = std::mem::replace(&mut self.recorded, self.recorder.batch());
            self.recorder.write(batch);
        }
    }

    fn with_leg(&mut self, call: &CallId, change: impl FnOnce(&mut Engine, LegId)) {
        if let Some(&leg) = self.legs.get(call) {
            change(&mut self.engine, leg);
        }
    }

    /// Close a call's media (and its ports); its last figures, if it had any.
    fn stop(&mut self, call: &CallId) -> Option<MediaStats> {
        let leg = self.legs.remove(call)?;
        let stats = self.engine.stats(leg);
        self.engine.close(leg);
        self.io.remove(&leg);
        stats
    }

    /// One 20 ms step for every call: read, capture, send, play, report.
    fn tick(&mut self, now: Instant) {
        self.ticks += 1;
        self.source.read_frame(&mut self.capture);
        if let Some(denoiser) = &mut self.denoiser {
            denoiser.process(&mut self.capture);
        }
        apply_gain(&mut self.capture, self.gains.input);
        match &mut self.hold_music {
            Some(music) => music.read_frame(&mut self.music),
            None => self.music.fill(0),
        }
        let clock = ArrivalClock::now();
        let legs = self.engine.legs();
        let lanes = if legs >= SPREAD_FROM && self.spreading.spread { self.threads } else { 1 };
        let started = thread_cpu_time();
        let MediaThread { engine, io, sink, recorded, lane_recorded, out, gains, capture, music, .. } = self;
        let shared = Shared { io, clock: &clock, out };
        let mut speaker = Some(Speaker { sink: &mut **sink, gain: gains.output, played: [0; FRAME_SAMPLES] });
        let mut wires: SmallVec<[Wire; MAX_THREADS]> = std::iter::once(&mut *recorded)
            .chain(lane_recorded.iter_mut())
            .take(lanes)
            .map(|recorded| Wire { shared: &shared, speaker: speaker.take(), recorded })
            .collect();
        engine.tick_in_lanes(now, ntp_now(), capture, music, &mut wires, &Spread);
        self.spreading.observe(thread_cpu_time().saturating_sub(started), lanes, legs);
        let played = wires[0].speaker.as_ref().map_or([0; FRAME_SAMPLES], |speaker| speaker.played);
        drop(wires);
        for lane in lane_recorded.iter_mut() {
            recorded.append(lane);
        }
        if self.ticks % RTCP_READ_EVERY == 0 {
            for (&leg, leg_io) in io.iter() {
                leg_io.ports.rtcp.drain(&clock, |from, at, datagram| {
                    engine.receive(leg, Port::Rtcp, from, datagram, at);
                });
            }
        }
        if self.ticks % RECORD_EVERY == 0 {
            self.hand_over_recorded();
        }
        if let Some(levels) = self.meter.add(&self.capture, &played) {
            let _ = self.out.send(MediaOut::Levels(levels));
        }
    }
}

/// Whether the tick is spread, from what one tick costs a thread: only
/// when one thread would spend more than `above` of the 20 ms on it.
/// Spreading has a price: the other lanes start when their thread wakes,
/// 0.3 to 1 ms later on a virtual machine, varying from tick to tick, so
/// their calls' send pacing is less even (at 1,000 calls here the median
/// deviation went from 0.27 to 0.7-1.0 ms). It is worth it only when one
/// thread would leave too little of the period.
#[derive(Default)]
struct Spreading {
    above: Duration,
    /// One thread's CPU time per call and tick, smoothed (ns).
    per_leg_ns: f64,
    spread: bool,
}

impl Spreading {
    /// A tick of `legs` calls in `lanes` lanes took `cpu` of this thread's
    /// time; each lane had about as much to do.
    fn observe(&mut self, cpu: Duration, lanes: usize, legs: usize) {
        if legs == 0 {
            return;
        }
        let per_leg = cpu.as_nanos() as f64 * lanes as f64 / legs as f64;
        self.per_leg_ns = if self.per_leg_ns == 0.0 { per_leg } else { 0.9 * self.per_leg_ns + 0.1 * per_leg };
        let alone = Duration::from_nanos((self.per_leg_ns * legs as f64) as u64);
        if alone > self.above {
            self.spread = true;
        } else if alone < self.above.mul_f64(KEEP_BELOW) {
            self.spread = false;
        }
    }
}

/// The CPU time this thread has used: what a tick cost, whatever else ran
/// on the core meanwhile.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec.max(0) as u64, now.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// The tick's lanes on the media threads: rayon's `join` runs the second
/// part on another thread of the pool when one is free to take it.
struct Spread;

impl Fork for Spread {
    fn join<A: FnOnce() + Send, B: FnOnce() + Send>(&self, a: A, b: B) {
        rayon::join(a, b);
    }
}

/// The clock of the card among the microphone and the speaker, if any.
fn card_clock(source: &dyn AudioSource, sink: &dyn AudioSink) -> Option<CardClock> {
    source.clock().or_else(|| sink.clock()).cloned()
}

/// The wall clock as a 64-bit NTP timestamp, for RTCP sender reports.
fn ntp_now() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    crate::media::rtcp::ntp_from_unix(since_epoch.as_secs(), since_epoch.subsec_nanos())
}

/// What every lane of a tick reads.
struct Shared<'a> {
    io: &'a HashMap<LegId, LegIo>,
    clock: &'a ArrivalClock,
    out: &'a mpsc::UnboundedSender<MediaOut>,
}

/// The agent's speaker, which only the first lane plays to.
struct Speaker<'a> {
    sink: &'a mut dyn AudioSink,
    gain: f32,
    /// What it played this tick, after the gain.
    played: Frame,
}

/// Where one lane of the engine's tick goes: the ports, the speaker, the
/// recorder and the run loop.
struct Wire<'a> {
    shared: &'a Shared<'a>,
    speaker: Option<Speaker<'a>>,
    recorded: &'a mut FrameBatch,
}

impl Wire<'_> {
    fn report(&self, leg: LegId, report: impl FnOnce(CallId) -> MediaReport) {
        if let Some(io) = self.shared.io.get(&leg) {
            let _ = self.shared.out.send(MediaOut::Report(report(io.call.clone())));
        }
    }
}

impl TickSink for Wire<'_> {
    fn drain(&mut self, leg: LegId, deliver: &mut Deliver) {
        let Shared { io, clock, out } = self.shared;
        let Some(leg_io) = io.get(&leg) else { return };
        leg_io.ports.rtp.drain(clock, |from, at, datagram| {
            if let Some(digit) = deliver(Port::Rtp, from, datagram, at) {
                let _ = out.send(MediaOut::Report(MediaReport::Dtmf { call: leg_io.call.clone(), digit }));
            }
        });
    }

    fn play(&mut self, frame: &Frame) {
        if let Some(speaker) = &mut self.speaker {
            speaker.played = *frame;
            apply_gain(&mut speaker.played, speaker.gain);
            speaker.sink.write_frame(&speaker.played);
        }
    }

    fn send(&mut self, leg: LegId, port: Port, to: SocketAddr, packet: &[u8]) {
        let Some(io) = self.shared.io.get(&leg) else { return };
        let socket = match port {
            Port::Rtp => &io.ports.rtp,
            Port::Rtcp => &io.ports.rtcp,
        };
        // A full socket buffer drops this packet, as the network would.
        if let Err(e) = socket.send_to(packet, to) {
            tracing::debug!(call = %io.call, ?port, error = %e, "send dropped");
        }
    }

    fn record(&mut self, leg: LegId, sent: &[i16], heard: &[i16]) {
        if let Some(io) = self.shared.io.get(&leg) {
            self.recorded.push(&io.call, sent, heard);
        }
    }

    fn timeout(&mut self, leg: LegId) {
        self.report(leg, |call| MediaReport::Timeout { call });
    }

    fn quality(&mut self, leg: LegId, stats: &MediaStats) {
        self.report(leg, |call| MediaReport::Quality { call, stats: Box::new(*stats) });
    }
}

/// The engine's tunables from `[media]`.
pub(super) fn engine_config(config: &MediaConfig) -> EngineConfig {
    EngineConfig {
        jitter_min_ms: config.jitter_min_ms,
        jitter_max_ms: config.jitter_max_ms,
        rtcp_interval: Duration::from_millis(config.rtcp_interval_ms),
        dtmf_tone_ms: config.dtmf_tone_ms,
        dtmf_gap_ms: config.dtmf_gap_ms,
        rtp_keepalive: Duration::from_millis(config.rtp_keepalive_ms),
        media_timeout: Duration::from_millis(config.media_timeout_ms),
        quality_interval: Duration::from_millis(config.quality_interval_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_is_spread_past_the_limit_and_comes_back_well_below_it() {
        let mut spreading = Spreading { above: Duration::from_millis(10), ..Spreading::default() };
        let us = Duration::from_micros;
        // 1,000 calls at 8 µs each alone: 8 ms, under the limit.
        spreading.observe(us(8_000), 1, 1_000);
        assert!(!spreading.spread);
        // They get dearer: 12 µs each; the smoothing takes a few ticks to believe it.
        let mut ticks = 0;
        while !spreading.spread {
            spreading.observe(us(12_000), 1, 1_000);
            ticks += 1;
        }
        assert!((2..30).contains(&ticks), "spread after {ticks} ticks");
        // Spread over two lanes, each does half: the work is still 12 ms alone.
        for _ in 0..50 {
            spreading.observe(us(6_000), 2, 1_000);
        }
        assert!(spreading.spread, "no flipping back while the work stays above the limit");
        // Between 7 and 10 ms alone: it stays spread.
        for _ in 0..50 {
            spreading.observe(us(4_500), 2, 1_000);
        }
        assert!(spreading.spread);
        // Below 7 ms: back on one thread.
        for _ in 0..50 {
            spreading.observe(us(3_000), 2, 1_000);
        }
        assert!(!spreading.spread);
    }

    #[test]
    fn a_limit_of_zero_spreads_from_the_first_tick() {
        let mut spreading = Spreading::default();
        spreading.observe(Duration::from_micros(50), 1, 40);
        assert!(spreading.spread);
    }
}
