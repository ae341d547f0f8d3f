//! The shell of RFC 3263 location ([`crate::dns`]): it puts the pure
//! procedure's questions to a hickory resolver — the `[dns] servers` of the
//! config, else the system's from /etc/resolv.conf, never any other — and
//! feeds the answers back. The same resolver serves rsipstack, as its
//! [`DomainResolver`], for the requests it routes by itself; a name a
//! registration has pinned goes to the target that registration uses, so
//! that rsipstack follows its failover (and a TLS connection still checks
//! the certificate against the name).

// rsipstack's own error type is large; it is only ever logged here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use hickory_resolver::TokioResolver;
use rsipstack::sip::{Host, HostWithPort, Param, Scheme, Uri};
use rsipstack::transport::transport_layer::DomainResolver;
use rsipstack::transport::SipAddr;

use super::error::SipError;
use crate::dns::{
    Answer, NaptrRecord, Query, Request, Resolution, ResolveError, SrvRecord, Target, Targets, Transport,
};

/// Cheap to clone: every clone asks through the same resolver and cache.
#[derive(Clone)]
pub struct Resolver {
    dns: Arc<TokioResolver>,
    pinned: Arc<Mutex<HashMap<PinKey, Target>>>,
}

/// A name as rsipstack asks for it: host (lower case), port, transport.
type PinKey = (String, Option<u16>, Transport);

impl Resolver {
    /// A resolver asking `servers`, or the system's when there are none.
    pub fn new(servers: &[SocketAddr]) -> Result<Resolver, SipError> {
        let failed = |e: NetError| SipError::Dns(e.to_string());
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio().map_err(failed)?
        } else {
            let name_servers = servers
                .iter()
                .map(|server| {
                    let connection = |mut c: ConnectionConfig| {
                        c.port = server.port();
                        c
                    };
                    let connections = vec![connection(ConnectionConfig::udp()), connection(ConnectionConfig::tcp())];
                    NameServerConfig::new(server.ip(), true, connections)
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                TokioRuntimeProvider::default(),
            )
        };
        // A lost datagram is retried once, then the registration reports the
        // name as not located and its backoff decides when to ask again:
        // a silent resolver costs a few seconds per question, not ten.
        builder.options_mut().timeout = Duration::from_secs(2);
        builder.options_mut().attempts = 1;
        let dns = builder.build().map_err(failed)?;
        Ok(Resolver { dns: Arc::new(dns), pinned: Arc::default() })
    }

    /// Route what rsipstack sends to `uri`'s name over `transport` to
    /// `target` (the one a registration is using); `None` lets go.
    pub fn pin(&self, uri: &Uri, transport: Transport, target: Option<&Target>) {
        let request = request_for(uri, transport);
        let key = (request.host.to_ascii_lowercase(), request.port, request.transport.unwrap_or(transport));
        let mut pinned = self.pinned.lock().expect("pinned targets");
        match target {
            Some(target) => pinned.insert(key, target.clone()),
            None => pinned.remove(&key),
        };
    }

    /// Where requests to `uri` may go, in the order to try (RFC 3263 §4),
    /// over `transport` unless the URI names its own.
    pub async fn locate(&self, uri: &Uri, transport: Transport) -> Result<Targets, ResolveError> {
        self.run(request_for(uri, transport)).await
    }

