//! The control API of call recording: start, stop, pause and resume by
//! call, and the two outcome events.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;

use crate::call::CallId;

#[derive(Debug, Serialize, JsonSchema)]
pub struct RecordStartResult {
    /// The WAV being written (its `.json` sidecar appears beside it when it closes).
    pub path: PathBuf,
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
