//! Call history: while a call lives the desk keeps its wall-clock times
//! and its recording; when it has ended and its media has stopped (with
//! its last figures), one record goes to the store, beside the callbacks.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{json, Value};

use super::vocabulary::Output;
use super::Desk;
use crate::call::phone::CallSummary;
use crate::call::CallState;
use crate::history::{Record, RecordKind};
use crate::media::report::QualityEvent;
use crate::media::stream::MediaStats;

/// What history needs of a call that its summary does not say.
pub(super) struct CallLog {
    started: Timestamp,
    answered: Option<Timestamp>,
    recording: Option<PathBuf>,
    /// Once the call has ended: its summary and when, waiting for the
    /// media's last figures.
    ended: Option<(CallSummary, Timestamp)>,
}

impl CallLog {
    pub(super) fn was_answered(&self) -> bool {
        self.answered.is_some()
    }
}

impl Desk {
    /// Follow a call's published state.
    pub(super) fn log_call(&mut self, summary: &CallSummary) {
        let now = self.now.wall;
        let log = self.call_log.entry(summary.call.clone()).or_insert(CallLog {
            started: now,
            answered: None,
            recording: None,
            ended: None,
        });
        if summary.state.is_answered() && log.answered.is_none() {
            log.answered = Some(now);
        }
        if summary.state == CallState::Ended {
            log.ended = Some((summary.clone(), now));
        }
    }

    /// The call is being recorded to `path`: its history will say so.
    pub(super) fn note_recording(&mut self, call: &str, path: &Path) {
        if let Some(log) = self.call_log.get_mut(call) {
            log.recording = Some(path.to_path_buf());
        }
    }

    /// The call's media has stopped: an ended call's record is complete.
    pub(super) fn media_stopped(&mut self, call: &str, stats: Option<Box<MediaStats>>) {
        // A call still live (a media restart is a stop and a start) keeps its log.
        if self.call_log.get(call).is_none_or(|log| log.ended.is_none()) {
            return;
        }
        let Some(log) = self.call_log.remove(call) else { return };
        let Some((summary, ended_at)) = log.ended else { return };
        let Ok(Value::Object(mut body)) = serde_json::to_value(&summary) else { return };
        let talk_ms = log.answered.map(|at| (ended_at - at).total(jiff::Unit::Millisecond).unwrap_or(0.0) as u64);
        let quality = stats.map(|stats| QualityEvent::new(summary.call.clone(), &stats));
        body.extend([
            ("created_at".to_string(), json!(log.started)),
            ("answered_at".to_string(), json!(log.answered)),
            ("ended_at".to_string(), json!(ended_at)),
            ("talk_ms".to_string(), json!(talk_ms)),
            ("quality".to_string(), json!(quality)),
            ("recording".to_string(), json!(log.recording)),
        ]);
        let record = Record { kind: RecordKind::Call, id: summary.call, open: false, created_at: log.started, body };
        self.emit(Output::Store(record));
    }
}
