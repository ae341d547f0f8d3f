//! `[nat]`: how an agent behind a home router finds the address the
//! world sees it at. `sip.public_address` (in `[sip]`) names it outright;
//! a STUN server (RFC 8489) discovers it.

use serde::Deserialize;

use super::ConfigError;

/// The STUN port of RFC 8489 §9, used when `stun_server` names none.
pub const STUN_PORT: u16 = 3478;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatConfig {
    /// `HOST` or `HOST:PORT` of a STUN server. Asked from the SIP socket
    /// at start and every `stun_interval_s`: the mapping it reports is our
    /// address in Contact and SDP.
    pub stun_server: Option<String>,
    /// How often the mapping is asked again; a change re-registers.
    pub stun_interval_s: u32,
}

impl Default for NatConfig {
    fn default() -> Self {
        NatConfig { stun_server: None, stun_interval_s: 60 }
    }
}

impl NatConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let bad = |message: &str| Err(ConfigError::Value { key: "nat.stun_server", message: message.into() });
        if let Some(server) = &self.stun_server {
            if server.is_empty() || server.contains(char::is_whitespace) {
                return bad("must be HOST or HOST:PORT");
            }
            if self.stun_server_port().is_none() {
                return bad("the port after the last ':' must be a number (HOST:PORT, or [IPv6]:PORT)");
            }
        }
        if self.stun_interval_s < 5 {
            return Err(ConfigError::Value { key: "nat.stun_interval_s", message: "must be at least 5".into() });
        }
        Ok(())
    }

    /// `stun_server` split into host and port (`None`: the port is not a number).
    pub fn stun_server_port(&self) -> Option<(String, u16)> {
        let server = self.stun_server.as_deref()?;
        // `[v6]:port`, `[v6]`, `host:port`, `host`, or a bare IPv6 literal.
        if let Some(rest) = server.strip_prefix('[') {
            let (host, after) = rest.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().ok()?,
                None if after.is_empty() => STUN_PORT,
                None => return None,
            };
            return Some((host.to_string(), port));
        }
        match server.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => Some((host.to_string(), port.parse().ok()?)),
            _ => Some((server.to_string(), STUN_PORT)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nat(server: &str) -> NatConfig {
        NatConfig { stun_server: Some(server.into()), ..NatConfig::default() }
    }

    #[test]
    fn a_server_is_host_and_port_with_3478_by_default() {
        assert_eq!(nat("stun.example.test").stun_server_port(), Some(("stun.example.test".into(), 3478)));
        assert_eq!(nat("192.0.2.1:3479").stun_server_port(), Some(("192.0.2.1".into(), 3479)));
        assert_eq!(nat("[2001:db8::1]:3480").stun_server_port(), Some(("2001:db8::1".into(), 3480)));
        assert_eq!(nat("2001:db8::1").stun_server_port(), Some(("2001:db8::1".into(), 3478)));
        assert!(nat("host:port").check().is_err());
        assert!(nat("").check().is_err());
        assert!(NatConfig::default().check().is_ok());
    }
}
