//! The media IO of all calls: one UDP socket per call (symmetric RTP: we
//! send from the port we receive on), and the 20 ms tick that moves audio
//! between the agent's source and sink and every call's stream.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::audio::{AudioSink, AudioSource};
use crate::call::CallId;
use crate::media::stream::{MediaStream, StreamStats};
use crate::media::{Codec, FRAME_SAMPLES};
use crate::sip::sdp::Negotiated;

/// Largest datagram we read; RTP for 20 ms of G.711 is 172 bytes.
const MAX_DATAGRAM: usize = 1500;

/// A datagram that arrived on a call's RTP port.
pub struct RtpIn {
    pub call: CallId,
    pub data: Vec<u8>,
    pub at: Instant,
}

struct CallMedia {
    socket: Arc<UdpSocket>,
    stream: Option<MediaStream>,
    receiver: JoinHandle<()>,
}

impl Drop for CallMedia {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

pub struct MediaEngine {
    calls: HashMap<CallId, CallMedia>,
    source: Box<dyn AudioSource>,
    sink: Box<dyn AudioSink>,
    rtp_in: mpsc::Sender<RtpIn>,
    bind_ip: IpAddr,
    capture: [i16; FRAME_SAMPLES],
    mix: [i16; FRAME_SAMPLES],
    packet: Vec<u8>,
}

impl MediaEngine {
    pub fn new(
        source: Box<dyn AudioSource>,
        sink: Box<dyn AudioSink>,
        bind_ip: IpAddr,
        rtp_in: mpsc::Sender<RtpIn>,
    ) -> Self {
        MediaEngine {
            calls: HashMap::new(),
            source,
            sink,
            rtp_in,
            bind_ip,
            capture: [0; FRAME_SAMPLES],
            mix: [0; FRAME_SAMPLES],
            packet: Vec::with_capacity(MAX_DATAGRAM),
        }
    }

    /// Open the RTP port for a new call, before its SDP is written.
    pub fn open(&mut self, call: &CallId) -> std::io::Result<SocketAddr> {
        let std_socket = std::net::UdpSocket::bind((self.bind_ip, 0))?;
        std_socket.set_nonblocking(true)?;
        let socket = Arc::new(UdpSocket::from_std(std_socket)?);
        let local = socket.local_addr()?;
        let receiver = tokio::spawn(receive_loop(call.clone(), socket.clone(), self.rtp_in.clone()));
        self.calls.insert(call.clone(), CallMedia { socket, stream: None, receiver });
        Ok(local)
    }

    /// Media may start twice (early media, then the answer): the newer
    /// negotiation wins, the RTP sequence continues only within one stream.
    pub fn start(&mut self, call: &CallId, negotiated: Negotiated) {
        if let Some(media) = self.calls.get_mut(call) {
            let same =
                media.stream.as_ref().is_some_and(|s| s.remote() == negotiated.remote && s.codec() == negotiated.codec);
            if !same {
                media.stream = Some(MediaStream::new(negotiated, rand::random(), rand::random(), rand::random()));
            }
        }
    }

    pub fn stop(&mut self, call: &CallId) {
        self.calls.remove(call);
    }

    pub fn receive(&mut self, packet: RtpIn) {
        if let Some(stream) = self.calls.get_mut(&packet.call).and_then(|m| m.stream.as_mut()) {
            stream.receive(&packet.data, packet.at);
        }
    }

    /// One 20 ms step: capture a frame, send it on every flowing call, and
    /// play the mix of what every call received.
    pub fn tick(&mut self) {
        if !self.calls.values().any(|m| m.stream.is_some()) {
            return;
        }
        self.source.read_frame(&mut self.capture);
        self.mix.fill(0);
        for media in self.calls.values_mut() {
            let Some(stream) = media.stream.as_mut() else { continue };
            stream.send_frame(&self.capture, &mut self.packet);
            // A full socket buffer drops this packet, as the network would.
            if let Err(e) = media.socket.try_send_to(&self.packet, stream.remote()) {
                tracing::debug!(error = %e, "RTP send dropped");
            }
            stream.mix_playout(&mut self.mix);
        }
        self.sink.write_frame(&self.mix);
    }

    pub fn stats(&self, call: &CallId) -> Option<(Codec, StreamStats)> {
        let stream = self.calls.get(call)?.stream.as_ref()?;
        Some((stream.codec(), stream.stats()))
    }
}

async fn receive_loop(call: CallId, socket: Arc<UdpSocket>, forward: mpsc::Sender<RtpIn>) {
    let mut buf = [0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((len, _from)) => {
                let packet = RtpIn { call: call.clone(), data: buf[..len].to_vec(), at: Instant::now() };
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
