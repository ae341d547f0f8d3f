//! Recording, as policy: `recording.mode` (or the account's) decides,
//! `always` starts at the answer, `call.record.*` start, stop, pause and
//! resume; where each file goes and what its sidecar says. The frames
//! themselves flow from the media tick to the recorder's thread.

use std::path::PathBuf;

use jiff::Timestamp;
use serde_json::{json, Map};

use super::vocabulary::{DeskError, Event, MediaCommand, Output, RecordAction, RecorderCommand, RecorderReport, Reply};
use super::Desk;
use crate::call::phone::{CallSummary, PhoneError};
use crate::call::CallState;
use crate::media::codec::Codec;
use crate::media::PCM_RATE;
use crate::recording::{metadata, RecordingMode, RecordingState, RecordingStatus, ENCRYPTED_EXTENSION};

/// A call being recorded.
pub(super) struct Recording {
    paused: bool,
    path: PathBuf,
}

impl Recording {
    pub(super) fn status(&self) -> RecordingStatus {
        let state = if self.paused { RecordingState::Paused } else { RecordingState::Recording };
        RecordingStatus { state, path: self.path.clone() }
    }
}

impl Desk {
    /// `call.record.*`.
    pub(super) fn record(&mut self, call: &str, action: RecordAction) -> Result<Reply, DeskError> {
        if action == RecordAction::Start {
            return self.start_recording(call).map(Reply::Recording);
        }
        let recording = self
            .recordings
            .get_mut(call)
            .ok_or_else(|| DeskError::InvalidState(format!("call {call} is not being recorded")))?;
        let paused = match action {
            RecordAction::Stop => {
                self.stop_recording(call, Map::new());
                return Ok(Reply::Done);
            }
            RecordAction::Pause => true,
            RecordAction::Start | RecordAction::Resume => false,
        };
        if recording.paused != paused {
            recording.paused = paused;
            let status = recording.status();
            self.emit(Output::Recorder(RecorderCommand::Pause { call: call.into(), paused }));
            self.emit(Output::Event(Event::RecordingState { call: call.into(), status }));
        }
        Ok(Reply::Done)
    }

    /// Start recording an answered call, now.
    fn start_recording(&mut self, call: &str) -> Result<PathBuf, DeskError> {
        let summary = self.call(call).ok_or_else(|| PhoneError::UnknownCall(call.into()))?;
        let policy = &self.config.recording;
        if policy.mode_for(summary.account.as_deref()) == RecordingMode::Never {
            return Err(DeskError::InvalidState("recording.mode is never for this call's account".into()));
        }
        if !summary.state.is_answered() {
            return Err(DeskError::InvalidState(format!("call {call} is not answered yet")));
        }
        if self.recordings.contains_key(call) {
            return Err(DeskError::InvalidState(format!("call {call} is already being recorded")));
        }
        let rate = match summary.codec {
            Some(Codec::Pcmu | Codec::Pcma) => 8000,
            _ => PCM_RATE,
        };
        let now = self.now.wall;
        let callback = self.callbacks.list().into_iter().find(|c| c.call.as_deref() == Some(call)).map(|c| c.callback);
        let path = self.recording_path(&summary, callback.as_deref(), now);
        let format = policy.format;
        let metadata = metadata(json!({
            "call": summary.call,
            "callback": callback,
            "direction": summary.direction,
            "local": policy.local_for(summary.account.as_deref()),
            "remote": summary.remote,
            "display_name": summary.display_name,
            "account": summary.account,
            "codec": summary.codec,
            "rate": rate,
            "format": format,
            "channels": { "left": "agent", "right": "remote" },
            "started_at": now,
        }));
        let call = summary.call;
        self.emit(Output::Recorder(RecorderCommand::Begin {
            call: call.clone(),
            path: path.clone(),
            rate,
            format,
            metadata,
        }));
        self.emit(Output::Media(MediaCommand::Record { call: call.clone(), rate: Some(rate) }));
        self.note_recording(&call, &path);
        let recording = Recording { paused: false, path: path.clone() };
        self.emit(Output::Event(Event::RecordingState { call: call.clone(), status: recording.status() }));
        self.recordings.insert(call, recording);
        Ok(path)
    }

