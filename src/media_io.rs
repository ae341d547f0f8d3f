//! The media IO of all calls (floor 5) around the pure `media::engine`: a UDP pair
//! per call (RTP on an even port, RTCP on the next; symmetric: we send from
//! where we receive), a receive task per socket reading into pooled buffers,
//! and the 20 ms tick's IO: microphone, denoiser and hold music in; the
//! engine's playout, packets, recorded frames and verdicts out.
//!
//! Every decision (demultiplexing, mixing, timeouts, quality cadence) is the
//! engine's; this file binds, receives, sends and translates a leg's id to
//! its call.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::audio::{AudioSink, AudioSource, Denoiser};
use crate::call::CallId;
use crate::config::MediaConfig;
use crate::desk::MediaReport;
use crate::media::codec::{Frame, FRAME_SAMPLES};
use crate::media::dtmf::DtmfError;
use crate::media::engine::{Engine, EngineConfig, LegId, Port, Seeds, TickSink};
use crate::media::level::{apply_gain, LevelMeter, Levels, MAX_GAIN};
use crate::media::params::StreamParams;
use crate::media::stream::MediaStats;
use crate::recorder::Recorder;

/// Largest datagram we read.
const MAX_DATAGRAM: usize = 1500;
/// Tries at finding a free even/odd port pair before giving up.
const PORT_PAIR_TRIES: usize = 32;
/// Buffers a socket's receive task may have handed to the run loop at once.
/// A call sends one packet per 20 ms, so a few cover a run loop that is a
/// tick behind; when all are out, further packets wait in the socket.
const RTP_BUFFERS: usize = 4;
/// RTCP comes every few seconds.
const RTCP_BUFFERS: usize = 2;

/// A receive buffer; each socket owns a fixed set, lent out one per datagram.
type Buffer = Box<[u8; MAX_DATAGRAM]>;

/// A datagram that arrived on one of a call's ports, in a buffer of the
/// socket's pool that goes back to it once the engine has read it.
pub struct RtpIn {
    leg: LegId,
    port: Port,
    from: SocketAddr,
    at: Instant,
    len: usize,
    buffer: Buffer,
}

/// One of a call's sockets, with its receive task and the way its buffers come back.
struct Socket {
    udp: Arc<UdpSocket>,
    free: mpsc::Sender<Buffer>,
    receiver: JoinHandle<()>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

/// A call's IO: what the engine's leg id stands for.
struct LegIo {
    call: CallId,
    rtp: Socket,
    rtcp: Socket,
}

impl LegIo {
    fn socket(&self, port: Port) -> &Socket {
        match port {
            Port::Rtp => &self.rtp,
            Port::Rtcp => &self.rtcp,
        }
    }
}

pub struct MediaEngine {
    engine: Engine,
    legs: HashMap<CallId, LegId>,
    io: HashMap<LegId, LegIo>,
    source: Box<dyn AudioSource>,
    sink: Box<dyn AudioSink>,
    /// Played to a party we hold; silence without one.
    hold_music: Option<Box<dyn AudioSource>>,
    /// RNNoise on the microphone, when `media.noise_suppression` is on.
    denoiser: Option<Box<Denoiser>>,
    rtp_in: mpsc::Sender<RtpIn>,
    bind_ip: IpAddr,
    /// Port pairs bound ahead of need (the desk's lines), by RTP address:
    /// binding takes ~150 µs, which a countdown's dial should not wait for.
    spares: HashMap<SocketAddr, (Arc<UdpSocket>, Arc<UdpSocket>)>,
    capture: Frame,
    music: Frame,
    recorder: Recorder,
    /// The agent's microphone and speaker gains (`audio.volume`).
    gains: Gains,
    meter: LevelMeter,
    /// The latest levels, for the shell to publish (`audio.level`).
    levels: Option<Levels>,
}

/// `audio.volume`: microphone and speaker, 0.0 to 2.0.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Gains {
    pub input: f32,
    pub output: f32,
}

