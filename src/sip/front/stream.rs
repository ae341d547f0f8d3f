//! SIP over TCP and TLS, checked the same way as UDP. rsipstack's stream
//! connections read a `TcpStream` themselves (no seam), so inbound TCP and
//! TLS are ours: we accept, ask the gate for a seat, finish the TLS
//! handshake (within the gate's first deadline), frame by Content-Length
//! ([`validate::frame_stream`]), check each message, answer the malformed
//! on the same connection, and hand the rest to rsipstack through its
//! in-memory `ChannelConnection`, one per TCP connection: what rsipstack
//! sends on it (its answers, in-dialog requests) comes back to us and is
//! written to the stream. Outbound connections rsipstack opens itself are
//! not checked.
//!
//! Each connection is closed when the gate's deadline for it passes (no
//! valid message yet, stalled mid-message, idle), when the gate evicts it
//! for a newer one, or at shutdown. A connection costs a task and what it
//! has buffered: nothing is allocated before its first bytes.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rsipstack::sip::SipMessage;
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transport::channel::ChannelConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportEvent};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{heard, Recent, SharedGate, RECENT};
use crate::sip::gate::{ConnectionId, Refusal, Seat};
use crate::sip::validate::{self, Carrier, Verdict, POLICY};
use crate::timing::Throttled;

/// The largest message we take over a stream (a softphone's INVITE is
/// a few kB); a larger announced one closes the connection.
pub const MAX_MESSAGE: usize = 65_536;

/// How long accepting pauses after a failure (EMFILE and the like), so
/// that a full descriptor table never makes the loop spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The connections being served, to close one the gate evicts.
type Seats = Arc<Mutex<HashMap<ConnectionId, CancellationToken>>>;

/// Accept on `listener` until `shutdown`, with a TLS handshake first when
/// `tls` is given; each connection is served on its own task.
pub async fn serve(
    listener: TcpListener,
    local: SipAddr,
    tls: Option<TlsAcceptor>,
    endpoint: EndpointInnerRef,
    gate: SharedGate,
    shutdown: CancellationToken,
) {
    let seats: Seats = Arc::default();
    let (mut refusals, mut failures) = (Throttled::default(), Throttled::default());
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let now = Instant::now();
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                if let Some(failures) = failures.hit(now) {
                    tracing::warn!(error = %e, failures, "SIP TCP accept failing: pausing between tries");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let seat = gate.lock().expect("SIP gate").on_connect(peer, now);
        let Seat { id, evict } = match seat {
            Ok(seat) => seat,
            Err(why) => {
                // Closed at once: the peer hears a FIN, and no descriptor is held.
                if let Some(refused) = refusals.hit(now) {
                    tracing::warn!(%peer, ?why, refused, "SIP TCP connections refused");
                }
                continue;
            }
        };
        let cancel = shutdown.child_token();
        {
            let mut seats = seats.lock().expect("TCP seats");
            if let Some(evicted) = evict.and_then(|old| seats.remove(&old)) {
                evicted.cancel();
            }
            seats.insert(id, cancel.clone());
        }
        let connection = Connection { id, peer, local: local.clone(), gate: gate.clone(), cancel };
        let (endpoint, seats, tls) = (endpoint.clone(), seats.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => connection.serve(stream, endpoint).await,
                Some(acceptor) => match connection.handshake(&acceptor, stream).await {
                    Some(stream) => connection.serve(stream, endpoint).await,
                    None => connection.gate.lock().expect("SIP gate").on_close(id),
                },
            }
            seats.lock().expect("TCP seats").remove(&id);
        });
    }
}

struct Connection {
    id: ConnectionId,
    peer: SocketAddr,
    local: SipAddr,
    gate: SharedGate,
    cancel: CancellationToken,
}

