//! `[bridge]`: the browser bridge, a WebSocket on loopback for web
//! workspaces. Off unless enabled; checked at start so that a mistake (a
//! non-loopback address, an origin with a path) stops the daemon with the
//! key named rather than opening a door nobody meant to open.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    pub enabled: bool,
    /// `IP:PORT` on loopback only (127.0.0.0/8 or ::1).
    pub listen: String,
    /// Pages that may connect, exactly as their `Origin` header says:
    /// `scheme://host[:port]`, no path.
    pub allowed_origins: Vec<String>,
    /// Origins limited to these methods (a read-only wallboard, say);
    /// an origin not named here may call every method.
    pub methods: HashMap<String, Vec<String>>,
    /// Where the paired tokens' hashes are kept (relative: beside the
    /// history store).
    pub pairings: PathBuf,
    /// The largest frame a page may send.
    pub max_frame_bytes: usize,
    /// Frames a second one connection may send (twice that in a burst);
    /// past it, the connection is closed (1008).
    pub frames_per_second: u32,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            enabled: false,
            listen: "127.0.0.1:7443".into(),
            allowed_origins: Vec::new(),
            methods: HashMap::new(),
            pairings: "bridge-pairings.json".into(),
            max_frame_bytes: 64 * 1024,
            frames_per_second: 50,
        }
    }
}

fn bad(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Value { key, message: message.into() }
}

impl BridgeConfig {
    /// The listening address, if it is on loopback.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        let addr: SocketAddr = self.listen.parse().map_err(|_| bad("bridge.listen", "must be IP:PORT"))?;
        if !addr.ip().is_loopback() {
            return Err(bad(
                "bridge.listen",
                format!("{addr} is not a loopback address: the bridge listens on 127.0.0.1 or [::1] only"),
            ));
        }
        Ok(addr)
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        for origin in &self.allowed_origins {
            if !is_origin(origin) {
                return Err(bad(
                    "bridge.allowed_origins",
                    format!("{origin:?} is not an origin: scheme://host[:port], no path, no trailing slash"),
                ));
            }
        }
        if let Some(origin) = self.methods.keys().find(|origin| !self.allowed_origins.contains(origin)) {
            return Err(bad("bridge.methods", format!("{origin:?} is not in bridge.allowed_origins")));
        }
        if self.max_frame_bytes < 1024 || self.frames_per_second == 0 {
            return Err(bad("bridge.max_frame_bytes", "at least 1024 bytes, and frames_per_second at least 1"));
        }
        Ok(())
    }

    /// Every method `bridge.methods` names exists (the names are the
    /// control protocol's, which this floor cannot see: the shell asks).
    pub fn check_methods(&self, known: &[&str]) -> Result<(), ConfigError> {
        for (origin, list) in &self.methods {
            if let Some(unknown) = list.iter().find(|m| !known.contains(&m.as_str())) {
                return Err(bad("bridge.methods", format!("{origin:?}: no method {unknown:?}")));
            }
        }
        Ok(())
    }
}

/// `http(s)://host[:port]` as a browser writes an `Origin` header
/// (`[::1]` in brackets).
pub fn is_origin(text: &str) -> bool {
    let Some((scheme, authority)) = text.split_once("://") else { return false };
    if !matches!(scheme, "http" | "https") || authority.contains(['/', '?', '#', '@', ' ']) {
        return false;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((ip, "")) => (ip, None),
            Some((ip, rest)) => match rest.strip_prefix(':') {
                Some(port) => (ip, Some(port)),
                None => return false,
            },
            None => return false,
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    !host.is_empty() && port.is_none_or(|port| port.parse::<u16>().is_ok_and(|p| p > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for good in
            ["http://localhost:8080", "https://workspace.example.com", "http://127.0.0.1:5173", "http://[::1]:8080"]
        {
            assert!(is_origin(good), "{good}");
        }
        for bad in [
            "localhost:8080",
            "http://localhost:8080/",
            "http://host/path",
            "ftp://host",
            "http://:80",
            "http://h:x",
            "null",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
    }

    #[test]
    fn only_loopback_is_listened_on_and_the_key_is_named() {
        let mut bridge = BridgeConfig { enabled: true, ..BridgeConfig::default() };
        assert!(bridge.check().is_ok());
        bridge.listen = "0.0.0.0:7443".into();
        let refused = bridge.check().unwrap_err().to_string();
        assert!(refused.contains("bridge.listen") && refused.contains("loopback"), "{refused}");
        bridge.listen = "[::1]:7443".into();
        bridge.methods.insert("http://localhost:9000".into(), vec!["call.list".into()]);
        let unknown_origin = bridge.check().unwrap_err().to_string();
        assert!(unknown_origin.contains("bridge.methods"), "{unknown_origin}");
        bridge.allowed_origins.push("http://localhost:9000".into());
        assert!(bridge.check().is_ok());
        assert!(bridge.check_methods(&["call.list"]).is_ok());
        assert!(bridge.check_methods(&["call.dial"]).is_err(), "a method that does not exist is named");
    }
}