impl Default for Gains {
    fn default() -> Self {
        Gains { input: 1.0, output: 1.0 }
    }
}

impl MediaEngine {
    pub fn new(
        source: Box<dyn AudioSource>,
        sink: Box<dyn AudioSink>,
        hold_music: Option<Box<dyn AudioSource>>,
        bind_ip: IpAddr,
        config: MediaConfig,
        rtp_in: mpsc::Sender<RtpIn>,
        recorder: Recorder,
    ) -> Self {
        MediaEngine {
            engine: Engine::new(EngineConfig {
                jitter_min_ms: config.jitter_min_ms,
                jitter_max_ms: config.jitter_max_ms,
                rtcp_interval: Duration::from_millis(config.rtcp_interval_ms),
                dtmf_tone_ms: config.dtmf_tone_ms,
                dtmf_gap_ms: config.dtmf_gap_ms,
                media_timeout: Duration::from_millis(config.media_timeout_ms),
                quality_interval: Duration::from_millis(config.quality_interval_ms),
            }),
            legs: HashMap::new(),
            io: HashMap::new(),
            source,
            sink,
            hold_music,
            denoiser: config.noise_suppression.then(Box::<Denoiser>::default),
            rtp_in,
            bind_ip,
            spares: HashMap::new(),
            capture: [0; FRAME_SAMPLES],
            music: [0; FRAME_SAMPLES],
            recorder,
            gains: Gains::default(),
            meter: LevelMeter::default(),
            levels: None,
        }
    }

    /// Set the microphone and/or speaker gain (each within 0.0..=2.0).
    pub fn set_gains(&mut self, input: Option<f32>, output: Option<f32>) -> Gains {
        let clamp = |gain: f32| gain.clamp(0.0, MAX_GAIN);
        self.gains =
            Gains { input: input.map_or(self.gains.input, clamp), output: output.map_or(self.gains.output, clamp) };
        self.gains
    }

    /// Levels measured since the last call, every 240 ms of a tick.
    pub fn take_levels(&mut self) -> Option<Levels> {
        self.levels.take()
    }

    /// Use another microphone and speaker from now on (device switch or loss).
    pub fn replace_audio(&mut self, source: Box<dyn AudioSource>, sink: Box<dyn AudioSink>) {
        self.source = source;
        self.sink = sink;
    }

    /// Bind a port pair for a call to come (a desk line), and keep it
    /// until a call takes it; returns the RTP address.
    pub fn bind_line(&mut self) -> std::io::Result<SocketAddr> {
        let (rtp, rtcp) = self.bind_pair()?;
        let local = rtp.local_addr()?;
        self.spares.insert(local, (rtp, rtcp));
        Ok(local)
    }

    /// Close a port pair no call took.
    pub fn release(&mut self, rtp: SocketAddr) {
        self.spares.remove(&rtp);
    }

    /// Give `call` the port pair bound at `rtp` (a line's), and start receiving on it.
    pub fn open(&mut self, call: &CallId, rtp: SocketAddr, now: Instant) {
        let Some((rtp, rtcp)) = self.spares.remove(&rtp) else {
            tracing::error!(%call, %rtp, "no port pair bound there: the call has no media");
            return;
        };
        self.stop(call);
        let leg = self.engine.open(format!("{call}@softphoned"), now);
        let io = LegIo {
            call: call.clone(),
            rtp: self.receive_on(call, leg, Port::Rtp, rtp, RTP_BUFFERS),
            rtcp: self.receive_on(call, leg, Port::Rtcp, rtcp, RTCP_BUFFERS),
        };
        self.legs.insert(call.clone(), leg);
        self.io.insert(leg, io);
    }