    /// `DIR/YYYY/MM/DD/YYYYMMDD-HHMMSS-CALL-REMOTE[-CALLBACK].wav` (or
    /// `.opus`; `.age` after it when encrypted), in UTC.
    fn recording_path(&self, summary: &CallSummary, callback: Option<&str>, now: Timestamp) -> PathBuf {
        let utc = now.to_zoned(jiff::tz::TimeZone::UTC);
        let remote_user =
            summary.remote.split(':').nth(1).unwrap_or_default().split(['@', ';', '?']).next().unwrap_or_default();
        let mut name = format!("{}-{}-{}", utc.strftime("%Y%m%d-%H%M%S"), safe(&summary.call), safe(remote_user));
        if let Some(callback) = callback {
            name = format!("{name}-{}", safe(callback));
        }
        let policy = &self.config.recording;
        let mut file = format!("{name}.{}", policy.format.extension());
        if policy.encrypted {
            file = format!("{file}.{ENCRYPTED_EXTENSION}");
        }
        policy.dir.join(utc.strftime("%Y/%m/%d").to_string()).join(file)
    }

    fn stop_recording(&mut self, call: &str, end: Map<String, serde_json::Value>) {
        if let Some(recording) = self.recordings.remove(call) {
            self.emit(Output::Media(MediaCommand::Record { call: call.into(), rate: None }));
            self.emit(Output::Recorder(RecorderCommand::End { call: call.into(), metadata: end }));
            let status = RecordingStatus { state: RecordingState::Stopped, path: recording.path };
            self.emit(Output::Event(Event::RecordingState { call: call.into(), status }));
        }
    }

    /// Follow a call's state: `always` starts recording at the answer; the
    /// end of the call saves it, with how the call ended.
    pub(super) fn follow_recording(&mut self, summary: &CallSummary) {
        let recording = self.recordings.contains_key(&summary.call);
        if summary.state == CallState::Ended {
            if recording {
                let end = metadata(json!({
                    "ended_at": self.now.wall,
                    "reason": summary.reason,
                    "sip_code": summary.sip_code,
                    "transfer": summary.transfer,
                    "links": summary.links,
                }));
                self.stop_recording(&summary.call, end);
            }
            return;
        }
        // At the answer only: a recording the agent stopped stays stopped
        // through holds and resumes.
        let answered_now =
            summary.state.is_answered() && self.call_log.get(&summary.call).is_none_or(|log| !log.was_answered());
        if answered_now
            && !recording
            && self.config.recording.mode_for(summary.account.as_deref()) == RecordingMode::Always
        {
            if let Err(e) = self.start_recording(&summary.call) {
                tracing::warn!(call = %summary.call, error = %e, "recording.mode always: not recorded");
            }
        }
    }
}

impl Desk {
    /// The recorder's word: told to the UI; a failed recording is over, so
    /// the agent may start another.
    pub(super) fn recorder_report(&mut self, report: RecorderReport) {
        match report {
            RecorderReport::Saved { call, path, duration_ms, .. } => {
                self.emit(Output::Event(Event::RecordingSaved { call, path, duration_ms }))
            }
            RecorderReport::Failed { call, reason } => {
                if let Some(recording) = self.recordings.remove(&call) {
                    self.emit(Output::Media(MediaCommand::Record { call: call.clone(), rate: None }));
                    let status = RecordingStatus { state: RecordingState::Stopped, path: recording.path };
                    self.emit(Output::Event(Event::RecordingState { call: call.clone(), status }));
                }
                self.emit(Output::Event(Event::RecordingFailed { call, reason }));
            }
        }
    }
}

/// A file-name part: letters, digits, `+`, `-`, `_` only.
fn safe(text: &str) -> String {
    let kept: String = text.chars().filter(|c| c.is_ascii_alphanumeric() || "+-_".contains(*c)).take(40).collect();
    if kept.is_empty() {
        "unknown".into()
    } else {
        kept
    }
}
