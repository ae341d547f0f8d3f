//! The SIP listening points (UDP, TCP, TLS) and the TLS trust store, set up
//! on rsipstack's transport layer before the endpoint starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rsipstack::transport::tls::{TlsConfig, TlsListenerConnection};
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportLayer};
use tokio_util::sync::CancellationToken;

use super::error::SipError;
use super::front::{SharedGate, ValidatingUdp};
use crate::config::{Listen, Transport};

/// Where TLS trust comes from and what we present when listening.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub ca_file: Option<PathBuf>,
    /// Off only in labs: then no server certificate is checked.
    pub verify: bool,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// Where Debian, Fedora and Alpine keep the system's trust anchors.
const SYSTEM_ROOTS: [&str; 3] =
    ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

/// A TCP listening point we serve ourselves (see `front::tcp`), once the
/// endpoint exists.
pub struct TcpFront {
    pub listener: tokio::net::TcpListener,
    pub local: SipAddr,
}

/// Open every listening point on `transport`; returns them with real ports,
/// and the TCP ones for `front::tcp` to serve.
pub async fn listen(
    transport: &TransportLayer,
    listens: &[Listen],
    tls: &TlsSettings,
    gate: &SharedGate,
    shutdown: &CancellationToken,
) -> Result<(Vec<Listen>, Vec<TcpFront>), SipError> {
    let tls_config = tls_config(tls)?;
    transport.set_tls_config(tls_config.clone());
    if !tls.verify {
        super::tls_unverified::install();
    }
    let mut bound = Vec::new();
    let mut fronts = Vec::new();
    for listen in listens {
        let bind_err = |message: String| SipError::Bind { listen: *listen, message };
        let addr = match listen.transport {
            Transport::Udp => {
                // Our socket under rsipstack's connection: every datagram
                // is checked before rsipstack parses it (see `front`).
                let socket = tokio::net::UdpSocket::bind(listen.addr).await.map_err(|e| bind_err(e.to_string()))?;
                let socket = Arc::new(ValidatingUdp::new(socket, gate.clone()));
                let udp = UdpConnection::from_socket(socket, None, Some(shutdown.child_token()))
                    .await
                    .map_err(|e| bind_err(e.to_string()))?;
                let addr = udp.get_addr().get_socketaddr().map_err(|e| bind_err(e.to_string()))?;
                transport.add_transport(udp.into());
                addr
            }
            Transport::Tcp => {
                // Checked like UDP: our listener, rsipstack behind it.
                let listener = tcp_listener(listen.addr).map_err(|e| bind_err(e.to_string()))?;
                let addr = listener.local_addr().map_err(|e| bind_err(e.to_string()))?;
                let local = SipAddr {
                    r#type: Some(rsipstack::sip::Transport::Tcp),
                    addr: SipConnection::resolve_bind_address(addr).into(),
                };
                fronts.push(TcpFront { listener, local });
                addr
            }
            Transport::Tls => {
                // rsipstack binds stream listeners only once the endpoint
                // serves, and then merely logs a failure: claim the port now,
                // so a busy one stops the start and port 0 gets a real number.
                let addr = std::net::TcpListener::bind(listen.addr)
                    .and_then(|probe| probe.local_addr())
                    .map_err(|e| bind_err(e.to_string()))?;
                let tls = TlsListenerConnection::new(addr, None, tls_config.clone())
                    .await
                    .map_err(|e| bind_err(e.to_string()))?;
                transport.add_transport(tls.into());
                addr
            }
        };
        bound.push(Listen { transport: listen.transport, addr });
    }
    Ok((bound, fronts))
}

/// A connection storm fills the accept queue faster than any loop drains
/// it, and a connection the kernel drops from a full queue is never seen
/// by us (a peer that sent nothing thinks it is still open): a deep queue.
const ACCEPT_QUEUE: u32 = 4096;

fn tcp_listener(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_QUEUE)
}

/// The system roots plus the configured CA file, and our own certificate.
fn tls_config(tls: &TlsSettings) -> Result<TlsConfig, SipError> {
    let mut anchors = SYSTEM_ROOTS.iter().find_map(|path| std::fs::read(path).ok()).unwrap_or_default();
    if let Some(path) = &tls.ca_file {
        anchors.push(b'\n');
        anchors.extend(read_pem(path, "sip.tls_ca_file")?);
    }
    Ok(TlsConfig {
        cert: tls.cert_file.as_deref().map(|p| read_pem(p, "sip.tls_cert_file")).transpose()?,
        key: tls.key_file.as_deref().map(|p| read_pem(p, "sip.tls_key_file")).transpose()?,
        ca_certs: (!anchors.is_empty()).then_some(anchors),
        ..Default::default()
    })
}

fn read_pem(path: &Path, key: &'static str) -> Result<Vec<u8>, SipError> {
    std::fs::read(path).map_err(|e| SipError::Tls { key, message: format!("{}: {e}", path.display()) })
}

/// The `transport=` value and local address to put in a Contact.
pub fn contact_for(listens: &[Listen], transport: Transport) -> Option<SocketAddr> {
    listens.iter().find(|l| l.transport == transport).map(|l| l.addr)
}
