//! The media IO of all calls: a UDP pair per call (RTP on an even port,
//! RTCP on the next; symmetric: we send from where we receive), and the
//! 20 ms tick that serves every call at once: each stream's playout, mixed
//! for the agent and for the local conference (`media::mixer`), one frame
//! out to each stream that sends, RTCP when due, and the verdicts the run
//! loop acts on (keys heard, silence too long, quality reports).

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
use crate::media::codec::{Frame, FRAME_SAMPLES};
use crate::media::dtmf::DtmfError;
use crate::media::mixer::{LegMix, Mixer};
use crate::media::params::StreamParams;
use crate::media::stream::{MediaStats, MediaStream, StreamConfig};
use crate::media::PCM_RATE;
use crate::recording::Recorder;

/// Largest datagram we read.
const MAX_DATAGRAM: usize = 1500;
/// Tries at finding a free even/odd port pair before giving up.
const PORT_PAIR_TRIES: usize = 32;

/// A datagram that arrived on one of a call's ports.
pub struct RtpIn {
    pub call: CallId,
    pub data: Vec<u8>,
    pub at: Instant,
    /// It came to the RTCP port.
    pub rtcp: bool,
}

/// What the media path tells the run loop.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// The peer pressed a key (RFC 4733).
    Dtmf { call: CallId, digit: char },
    /// No RTP for longer than `media.media_timeout_ms` while we expect it.
    Timeout { call: CallId },
    /// Time for this call's `call.quality`.
    Quality { call: CallId, stats: Box<MediaStats> },
}

struct CallMedia {
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    stream: Option<MediaStream>,
    muted: bool,
    /// In the local conference: it hears the other members, they hear it.
    conference: bool,
    /// This tick's playout of the call.
    heard: Frame,
    /// Recording at this rate (the call's audio rate), when it is.
    record_rate: Option<u32>,
    /// When the stream (re)started receiving, for the media timeout.
    expecting_since: Instant,
    timed_out: bool,
    next_quality: Instant,
    receivers: [JoinHandle<()>; 2],
}

impl Drop for CallMedia {
    fn drop(&mut self) {
        for receiver in &self.receivers {
            receiver.abort();
        }
    }
}

