//! Call history: while a call lives the desk keeps its wall-clock times
//! and its recording. Its record goes to the store (beside the callbacks)
//! when it is answered, open, so that a crash cannot lose it, again when
//! its recording starts, and complete once it has ended and its media has
//! stopped (with its last figures). At start, records a crash left open
//! are closed as `interrupted`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::vocabulary::{DeskError, Event, Output, Reply};
use super::Desk;
use crate::call::phone::{CallSummary, PhoneError};
use crate::call::CallState;
use crate::history::{Record, RecordKind};
use crate::media::report::QualityEvent;
use crate::media::stream::MediaStats;

/// What history needs of a call that its summary does not say.
pub(super) struct CallLog {
    started: Timestamp,
    answered: Option<Timestamp>,
    recording: Option<PathBuf>,
    /// The call as last published.
    summary: CallSummary,
    /// When it ended, once it has: its record waits for the media's last figures.
    ended: Option<Timestamp>,
    /// What the agent marked it with (`call.flag`): `escalate`, say.
    flags: BTreeSet<String>,
}

impl CallLog {
    pub(super) fn was_answered(&self) -> bool {
        self.answered.is_some()
    }

    /// The call's record as it stands; open until the call has ended.
    fn record(&self, quality: Option<QualityEvent>) -> Record {
        let mut body = match serde_json::to_value(&self.summary) {
            Ok(Value::Object(body)) => body,
            _ => Map::new(),
        };
        let talk_ms = self
            .answered
            .zip(self.ended)
            .map(|(from, to)| (to - from).total(jiff::Unit::Millisecond).unwrap_or(0.0) as u64);
        body.extend([
            ("created_at".to_string(), json!(self.started)),
            ("answered_at".to_string(), json!(self.answered)),
            ("ended_at".to_string(), json!(self.ended)),
            ("talk_ms".to_string(), json!(talk_ms)),
            ("quality".to_string(), json!(quality)),
            ("recording".to_string(), json!(self.recording)),
            ("flags".to_string(), json!(self.flags)),
        ]);
        let open = self.ended.is_none();
        Record { kind: RecordKind::Call, id: self.summary.call.clone(), open, created_at: self.started, body }
    }
}

impl Desk {
    /// Follow a call's published state: at the answer its record is stored, open.
    pub(super) fn log_call(&mut self, summary: &CallSummary) {
        let now = self.now.wall;
        let log = self.call_log.entry(summary.call.clone()).or_insert(CallLog {
            started: now,
            answered: None,
            recording: None,
            summary: summary.clone(),
            ended: None,
            flags: BTreeSet::new(),
        });
        log.summary = summary.clone();
        if summary.state == CallState::Ended {
            log.ended = Some(now);
        } else if summary.state.is_answered() && log.answered.is_none() {
            log.answered = Some(now);
            let record = log.record(None);
            self.emit(Output::Store(record));
        }
    }

    /// The call is being recorded to `path`: its history says so from now on.
    pub(super) fn note_recording(&mut self, call: &str, path: &Path) {
        let Some(log) = self.call_log.get_mut(call) else { return };
        log.recording = Some(path.to_path_buf());
        if log.was_answered() && log.ended.is_none() {
            let record = log.record(None);
            self.emit(Output::Store(record));
        }
    }

    /// `call.flag`: mark a live call; an answered one's record says so at once.
    pub(super) fn flag_call(&mut self, call: &str, flag: String, on: bool) -> Result<Reply, DeskError> {
        let valid = (1..=32).contains(&flag.len()) && flag.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !valid {
            return Err(DeskError::InvalidParams(format!("flag {flag:?}: 1-32 of a-z and _, e.g. escalate")));
        }
        let log = self.call_log.get_mut(call).ok_or_else(|| PhoneError::UnknownCall(call.to_string()))?;
        if on {
            log.flags.insert(flag);
        } else {
            log.flags.remove(&flag);
        }
        let flags = log.flags.iter().cloned().collect();
        if log.was_answered() && log.ended.is_none() {
            let record = log.record(None);
            self.emit(Output::Store(record));
        }
        self.emit(Output::Event(Event::CallFlags { call: call.into(), flags }));
        Ok(Reply::Done)
    }

    /// The agent's flags on a live call, in name order.
    pub fn call_flags(&self, call: &str) -> Vec<String> {
        self.call_log.get(call).map(|log| log.flags.iter().cloned().collect()).unwrap_or_default()
    }

    /// The call's media has stopped: an ended call's record is complete.
    pub(super) fn media_stopped(&mut self, call: &str, stats: Option<Box<MediaStats>>) {
        // A call still live (a media restart is a stop and a start) keeps its log.
        if self.call_log.get(call).is_none_or(|log| log.ended.is_none()) {
            return;
        }
        let Some(log) = self.call_log.remove(call) else { return };
        let quality = stats.map(|stats| QualityEvent::new(log.summary.call.clone(), &stats));
        self.emit(Output::Store(log.record(quality)));
    }

    /// Calls a crash left open: their records are closed as `interrupted`,
    /// keeping their answer time and recording; when they ended is unknown.
    pub(super) fn close_interrupted(&mut self, mut record: Record) {
        tracing::warn!(call = %record.id, "call history left open by a crash: closed as interrupted");
        record.open = false;
        record.body.insert("state".into(), json!("ended"));
        record.body.insert("reason".into(), json!("interrupted"));
        self.emit(Output::Store(record));
    }
}
