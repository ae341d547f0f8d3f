//! A history record: a complete JSON snapshot of a callback or an ended
//! call, as the desk produces it and the store keeps it (plain data: the
//! store's thread and SQLite are in `store`).

use serde_json::{Map, Value};

/// What kind of record: history lists both, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Callback,
    Call,
}

impl RecordKind {
    /// The name stored in the database and added to history entries as `"kind"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Callback => "callback",
            RecordKind::Call => "call",
        }
    }
}

/// One record as the desk hands it over: a complete snapshot, replacing any
/// earlier one with the same (kind, id).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: RecordKind,
    pub id: String,
    /// Still open (a live callback): returned by the store's `open` after a restart.
    pub open: bool,
    /// When the record began (offer time of a callback, start of a call):
    /// history is ordered by this, newest first. Stored to the microsecond.
    pub created_at: jiff::Timestamp,
    /// The record itself. A `"kind"` member is overwritten in history entries.
    pub body: Map<String, Value>,
}
