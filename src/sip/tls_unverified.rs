//! `sip.tls_verify = false`, for labs only: a TLS client connector that
//! accepts any server certificate (the handshake signature is still
//! checked, so the session is encrypted to whoever holds the key, just not
//! authenticated). rsipstack's own client always verifies, so this hooks
//! its process-wide connector seam. Never the default; the daemon warns.

use std::net::SocketAddr;
use std::sync::Arc;

use rsipstack::platform::tls::{set_client_connector, TlsClientConfig, TlsConnector, TlsStream};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// Make every outbound TLS connection of this process skip verification.
pub fn install() {
    tracing::warn!("sip.tls_verify = false: TLS servers are NOT authenticated (lab use only)");
    set_client_connector(Arc::new(Unverified { provider: Arc::new(rustls::crypto::ring::default_provider()) }));
}

struct Unverified {
    provider: Arc<CryptoProvider>,
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type Stream = tokio_rustls::client::TlsStream<TcpStream>;

struct Session {
    reader: Mutex<ReadHalf<Stream>>,
    writer: Mutex<WriteHalf<Stream>>,
    local: SocketAddr,
}

fn error(e: impl std::fmt::Display) -> rsipstack::Error {
    rsipstack::Error::Error(format!("TLS: {e}"))
}

#[async_trait::async_trait]
impl TlsConnector for Unverified {
    async fn connect(&self, config: &TlsClientConfig, addr: SocketAddr) -> rsipstack::Result<Box<dyn TlsStream>> {
        let client = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(error)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(self.provider.clone())))
            .with_no_client_auth();
        let name = ServerName::try_from(config.server_name.clone()).map_err(error)?;
        let tcp = TcpStream::connect(addr).await.map_err(error)?;
        let local = tcp.local_addr().map_err(error)?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, tcp).await.map_err(error)?;
        let (reader, writer) = tokio::io::split(stream);
        Ok(Box::new(Session { reader: Mutex::new(reader), writer: Mutex::new(writer), local }))
    }
}

#[async_trait::async_trait]
impl TlsStream for Session {
    async fn recv(&self) -> rsipstack::Result<Vec<u8>> {
        let mut buf = vec![0u8; 16 * 1024];
        let n = self.reader.lock().await.read(&mut buf).await.map_err(error)?;
        buf.truncate(n);
        Ok(buf)
    }

    async fn send_all(&self, data: Vec<u8>) -> rsipstack::Result<()> {
        self.writer.lock().await.write_all(&data).await.map_err(error)
    }

    async fn shutdown(&self) -> rsipstack::Result<()> {
        self.writer.lock().await.shutdown().await.map_err(error)
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.local)
    }
}