    /// Start a socket's receive task with its pool of `buffers`.
    fn receive_on(&self, call: &CallId, leg: LegId, port: Port, udp: Arc<UdpSocket>, buffers: usize) -> Socket {
        let (free, pool) = mpsc::channel(buffers);
        for _ in 0..buffers {
            free.try_send(Box::new([0; MAX_DATAGRAM])).expect("the channel holds the whole pool");
        }
        let task = receive_loop(call.clone(), leg, port, udp.clone(), self.rtp_in.clone(), pool);
        Socket { udp, free, receiver: tokio::spawn(task) }
    }

    fn bind_pair(&self) -> std::io::Result<(Arc<UdpSocket>, Arc<UdpSocket>)> {
        let mut last_error = None;
        for _ in 0..PORT_PAIR_TRIES {
            let rtp = std::net::UdpSocket::bind((self.bind_ip, 0))?;
            let port = rtp.local_addr()?.port();
            if port % 2 == 1 || port == u16::MAX {
                continue;
            }
            match std::net::UdpSocket::bind((self.bind_ip, port + 1)) {
                Ok(rtcp) => return Ok((tokio_socket(rtp)?, tokio_socket(rtcp)?)),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::other("no free RTP/RTCP port pair")))
    }

    /// Media starts, or changes after a re-offer. A change of codec,
    /// address or keys starts a new stream; a hold or resume keeps it.
    pub fn start(&mut self, call: &CallId, negotiated: StreamParams, now: Instant) {
        let Some(&leg) = self.legs.get(call) else { return };
        let seeds = Seeds {
            ssrc: rand::random(),
            first_sequence: rand::random(),
            first_timestamp: rand::random(),
            rtcp_seed: rand::random(),
        };
        if let Err(e) = self.engine.start(leg, negotiated, seeds, now) {
            tracing::error!(%call, error = %e, "media could not start");
        }
    }

    pub fn stop(&mut self, call: &CallId) {
        if let Some(leg) = self.legs.remove(call) {
            self.engine.close(leg);
            self.io.remove(&leg);
        }
    }

    pub fn set_muted(&mut self, call: &CallId, muted: bool) {
        if let Some(&leg) = self.legs.get(call) {
            self.engine.set_muted(leg, muted);
        }
    }

    /// Hand the call's frames to the recorder (at `rate`: 8000 or 16000), or stop.
    pub fn set_recording(&mut self, call: &CallId, rate: Option<u32>) {
        if let Some(&leg) = self.legs.get(call) {
            self.engine.set_recording(leg, rate);
        }
    }

    /// Take the call into the local conference, or out of it.
    pub fn set_conference(&mut self, call: &CallId, conference: bool) {
        if let Some(&leg) = self.legs.get(call) {
            self.engine.set_conference(leg, conference);
        }
    }

    pub fn queue_dtmf(&mut self, call: &CallId, digits: &str) -> Result<(), DtmfError> {
        match self.legs.get(call) {
            Some(&leg) => self.engine.queue_dtmf(leg, digits),
            None => Ok(()),
        }
    }

    /// A datagram from one of a call's ports; a key it carried goes to `events`.
    pub fn receive(&mut self, packet: RtpIn, events: &mut Vec<MediaReport>) {
        let RtpIn { leg, port, from, at, len, buffer } = packet;
        // A datagram queued before its call ended: the buffer goes with the call.
        let Some(io) = self.io.get(&leg) else { return };
        if let Some(digit) = self.engine.receive(leg, port, from, &buffer[..len], at) {
            events.push(MediaReport::Dtmf { call: io.call.clone(), digit });
        }
        // Never full: the channel holds the socket's whole pool.
        let _ = io.socket(port).free.try_send(buffer);
    }

