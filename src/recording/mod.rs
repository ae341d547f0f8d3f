//! Call recording as policy, plain data: when calls are recorded
//! (`recording.mode`), in what format, and the sidecar's fields. The files
//! and the thread writing them are the recorder's (`crate::recorder`);
//! which old ones to delete is [`retention`]'s decision.

pub mod retention;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A live call's recording as the UI shows it: every tab, and a tab that
/// reconnects, learns it from `recording.state` and `call.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RecordingStatus {
    pub state: RecordingState,
    /// The file being written (its sidecar appears beside it when it closes).
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    Recording,
    /// Silence is written meanwhile, so the file keeps the call's timeline.
    Paused,
    /// Stopped by the agent or at the call's end; `recording.saved` follows.
    Stopped,
}

/// A sidecar's fields from a `json!({...})` literal.
pub fn metadata(fields: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match fields {
        serde_json::Value::Object(map) => map,
        other => panic!("sidecar metadata must be a JSON object, not {other}"),
    }
}

/// The extension added after the format's to an encrypted recording's name
/// (`….wav.age`, `….opus.age`): an age file.
pub const ENCRYPTED_EXTENSION: &str = "age";

/// The metadata sidecar beside a recording: `NAME.json` for `NAME.wav`,
/// `NAME.wav.json` for the encrypted `NAME.wav.age`.
pub fn sidecar_of(recording: &Path) -> PathBuf {
    recording.with_extension("json")
}

/// `recording.mode` (and an account's `recording`): when calls are recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingMode {
    /// Every answered call, from the answer on.
    Always,
    /// When the agent asks (`call.record.start`).
    #[default]
    OnDemand,
    /// Never, not even on request.
    Never,
}

/// `recording.format`: what the files are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingFormat {
    /// 16-bit PCM WAV: any tool plays it; repaired after a crash.
    #[default]
    Wav,
    /// Ogg/Opus, about a tenth of the size.
    OggOpus,
}

impl RecordingFormat {
    pub fn extension(self) -> &'static str {
        match self {
            RecordingFormat::Wav => "wav",
            RecordingFormat::OggOpus => "opus",
        }
    }
}
