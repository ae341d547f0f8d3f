//! `[calls]`: how many calls the agent juggles and what answering one does
//! to the others; `[transfer]`: who may transfer us (REFER) and where.

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// Live calls at most (consult calls included); one more is refused:
    /// an inbound INVITE with 486, `call.dial` with an error.
    pub max: usize,
    /// Answering a call holds the agent's other answered calls first.
    pub hold_on_answer: bool,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig { max: 4, hold_on_answer: true }
    }
}

impl CallsConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.max == 0 {
            let message = "must be at least 1".into();
            return Err(ConfigError::Value { key: "calls.max", message });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransferConfig {
    /// Hosts (names or IPs, as the Refer-To writes them) a peer's REFER may
    /// send us to. Empty, the default: every REFER to us is refused (403),
    /// so nobody can make the agent's line call a premium number.
    pub refer_allowed_hosts: Vec<String>,
}