    /// The addresses `host` names (A/AAAA; an IP literal is itself), asked
    /// of the same servers as every SIP name: for the STUN server and the
    /// peers whose route we pick our advertised address by.
    pub async fn addresses(&self, host: &str) -> Vec<IpAddr> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse() {
            return vec![ip];
        }
        match self.ask(&Query::Addresses(host.to_string())).await {
            Answer::Addresses { addresses, .. } => addresses,
            answer => {
                tracing::warn!(host, ?answer, "no address for the name");
                Vec::new()
            }
        }
    }

    async fn run(&self, request: Request) -> Result<Targets, ResolveError> {
        let mut resolution = Resolution::new(request, rand::random());
        while let Some(query) = resolution.next_query().cloned() {
            let answer = self.ask(&query).await;
            tracing::debug!(?query, ?answer, "dns");
            resolution.on_answer(answer);
        }
        resolution.finish(std::time::Instant::now())
    }

    async fn ask(&self, query: &Query) -> Answer {
        // Fully qualified: no search domain is appended, so nothing but
        // the asked name ever leaves.
        let fqdn = |name: &str| format!("{}.", name.trim_end_matches('.'));
        let (name, record_type) = match query {
            Query::Naptr(name) => (fqdn(name), RecordType::NAPTR),
            Query::Srv(name) => (fqdn(name), RecordType::SRV),
            Query::Addresses(name) => {
                return match self.dns.lookup_ip(fqdn(name)).await {
                    Ok(found) => Answer::Addresses {
                        addresses: found.iter().collect(),
                        ttl_s: smallest_ttl(found.as_lookup().answers()),
                    },
                    Err(e) => Answer::Failed(describe(&e)),
                };
            }
        };
        let lookup = match self.dns.lookup(name, record_type).await {
            Ok(lookup) => lookup,
            Err(e) => return Answer::Failed(describe(&e)),
        };
        let ttl_s = smallest_ttl(lookup.answers());
        let host = |name: &hickory_resolver::proto::rr::Name| name.to_utf8().trim_end_matches('.').to_string();
        let mut naptr = Vec::new();
        let mut srv = Vec::new();
        for record in lookup.answers() {
            match &record.data {
                RData::NAPTR(n) => naptr.push(NaptrRecord {
                    order: n.order,
                    preference: n.preference,
                    flags: String::from_utf8_lossy(&n.flags).into_owned(),
                    services: String::from_utf8_lossy(&n.services).into_owned(),
                    replacement: host(&n.replacement),
                }),
                RData::SRV(s) => srv.push(SrvRecord {
                    priority: s.priority,
                    weight: s.weight,
                    port: s.port,
                    target: host(&s.target),
                }),
                _ => {}
            }
        }
        if record_type == RecordType::NAPTR {
            Answer::Naptr { records: naptr, ttl_s }
        } else {
            Answer::Srv { records: srv, ttl_s }
        }
    }

    /// rsipstack's hook, resolving with this resolver.
    pub fn for_rsipstack(&self) -> Box<dyn DomainResolver> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl DomainResolver for Resolver {
    /// The first located target of a domain rsipstack is about to send to.
    /// Without a transport named, only UDP: rsipstack built the request's
    /// Via for it before asking.
    async fn resolve(&self, target: &SipAddr) -> rsipstack::Result<SipAddr> {
        let failed = |message: String| rsipstack::Error::DnsResolutionError(message);
        let Host::Domain(domain) = &target.addr.host else { return Ok(target.clone()) };
        // RFC 5626: `.invalid` stands for a contact that cannot be looked up.
        if domain.0 == "invalid" || domain.0.ends_with(".invalid") {
            return Err(failed(format!("cannot resolve {domain}")));
        }
        let transport = target.r#type.map(from_rsip);
        let port = target.addr.port.as_ref().map(|p| p.value());
        let key = (domain.to_string().to_ascii_lowercase(), port, transport.unwrap_or(Transport::Udp));
        if let Some(pinned) = self.pinned.lock().expect("pinned targets").get(&key) {
            return Ok(sip_addr(pinned));
        }
        let request = Request {
            host: domain.to_string(),
            port,
            transport,
            secure: transport == Some(Transport::Tls),
            supported: vec![transport.unwrap_or(Transport::Udp)],
        };
        let targets = self.run(request).await.map_err(|e| failed(e.to_string()))?;
        let first = targets.current().ok_or_else(|| failed(format!("nothing located for {domain}")))?;
        Ok(sip_addr(first))
    }
}

/// The RFC 3263 question for `uri`: its host, port, `;transport=` and scheme.
fn request_for(uri: &Uri, transport: Transport) -> Request {
    let named = uri.params.iter().find_map(|p| if let Param::Transport(t) = p { Some(from_rsip(*t)) } else { None });
    let secure = matches!(uri.scheme, Some(Scheme::Sips));
    Request {
        host: uri.host_with_port.host.to_string(),
        port: uri.host_with_port.port.as_ref().map(|p| p.value()),
        transport: named,
        secure,
        supported: vec![if secure { Transport::Tls } else { named.unwrap_or(transport) }],
    }
}

/// `target` as rsipstack addresses a destination.
pub fn sip_addr(target: &Target) -> SipAddr {
    SipAddr { r#type: Some(to_rsip(target.transport)), addr: HostWithPort::from(target.address) }
}

pub fn to_rsip(transport: Transport) -> rsipstack::sip::Transport {
    match transport {
        Transport::Udp => rsipstack::sip::Transport::Udp,
        Transport::Tcp => rsipstack::sip::Transport::Tcp,
        Transport::Tls => rsipstack::sip::Transport::Tls,
    }
}

fn from_rsip(transport: rsipstack::sip::Transport) -> Transport {
    match transport {
        rsipstack::sip::Transport::Tcp => Transport::Tcp,
        rsipstack::sip::Transport::Tls | rsipstack::sip::Transport::Wss => Transport::Tls,
        _ => Transport::Udp,
    }
}

fn smallest_ttl(records: &[Record]) -> u32 {
    records.iter().map(|r| r.ttl).min().unwrap_or(0)
}

/// hickory's error in few words: "no such name" rather than the whole query.
fn describe(error: &NetError) -> String {
    if error.is_nx_domain() {
        "NXDOMAIN".into()
    } else if error.is_no_records_found() {
        "no record".into()
    } else {
        error.to_string()
    }
}
