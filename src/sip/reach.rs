//! Where peers reach us, per destination: the address our Contact, Via
//! and SDP carry. In order of precedence:
//!
//! 1. `sip.public_address`, when ops configured one (a NAT with forwarded
//!    ports);
//! 2. the mapping a STUN server (`nat.stun_server`) reported for the SIP
//!    socket: the public address of a home router. The RTP ports are
//!    advertised as bound, which a port-preserving NAT (Linux masquerade,
//!    most home routers) keeps; the far end's symmetric RTP covers the rest;
//! 3. the listening address, when it is a concrete one;
//! 4. for a wildcard listener, the source address the kernel's routing
//!    table picks toward the destination, so a host with several
//!    interfaces advertises the one each peer can reach.
//!
//! A public address of one IP family is never given to a peer of the other.
//! Peers' names and the STUN server's are resolved through `[dns] servers`
//! (`resolver`), as the SIP itself is. It also runs the STUN Binding
//! transactions (`crate::nat::stun`) on the
//! SIP socket, where their answers arrive among the SIP (see `front`);
//! `discovery` asks them periodically.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsipstack::sip::Host;
use rsipstack::transport::transport_layer::DomainResolver;
use rsipstack::transport::SipAddr;

use super::front::ValidatingUdp;
use super::resolver::Resolver;
use super::route::route_source;
use crate::nat::stun::{Binding, Outcome};

/// What the SIP side knows of its public face.
pub(super) struct Reach {
    configured: Option<IpAddr>,
    /// The latest STUN mapping of the SIP socket.
    learned: Mutex<Option<SocketAddr>>,
    /// The address the RTP sockets are bound to (the first listening point's).
    media_bind: IpAddr,
    /// The SIP socket STUN goes out on.
    udp: Option<Arc<ValidatingUdp>>,
    /// Names (peers', the STUN server's) are asked of `[dns] servers`.
    resolver: Resolver,
}

impl Reach {
    pub(super) fn new(
        configured: Option<IpAddr>,
        media_bind: IpAddr,
        udp: Option<Arc<ValidatingUdp>>,
        resolver: Resolver,
    ) -> Reach {
        Reach { configured, learned: Mutex::new(None), media_bind, udp, resolver }
    }

    fn learned(&self) -> Option<SocketAddr> {
        *self.learned.lock().expect("learned mapping")
    }

    /// The public IP for a peer at `peer` (unknown: any family).
    fn public_ip(&self, peer: Option<IpAddr>) -> Option<IpAddr> {
        let same_family = |ip: &IpAddr| peer.is_none_or(|p| p.is_ipv4() == ip.is_ipv4());
        self.configured.or(self.learned().map(|m| m.ip())).filter(same_family)
    }

    /// The IP to advertise for a socket bound to `bound`, toward `peer`.
    fn ip_for(&self, bound: IpAddr, peer: Option<IpAddr>) -> IpAddr {
        if let Some(public) = self.public_ip(peer) {
            return public;
        }
        if !bound.is_unspecified() {
            return bound;
        }
        peer.and_then(route_source).unwrap_or(bound)
    }
}

impl Reach {
    /// The address and port to name in a Contact or Via for our UDP
    /// listening point `bound`, toward `peer`.
    pub(super) fn advertised_sip(&self, bound: SocketAddr, peer: Option<IpAddr>) -> SocketAddr {
        let ip = self.ip_for(bound.ip(), peer);
        // The NAT's port for the SIP socket, when it is the STUN mapping we use.
        let port = match self.learned() {
            Some(mapped) if self.configured.is_none() && mapped.ip() == ip => mapped.port(),
            _ => bound.port(),
        };
        SocketAddr::new(ip, port)
    }

    /// The address our SDP must give a peer at `peer` for our media, when it
    /// is not the one the RTP sockets are bound to (`None`: leave the SDP).
    pub(super) fn media_address_toward(&self, peer: Option<IpAddr>) -> Option<IpAddr> {
        let ip = self.ip_for(self.media_bind, peer);
        (ip != self.media_bind).then_some(ip)
    }

