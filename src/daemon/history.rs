//! Call history: while a call lives the daemon keeps its wall-clock times
//! and its last media figures; when it ends, one record goes to the store
//! (beside the callbacks), for `history.list` and ops.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::Daemon;
use crate::call::phone::CallSummary;
use crate::call::{CallId, CallState};
use crate::control::api::QualityEvent;
use crate::store::{Record, RecordKind};

/// What history needs of a live call that its summary does not say.
pub(super) struct CallLog {
    started: Timestamp,
    answered: Option<Timestamp>,
    /// The call's media figures as they stood when its media stopped.
    quality: Option<Value>,
    /// Its recording, if one was started.
    recording: Option<std::path::PathBuf>,
}

impl Daemon {
    /// Follow a call's published state; the ended call's record is saved.
    pub(super) fn log_call(&mut self, summary: &CallSummary) {
        let now = Timestamp::now();
        let log = self.call_log.entry(summary.call.clone()).or_insert(CallLog {
            started: now,
            answered: None,
            quality: None,
            recording: None,
        });
        if summary.state.is_answered() && log.answered.is_none() {
            log.answered = Some(now);
        }
        if summary.state != CallState::Ended {
            return;
        }
        let Some(log) = self.call_log.remove(&summary.call) else { return };
        let Ok(Value::Object(mut body)) = serde_json::to_value(summary) else { return };
        let talk_ms = log.answered.map(|at| (now - at).total(jiff::Unit::Millisecond).unwrap_or(0.0) as u64);
        body.extend([
            ("created_at".to_string(), json!(log.started)),
            ("answered_at".to_string(), json!(log.answered)),
            ("ended_at".to_string(), json!(now)),
            ("talk_ms".to_string(), json!(talk_ms)),
            ("quality".to_string(), log.quality.unwrap_or(Value::Null)),
            ("recording".to_string(), json!(log.recording)),
        ]);
        let record =
            Record { kind: RecordKind::Call, id: summary.call.clone(), open: false, created_at: log.started, body };
        self.store.save(record);
    }

    /// The call is being recorded to `path`: its history will say so.
    pub(super) fn note_recording(&mut self, call: &CallId, path: &std::path::Path) {
        if let Some(log) = self.call_log.get_mut(call) {
            log.recording = Some(path.to_path_buf());
        }
    }

    /// The call's media is about to stop: keep its last figures for history.
    pub(super) fn keep_quality(&mut self, call: &CallId) {
        let (Some(stats), Some(log)) = (self.media.stats(call), self.call_log.get_mut(call)) else { return };
        log.quality = serde_json::to_value(QualityEvent::new(call.clone(), &stats)).ok();
    }
}
