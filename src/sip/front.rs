//! Where [`validate`](super::validate) sits: under rsipstack's UDP
//! transport, as the socket it reads from.
//!
//! Why here. rsipstack's `UdpConnection` parses each datagram itself and
//! drops silently what it cannot parse; its `MessageInspector` sees only
//! what already parsed (a typed `SipMessage`, never the bytes) and cannot
//! veto or answer. But `UdpConnection::from_socket` takes any
//! `rsipstack::platform::net::UdpSocket` (the seam it keeps for embedded
//! backends). So the listening socket is ours: [`ValidatingUdp::recv_from`]
//! reads a datagram, checks its raw bytes, answers a malformed request
//! itself from the same socket (to the source address, as rsipstack does
//! with `received`/`rport`), drops what cannot be answered, and hands only
//! well-formed messages, trimmed to their Content-Length, up to rsipstack.
//! Nothing of rsipstack is patched or copied; what we send goes out
//! unchanged through [`ValidatingUdp::send_to`].
//!
//! TCP: rsipstack's stream connections read a `tokio::net::TcpStream`
//! directly, with no such seam, so inbound TCP is served here (see [`tcp`])
//! and handed to rsipstack through its in-memory channel connection. TLS
//! is still rsipstack's own listener: not checked yet.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::validate::{self, Carrier, Verdict, POLICY};

/// A UDP socket that lets only well-formed SIP through.
pub struct ValidatingUdp {
    socket: tokio::net::UdpSocket,
    answered: AtomicU64,
    dropped: AtomicU64,
    /// The raw From and To of the latest requests, by Call-ID and CSeq:
    /// rsipstack's answers get them back as they came.
    recent: Mutex<VecDeque<Recent>>,
}

/// (Call-ID, CSeq, From, To) of one request, as received.
type Recent = validate::RequestFromTo;

/// Requests remembered for their From/To: enough for the transactions a
/// softphone has open at once; a flood only pushes old ones out.
const RECENT: usize = 64;

impl ValidatingUdp {
    pub fn new(socket: tokio::net::UdpSocket) -> Self {
        ValidatingUdp {
            socket,
            answered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
        }
    }
}

#[async_trait::async_trait]
impl rsipstack::platform::net::UdpSocket for ValidatingUdp {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (len, source) = self.socket.recv_from(buf).await?;
            match validate::check(&buf[..len], source, Carrier::Datagram, &POLICY) {
                Verdict::Pass { len } => {
                    if let Some(request) = validate::from_to_of(&buf[..len]) {
                        remember(&self.recent, request);
                    }
                    // Same meaning, in the form rsipstack reads.
                    if let Some(fixed) = validate::normalize(&buf[..len]).filter(|f| f.len() <= buf.len()) {
                        buf[..fixed.len()].copy_from_slice(&fixed);
                        return Ok((fixed.len(), source));
                    }
                    return Ok((len, source));
                }
                Verdict::Reply { status, response, to } => {
                    let n = self.answered.fetch_add(1, Ordering::Relaxed) + 1;
                    let reason = response.split(|&b| b == b'\r').next().map(String::from_utf8_lossy);
                    tracing::debug!(%source, status, reason = ?reason, answered = n, "malformed SIP answered");
                    if let Err(e) = self.socket.send_to(&response, to).await {
                        tracing::debug!(%to, error = %e, "answer to a malformed request not sent");
                    }
                }
                Verdict::Drop(why) => {
                    let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::debug!(%source, why, dropped = n, "SIP datagram dropped");
                }
            }
        }
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        let out = outgoing(buf, &self.recent);
        self.socket.send_to(out.as_deref().unwrap_or(buf), addr).await?;
        Ok(buf.len())
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
}

/// SIP over TCP, checked the same way. rsipstack's TCP connections read a
/// `TcpStream` themselves (no seam), so inbound TCP is ours: we accept,
/// frame by Content-Length ([`validate::frame_stream`]), check each
/// message, answer the malformed on the same connection, and hand the rest
/// to rsipstack through its in-memory `ChannelConnection`, one per TCP
/// connection: what rsipstack sends on it (its answers, in-dialog
/// requests) comes back to us and is written to the stream. Outbound TCP
/// connections rsipstack opens itself are not checked.
pub mod tcp {
    use std::collections::VecDeque;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use rsipstack::sip::SipMessage;
    use rsipstack::transaction::endpoint::EndpointInnerRef;
    use rsipstack::transport::channel::ChannelConnection;
    use rsipstack::transport::{SipAddr, SipConnection, TransportEvent};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::sync::CancellationToken;

    use super::{Recent, RECENT};
    use crate::sip::validate::{self, Carrier, Verdict, POLICY};

    /// The largest message we take over a stream (a softphone's INVITE is
    /// a few kB); a larger announced one closes the connection.
    pub const MAX_MESSAGE: usize = 65_536;

    /// How long a connection may sit in the middle of a message.
    pub const STALLED: std::time::Duration = std::time::Duration::from_secs(8);

    /// How long a connection may carry nothing at all (rsipstack's own
    /// TCP connections were closed after about as long).
    pub const IDLE: std::time::Duration = std::time::Duration::from_secs(300);

