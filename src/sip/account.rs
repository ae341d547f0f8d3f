//! An account as the SIP side uses it: its configuration with the URIs
//! parsed, the transport applied, and the registrar and proxy resolved to
//! the socket addresses inbound calls may come from.

use std::net::SocketAddr;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::sip::{Param, Uri};
use rsipstack::transport::SipAddr;

use super::error::SipError;
use crate::config::{AccountConfig, Transport};

pub struct Account {
    pub config: AccountConfig,
    pub aor: Uri,
    /// The REGISTER Request-URI, carrying the account's transport.
    pub registrar: Option<Uri>,
    /// Where every request of the account is sent first, when configured.
    pub proxy: Option<SipAddr>,
    /// The proxy resolved, for rsipstack's registration client.
    pub proxy_socket: Option<SocketAddr>,
    /// Where REGISTERs and keep-alives go: the proxy, else the registrar.
    pub registrar_target: Option<SipAddr>,
    /// The registrar's and proxy's addresses: trusted sources of INVITEs.
    pub trusted: Vec<SocketAddr>,
}

impl Account {
    pub async fn resolve(config: AccountConfig) -> Result<Account, SipError> {
        let aor = uri(&config.aor)?;
        let registrar = config.registrar.as_deref().map(uri).transpose()?.map(|r| with_transport(r, config.transport));
        let registrar_addr = registrar.as_ref().map(|r| sip_addr(r, config.transport)).transpose()?;
        let proxy_uri = config.outbound_proxy.as_deref().map(uri).transpose()?;
        let proxy = proxy_uri.as_ref().map(|p| sip_addr(p, config.transport)).transpose()?;
        let mut trusted = Vec::new();
        if let Some(target) = &registrar_addr {
            trusted.extend(lookup(&config, target).await);
        }
        let proxy_addrs = match &proxy {
            Some(target) => lookup(&config, target).await,
            None => Vec::new(),
        };
        let proxy_socket = proxy_addrs.first().copied();
        trusted.extend(proxy_addrs);
        let registrar_target = proxy.clone().or(registrar_addr);
        Ok(Account { config, aor, registrar, proxy, proxy_socket, registrar_target, trusted })
    }

    /// The host (and port) of the AOR: where bare numbers are dialled.
    pub fn domain(&self) -> String {
        self.aor.host_with_port.to_string()
    }

    /// The user part of our From and Contact.
    pub fn user(&self) -> &str {
        self.config.aor_user()
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

    /// The digest credential, when the account has a password.
    pub fn credential(&self) -> Option<Credential> {
        let config = &self.config;
        let password = config.password.as_ref()?;
        let auth_user = config.auth_user();
        Some(Credential {
            username: self.user().to_string(),
            password: password.expose().to_string(),
            realm: config.realm.clone(),
            auth_username: (auth_user != self.user()).then_some(auth_user),
        })
    }
}

/// The socket addresses of `target`; none (with a warning) when it does not
/// resolve now, since only `allow_from` can then let its calls in.
async fn lookup(config: &AccountConfig, target: &SipAddr) -> Vec<SocketAddr> {
    let port = target.addr.port.as_ref().map(|p| p.value()).unwrap_or(default_port(config.transport));
    let host = target.addr.host.to_string();
    match tokio::net::lookup_host((host.as_str(), port)).await.map(|addrs| addrs.collect()) {
        Ok(addrs) => addrs,
        Err(e) => {
            tracing::warn!(account = %config.id, %host, error = %e, "cannot resolve registrar or proxy");
            Vec::new()
        }
    }
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

/// `uri` as a transport address: its own `;transport=`, else the account's.
fn sip_addr(uri: &Uri, transport: Transport) -> Result<SipAddr, SipError> {
    let mut addr =
        SipAddr::try_from(uri).map_err(|e| SipError::BadUri { uri: uri.to_string(), message: e.to_string() })?;
    let named = uri.params.iter().find_map(|p| if let Param::Transport(t) = p { Some(*t) } else { None });
    addr.r#type = Some(named.unwrap_or(rsip_transport(transport)));
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
