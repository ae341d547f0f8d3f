//! Who may open the bridge, decided from the upgrade request's headers
//! before any WebSocket exists. Pure: the shell hands in the headers.
//!
//! - `Host` must name this listener by a loopback name: a page whose DNS
//!   name was rebound to 127.0.0.1 sends its own name, and is refused.
//! - `Origin` must be exactly one of `bridge.allowed_origins`: any site
//!   the agent visits can make the browser connect, but it cannot forge
//!   its origin (the Zoom CVE-2019-13450 class of hole).
//! - The subprotocol must be ours, so that no other WebSocket client
//!   mistakes us for its server.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The subprotocol a workspace asks for.
pub const SUBPROTOCOL: &str = "softphoned.v1";

/// Why an upgrade is refused (HTTP 403, and one log line with this).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Host {0:?} is not this bridge's loopback address (DNS rebinding?)")]
    Host(String),
    #[error("Origin {0:?} is not in bridge.allowed_origins")]
    Origin(String),
    #[error("no subprotocol {SUBPROTOCOL:?} asked for (got {0:?})")]
    Subprotocol(String),
}

/// What a page that got in may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub origin: String,
    /// Only these methods, when the origin is limited (`bridge.methods`).
    pub methods: Option<Arc<HashSet<String>>>,
}

pub struct Door {
    hosts: [String; 3],
    origins: Vec<String>,
    methods: HashMap<String, Arc<HashSet<String>>>,
}

impl Door {
    pub fn new(port: u16, origins: Vec<String>, methods: HashMap<String, Vec<String>>) -> Door {
        Door {
            hosts: [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")],
            origins,
            methods: methods.into_iter().map(|(origin, list)| (origin, Arc::new(list.into_iter().collect()))).collect(),
        }
    }

    /// The methods `origin` is limited to, sorted; `None`: every method.
    pub fn methods_of(&self, origin: &str) -> Option<Vec<String>> {
        let mut list: Vec<String> = self.methods.get(origin)?.iter().cloned().collect();
        list.sort();
        Some(list)
    }

    /// Check an upgrade's `Host`, `Origin` and `Sec-WebSocket-Protocol`.
    pub fn check(
        &self,
        host: Option<&str>,
        origin: Option<&str>,
        protocols: Option<&str>,
    ) -> Result<Admitted, Refusal> {
        let host = host.unwrap_or_default();
        if !self.hosts.iter().any(|ours| ours.eq_ignore_ascii_case(host)) {
            return Err(Refusal::Host(host.into()));
        }
        let origin = origin.unwrap_or_default();
        if !self.origins.iter().any(|allowed| allowed == origin) {
            return Err(Refusal::Origin(origin.into()));
        }
        let protocols = protocols.unwrap_or_default();
        if !protocols.split(',').any(|p| p.trim() == SUBPROTOCOL) {
            return Err(Refusal::Subprotocol(protocols.into()));
        }
        Ok(Admitted { origin: origin.into(), methods: self.methods.get(origin).cloned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door() -> Door {
        let methods = HashMap::from([("http://localhost:9000".to_string(), vec!["call.list".to_string()])]);
        Door::new(7443, vec!["http://127.0.0.1:8080".into(), "http://localhost:9000".into()], methods)
    }

    #[test]
    fn a_listed_page_on_a_loopback_host_with_our_subprotocol_gets_in() {
        let admitted = door().check(Some("127.0.0.1:7443"), Some("http://127.0.0.1:8080"), Some("softphoned.v1"));
        assert_eq!(admitted, Ok(Admitted { origin: "http://127.0.0.1:8080".into(), methods: None }));
        let limited =
            door().check(Some("LOCALHOST:7443"), Some("http://localhost:9000"), Some("x, softphoned.v1")).unwrap();
        assert_eq!(limited.methods.unwrap().iter().collect::<Vec<_>>(), ["call.list"]);
        assert!(door().check(Some("[::1]:7443"), Some("http://127.0.0.1:8080"), Some("softphoned.v1")).is_ok());
    }

    #[test]
    fn rebound_names_other_ports_foreign_origins_and_other_protocols_are_refused() {
        let door = door();
        let ok_origin = Some("http://127.0.0.1:8080");
        for host in [Some("attacker.example:7443"), Some("127.0.0.1:7444"), Some("127.0.0.1"), None] {
            assert!(matches!(door.check(host, ok_origin, Some(SUBPROTOCOL)), Err(Refusal::Host(_))), "{host:?}");
        }
        for origin in [
            Some("http://evil.example"),
            Some("http://127.0.0.1:8080/"),
            Some("https://127.0.0.1:8080"),
            Some("null"),
            None,
        ] {
            let refused = door.check(Some("127.0.0.1:7443"), origin, Some(SUBPROTOCOL));
            assert!(matches!(refused, Err(Refusal::Origin(_))), "{origin:?}");
        }
        for protocols in [None, Some("softphoned.v2"), Some("chat")] {
            let refused = door.check(Some("127.0.0.1:7443"), ok_origin, protocols);
            assert!(matches!(refused, Err(Refusal::Subprotocol(_))), "{protocols:?}");
        }
    }
}