impl Connection {
    /// The TLS handshake, bounded by the gate's deadline for a first
    /// message (a peer that opens and says nothing is a probe either way).
    async fn handshake(
        &self,
        acceptor: &TlsAcceptor,
        stream: TcpStream,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        let deadline = self.gate.lock().expect("SIP gate").deadline(self.id, None)?;
        let handshake = tokio::select! {
            _ = self.cancel.cancelled() => return None,
            done = tokio::time::timeout_at(deadline.into(), acceptor.accept(stream)) => done,
        };
        match handshake {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "SIP TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(peer = %self.peer, "SIP TLS connection closed: no handshake in time");
                None
            }
        }
    }

    async fn serve<S>(self, stream: S, endpoint: EndpointInnerRef)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let Connection { id, peer, local, gate, cancel } = self;
        let transport = local.r#type.unwrap_or(rsipstack::sip::Transport::Tcp);
        let (in_tx, in_rx) = tokio::sync::mpsc::unbounded_channel();
        let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
        // The channel's address is our listening point: it is what rsipstack
        // names in Via and Contact for this connection.
        let Ok(channel) = ChannelConnection::create_connection(in_rx, out_tx, local, Some(cancel.clone())).await else {
            gate.lock().expect("SIP gate").on_close(id);
            return;
        };
        let connection = SipConnection::Channel(channel);
        // Served, not cached: a channel's cache key would be its one address
        // (ours), and rsipstack opens its own connections for what it sends.
        endpoint.transport_layer.inner.serve_connection(connection.clone());
        let (mut reader, writer) = tokio::io::split(stream);
        let writer = Arc::new(tokio::sync::Mutex::new(writer));
        let recent: Arc<Mutex<VecDeque<Recent>>> = Arc::new(Mutex::new(VecDeque::with_capacity(RECENT)));
        let sending = {
            let (writer, recent, gate) = (writer.clone(), recent.clone(), gate.clone());
            tokio::spawn(async move {
                while let Some(event) = out_rx.recv().await {
                    let TransportEvent::Incoming(msg, _, _) = event else { continue };
                    let bytes = msg.to_bytes();
                    let bytes = super::outgoing(&bytes, &recent).unwrap_or_else(|| bytes.to_vec());
                    if writer.lock().await.write_all(&bytes).await.is_err() {
                        break;
                    }
                    // What we send keeps the connection in use too.
                    gate.lock().expect("SIP gate").on_activity(id, false, Instant::now());
                }
            })
        };
        let from = SipAddr { r#type: Some(transport), addr: peer.into() };
        let mut buf = Vec::new();
        // When the incomplete message in `buf` began: it must be whole soon.
        let mut message_began: Option<Instant> = None;
        'read: loop {
            let deadline = gate.lock().expect("SIP gate").deadline(id, message_began);
            // No deadline: the gate evicted it.
            let Some(deadline) = deadline else { break };
            buf.reserve(2048);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    tracing::debug!(%peer, mid_message = message_began.is_some(), "SIP TCP connection closed: its time is up");
                    break;
                }
                read = reader.read_buf(&mut buf) => if !matches!(read, Ok(n) if n > 0) {
                    break;
                },
            }
            let now = Instant::now();
            gate.lock().expect("SIP gate").on_activity(id, false, now);
            message_began.get_or_insert(now);
            loop {
                let len = match validate::frame_stream(&buf, MAX_MESSAGE) {
                    Ok(Some(len)) => len,
                    Ok(None) => continue 'read,
                    Err(why) => {
                        // Cannot frame: answer what can be answered, then close.
                        let verdict = validate::check(&buf, peer, Carrier::Stream, &POLICY);
                        let answered = matches!(verdict, Verdict::Reply { .. });
                        let refusal = if answered { Refusal::Invalid } else { Refusal::Unreadable };
                        gate.lock().expect("SIP gate").refused(refusal);
                        if let Verdict::Reply { response, .. } = verdict {
                            let _ = writer.lock().await.write_all(&response).await;
                        }
                        tracing::debug!(%peer, why, "SIP TCP connection closed: cannot frame");
                        break 'read;
                    }
                };
                let message: Vec<u8> = buf.drain(..len).collect();
                if buf.is_empty() {
                    message_began = None;
                    // An idle connection keeps no buffer.
                    buf = Vec::new();
                }
                if message.iter().all(|b| b.is_ascii_whitespace()) {
                    if message.as_slice() == b"\r\n\r\n" {
                        // RFC 5626 keep-alive ping: pong.
                        let _ = writer.lock().await.write_all(b"\r\n").await;
                    }
                    continue;
                }
                let admit = gate.lock().expect("SIP gate").on_message(peer, Some(id), &message, now);
                if !heard(admit, peer) {
                    continue;
                }
                match validate::check(&message, peer, Carrier::Stream, &POLICY) {
                    Verdict::Pass { len } => {
                        gate.lock().expect("SIP gate").on_activity(id, true, now);
                        let message = &message[..len];
                        if let Some(request) = validate::from_to_of(message) {
                            super::remember(&recent, request);
                        }
                        let fixed = validate::normalize(message);
                        let parsed = SipMessage::try_from(fixed.as_deref().unwrap_or(message))
                            .map_err(|e| e.to_string())
                            .and_then(|msg| {
                                SipConnection::update_msg_received(msg, peer, transport).map_err(|e| e.to_string())
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
                        gate.lock().expect("SIP gate").refused(Refusal::Invalid);
                        tracing::debug!(%peer, status, "malformed SIP over TCP answered");
                        if writer.lock().await.write_all(&response).await.is_err() {
                            break 'read;
                        }
                    }
                    Verdict::Drop(why) => {
                        gate.lock().expect("SIP gate").refused(Refusal::Unreadable);
                        tracing::debug!(%peer, why, "SIP over TCP dropped");
                    }
                }
            }
        }
        gate.lock().expect("SIP gate").on_close(id);
        // Dropping `in_tx` ends the channel's loop: rsipstack hears Closed.
        drop(in_tx);
        cancel.cancel();
        sending.abort();
    }
}
