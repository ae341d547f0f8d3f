//! One call's media stream as pure code: the agent's 20 ms frames become
//! RTP (or RFC 4733 events while keys are sent), SRTP-protected when
//! agreed; the peer's packets go through the jitter buffer and the decoder
//! (with loss concealment) into the frames the agent hears; RTCP reports
//! and the quality figures come out of the same counters. The shell owns
//! the sockets and the clock and calls in once per tick and per datagram.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::codec::{Codec, CodecError, Decoder, Encoder, Frame, FRAME_SAMPLES, PCM_RATE};
use super::dtmf::{DtmfError, DtmfReceiver, DtmfSender};
use super::jitter::{JitterBuffer, JitterConfig, JitterStats, PacketMeta, Popped};
use super::params::{MediaDirection, StreamParams};
use super::quality;
use super::rtcp::{RtcpSession, RtcpStats};
use super::rtp::{self, RtpSender};
use super::srtp::{SrtpError, SrtpSession};

/// Room for the longest packet we decode (60 ms) plus a frame not yet played.
const PCM_QUEUE: usize = FRAME_SAMPLES * 4;
/// Largest RTP payload we build.
const MAX_PAYLOAD: usize = 1500;

/// Why a stream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Srtp(#[from] SrtpError),
    #[error(transparent)]
    Dtmf(#[from] DtmfError),
}

/// The tunables of a stream, from `[media]`, and its random starting values.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub ssrc: u32,
    pub first_sequence: u16,
    pub first_timestamp: u32,
    pub jitter_min_ms: u32,
    pub jitter_max_ms: u32,
    pub rtcp_interval: Duration,
    pub rtcp_seed: u64,
    pub cname: String,
    pub dtmf_tone_ms: u32,
    pub dtmf_gap_ms: u32,
    pub rtp_keepalive: Duration,
}

/// What `call.stats` and `call.quality` report about a stream.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct MediaStats {
    pub codec: Codec,
    /// SRTP protects this stream.
    pub secure: bool,
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Datagrams that were not RTP of this call, or failed SRTP authentication.
    pub packets_discarded: u64,
    /// Frames the agent heard as concealment or silence because audio was missing.
    pub playout_underruns: u64,
    pub rtcp: RtcpStats,
    pub jitter_buffer: JitterStats,
    /// Of the 20 ms frames the last quality interval should have played
    /// from the peer, the share (percent) with no audio at all: an outage,
    /// which RTCP's loss (counted from packets that did arrive) cannot see
    /// while it lasts.
    pub missing_percent: f64,
    /// E-model estimate (1-4.5) from loss (the worse of RTCP's and
    /// `missing_percent`), jitter, round trip and buffer delay.
    pub mos: f64,
    /// Audio payload bytes taken from the peer's RTP (headers excluded):
    /// for the metrics, not the control protocol, which reports quality.
    #[serde(skip)]
    #[schemars(skip)]
    pub payload_bytes_received: u64,
}

/// One of SRTP's protect functions (RTP or RTCP).
type Protect = fn(&mut SrtpSession, &[u8], &mut Vec<u8>) -> Result<(), SrtpError>;

/// The media half of a connected call.
pub struct MediaStream {
    negotiated: StreamParams,
    encoder: Encoder,
    decoder: Decoder,
    sender: RtpSender,
    jitter: JitterBuffer,
    dtmf_out: DtmfSender,
    dtmf_in: DtmfReceiver,
    rtcp: RtcpSession,
    srtp: Option<SrtpSession>,
    /// Decoded audio not yet played: a packet may hold more than one frame.
    pcm: [i16; PCM_QUEUE],
    pcm_len: usize,
    payload: [u8; MAX_PAYLOAD],
    /// The plain packet before SRTP, and the unprotected one after it.
    clear: Vec<u8>,
    last_received: Option<Instant>,
    /// When we last sent RTP (audio or a keep-alive).
    last_sent: Option<Instant>,
    keepalive: Duration,
    packets_discarded: u64,
    playout_underruns: u64,
    payload_bytes_received: u64,
    /// Frames played since the peer's audio began, and of them those with
    /// nothing to play; with both at the last quality report.
    expected_frames: u64,
    missing_frames: u64,
    window_start: (u64, u64),
    missing_percent: f64,
}

