//! An account as the SIP side uses it: its configuration with the URIs
//! parsed, the transport applied, and the registrar and proxy resolved to
//! the socket addresses inbound calls may come from.

use std::net::SocketAddr;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::sip::{Param, Uri};
use rsipstack::transport::SipAddr;

use super::SipError;
use crate::config::{AccountConfig, Transport};

pub struct Account {
    pub config: AccountConfig,
    pub aor: Uri,
    /// The REGISTER Request-URI, carrying the account's transport.
    pub registrar: Option<Uri>,
    /// Where every request of the account is sent first, when configured.
    pub proxy: Option<SipAddr>,
    /// The registrar's and proxy's addresses: trusted sources of INVITEs.
    pub trusted: Vec<SocketAddr>,
}

impl Account {
    pub async fn resolve(config: AccountConfig) -> Result<Account, SipError> {
        let aor = uri(&config.aor)?;
        let registrar = config.registrar.as_deref().map(uri).transpose()?.map(|r| with_transport(r, config.transport));
        let proxy = config
            .outbound_proxy
            .as_deref()
            .map(uri)
            .transpose()?
            .map(|p| sip_addr(&p, config.transport))
            .transpose()?;
        let mut trusted = Vec::new();
        let targets = registrar.iter().map(|r| sip_addr(r, config.transport)).chain(proxy.clone().map(Ok));
        for target in targets {
            let target = target?;
            let port = target.addr.port.as_ref().map(|p| p.value()).unwrap_or(default_port(config.transport));
            let host = target.addr.host.to_string();
            match tokio::net::lookup_host((host.as_str(), port)).await.map(|addrs| addrs.collect::<Vec<_>>()) {
                Ok(addrs) => trusted.extend(addrs),
                // Resolution may work later; until then only allow_from lets calls in.
                Err(e) => tracing::warn!(account = %config.id, %host, error = %e, "cannot resolve registrar or proxy"),
            }
        }
        Ok(Account { config, aor, registrar, proxy, trusted })
    }

    /// The host (and port) of the AOR: where bare numbers are dialled.
    pub fn domain(&self) -> String {
        self.aor.host_with_port.to_string()
    }

    /// Where an INVITE of this account to `callee` is sent: the outbound
    /// proxy, or the callee itself over the account's transport.
    pub fn destination_for(&self, callee: &Uri) -> Option<SipAddr> {
        if let Some(proxy) = &self.proxy {
            return Some(proxy.clone());
        }
        (self.config.transport != Transport::Udp).then(|| SipAddr {
            r#type: Some(rsip_transport(self.config.transport)),
            addr: callee.host_with_port.clone(),
        })
    }
}

/// The digest credential of an account with a password.
pub fn credential(config: &AccountConfig) -> Option<Credential> {
    let password = config.password.as_ref()?;
    let auth_user = config.auth_user();
    Some(Credential {
        username: config.aor_user().to_string(),
        password: password.expose().to_string(),
        realm: config.realm.clone(),
        auth_username: (auth_user != config.aor_user()).then_some(auth_user),
    })
}

fn uri(text: &str) -> Result<Uri, SipError> {
    Uri::try_from(text).map_err(|e| SipError::BadUri { uri: text.into(), message: e.to_string() })
}

/// `uri` with `;transport=` set to the account's, unless it names one.
fn with_transport(mut uri: Uri, transport: Transport) -> Uri {
    let has_transport = uri.params.iter().any(|p| matches!(p, Param::Transport(_)));
    if transport != Transport::Udp && !has_transport {
        uri.params.push(Param::Transport(rsip_transport(transport)));
    }
    uri
}

fn sip_addr(uri: &Uri, transport: Transport) -> Result<SipAddr, SipError> {
    let mut addr =
        SipAddr::try_from(uri).map_err(|e| SipError::BadUri { uri: uri.to_string(), message: e.to_string() })?;
    addr.r#type = Some(rsip_transport(transport));
    Ok(addr)
}

pub fn rsip_transport(transport: Transport) -> rsipstack::sip::Transport {
    match transport {
        Transport::Udp => rsipstack::sip::Transport::Udp,
        Transport::Tcp => rsipstack::sip::Transport::Tcp,
        Transport::Tls => rsipstack::sip::Transport::Tls,
    }
}

fn default_port(transport: Transport) -> u16 {
    if transport == Transport::Tls {
        5061
    } else {
        5060
    }
}
