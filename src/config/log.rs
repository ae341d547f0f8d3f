//! `[log]`: how the daemon writes its log to stderr. `text` for a person
//! at a terminal or journald; `json`, one object per line, for fleets that
//! ship logs to a collector, where call ids must be fields to search by.

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

use super::ConfigError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`
    /// and every field of the event (`call`, `callback`, `account`, ...).
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// What is logged, as `RUST_LOG` writes it (`info`, `info,rsipstack=warn`,
    /// `debug`); `RUST_LOG`, when set, wins, so one run can be looked at closer.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        // rsipstack's info is per-transaction chatter that drowns ours.
        LogConfig { format: LogFormat::Text, level: "info,rsipstack=warn".into() }
    }
}

impl LogConfig {
    /// The filter to log with: `RUST_LOG` if set and valid, else `level`
    /// (which [`Config::parse`](super::Config::parse) has checked).
    pub fn filter(&self) -> EnvFilter {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&self.level))
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let refused =
            |e: tracing_subscriber::filter::ParseError| ConfigError::Value { key: "log.level", message: e.to_string() };
        EnvFilter::try_new(&self.level).map(drop).map_err(refused)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, LogFormat};

    #[test]
    fn format_and_level_are_read_and_checked() {
        let config = Config::parse("[log]\nformat = \"json\"\nlevel = \"debug,rsipstack=info\"\n").unwrap();
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(Config::default().log.format, LogFormat::Text);
        let refused = Config::parse("[log]\nformat = \"xml\"\n").unwrap_err();
        assert!(matches!(refused, ConfigError::Parse { .. }), "{refused}");
        let refused = Config::parse("[log]\nlevel = \"info,rsipstack=loud\"\n").unwrap_err();
        assert!(matches!(refused, ConfigError::Value { key: "log.level", .. }), "{refused}");
        assert!(Config::parse("[log]\nfile = \"x\"\n").is_err());
    }
}
