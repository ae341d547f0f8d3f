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
//! TCP/TLS: rsipstack's stream connections read a `tokio::net::TcpStream`
//! directly, with no such seam; they are not validated yet (see
//! `validate::frame_stream` for the framing they will use).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::validate::{self, Carrier, Verdict, POLICY};

/// A UDP socket that lets only well-formed SIP through.
pub struct ValidatingUdp {
    socket: tokio::net::UdpSocket,
    answered: AtomicU64,
    dropped: AtomicU64,
}

impl ValidatingUdp {
    pub fn new(socket: tokio::net::UdpSocket) -> Self {
        ValidatingUdp { socket, answered: AtomicU64::new(0), dropped: AtomicU64::new(0) }
    }
}

#[async_trait::async_trait]
impl rsipstack::platform::net::UdpSocket for ValidatingUdp {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (len, source) = self.socket.recv_from(buf).await?;
            match validate::check(&buf[..len], source, Carrier::Datagram, &POLICY) {
                Verdict::Pass { len } => return Ok((len, source)),
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
        Ok(self.socket.send_to(buf, addr).await?)
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
}
