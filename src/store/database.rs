//! The database file: opening it (directories, WAL, schema version), moving a
//! file that is not a database aside, and the statements the store runs on it.
//!
//! Instants are stored as INTEGER unix microseconds: integers compare and index
//! correctly across every year, where RFC 3339 text would not (jiff drops
//! trailing zero fractions, and `.` sorts before `Z`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, Type, ValueRef};
use rusqlite::{params, Connection, ErrorCode, ToSql, TransactionBehavior};
use serde_json::{Map, Value};

use super::{HistoryQuery, Record, RecordKind, StoreError};

/// The schema this build writes and reads (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for another connection's lock (an operator's
/// sqlite3 shell, a backup) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many numbered alternatives are tried for a `.corrupt-*` name.
const MOVE_ASIDE_ATTEMPTS: u32 = 100;

const SCHEMA: &str = "
    CREATE TABLE records (
        kind TEXT NOT NULL CHECK (kind IN ('callback', 'call')),
        id TEXT NOT NULL,
        open INTEGER NOT NULL CHECK (open IN (0, 1)),
        created_at INTEGER NOT NULL, -- unix microseconds
        updated_at INTEGER NOT NULL, -- unix microseconds, when the store wrote it
        body TEXT NOT NULL CHECK (json_type(body) = 'object'),
        PRIMARY KEY (kind, id)
    ) STRICT;
    CREATE INDEX records_by_created_at ON records (created_at);
    -- Startup reads only the open records, however long the history grows.
    CREATE INDEX open_records_by_created_at ON records (created_at) WHERE open = 1;
";

const UPSERT: &str = "
    INSERT INTO records (kind, id, open, created_at, updated_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (kind, id) DO UPDATE SET
        open = excluded.open, created_at = excluded.created_at,
        updated_at = excluded.updated_at, body = excluded.body
";

/// ?4 a customer's name, ?5 a number: either may be NULL (no filter). A
/// call matches a number when its remote URI's user part is that number.
const HISTORY: &str = "
    SELECT kind, body FROM records WHERE created_at >= ?1 AND (?3 IS NULL OR kind = ?3)
    AND (?4 IS NULL
        OR (kind = 'callback' AND lower(json_extract(body, '$.customer')) = lower(?4))
        OR (kind = 'call' AND id IN (
            SELECT json_extract(attempt.value, '$.call') FROM records AS cb, json_each(cb.body, '$.attempts') AS attempt
            WHERE cb.kind = 'callback' AND lower(json_extract(cb.body, '$.customer')) = lower(?4))))
    AND (?5 IS NULL
        OR (kind = 'callback' AND EXISTS (
            SELECT 1 FROM json_each(body, '$.numbers') AS n WHERE json_extract(n.value, '$.number') = ?5))
        OR (kind = 'call' AND (instr(json_extract(body, '$.remote'), ':' || ?5 || '@') > 0
            OR instr(json_extract(body, '$.remote') || ';', ':' || ?5 || ';') > 0
            OR json_extract(body, '$.remote') = ?5)))
    ORDER BY created_at DESC, id ASC, kind ASC LIMIT ?2
";

const OPEN_RECORDS: &str = "
    SELECT kind, id, created_at, body FROM records WHERE open = 1
    ORDER BY created_at ASC, id ASC, kind ASC
";

/// A snapshot ready for the database: its body already serialized, so a failed
/// batch can be retried record by record without serializing again.
pub(super) struct EncodedRecord {
    pub kind: RecordKind,
    pub id: String,
    pub open: bool,
    pub created_at_us: i64,
    pub body: String,
}

impl From<Record> for EncodedRecord {
    fn from(record: Record) -> Self {
        EncodedRecord {
            kind: record.kind,
            id: record.id,
            open: record.open,
            created_at_us: record.created_at.as_microsecond(),
            body: Value::Object(record.body).to_string(),
        }
    }
}

/// Opens the database at `path` (see [`super::Store::open`]) and reads the open
/// records, moving a file that is not a database aside first if need be.
pub(super) fn open(path: &Path) -> Result<(Connection, Vec<Record>), StoreError> {
    if let Some(directory) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        fs::create_dir_all(directory)
            .map_err(|source| StoreError::CreateDirectory { path: directory.to_path_buf(), source })?;
    }
    match prepare(path) {
        Err(StoreError::Open { source, .. }) if is_not_a_database(&source) => {
            let aside = move_aside(path)?;
            tracing::error!(
                path = %path.display(),
                moved_to = %aside.display(),
                error = %source,
                "the history file is not a database: moved aside, starting a fresh one"
            );
            prepare(path)
        }
        prepared => prepared,
    }
}

