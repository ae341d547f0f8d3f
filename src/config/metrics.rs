//! `[metrics]`: where the Prometheus scrape endpoint listens, if anywhere.
//! Off unless `listen` is set. A bare port listens on loopback: the
//! figures say how many calls an agent has and how they went, which is
//! nobody's business off the machine unless ops name an address for it.

use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `IP:PORT` (or `PORT`, on 127.0.0.1) serving `GET /metrics`; unset: no endpoint.
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// The address to serve on; `None` when metrics are off.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(listen) = self.listen.as_deref() else { return Ok(None) };
        let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let addr = listen.parse::<u16>().map(loopback).or_else(|_| listen.parse::<SocketAddr>());
        addr.map(Some)
            .map_err(|_| ConfigError::Value { key: "metrics.listen", message: "must be IP:PORT or PORT".into() })
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        self.listen_addr().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use crate::config::{Config, ConfigError};

    #[test]
    fn off_by_default_a_bare_port_is_loopback_and_a_bad_address_is_named() {
        assert_eq!(Config::default().metrics.listen_addr().unwrap(), None);
        let port_only = Config::parse("[metrics]\nlisten = \"9464\"\n").unwrap();
        assert_eq!(port_only.metrics.listen_addr().unwrap(), Some(SocketAddr::from(([127, 0, 0, 1], 9464))));
        let anywhere = Config::parse("[metrics]\nlisten = \"0.0.0.0:9464\"\n").unwrap();
        assert_eq!(anywhere.metrics.listen_addr().unwrap(), Some(SocketAddr::from(([0, 0, 0, 0], 9464))));
        let refused = Config::parse("[metrics]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(matches!(refused, ConfigError::Value { key: "metrics.listen", .. }), "{refused}");
    }
}