    /// One 20 ms step for every call: capture, send, play, report.
    pub fn tick(&mut self, now: Instant, ntp_now: u64, events: &mut Vec<MediaReport>) {
        if !self.engine.is_active() {
            return;
        }
        self.source.read_frame(&mut self.capture);
        if let Some(denoiser) = &mut self.denoiser {
            denoiser.process(&mut self.capture);
        }
        apply_gain(&mut self.capture, self.gains.input);
        match &mut self.hold_music {
            Some(music) => music.read_frame(&mut self.music),
            None => self.music.fill(0),
        }
        let mut wire = Wire {
            io: &self.io,
            sink: &mut *self.sink,
            recorder: &self.recorder,
            events,
            output_gain: self.gains.output,
            played: [0; FRAME_SAMPLES],
        };
        self.engine.tick(now, ntp_now, &self.capture, &self.music, &mut wire);
        let played = wire.played;
        if let Some(levels) = self.meter.add(&self.capture, &played) {
            self.levels = Some(levels);
        }
    }

    pub fn stats(&self, call: &CallId) -> Option<MediaStats> {
        self.engine.stats(*self.legs.get(call)?)
    }
}

/// Where the engine's tick goes: the sockets, the speaker, the recorder and
/// the run loop's events.
struct Wire<'a> {
    io: &'a HashMap<LegId, LegIo>,
    sink: &'a mut dyn AudioSink,
    recorder: &'a Recorder,
    events: &'a mut Vec<MediaReport>,
    output_gain: f32,
    /// What the speaker played this tick, after the gain.
    played: Frame,
}

impl TickSink for Wire<'_> {
    fn play(&mut self, frame: &Frame) {
        self.played = *frame;
        apply_gain(&mut self.played, self.output_gain);
        self.sink.write_frame(&self.played);
    }

    fn send(&mut self, leg: LegId, port: Port, to: SocketAddr, packet: &[u8]) {
        let Some(io) = self.io.get(&leg) else { return };
        // A full socket buffer drops this packet, as the network would.
        if let Err(e) = io.socket(port).udp.try_send_to(packet, to) {
            tracing::debug!(call = %io.call, ?port, error = %e, "send dropped");
        }
    }

    fn record(&mut self, leg: LegId, sent: &[i16], heard: &[i16]) {
        if let Some(io) = self.io.get(&leg) {
            self.recorder.audio(&io.call, sent, heard);
        }
    }

    fn timeout(&mut self, leg: LegId) {
        if let Some(io) = self.io.get(&leg) {
            self.events.push(MediaReport::Timeout { call: io.call.clone() });
        }
    }

    fn quality(&mut self, leg: LegId, stats: &MediaStats) {
        if let Some(io) = self.io.get(&leg) {
            self.events.push(MediaReport::Quality { call: io.call.clone(), stats: Box::new(*stats) });
        }
    }
}

fn tokio_socket(socket: std::net::UdpSocket) -> std::io::Result<Arc<UdpSocket>> {
    socket.set_nonblocking(true)?;
    Ok(Arc::new(UdpSocket::from_std(socket)?))
}

/// Read datagrams into the socket's pooled buffers and pass them to the run
/// loop; a buffer comes back through `free` once the engine has read it.
async fn receive_loop(
    call: CallId,
    leg: LegId,
    port: Port,
    socket: Arc<UdpSocket>,
    forward: mpsc::Sender<RtpIn>,
    mut free: mpsc::Receiver<Buffer>,
) {
    // A buffer kept back rather than handed over, to be used again.
    let mut kept = None;
    loop {
        let mut buffer = match kept.take() {
            Some(buffer) => buffer,
            None => match free.recv().await {
                Some(buffer) => buffer,
                None => return,
            },
        };
        let (len, from) = match socket.recv_from(&mut buffer[..]).await {
            Ok(received) => received,
            // ICMP port unreachable from a peer that is not listening yet: keep going.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                kept = Some(buffer);
                continue;
            }
            Err(e) => {
                tracing::warn!(%call, ?port, error = %e, "RTP receive failed");
                return;
            }
        };
        match forward.try_send(RtpIn { leg, port, from, at: Instant::now(), len, buffer }) {
            Ok(()) => {}
            // If the run loop is that far behind, losing a packet is the lesser harm.
            Err(mpsc::error::TrySendError::Full(packet)) => kept = Some(packet.buffer),
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}