impl MediaStream {
    pub fn new(negotiated: StreamParams, config: &StreamConfig, now: Instant) -> Result<Self, StreamError> {
        let codec = negotiated.codec;
        let srtp = match &negotiated.srtp {
            Some(keys) => Some(SrtpSession::new(&keys.local, &keys.remote)?),
            None => None,
        };
        Ok(MediaStream {
            encoder: Encoder::new(codec, &negotiated.opus)?,
            decoder: Decoder::new(codec)?,
            sender: RtpSender::new(config.ssrc, config.first_sequence, config.first_timestamp, negotiated.send_pt),
            jitter: JitterBuffer::new(JitterConfig {
                clock_rate: codec.rtp_clock_rate(),
                min_delay_ms: config.jitter_min_ms,
                max_delay_ms: config.jitter_max_ms,
            }),
            dtmf_out: DtmfSender::new(codec.rtp_clock_rate(), config.dtmf_tone_ms, config.dtmf_gap_ms)?,
            dtmf_in: DtmfReceiver::new(),
            rtcp: RtcpSession::new(
                config.ssrc,
                codec.rtp_clock_rate(),
                &config.cname,
                config.rtcp_interval,
                config.rtcp_seed,
                now,
            ),
            srtp,
            pcm: [0; PCM_QUEUE],
            pcm_len: 0,
            payload: [0; MAX_PAYLOAD],
            clear: Vec::with_capacity(MAX_PAYLOAD),
            last_received: None,
            last_sent: None,
            keepalive: config.rtp_keepalive,
            packets_discarded: 0,
            payload_bytes_received: 0,
            playout_underruns: 0,
            expected_frames: 0,
            missing_frames: 0,
            window_start: (0, 0),
            missing_percent: 0.0,
            negotiated,
        })
    }

    pub fn negotiated(&self) -> &StreamParams {
        &self.negotiated
    }

    /// Take a new agreement that keeps codec, keys and address (a hold or
    /// resume): only the direction and payload numbers move.
    pub fn update(&mut self, negotiated: StreamParams) {
        self.negotiated = negotiated;
    }

    /// Whether `negotiated` can be taken by [`update`](Self::update) rather than a new stream.
    pub fn can_update_to(&self, negotiated: &StreamParams) -> bool {
        let now = &self.negotiated;
        now.codec == negotiated.codec
            && now.remote == negotiated.remote
            && now.srtp == negotiated.srtp
            && now.send_pt == negotiated.send_pt
    }

    pub fn direction(&self) -> MediaDirection {
        self.negotiated.direction
    }

    pub fn queue_dtmf(&mut self, digits: &str) -> Result<(), DtmfError> {
        self.dtmf_out.queue(digits)
    }

    /// When RTP last arrived (or the stream started, for the media timeout).
    pub fn last_received(&self) -> Option<Instant> {
        self.last_received
    }

    /// This tick's packet in `out`: a key event while one is being sent,
    /// else `frame` encoded. False when we must not send.
    pub fn send_frame(&mut self, frame: &Frame, now: Instant, out: &mut Vec<u8>) -> bool {
        if !self.negotiated.direction.sends() {
            return self.keep_alive(now, out);
        }
        self.last_sent = Some(now);
        let step = self.negotiated.codec.timestamp_step();
        let event = self
            .negotiated
            .telephone_event
            .and_then(|te| self.dtmf_out.next_packet(self.sender.timestamp(), step).map(|packet| (te.send, packet)));
        let payload_len = match event {
            Some((pt, packet)) => {
                self.sender.write_event(pt, packet.timestamp, packet.marker, &packet.payload, step, &mut self.clear);
                packet.payload.len()
            }
            None => {
                let len = match self.encoder.encode(frame, &mut self.payload) {
                    Ok(len) => len,
                    Err(e) => {
                        tracing::warn!(error = %e, "encoding failed; frame skipped");
                        return false;
                    }
                };
                self.sender.write_packet(&self.payload[..len], step, &mut self.clear);
                len
            }
        };
        self.rtcp.on_rtp_sent(self.sender.timestamp().wrapping_sub(step), payload_len, now);
        self.seal(out, SrtpSession::protect_rtp)
    }

