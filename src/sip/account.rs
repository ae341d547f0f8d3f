//! An account as the SIP side uses it: its configuration with the URIs
//! parsed, the transport applied, and the registrar and proxy located
//! (RFC 3263) to the addresses REGISTERs go to and inbound calls may come from.

use std::net::SocketAddr;
use std::time::Duration;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::sip::{Param, Uri};
use rsipstack::transport::SipAddr;

use super::error::SipError;
use super::resolver::{self, Resolver};
use crate::config::{AccountConfig, Transport};
use crate::dns::{self, Targets};

pub struct Account {
    pub config: AccountConfig,
    pub aor: Uri,
    /// The REGISTER Request-URI, carrying the account's transport.
    pub registrar: Option<Uri>,
    /// Where every request of the account is sent first, when configured.
    pub proxy: Option<SipAddr>,
    /// What REGISTERs and keep-alives are routed by: the proxy's URI, else
    /// the registrar's; located again as the registration needs it.
    pub next_hop: Option<Uri>,
    /// `next_hop` as located at start, in failover order.
    pub located: Option<Targets>,
    /// Every located address of the registrar and the proxy: trusted sources of INVITEs.
    pub trusted: Vec<SocketAddr>,
    pub resolver: Resolver,
}

impl Account {
    pub async fn resolve(config: AccountConfig, resolver: Resolver) -> Result<Account, SipError> {
        let aor = uri(&config.aor)?;
        let registrar = config.registrar.as_deref().map(uri).transpose()?.map(|r| with_transport(r, config.transport));
        let proxy_uri = config.outbound_proxy.as_deref().map(uri).transpose()?;
        let proxy = proxy_uri.as_ref().map(|p| sip_addr(p, config.transport)).transpose()?;
        let registrar_targets = match &registrar {
            Some(registrar) => locate(&config, &resolver, registrar).await,
            None => None,
        };
        let proxy_targets = match &proxy_uri {
            Some(proxy) => locate(&config, &resolver, proxy).await,
            None => None,
        };
        let trusted = [&registrar_targets, &proxy_targets]
            .into_iter()
            .flatten()
            .flat_map(|targets| targets.all().iter().map(|t| t.address))
            .collect();
        let (next_hop, located) = match (&registrar, proxy_uri) {
            (None, _) => (None, None),
            (Some(_), Some(proxy)) => (Some(proxy), proxy_targets),
            (Some(registrar), None) => (Some(registrar.clone()), registrar_targets),
        };
        Ok(Account { config, aor, registrar, proxy, next_hop, located, trusted, resolver })
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
            r#type: Some(resolver::to_rsip(self.config.transport)),
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

/// How long the start waits for DNS per name: a silent resolver must not
/// hold the control socket closed; the registration keeps trying.
const START_LOCATE_LIMIT: Duration = Duration::from_secs(3);

/// Where `uri` is located now; none (with a warning) when it is not, since
/// only `allow_from` can then let its calls in, and the registration will
/// try again and report why.
async fn locate(config: &AccountConfig, resolver: &Resolver, uri: &Uri) -> Option<Targets> {
    let located = tokio::time::timeout(START_LOCATE_LIMIT, resolver.locate(uri, config.transport));
    match located.await.unwrap_or_else(|_| Err(dns::ResolveError::Timeout { host: uri.host_with_port.to_string() })) {
        Ok(targets) => {
            let list: Vec<String> = targets.all().iter().map(ToString::to_string).collect();
            tracing::info!(account = %config.id, %uri, targets = ?list, "located");
            Some(targets)
        }
        Err(e) => {
            tracing::warn!(account = %config.id, error = %e, "cannot locate registrar or proxy");
            None
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
        uri.params.push(Param::Transport(resolver::to_rsip(transport)));
    }
    uri
}

/// `uri` as a transport address: its own `;transport=`, else the account's.
fn sip_addr(uri: &Uri, transport: Transport) -> Result<SipAddr, SipError> {
    let mut addr =
        SipAddr::try_from(uri).map_err(|e| SipError::BadUri { uri: uri.to_string(), message: e.to_string() })?;
    let named = uri.params.iter().find_map(|p| if let Param::Transport(t) = p { Some(*t) } else { None });
    addr.r#type = Some(named.unwrap_or(resolver::to_rsip(transport)));
    Ok(addr)
}