    /// The IP a SIP target's host names: where rsipstack will send to
    /// (RFC 3263 through `[dns] servers`, a registration's pinned target
    /// first), so the route we advertise by is the one the request takes.
    pub(super) async fn peer_ip(&self, target: &SipAddr) -> Option<IpAddr> {
        if let Host::IpAddr(ip) = target.addr.host {
            return Some(ip);
        }
        match self.resolver.resolve(target).await {
            Ok(located) => self.resolver.addresses(&located.addr.host.to_string()).await.first().copied(),
            Err(e) => {
                tracing::debug!(%target, error = %e, "peer not located");
                None
            }
        }
    }

    /// The STUN server `host`:`port` now (a name may move), through the
    /// same resolver as SIP.
    pub(super) async fn stun_server(&self, host: &str, port: u16) -> Option<SocketAddr> {
        self.resolver.addresses(host).await.first().map(|ip| SocketAddr::new(*ip, port))
    }

    /// Where peers reach our SIP, when not at a listening address (see
    /// `StatusResult::public_address`).
    pub(super) fn public_address(&self) -> Option<String> {
        self.configured.map(|ip| ip.to_string()).or_else(|| self.learned().map(|m| m.to_string()))
    }

    /// Ask `server` (STUN) what address the SIP socket is seen at, giving
    /// up after `budget`; a mapping found is used from now on. Returns the
    /// outcome and whether the mapping changed from one known before.
    pub(super) async fn discover_mapping(&self, server: SocketAddr, budget: Duration) -> (Outcome, bool) {
        let outcome = self.stun_binding(server, budget).await;
        let mut changed = false;
        if let Outcome::Mapped(mapped) = outcome {
            let previous = self.learned.lock().expect("learned mapping").replace(mapped);
            changed = previous.is_some_and(|p| p != mapped);
        }
        (outcome, changed)
    }

    /// One STUN Binding transaction from the SIP socket to `server`.
    pub(super) async fn stun_binding(&self, server: SocketAddr, budget: Duration) -> Outcome {
        let Some(udp) = self.udp.clone() else {
            return Outcome::Refused("no UDP listening point to send STUN from".into());
        };
        let id: [u8; 12] = rand::random();
        let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
        udp.stun.lock().expect("STUN waiters").insert(id, answers_tx);
        let mut binding = Binding::new(id, std::time::Instant::now(), budget);
        let outcome = loop {
            let now = std::time::Instant::now();
            if let Some(request) = binding.poll_transmit(now) {
                if let Err(e) = udp.send_raw(request, server).await {
                    tracing::debug!(%server, error = %e, "STUN request not sent");
                }
            }
            if let Some(outcome) = binding.poll(now) {
                break outcome.clone();
            }
            let wake = binding.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                Some(answer) = answers.recv() => { binding.handle_response(&answer); }
                _ = crate::timing::sleep_until(wake) => {}
            }
        };
        udp.stun.lock().expect("STUN waiters").remove(&id);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wildcard_advertises_the_route_source_toward_the_peer() {
        let reach = Reach::new(None, "0.0.0.0".parse().unwrap(), None, Resolver::new(&[]).unwrap());
        let target = SipAddr::try_from(&rsipstack::sip::Uri::try_from("sip:bob@127.0.0.1:5080").unwrap()).unwrap();
        let peer = reach.peer_ip(&target).await;
        assert_eq!(peer, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(reach.media_address_toward(peer), Some("127.0.0.1".parse().unwrap()));
        let bound: SocketAddr = "0.0.0.0:5062".parse().unwrap();
        assert_eq!(reach.advertised_sip(bound, peer), "127.0.0.1:5062".parse().unwrap());
    }

    #[tokio::test]
    async fn a_public_address_wins_for_peers_of_its_family_only() {
        let resolver = Resolver::new(&[]).unwrap();
        let reach = Reach::new(Some("203.0.113.1".parse().unwrap()), "192.0.2.10".parse().unwrap(), None, resolver);
        assert_eq!(
            reach.media_address_toward(Some("198.51.100.1".parse().unwrap())),
            Some("203.0.113.1".parse().unwrap())
        );
        assert_eq!(reach.media_address_toward(Some("2001:db8::1".parse().unwrap())), None);
    }
}
