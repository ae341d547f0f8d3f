//! Recording from the run loop's side: the policy (`recording.mode`, or the
//! account's `recording`), `call.record.*`, where each file goes and what
//! its sidecar says. The frames themselves go from the media tick to the
//! recorder's thread; outcomes come back as `recording.saved` / `.failed`.

use std::path::PathBuf;

use jiff::Timestamp;
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, mpsc};

use super::dispatch::{parse, phone_error, reply};
use super::Daemon;
use crate::call::phone::{CallSummary, PhoneError};
use crate::call::{CallId, CallState};
use crate::control::api::{self, method, CallParams, Empty, RecordStartResult};
use crate::control::rpc::{code, RpcError};
use crate::control::server::Notification;
use crate::media::codec::Codec;
use crate::media::PCM_RATE;
use crate::recording::{RecorderEvent, RecordingMode};

/// A call being recorded.
pub(super) struct Recording {
    paused: bool,
}

impl Daemon {
    /// The `call.record.*` methods; `None` for any other.
    pub(super) fn record_request(&mut self, name: &str, params: Value) -> Option<Result<Value, RpcError>> {
        let result = match name {
            method::CALL_RECORD_START => parse::<CallParams>(params)
                .and_then(|p| self.start_recording(&p.call))
                .map(|path| json!(RecordStartResult { path })),
            method::CALL_RECORD_STOP => parse::<CallParams>(params).and_then(|p| {
                self.recording(&p.call)?;
                self.stop_recording(&p.call, Map::new());
                reply(Empty {})
            }),
            method::CALL_RECORD_PAUSE | method::CALL_RECORD_RESUME => parse::<CallParams>(params).and_then(|p| {
                let paused = name == method::CALL_RECORD_PAUSE;
                let recording = self.recording(&p.call)?;
                if recording.paused != paused {
                    recording.paused = paused;
                    self.recorder.pause(&p.call, paused);
                }
                reply(Empty {})
            }),
            _ => return None,
        };
        Some(result)
    }

    fn recording(&mut self, call: &str) -> Result<&mut Recording, RpcError> {
        self.recordings
            .get_mut(call)
            .ok_or_else(|| RpcError::new(code::INVALID_STATE, format!("call {call} is not being recorded")))
    }

    fn mode_for(&self, account: Option<&str>) -> RecordingMode {
        let account = account.and_then(|id| self.config.accounts.iter().find(|a| a.id == id));
        account.and_then(|a| a.recording).unwrap_or(self.config.recording.mode)
    }

    /// Start recording an answered call, now.
    fn start_recording(&mut self, call: &str) -> Result<PathBuf, RpcError> {
        let live = self.phone.get(call).ok_or_else(|| phone_error(PhoneError::UnknownCall(call.into())))?;
        let summary = crate::call::phone::summary(live);
        if self.mode_for(summary.account.as_deref()) == RecordingMode::Never {
            return Err(RpcError::new(code::INVALID_STATE, "recording.mode is never for this call's account"));
        }
        if !live.is_established() {
            return Err(RpcError::new(code::INVALID_STATE, format!("call {call} is not answered yet")));
        }
        if self.recordings.contains_key(call) {
            return Err(RpcError::new(code::INVALID_STATE, format!("call {call} is already being recorded")));
        }
        let rate = match summary.codec {
            Some(Codec::Pcmu | Codec::Pcma) => 8000,
            _ => PCM_RATE,
        };
        let now = Timestamp::now();
        let callback = self.callbacks.list().into_iter().find(|c| c.call.as_deref() == Some(call)).map(|c| c.callback);
        let path = self.recording_path(&summary, callback.as_deref(), now);
        let local = summary.account.as_deref().and_then(|id| self.config.accounts.iter().find(|a| a.id == id));
        let local = local
            .map_or_else(|| format!("sip:{}@{}", self.config.sip.user, self.sip.listens()[0].addr), |a| a.aor.clone());
        let metadata = crate::recording::metadata(json!({
            "call": summary.call,
            "callback": callback,
            "direction": summary.direction,
            "local": local,
            "remote": summary.remote,
            "display_name": summary.display_name,
            "account": summary.account,
            "codec": summary.codec,
            "rate": rate,
            "format": self.config.recording.format,
            "channels": { "left": "agent", "right": "remote" },
            "started_at": now,
        }));
        self.recorder.begin(&summary.call, path.clone(), rate, self.config.recording.format, metadata);
        self.media.set_recording(&summary.call, Some(rate));
        self.recordings.insert(summary.call.clone(), Recording { paused: false });
        self.note_recording(&summary.call, &path);
        Ok(path)
    }

    /// `DIR/YYYY/MM/DD/YYYYMMDD-HHMMSS-CALL-REMOTE[-CALLBACK].wav` (or `.opus`), in UTC.
    fn recording_path(&self, summary: &CallSummary, callback: Option<&str>, now: Timestamp) -> PathBuf {
        let utc = now.to_zoned(jiff::tz::TimeZone::UTC);
        let remote_user =
            summary.remote.split(':').nth(1).unwrap_or_default().split(['@', ';', '?']).next().unwrap_or_default();
        let mut name = format!("{}-{}-{}", utc.strftime("%Y%m%d-%H%M%S"), safe(&summary.call), safe(remote_user));
        if let Some(callback) = callback {
            name = format!("{name}-{}", safe(callback));
        }
        self.config
            .recording
            .dir
            .join(utc.strftime("%Y/%m/%d").to_string())
            .join(format!("{name}.{}", self.config.recording.format.extension()))
    }

    fn stop_recording(&mut self, call: &CallId, end: Map<String, Value>) {
        if self.recordings.remove(call).is_some() {
            self.media.set_recording(call, None);
            self.recorder.end(call, end);
        }
    }

    /// Follow a call's state: `always` starts recording at the answer; the
    /// end of the call saves it, with how the call ended.
    pub(super) fn follow_recording(&mut self, summary: &CallSummary) {
        let recording = self.recordings.contains_key(&summary.call);
        if summary.state == CallState::Ended {
            if recording {
                let end = crate::recording::metadata(json!({
                    "ended_at": Timestamp::now(),
                    "reason": summary.reason,
                    "sip_code": summary.sip_code,
                    "transfer": summary.transfer,
                    "links": summary.links,
                    "frames_dropped_total": self.recorder.dropped(),
                }));
                self.stop_recording(&summary.call, end);
            }
            return;
        }
        if summary.state.is_answered()
            && !recording
            && self.mode_for(summary.account.as_deref()) == RecordingMode::Always
        {
            if let Err(e) = self.start_recording(&summary.call) {
                tracing::warn!(call = %summary.call, error = %e.message, "recording.mode always: not recorded");
            }
        }
    }
}

/// Publish the recorder's outcomes as they come (off the run loop).
pub(super) fn publish_outcomes(
    mut reports: mpsc::UnboundedReceiver<RecorderEvent>,
    events: broadcast::Sender<Notification>,
) {
    tokio::spawn(async move {
        while let Some(report) = reports.recv().await {
            let (name, params) = match report {
                RecorderEvent::Saved { call, path, duration_ms } => {
                    (api::event::RECORDING_SAVED, json!(api::RecordingSavedEvent { call, path, duration_ms }))
                }
                RecorderEvent::Failed { call, reason } => {
                    (api::event::RECORDING_FAILED, json!(api::RecordingFailedEvent { call, reason }))
                }
            };
            let _ = events.send(Notification::new(name, &params));
        }
    });
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