fn is_not_a_database(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt))
}

/// Opens the connection, switches to WAL, creates or checks the schema and
/// reads the open records. The first statement is where a file that is not a
/// database shows itself.
fn prepare(path: &Path) -> Result<(Connection, Vec<Record>), StoreError> {
    let open_error = |source| StoreError::Open { path: path.to_path_buf(), source };
    let mut connection = Connection::open(path).map_err(open_error)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
    // Read before anything is written, so a database of an unknown schema is left as it was.
    let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(open_error)?;
    if version != 0 && version != SCHEMA_VERSION {
        return Err(StoreError::UnknownSchemaVersion {
            path: path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    let journal_mode: String =
        connection.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0)).map_err(open_error)?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), journal_mode, "the history database cannot use WAL here");
    }
    connection.pragma_update(None, "synchronous", "FULL").map_err(open_error)?;
    if version == 0 {
        let transaction = connection.transaction().map_err(open_error)?;
        transaction.execute_batch(SCHEMA).map_err(open_error)?;
        transaction.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(open_error)?;
        transaction.commit().map_err(open_error)?;
    }
    let open_records = read_open_records(&connection).map_err(open_error)?;
    Ok((connection, open_records))
}

/// Renames `path` and its `-wal` and `-shm` companions (those that exist) to
/// `<file>.corrupt-<unix-seconds>`, numbered if that name is taken: nothing
/// stored is ever deleted. Returns the new name of `path`.
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let files = [path.to_path_buf(), with_suffix(path, "-wal"), with_suffix(path, "-shm")];
    let seconds = Timestamp::now().as_second();
    let suffix = (0..MOVE_ASIDE_ATTEMPTS)
        .map(|n| if n == 0 { format!(".corrupt-{seconds}") } else { format!(".corrupt-{seconds}-{n}") })
        .find(|suffix| files.iter().all(|file| !with_suffix(file, suffix).exists()))
        .ok_or_else(|| StoreError::MoveAside {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::AlreadyExists, "every .corrupt-* name tried is taken"),
        })?;
    for file in files.iter().filter(|file| file.exists()) {
        fs::rename(file, with_suffix(file, &suffix))
            .map_err(|source| StoreError::MoveAside { path: file.clone(), source })?;
    }
    Ok(with_suffix(path, &suffix))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

fn read_open_records(connection: &Connection) -> rusqlite::Result<Vec<Record>> {
    let mut statement = connection.prepare(OPEN_RECORDS)?;
    let rows = statement.query_map([], |row| {
        let created_at_us: i64 = row.get(2)?;
        let created_at = Timestamp::from_microsecond(created_at_us)
            .map_err(|error| rusqlite::Error::FromSqlConversionFailure(2, Type::Integer, Box::new(error)))?;
        Ok(Record { kind: row.get(0)?, id: row.get(1)?, open: true, created_at, body: body_at(row, 3)? })
    })?;
    rows.collect()
}

/// Writes `records` in one transaction: all of them or none.
pub(super) fn upsert(
    connection: &mut Connection,
    records: &[EncodedRecord],
    updated_at_us: i64,
) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut statement = transaction.prepare_cached(UPSERT)?;
        for record in records {
            statement.execute(params![
                record.kind,
                record.id,
                record.open,
                record.created_at_us,
                updated_at_us,
                record.body
            ])?;
        }
    }
    transaction.commit()
}

/// Answers a history query: newest first, each body with its `"kind"` added.
pub(super) fn history(connection: &Connection, query: HistoryQuery) -> rusqlite::Result<Vec<Value>> {
    let since_us = query.since.map_or(i64::MIN, Timestamp::as_microsecond);
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let mut statement = connection.prepare_cached(HISTORY)?;
    let rows = statement.query_map(params![since_us, limit, query.kind, query.customer, query.number], |row| {
        let kind: RecordKind = row.get(0)?;
        let mut body = body_at(row, 1)?;
        body.insert("kind".into(), kind.as_str().into());
        Ok(Value::Object(body))
    })?;
    rows.collect()
}

fn body_at(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<Map<String, Value>> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text)
        .map_err(|error| rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(error)))
}

impl ToSql for RecordKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for RecordKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_str()? {
            "callback" => Ok(RecordKind::Callback),
            "call" => Ok(RecordKind::Call),
            other => Err(FromSqlError::Other(format!("unknown record kind {other:?}").into())),
        }
    }
}
