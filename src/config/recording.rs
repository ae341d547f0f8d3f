//! `[recording]`: where recordings go, when calls are recorded, in what
//! format, to whom they are encrypted at rest (`encrypt_to`, age X25519
//! recipients) and how long they are kept (`retention_days`).

use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;

use super::ConfigError;
use crate::recording::{RecordingFormat, RecordingMode};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Where recordings are written, in YYYY/MM/DD folders.
    pub dir: PathBuf,
    /// `always`, `on_demand` (the agent starts it) or `never`; accounts may set their own.
    pub mode: RecordingMode,
    /// `wav` (default) or `ogg_opus`.
    pub format: RecordingFormat,
    /// age X25519 public keys (`age1...`); when any is given, every
    /// recording is written encrypted to all of them (a `.age` file) and
    /// its plaintext never reaches the disk.
    pub encrypt_to: Vec<String>,
    /// Recordings (and their sidecars) older than this many days are
    /// deleted, at start and then daily; absent: kept forever.
    pub retention_days: Option<u32>,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            dir: super::data_home().join("softphoned/recordings"),
            mode: Default::default(),
            format: Default::default(),
            encrypt_to: Vec::new(),
            retention_days: None,
        }
    }
}

impl RecordingConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        self.recipients()?;
        if self.retention_days == Some(0) {
            let message = "must be at least 1 (leave it out to keep recordings forever)".into();
            return Err(ConfigError::Value { key: "recording.retention_days", message });
        }
        Ok(())
    }

    /// `encrypt_to`, parsed; empty when recordings are not encrypted.
    pub fn recipients(&self) -> Result<Vec<age::x25519::Recipient>, ConfigError> {
        self.encrypt_to
            .iter()
            .map(|key| {
                age::x25519::Recipient::from_str(key.trim()).map_err(|e| ConfigError::Value {
                    key: "recording.encrypt_to",
                    message: format!("{key:?}: {e} (expected an age X25519 public key, age1...)"),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, ReloadPlan};

    #[test]
    fn recipients_and_retention_are_read_and_bad_ones_name_the_key() {
        let key = age::x25519::Identity::generate().to_public().to_string();
        let c = Config::parse(&format!("[recording]\nencrypt_to = [\"{key}\"]\nretention_days = 90\n")).unwrap();
        assert_eq!(c.recording.recipients().unwrap()[0].to_string(), key);
        assert_eq!(c.recording.retention_days, Some(90));
        let plain = Config::parse("").unwrap();
        assert!(plain.recording.encrypt_to.is_empty() && plain.recording.retention_days.is_none());
        let bad = Config::parse("[recording]\nencrypt_to = [\"age1nope\"]\n").unwrap_err();
        assert!(bad.to_string().contains("recording.encrypt_to") && bad.to_string().contains("age1nope"), "{bad}");
        let zero = Config::parse("[recording]\nretention_days = 0\n").unwrap_err();
        assert!(zero.to_string().contains("recording.retention_days"), "{zero}");
    }

    #[test]
    fn recipients_and_retention_wait_for_a_restart_on_reload() {
        let key = age::x25519::Identity::generate().to_public().to_string();
        let running = Config::parse("[recording]\nmode = \"always\"\n").unwrap();
        let new = format!("[recording]\nmode = \"never\"\nencrypt_to = [\"{key}\"]\nretention_days = 7\n");
        let plan = ReloadPlan::new(&running, Config::parse(&new).unwrap());
        assert_eq!(plan.restart_required, ["recording.encrypt_to", "recording.retention_days"]);
        assert!(plan.config.recording.encrypt_to.is_empty() && plan.config.recording.retention_days.is_none());
        assert_eq!(plan.config.recording.mode, crate::recording::RecordingMode::Never, "the mode applies live");
    }
}
