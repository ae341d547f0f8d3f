//! The control API of call recording: start, stop, pause and resume by
//! call, and the two outcome events.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;

use crate::call::CallId;
use crate::recording::RecordingStatus;

#[derive(Debug, Serialize, JsonSchema)]
pub struct RecordStartResult {
    /// The WAV being written (its `.json` sidecar appears beside it when it closes).
    pub path: PathBuf,
}

/// `recording.state`: started, paused, resumed or stopped.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RecordingStateEvent {
    pub call: CallId,
    #[serde(flatten)]
    pub status: RecordingStatus,
}

/// `call.flags`: the call's flags after a `call.flag`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CallFlagsEvent {
    pub call: CallId,
    pub flags: Vec<String>,
}

/// `recording.saved`: the file is closed, synced, and has its sidecar.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RecordingSavedEvent {
    pub call: CallId,
    pub path: PathBuf,
    pub duration_ms: u64,
}

/// `recording.failed`: the recording stopped (full disk, write error); the call goes on.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RecordingFailedEvent {
    pub call: CallId,
    pub reason: String,
}
