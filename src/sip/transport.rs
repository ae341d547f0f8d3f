//! The SIP listening points (UDP, TCP, TLS) and the TLS trust store, set up
//! on rsipstack's transport layer before the endpoint starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rsipstack::transport::tls::TlsConfig;
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

/// A TCP or TLS listening point we serve ourselves (see `front::stream`),
/// once the endpoint exists.
pub struct StreamFront {
    pub listener: tokio::net::TcpListener,
    pub local: SipAddr,
    /// TLS: the handshake comes first.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// The listening points, opened.
pub struct Opened {
    /// With real ports where 0 was asked for.
    pub listens: Vec<Listen>,
    /// The TCP and TLS ones, for `front::stream` to serve.
    pub fronts: Vec<StreamFront>,
    /// The first UDP socket: STUN goes out (and its answers come) there.
    pub udp: Option<Arc<ValidatingUdp>>,
}

/// Open every listening point on `transport`. `public`: `sip.public_address`,
/// what rsipstack puts in the Via of requests it builds itself.
pub async fn listen(
    transport: &TransportLayer,
    listens: &[Listen],
    public: Option<std::net::IpAddr>,
    tls: &TlsSettings,
    gate: &SharedGate,
    shutdown: &CancellationToken,
) -> Result<Opened, SipError> {
    let tls_config = tls_config(tls)?;
    transport.set_tls_config(tls_config.clone());
    if !tls.verify {
        super::tls_unverified::install();
    }
    let mut bound = Vec::new();
    let mut fronts = Vec::new();
    let mut first_udp = None;
    for listen in listens {
        let bind_err = |message: String| SipError::Bind { listen: *listen, message };
        let addr = match listen.transport {
            Transport::Udp => {
                // Our socket under rsipstack's connection: every datagram
                // is checked before rsipstack parses it (see `front`).
                let socket = udp_socket(listen.addr).map_err(|e| bind_err(e.to_string()))?;
                // As bound, a wildcard kept: rsipstack's own address for it
                // is one interface picked at random, which `reach` must not take.
                let addr = socket.local_addr().map_err(|e| bind_err(e.to_string()))?;
                let port = addr.port();
                let socket = Arc::new(ValidatingUdp::new(socket, gate.clone(), public.is_some()));
                first_udp.get_or_insert_with(|| socket.clone());
                let external = public.map(|ip| SocketAddr::new(ip, port));
                let udp = UdpConnection::from_socket(socket, external, Some(shutdown.child_token()))
                    .await
                    .map_err(|e| bind_err(e.to_string()))?;
                transport.add_transport(udp.into());
                addr
            }
            Transport::Tcp | Transport::Tls => {
                // Checked like UDP: our listener, rsipstack behind it.
                let listener = tcp_listener(listen.addr).map_err(|e| bind_err(e.to_string()))?;
                let addr = listener.local_addr().map_err(|e| bind_err(e.to_string()))?;
                let (kind, tls) = match listen.transport {
                    Transport::Tls => (rsipstack::sip::Transport::Tls, Some(tls_acceptor(tls)?)),
                    _ => (rsipstack::sip::Transport::Tcp, None),
                };
                let local = SipAddr { r#type: Some(kind), addr: SipConnection::resolve_bind_address(addr).into() };
                fronts.push(StreamFront { listener, local, tls });
                addr
            }
        };
        bound.push(Listen { transport: listen.transport, addr });
    }
    Ok(Opened { listens: bound, fronts, udp: first_udp })
}

/// A UDP listening socket. An IPv6 wildcard takes IPv6 only (Linux would
/// make it dual-stack), so that `udp:0.0.0.0:P` and `udp:[::]:P` can both
/// be listened on and IPv4 peers never show up as `::ffff:` addresses.
fn udp_socket(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use nix::sys::socket::{bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn6};
    let socket = match addr {
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => {
            let fd = socket(AddressFamily::Inet6, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
            setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
            bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn6::from(v6))?;
            std::net::UdpSocket::from(fd)
        }
        _ => std::net::UdpSocket::bind(addr)?,
    };
    socket.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(socket)
}
/// A connection storm fills the accept queue faster than any loop drains
/// it, and a connection the kernel drops from a full queue is never seen
/// by us (a peer that sent nothing thinks it is still open): a deep queue.
const ACCEPT_QUEUE: u32 = 4096;

/// A TCP (or TLS) listening socket; an IPv6 wildcard takes IPv6 only, as
/// [`udp_socket`]'s does, so every transport treats `[::]` alike.
fn tcp_listener(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::Ipv6V6Only, &true)?;
    }
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_QUEUE)
}

/// What a `tls:` listening point presents: `sip.tls_cert_file` (the chain)
/// and `sip.tls_key_file` (PKCS#8, PKCS#1 or SEC1).
fn tls_acceptor(tls: &TlsSettings) -> Result<tokio_rustls::TlsAcceptor, SipError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |key: &'static str, message: String| SipError::Tls { key, message };
    let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) else {
        return Err(invalid("sip.tls_cert_file", "a tls: listening point needs tls_cert_file and tls_key_file".into()));
    };
    let chain = CertificateDer::pem_slice_iter(&read_pem(cert_file, "sip.tls_cert_file")?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("sip.tls_cert_file", format!("{}: {e}", cert_file.display())))?;
    let key = PrivateKeyDer::from_pem_slice(&read_pem(key_file, "sip.tls_key_file")?)
        .map_err(|e| invalid("sip.tls_key_file", format!("{}: {e}", key_file.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| invalid("sip.tls_cert_file", e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `[::]:P` takes IPv6 only over TCP as over UDP: IPv4 on the same
    /// port is a listening point of its own.
    #[tokio::test]
    async fn an_ipv6_wildcard_listens_to_ipv6_only_on_tcp_and_udp() {
        let tcp = tcp_listener("[::]:0".parse().unwrap()).unwrap();
        let port = tcp.local_addr().unwrap().port();
        assert!(tokio::net::TcpStream::connect(("::1", port)).await.is_ok(), "IPv6 connects");
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(), "IPv4 is not taken");
        let v4 = tcp_listener(SocketAddr::from(([0, 0, 0, 0], port))).expect("0.0.0.0 binds beside [::]");
        drop(v4);

        let udp = udp_socket("[::]:0".parse().unwrap()).unwrap();
        let port = udp.local_addr().unwrap().port();
        udp_socket(SocketAddr::from(([0, 0, 0, 0], port))).expect("0.0.0.0 binds beside [::]");
    }
}