    /// While we must not send audio, an RTP packet without payload (RFC
    /// 6263 §4.6: same SSRC, next sequence number, clock held) every
    /// keep-alive interval, so a NAT keeps our port's mapping and the
    /// peer's audio still reaches us. False when none is due.
    fn keep_alive(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let due = self.last_sent.is_none_or(|at| now.saturating_duration_since(at) >= self.keepalive);
        if self.keepalive.is_zero() || !due {
            return false;
        }
        self.last_sent = Some(now);
        self.sender.write_packet(&[], 0, &mut self.clear);
        self.seal(out, SrtpSession::protect_rtp)
    }

    /// A datagram from `from` at our RTP port: audio goes to the jitter
    /// buffer, a key event comes back as its digit. Anything else is
    /// counted and dropped: a stray packet must not disturb the call, and
    /// only the peer's RTP address (the one its SDP gave, which we send
    /// to: RFC 4961 symmetric RTP) is heard, so that nobody who merely
    /// knows our port can speak into the call.
    pub fn receive_rtp(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) -> Option<char> {
        if from != self.negotiated.remote {
            self.packets_discarded += 1;
            return None;
        }
        let packet = match &mut self.srtp {
            Some(srtp) => match srtp.unprotect_rtp(datagram, &mut self.clear) {
                Ok(()) => &self.clear[..],
                Err(_) => {
                    self.packets_discarded += 1;
                    return None;
                }
            },
            None => datagram,
        };
        let Ok(view) = rtp::parse(packet) else {
            self.packets_discarded += 1;
            return None;
        };
        let payload = &packet[view.payload_offset..view.payload_offset + view.payload_len];
        let negotiated = &self.negotiated;
        if negotiated.telephone_event.is_some_and(|te| [te.receive, te.send].contains(&view.payload_type)) {
            self.last_received = Some(now);
            return self.dtmf_in.on_packet(view.timestamp, payload);
        }
        // Some peers send with the number they gave the codec, not ours: take both.
        if view.payload_type != negotiated.receive_pt && view.payload_type != negotiated.send_pt {
            self.packets_discarded += 1;
            return None;
        }
        let codec = negotiated.codec;
        let Some(samples) = codec.payload_samples(payload) else {
            self.packets_discarded += 1;
            return None;
        };
        let duration = (samples as u64 * u64::from(codec.rtp_clock_rate()) / u64::from(PCM_RATE)) as u32;
        self.last_received = Some(now);
        self.rtcp.on_rtp_received(view.sequence_number, view.timestamp, view.ssrc, now);
        self.payload_bytes_received += payload.len() as u64;
        let meta = PacketMeta { sequence: view.sequence_number, timestamp: view.timestamp, ssrc: view.ssrc, duration };
        self.jitter.insert(meta, payload, now);
        None
    }

    /// A datagram from `from` at our RTCP port (or muxed on RTP). Only
    /// the peer's host is heard; its RTCP port may differ from what we
    /// send to (`a=rtcp`, muxing).
    pub fn receive_rtcp(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) {
        if from.ip() != self.negotiated.remote.ip() {
            self.packets_discarded += 1;
            return;
        }
        let packet = match &mut self.srtp {
            Some(srtp) => match srtp.unprotect_rtcp(datagram, &mut self.clear) {
                Ok(()) => &self.clear[..],
                Err(_) => return,
            },
            None => datagram,
        };
        if let Err(e) = self.rtcp.on_rtcp(packet, now) {
            tracing::debug!(error = %e, "RTCP packet ignored");
        }
    }

    /// When the next RTCP report is due.
    pub fn rtcp_due(&self) -> Instant {
        self.rtcp.poll_timeout()
    }

    /// Our RTCP report into `out`, if one is due; `ntp_now` is the wallclock.
    pub fn poll_rtcp(&mut self, now: Instant, ntp_now: u64, out: &mut Vec<u8>) -> bool {
        if !self.rtcp.poll_report(now, ntp_now, &mut self.clear) {
            return false;
        }
        self.seal(out, SrtpSession::protect_rtcp)
    }

