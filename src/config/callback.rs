//! `[callback]`: the lengths that are contact-center policy rather than
//! part of an offer; `[store]`: where call and callback history is kept.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::callback::CallbackPolicy;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackConfig {
    /// An unanswered dial attempt is hung up after this long (outcome `no_answer`).
    pub no_answer_timeout_ms: u64,
    /// The wrap-up auto-close countdown when an offer names none; 0 = the agent closes wrap-up.
    pub wrapup_ms: u64,
    /// A scheduled callback is offered this long before it is due.
    pub schedule_lead_ms: u64,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        let policy = CallbackPolicy::default();
        CallbackConfig {
            no_answer_timeout_ms: policy.no_answer_timeout.as_millis() as u64,
            wrapup_ms: 0,
            schedule_lead_ms: policy.schedule_lead.as_millis() as u64,
        }
    }
}

impl CallbackConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.no_answer_timeout_ms == 0 {
            let message = "must be positive: an attempt that rings forever blocks the callback".into();
            return Err(ConfigError::Value { key: "callback.no_answer_timeout_ms", message });
        }
        Ok(())
    }

    pub fn policy(&self) -> CallbackPolicy {
        CallbackPolicy {
            no_answer_timeout: Duration::from_millis(self.no_answer_timeout_ms),
            wrapup: (self.wrapup_ms > 0).then(|| Duration::from_millis(self.wrapup_ms)),
            schedule_lead: Duration::from_millis(self.schedule_lead_ms),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The SQLite file of call and callback history.
    pub path: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { path: super::data_home().join("softphoned/history.sqlite3") }
    }
}