    /// Accept on `listener` until `shutdown`; each connection is served on its own task.
    pub async fn serve(listener: TcpListener, local: SipAddr, endpoint: EndpointInnerRef, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let (local, endpoint, cancel) = (local.clone(), endpoint.clone(), shutdown.child_token());
                    tokio::spawn(async move { serve_connection(stream, peer, local, endpoint, cancel).await });
                }
                Err(e) => {
                    // EMFILE and the like: back off rather than spin.
                    tracing::warn!(error = %e, "SIP TCP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn serve_connection(
        stream: TcpStream,
        peer: SocketAddr,
        local: SipAddr,
        endpoint: EndpointInnerRef,
        cancel: CancellationToken,
    ) {
        let (in_tx, in_rx) = tokio::sync::mpsc::unbounded_channel();
        let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
        // The channel's address is our listening point: it is what rsipstack
        // names in Via and Contact for this connection.
        let Ok(channel) = ChannelConnection::create_connection(in_rx, out_tx, local, Some(cancel.clone())).await else {
            return;
        };
        let connection = SipConnection::Channel(channel);
        // Served, not cached: a channel's cache key would be its one address
        // (ours), and rsipstack opens its own connections for what it sends.
        endpoint.transport_layer.inner.serve_connection(connection.clone());
        let (mut reader, writer) = stream.into_split();
        let writer = Arc::new(tokio::sync::Mutex::new(writer));
        let recent: Arc<Mutex<VecDeque<Recent>>> = Arc::new(Mutex::new(VecDeque::with_capacity(RECENT)));
        let sending = {
            let (writer, recent) = (writer.clone(), recent.clone());
            tokio::spawn(async move {
                while let Some(event) = out_rx.recv().await {
                    let TransportEvent::Incoming(msg, _, _) = event else { continue };
                    let bytes = msg.to_bytes();
                    let bytes = super::outgoing(&bytes, &recent).unwrap_or_else(|| bytes.to_vec());
                    if writer.lock().await.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
            })
        };
        let from = SipAddr { r#type: Some(rsipstack::sip::Transport::Tcp), addr: peer.into() };
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 8192];
        'read: loop {
            // A peer that stops mid-message is let go quickly, an idle one later.
            let limit = if buf.is_empty() { IDLE } else { STALLED };
            let n = tokio::select! {
                _ = cancel.cancelled() => break,
                n = tokio::time::timeout(limit, reader.read(&mut chunk)) => match n {
                    Ok(Ok(n)) if n > 0 => n,
                    Ok(_) => break,
                    Err(_) => {
                        tracing::debug!(%peer, stalled = !buf.is_empty(), "SIP TCP connection closed: silent too long");
                        break;
                    }
                },
            };
            buf.extend_from_slice(&chunk[..n]);
            loop {
                let len = match validate::frame_stream(&buf, MAX_MESSAGE) {
                    Ok(Some(len)) => len,
                    Ok(None) => continue 'read,
                    Err(why) => {
                        // Cannot frame: answer what can be answered, then close.
                        if let Verdict::Reply { response, .. } = validate::check(&buf, peer, Carrier::Stream, &POLICY) {
                            let _ = writer.lock().await.write_all(&response).await;
                        }
                        tracing::debug!(%peer, why, "SIP TCP connection closed: cannot frame");
                        break 'read;
                    }
                };
                let message: Vec<u8> = buf.drain(..len).collect();
                if message.iter().all(|b| b.is_ascii_whitespace()) {
                    if message.as_slice() == b"\r\n\r\n" {
                        // RFC 5626 keep-alive ping: pong.
                        let _ = writer.lock().await.write_all(b"\r\n").await;
                    }
                    continue;
                }
                match validate::check(&message, peer, Carrier::Stream, &POLICY) {
                    Verdict::Pass { len } => {
                        let message = &message[..len];
                        if let Some(request) = validate::from_to_of(message) {
                            super::remember(&recent, request);
                        }
                        let fixed = validate::normalize(message);
                        let parsed = SipMessage::try_from(fixed.as_deref().unwrap_or(message))
                            .map_err(|e| e.to_string())
                            .and_then(|msg| {
                                SipConnection::update_msg_received(msg, peer, rsipstack::sip::Transport::Tcp)
                                    .map_err(|e| e.to_string())
                            });
                        match parsed {
                            Ok(msg) => {
                                if in_tx.send(TransportEvent::Incoming(msg, connection.clone(), from.clone())).is_err()
                                {
                                    break 'read;
                                }
                            }
                            Err(e) => tracing::debug!(%peer, error = %e, "SIP over TCP unreadable to rsipstack"),
                        }
                    }
                    Verdict::Reply { status, response, .. } => {
                        tracing::debug!(%peer, status, "malformed SIP over TCP answered");
                        if writer.lock().await.write_all(&response).await.is_err() {
                            break 'read;
                        }
                    }
                    Verdict::Drop(why) => tracing::debug!(%peer, why, "SIP over TCP dropped"),
                }
            }
        }
        // Dropping `in_tx` ends the channel's loop: rsipstack hears Closed.
        drop(in_tx);
        cancel.cancel();
        sending.abort();
    }
}

/// Remember a request's From/To for the answers to it.
fn remember(recent: &Mutex<VecDeque<Recent>>, request: Recent) {
    let mut recent = recent.lock().expect("recent requests");
    recent.retain(|r| (&r.0, &r.1) != (&request.0, &request.1));
    if recent.len() == RECENT {
        recent.pop_front();
    }
    recent.push_back(request);
}

/// What we send, as the peer must see it: made-up tags out, and an
/// answer's From and To as its request had them. `None`: unchanged.
fn outgoing(buf: &[u8], recent: &Mutex<VecDeque<Recent>>) -> Option<Vec<u8>> {
    let mut out = validate::strip_made_up_tags(buf);
    if let Some((call_id, cseq)) = validate::response_key(out.as_deref().unwrap_or(buf)) {
        let restored = {
            let recent = recent.lock().expect("recent requests");
            recent
                .iter()
                .rev()
                .find(|r| r.0 == call_id && r.1 == cseq)
                .and_then(|r| validate::restore_from_to(out.as_deref().unwrap_or(buf), &r.2, &r.3))
        };
        if restored.is_some() {
            out = restored;
        }
    }
    out
}