    /// Add the next 20 ms of the peer's audio into `mix`: what the jitter
    /// buffer releases, decoded, with lost packets concealed.
    pub fn mix_playout(&mut self, now: Instant, mix: &mut Frame) {
        let expecting = self.last_received.is_some() && self.negotiated.direction.receives();
        self.expected_frames += u64::from(expecting);
        while self.pcm_len < FRAME_SAMPLES {
            let mut decoded = [0i16; FRAME_SAMPLES * 3];
            let produced = match self.jitter.pop(now) {
                Popped::Packet { payload, .. } => self.decoder.decode(payload, &mut decoded).unwrap_or(0),
                Popped::Lost { next, .. } => {
                    let frame: &mut Frame = (&mut decoded[..FRAME_SAMPLES]).try_into().expect("frame-sized");
                    if !next.is_some_and(|next| self.decoder.decode_fec(next, frame)) {
                        self.decoder.conceal(frame);
                    }
                    FRAME_SAMPLES
                }
                Popped::Stretch { .. } => {
                    let frame: &mut Frame = (&mut decoded[..FRAME_SAMPLES]).try_into().expect("frame-sized");
                    self.decoder.conceal(frame);
                    FRAME_SAMPLES
                }
                Popped::Silence { .. } => break,
            };
            let room = PCM_QUEUE - self.pcm_len;
            let taken = produced.min(room);
            self.pcm[self.pcm_len..self.pcm_len + taken].copy_from_slice(&decoded[..taken]);
            self.pcm_len += taken;
        }
        if self.pcm_len < FRAME_SAMPLES {
            self.playout_underruns += u64::from(self.last_received.is_some());
            self.missing_frames += u64::from(expecting);
            return;
        }
        if self.negotiated.direction.receives() {
            for (out, sample) in mix.iter_mut().zip(&self.pcm[..FRAME_SAMPLES]) {
                *out = out.saturating_add(*sample);
            }
        }
        self.pcm.copy_within(FRAME_SAMPLES..self.pcm_len, 0);
        self.pcm_len -= FRAME_SAMPLES;
    }

    /// End a quality interval: `missing_percent` is this one's from now on.
    pub fn close_quality_window(&mut self) {
        let (expected, missing) =
            (self.expected_frames - self.window_start.0, self.missing_frames - self.window_start.1);
        self.missing_percent = if expected == 0 { 0.0 } else { missing as f64 * 100.0 / expected as f64 };
        self.window_start = (self.expected_frames, self.missing_frames);
    }

    pub fn stats(&self) -> MediaStats {
        let rtcp = self.rtcp.stats();
        let jitter_buffer = self.jitter.stats();
        let loss_percent = (rtcp.remote_fraction_lost.max(rtcp.fraction_lost) * 100.0).max(self.missing_percent);
        MediaStats {
            codec: self.negotiated.codec,
            secure: self.srtp.is_some(),
            packets_sent: rtcp.packets_sent,
            packets_received: rtcp.packets_received,
            packets_discarded: self.packets_discarded,
            playout_underruns: self.playout_underruns,
            payload_bytes_received: self.payload_bytes_received,
            missing_percent: self.missing_percent,
            mos: quality::mos(
                e_model(self.negotiated.codec),
                loss_percent,
                rtcp.jitter_ms,
                rtcp.rtt_ms,
                f64::from(jitter_buffer.target_delay_ms),
            ),
            rtcp,
            jitter_buffer,
        }
    }

    /// Move the packet built in `clear` to `out`, through SRTP when agreed.
    fn seal(&mut self, out: &mut Vec<u8>, protect: Protect) -> bool {
        match &mut self.srtp {
            Some(srtp) => match protect(srtp, &self.clear, out) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "SRTP protect failed; packet dropped");
                    false
                }
            },
            None => {
                out.clear();
                out.extend_from_slice(&self.clear);
                true
            }
        }
    }
}

/// The E-model's view of a codec; all of ours conceal loss.
fn e_model(codec: Codec) -> quality::EModelCodec {
    match codec {
        Codec::Pcmu | Codec::Pcma => quality::EModelCodec::G711_WITH_PLC,
        Codec::G722 => quality::EModelCodec::G722,
        Codec::Opus => quality::EModelCodec::OPUS,
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
