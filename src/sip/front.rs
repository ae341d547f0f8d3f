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
//! Before the checks, the [`Gate`] decides whether the source is heard
//! at all (rate, scanners, TCP and TLS seats); its clock is read here.
//!
//! TCP and TLS: rsipstack's stream connections read a `tokio::net::TcpStream`
//! directly, with no such seam, so inbound TCP and TLS are served here (see
//! [`stream`]) and handed to rsipstack through its in-memory channel
//! connection.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::gate::{Admit, Gate, Refusal, Silenced};
use super::validate::{self, Carrier, Verdict, POLICY};

/// The gate shared by every listening point.
pub type SharedGate = Arc<Mutex<Gate>>;

/// STUN transactions of ours waiting for their answer on this socket, by
/// transaction id (see `reach`): the answers arrive among the SIP.
pub type StunWaiters = Mutex<HashMap<[u8; 12], tokio::sync::mpsc::UnboundedSender<Vec<u8>>>>;

/// A UDP socket that lets only well-formed SIP through.
pub struct ValidatingUdp {
    socket: tokio::net::UdpSocket,
    gate: SharedGate,
    /// The raw From and To of the latest requests, by Call-ID and CSeq:
    /// rsipstack's answers get them back as they came.
    recent: Mutex<VecDeque<Recent>>,
    pub stun: StunWaiters,
    /// Bound to a wildcard address, without `sip.public_address`: the
    /// requests' Via is set per destination (see `route`).
    wildcard: bool,
    public: bool,
}

/// (Call-ID, CSeq, From, To) of one request, as received.
type Recent = validate::RequestFromTo;

/// Requests remembered for their From/To: enough for the transactions a
/// softphone has open at once; a flood only pushes old ones out.
const RECENT: usize = 64;

impl ValidatingUdp {
    pub fn new(socket: tokio::net::UdpSocket, gate: SharedGate, public: bool) -> Self {
        let wildcard = socket.local_addr().is_ok_and(|a| a.ip().is_unspecified());
        ValidatingUdp {
            wildcard,
            public,
            socket,
            gate,
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            stun: Mutex::new(HashMap::new()),
        }
    }

    /// Send a datagram that is not SIP (a STUN request) from this socket.
    pub async fn send_raw(&self, bytes: &[u8], to: SocketAddr) -> std::io::Result<()> {
        self.socket.send_to(bytes, to).await.map(|_| ())
    }

    /// A STUN answer to one of our transactions goes to it; any other STUN
    /// is dropped unanswered (we serve no STUN: nothing to amplify).
    /// True when `datagram` was STUN.
    fn take_stun(&self, datagram: &[u8]) -> bool {
        if !crate::nat::stun::is_stun(datagram) {
            return false;
        }
        let id: [u8; 12] = datagram[8..20].try_into().expect("a STUN header has 12 id bytes");
        if let Some(waiter) = self.stun.lock().expect("STUN waiters").get(&id) {
            let _ = waiter.send(datagram.to_vec());
        }
        true
    }
}

#[async_trait::async_trait]
impl rsipstack::platform::net::UdpSocket for ValidatingUdp {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (len, source) = self.socket.recv_from(buf).await?;
            if self.take_stun(&buf[..len]) {
                continue;
            }
            let admit = self.gate.lock().expect("SIP gate").on_message(source, None, &buf[..len], Instant::now());
            if !heard(admit, source) {
                continue;
            }
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
                    let n = self.gate.lock().expect("SIP gate").refused(Refusal::Invalid);
                    let reason = response.split(|&b| b == b'\r').next().map(String::from_utf8_lossy);
                    tracing::debug!(%source, status, reason = ?reason, answered = n, "malformed SIP answered");
                    if let Err(e) = self.socket.send_to(&response, to).await {
                        tracing::debug!(%to, error = %e, "answer to a malformed request not sent");
                    }
                }
                Verdict::Drop(why) => {
                    let n = self.gate.lock().expect("SIP gate").refused(Refusal::Unreadable);
                    tracing::debug!(%source, why, dropped = n, "SIP datagram dropped");
                }
            }
        }
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        let mut out = outgoing(buf, &self.recent);
        if self.wildcard && !self.public {
            // rsipstack names one interface in every Via; the packet leaves by the route's.
            let source = super::route::route_source(addr.ip());
            if let Some(fixed) = source.and_then(|ip| super::route::with_via_host(out.as_deref().unwrap_or(buf), ip)) {
                out = Some(fixed);
            }
        }
        self.socket.send_to(out.as_deref().unwrap_or(buf), addr).await?;
        Ok(buf.len())
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
}

pub mod stream;

/// Whether the gate lets a message from `source` be heard; the log line
/// it asks for when not.
fn heard(admit: Admit, source: SocketAddr) -> bool {
    match admit {
        Admit::Pass => true,
        Admit::Silence { why, notice } => {
            if let Some(silenced) = notice {
                match why {
                    Silenced::Scanner => tracing::warn!(%source, silenced, "SIP scanner ignored"),
                    Silenced::OverRate => {
                        tracing::warn!(%source, silenced, "SIP source over its request rate: not answered")
                    }
                }
            }
            false
        }
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
