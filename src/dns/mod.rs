//! Locating SIP servers (RFC 3263) as a pure procedure: which DNS records
//! to ask for (NAPTR, then SRV, then A/AAAA), and how their answers become
//! the ordered list of transport addresses to try ([`Targets`]), plus the
//! walk down that list when a server stops answering. The shell
//! (`sip::resolver`) asks the questions of a real resolver and feeds the
//! answers in; nothing here touches the network or the clock.

mod rfc3263;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use rfc3263::Resolution;

/// The SIP transports this crate speaks (those RFC 3263 locates), as the
/// config and the protocol name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    pub fn parse(text: &str) -> Option<Transport> {
        match text {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            "tls" => Some(Transport::Tls),
            _ => None,
        }
    }

    /// RFC 3261's default port: 5061 for TLS, 5060 otherwise.
    pub fn default_port(self) -> u16 {
        if self == Transport::Tls {
            5061
        } else {
            5060
        }
    }

    /// The SRV service name of the transport (RFC 3263 §4.1).
    fn srv_prefix(self) -> &'static str {
        match self {
            Transport::Udp => "_sip._udp",
            Transport::Tcp => "_sip._tcp",
            Transport::Tls => "_sips._tcp",
        }
    }

    /// The transport a NAPTR service field stands for, if it is one of ours.
    fn from_naptr_service(service: &str) -> Option<Transport> {
        match service.to_ascii_uppercase().as_str() {
            "SIP+D2U" => Some(Transport::Udp),
            "SIP+D2T" => Some(Transport::Tcp),
            "SIPS+D2T" => Some(Transport::Tls),
            _ => None,
        }
    }
}

/// What to locate: the host part of a SIP URI and what the URI says besides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// A domain name or a numeric IP (IPv6 with or without brackets).
    pub host: String,
    /// The URI's explicit port.
    pub port: Option<u16>,
    /// The URI's `;transport=` (TLS for a `sips:` URI over TCP).
    pub transport: Option<Transport>,
    /// A `sips:` URI: only TLS will do.
    pub secure: bool,
    /// The transports the caller can use, most wanted first; NAPTR and SRV
    /// records for others are passed over.
    pub supported: Vec<Transport>,
}

/// A question for the resolver.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Query {
    Naptr(String),
    Srv(String),
    /// A and AAAA of a host name.
    Addresses(String),
}

/// One NAPTR record, as RFC 3403 lays it out (`regexp` is unused by SIP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaptrRecord {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    pub services: String,
    /// The SRV name to ask next, without the trailing dot.
    pub replacement: String,
}

/// One SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The host name, without the trailing dot; `""` or `"."` means "no service here".
    pub target: String,
}

/// What the resolver said to a [`Query`]; `ttl_s` is the smallest TTL of
/// the records given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Naptr {
        records: Vec<NaptrRecord>,
        ttl_s: u32,
    },
    Srv {
        records: Vec<SrvRecord>,
        ttl_s: u32,
    },
    Addresses {
        addresses: Vec<IpAddr>,
        ttl_s: u32,
    },
    /// No record (NXDOMAIN, no data) or no answer at all, in words.
    Failed(String),
}

/// One place to send to: where it came from, its address and transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Target {
    /// The host name the address belongs to (an SRV target or the URI's
    /// host), or the numeric IP itself.
    pub host: String,
    pub address: SocketAddr,
    pub transport: Transport,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.transport.as_str(), self.address)?;
        if self.host != self.address.ip().to_string() {
            write!(f, " ({})", self.host)?;
        }
        Ok(())
    }
}

/// Why a name located nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Every record that could lead to an address was missing, or the
    /// resolver did not answer; `detail` lists what each query met.
    #[error("cannot locate {host}: {detail}")]
    NoTargets { host: String, detail: String },
    /// The resolver took longer than the caller could wait.
    #[error("cannot locate {host}: the DNS resolver did not answer in time")]
    Timeout { host: String },
}

/// The located servers of one name, in the order to try them, and which
/// one is in use: failing over walks down the list; once it is walked to
/// the end, or the records' TTL has run out, the name must be located again.
/// A fresh list keeps the target that was working, if it is still listed:
/// a registration moves only when its server stops answering, not each
/// time a short TTL runs out (it goes back up the list after a failure
/// has walked the old one to the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    list: Vec<Target>,
    current: usize,
    valid_until: Option<Instant>,
}

impl Targets {
    /// `list` in the order to try; `valid_until` `None` never expires.
    pub fn new(list: Vec<Target>, valid_until: Option<Instant>) -> Targets {
        Targets { list, current: 0, valid_until }
    }

    /// The target in use; `None` once every one has failed.
    pub fn current(&self) -> Option<&Target> {
        self.list.get(self.current)
    }

    /// The current target stopped answering: the next one, if any is left.
    pub fn fail_over(&mut self) -> Option<&Target> {
        self.current = (self.current + 1).min(self.list.len());
        self.current()
    }

    /// Carry on with `working` (the target in use before this list was
    /// located) when the list still has it.
    pub fn stay_on(&mut self, working: Option<&Target>) {
        if let Some(index) = working.and_then(|w| self.list.iter().position(|t| t == w)) {
            self.current = index;
        }
    }

    /// Whether to locate the name again before the next fresh request:
    /// every target failed, or the records have expired.
    pub fn is_stale(&self, now: Instant) -> bool {
        self.current().is_none() || self.valid_until.is_some_and(|until| now >= until)
    }

    pub fn all(&self) -> &[Target] {
        &self.list
    }
}

#[cfg(test)]
mod tests;
