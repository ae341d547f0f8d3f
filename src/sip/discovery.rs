//! The periodic STUN discovery of our public mapping (`nat.stun_server`):
//! the first answer is awaited briefly at start, so the first REGISTER
//! already names the public address; then the mapping is asked again every
//! `nat.stun_interval_s`, and a change is reported to the run loop, which
//! re-registers.

use std::net::SocketAddr;
use std::time::Duration;

use super::handle::{SipAgent, SipEvent};
use crate::nat::stun::{Outcome, DISCOVERY_DEADLINE};

/// How long the start waits for the first STUN answer, so that the first
/// REGISTER already carries the public address; the periodic task goes on
/// asking if it did not come.
const FIRST_DISCOVERY_WAIT: Duration = Duration::from_secs(2);

/// `nat.stun_server` resolved, and how often to ask it.
pub struct StunSettings {
    pub server: (String, u16),
    pub interval: Duration,
}

impl SipAgent {
    /// Learn the public mapping now (briefly), then keep asking every
    /// `interval` in the background; a change is reported as
    /// [`SipEvent::PublicAddress`](SipEvent::PublicAddress), so the
    /// run loop re-registers.
    pub(super) async fn start_discovery(&self, settings: StunSettings, shutdown: tokio_util::sync::CancellationToken) {
        let (host, port) = settings.server;
        if let Some(server) = self.stun_server(&host, port).await {
            self.discover_and_report(server, FIRST_DISCOVERY_WAIT).await;
        }
        let agent = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(settings.interval) => {}
                    _ = shutdown.cancelled() => return,
                }
                if let Some(server) = agent.stun_server(&host, port).await {
                    agent.discover_and_report(server, DISCOVERY_DEADLINE).await;
                }
            }
        });
    }

    /// The STUN server's address now (a name may move), through `[dns] servers`.
    async fn stun_server(&self, host: &str, port: u16) -> Option<SocketAddr> {
        let found = self.inner.reach.stun_server(host, port).await;
        if found.is_none() {
            tracing::warn!(server = %host, port, "nat.stun_server does not resolve");
        }
        found
    }

    async fn discover_and_report(&self, server: SocketAddr, budget: Duration) {
        match self.inner.reach.discover_mapping(server, budget).await {
            (Outcome::Mapped(mapping), changed) => {
                if changed {
                    tracing::warn!(%server, %mapping, "the NAT maps us elsewhere now");
                } else {
                    tracing::info!(%server, %mapping, "public address (STUN)");
                }
                let _ = self.inner.events.send(SipEvent::PublicAddress { mapping, changed });
            }
            (Outcome::Refused(why), _) => tracing::warn!(%server, why, "STUN server refused the binding"),
            (Outcome::TimedOut, _) => tracing::warn!(%server, ?budget, "STUN server did not answer"),
        }
    }
}

impl SipAgent {
    /// Where peers reach our SIP, when not at a listening address (see
    /// `StatusResult::public_address`).
    pub fn public_address(&self) -> Option<String> {
        self.inner.reach.public_address()
    }
}