pub struct MediaEngine {
    calls: HashMap<CallId, CallMedia>,
    source: Box<dyn AudioSource>,
    sink: Box<dyn AudioSink>,
    /// Played to a party we hold; silence without one.
    hold_music: Option<Box<dyn AudioSource>>,
    /// RNNoise on the microphone, when `media.noise_suppression` is on.
    denoiser: Option<Box<Denoiser>>,
    rtp_in: mpsc::Sender<RtpIn>,
    bind_ip: IpAddr,
    /// A port pair bound ahead of need: binding takes ~150 µs, which a
    /// countdown's dial should not wait for.
    spare: Option<(Arc<UdpSocket>, Arc<UdpSocket>)>,
    config: MediaConfig,
    capture: Frame,
    music: Frame,
    mixer: Mixer,
    recorder: Recorder,
    /// The two sides of a recorded frame at 8 kHz, for narrowband calls.
    narrow: ([i16; FRAME_SAMPLES / 2], [i16; FRAME_SAMPLES / 2]),
    packet: Vec<u8>,
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
            calls: HashMap::new(),
            source,
            sink,
            hold_music,
            denoiser: config.noise_suppression.then(Box::<Denoiser>::default),
            rtp_in,
            bind_ip,
            spare: None,
            config,
            capture: [0; FRAME_SAMPLES],
            music: [0; FRAME_SAMPLES],
            mixer: Mixer::default(),
            recorder,
            narrow: ([0; FRAME_SAMPLES / 2], [0; FRAME_SAMPLES / 2]),
            packet: Vec::with_capacity(MAX_DATAGRAM),
        }
    }

    /// Use another microphone and speaker from now on (device switch or loss).
    pub fn replace_audio(&mut self, source: Box<dyn AudioSource>, sink: Box<dyn AudioSink>) {
        self.source = source;
        self.sink = sink;
    }

    /// Open the ports for a new call, before its SDP is written.
    pub fn open(&mut self, call: &CallId) -> std::io::Result<SocketAddr> {
        let (rtp, rtcp) = match self.spare.take() {
            Some(pair) => pair,
            None => self.bind_pair()?,
        };
        let local = rtp.local_addr()?;
        let receivers = [
            tokio::spawn(receive_loop(call.clone(), rtp.clone(), false, self.rtp_in.clone())),
            tokio::spawn(receive_loop(call.clone(), rtcp.clone(), true, self.rtp_in.clone())),
        ];
        let now = Instant::now();
        self.calls.insert(
            call.clone(),
            CallMedia {
                rtp,
                rtcp,
                stream: None,
                muted: false,
                conference: false,
                heard: [0; FRAME_SAMPLES],
                record_rate: None,
                expecting_since: now,
                timed_out: false,
                next_quality: now,
                receivers,
            },
        );
        Ok(local)
    }

    /// Bind the next call's ports now, if the last spare was used.
    pub fn keep_spare(&mut self) {
        if self.spare.is_none() {
            match self.bind_pair() {
                Ok(pair) => self.spare = Some(pair),
                Err(e) => tracing::warn!(error = %e, "no spare RTP port pair"),
            }
        }
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
        let Some(media) = self.calls.get_mut(call) else { return };
        let receives = negotiated.direction.receives();
        let was_receiving = media.stream.as_ref().is_some_and(|s| s.direction().receives());
        match &mut media.stream {
            Some(stream) if stream.can_update_to(&negotiated) => stream.update(negotiated),
            _ => match MediaStream::new(negotiated, &stream_config(&self.config, call), now) {
                Ok(stream) => media.stream = Some(stream),
                Err(e) => {
                    tracing::error!(%call, error = %e, "media could not start");
                    media.stream = None;
                    return;
                }
            },
        }
        if receives && !was_receiving {
            media.expecting_since = now;
            media.timed_out = false;
        }
        if self.config.quality_interval_ms > 0 && media.next_quality <= now {
            media.next_quality = now + Duration::from_millis(self.config.quality_interval_ms);
        }
    }

    pub fn stop(&mut self, call: &CallId) {
        self.calls.remove(call);
    }

    pub fn set_muted(&mut self, call: &CallId, muted: bool) {
        if let Some(media) = self.calls.get_mut(call) {
            media.muted = muted;
        }
    }

    /// Hand the call's frames to the recorder (at `rate`: 8000 or 16000), or stop.
    pub fn set_recording(&mut self, call: &CallId, rate: Option<u32>) {
        if let Some(media) = self.calls.get_mut(call) {
            media.record_rate = rate;
        }
    }

    /// Take the call into the local conference, or out of it.
    pub fn set_conference(&mut self, call: &CallId, conference: bool) {
        if let Some(media) = self.calls.get_mut(call) {
            media.conference = conference;
        }
    }

    pub fn queue_dtmf(&mut self, call: &CallId, digits: &str) -> Result<(), DtmfError> {
        match self.calls.get_mut(call).and_then(|m| m.stream.as_mut()) {
            Some(stream) => stream.queue_dtmf(digits),
            None => Ok(()),
        }
    }

    /// A datagram from one of a call's ports; a key it carried goes to `events`.
    pub fn receive(&mut self, packet: RtpIn, events: &mut Vec<MediaEvent>) {
        let Some(stream) = self.calls.get_mut(&packet.call).and_then(|m| m.stream.as_mut()) else { return };
        // RFC 5761: RTCP multiplexed on the RTP port has a packet type of 192-223.
        if packet.rtcp || packet.data.get(1).is_some_and(|pt| (192..=223).contains(pt)) {
            stream.receive_rtcp(&packet.data, packet.at);
        } else if let Some(digit) = stream.receive_rtp(&packet.data, packet.at) {
            events.push(MediaEvent::Dtmf { call: packet.call, digit });
        }
    }

    /// One 20 ms step for every call: capture, send, play, report.
    pub fn tick(&mut self, now: Instant, ntp_now: u64, events: &mut Vec<MediaEvent>) {
        if !self.calls.values().any(|m| m.stream.is_some()) {
            return;
        }
        self.source.read_frame(&mut self.capture);
        if let Some(denoiser) = &mut self.denoiser {
            denoiser.process(&mut self.capture);
        }
        match &mut self.hold_music {
            Some(music) => music.read_frame(&mut self.music),
            None => self.music.fill(0),
        }
        // Every playout first: a conference member's frame is sent to the
        // others in this same tick, so the mixer adds no delay of its own.
        self.mixer.start_frame();
        for media in self.calls.values_mut() {
            let Some(stream) = media.stream.as_mut() else { continue };
            media.heard.fill(0);
            stream.mix_playout(now, &mut media.heard);
            let leg = leg_mix(media.muted, media.conference, stream);
            self.mixer.add_heard(&media.heard, leg);
        }
        self.sink.write_frame(self.mixer.agent_frame());
        let timeout = Duration::from_millis(self.config.media_timeout_ms);
        for (call, media) in &mut self.calls {
            let Some(stream) = media.stream.as_mut() else { continue };
            let leg = leg_mix(media.muted, media.conference, stream);
            let frame = self.mixer.outgoing(leg, &self.capture, &self.music, &media.heard);
            // The agent's side is what this call was sent (the mix, in a conference).
            match media.record_rate {
                Some(PCM_RATE) => self.recorder.audio(call, frame, &media.heard),
                Some(_) => {
                    halve(frame, &mut self.narrow.0);
                    halve(&media.heard, &mut self.narrow.1);
                    self.recorder.audio(call, &self.narrow.0, &self.narrow.1);
                }
                None => {}
            }
            let remote = stream.negotiated().remote;
            if stream.send_frame(frame, now, &mut self.packet) {
                // A full socket buffer drops this packet, as the network would.
                if let Err(e) = media.rtp.try_send_to(&self.packet, remote) {
                    tracing::debug!(%call, error = %e, "RTP send dropped");
                }
            }
            if stream.poll_rtcp(now, ntp_now, &mut self.packet) {
                let rtcp_to = SocketAddr::new(remote.ip(), remote.port().wrapping_add(1));
                if let Err(e) = media.rtcp.try_send_to(&self.packet, rtcp_to) {
                    tracing::debug!(%call, error = %e, "RTCP send dropped");
                }
            }
            let direction = stream.direction();
            if direction.receives() && !media.timed_out && !timeout.is_zero() {
                let last = stream.last_received().unwrap_or(media.expecting_since).max(media.expecting_since);
                if now.saturating_duration_since(last) > timeout {
                    media.timed_out = true;
                    events.push(MediaEvent::Timeout { call: call.clone() });
                }
            }
            if self.config.quality_interval_ms > 0 && media.next_quality <= now {
                media.next_quality = now + Duration::from_millis(self.config.quality_interval_ms);
                events.push(MediaEvent::Quality { call: call.clone(), stats: Box::new(stream.stats()) });
            }
        }
    }

    pub fn stats(&self, call: &CallId) -> Option<MediaStats> {
        Some(self.calls.get(call)?.stream.as_ref()?.stats())
    }
}

/// 16 kHz to 8 kHz: each pair averaged, which also filters what G.711
/// could not carry anyway.
fn halve(frame: &Frame, out: &mut [i16; FRAME_SAMPLES / 2]) {
    for (o, pair) in out.iter_mut().zip(frame.chunks_exact(2)) {
        *o = ((i32::from(pair[0]) + i32::from(pair[1])) / 2) as i16;
    }
}

/// How a call takes part in the mix. We hold the peer when we send without
/// receiving: it gets the hold music, not the agent or the conference.
fn leg_mix(muted: bool, conference: bool, stream: &MediaStream) -> LegMix {
    let direction = stream.direction();
    LegMix { muted, held: direction.sends() && !direction.receives(), conference }
}

/// A new stream's tunables, with fresh random RTP starting values.
fn stream_config(config: &MediaConfig, call: &CallId) -> StreamConfig {
    StreamConfig {
        ssrc: rand::random(),
        first_sequence: rand::random(),
        first_timestamp: rand::random(),
        jitter_min_ms: config.jitter_min_ms,
        jitter_max_ms: config.jitter_max_ms,
        rtcp_interval: Duration::from_millis(config.rtcp_interval_ms),
        rtcp_seed: rand::random(),
        cname: format!("{call}@softphoned"),
        dtmf_tone_ms: config.dtmf_tone_ms,
        dtmf_gap_ms: config.dtmf_gap_ms,
    }
}

fn tokio_socket(socket: std::net::UdpSocket) -> std::io::Result<Arc<UdpSocket>> {
    socket.set_nonblocking(true)?;
    Ok(Arc::new(UdpSocket::from_std(socket)?))
}

async fn receive_loop(call: CallId, socket: Arc<UdpSocket>, rtcp: bool, forward: mpsc::Sender<RtpIn>) {
    let mut buf = [0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((len, _from)) => {
                let packet = RtpIn { call: call.clone(), data: buf[..len].to_vec(), at: Instant::now(), rtcp };
                // If the run loop is that far behind, losing a packet is the lesser harm.
                if let Err(mpsc::error::TrySendError::Closed(_)) = forward.try_send(packet) {
                    return;
                }
            }
            // ICMP port unreachable from a peer that is not listening yet: keep going.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => {
                tracing::warn!(%call, error = %e, "RTP receive failed");
                return;
            }
        }
    }
}
