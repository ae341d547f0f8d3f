//! Callback and call history in SQLite, written off the run loop.
//!
//! The run loop hands the store complete JSON snapshots of its records
//! ([`Store::save`]) and asks it history questions ([`Store::history`]); neither
//! call touches the disk. One dedicated OS thread owns the database connection,
//! writes the queued snapshots in batches (one transaction, one fsync, per
//! batch) and answers queries in queue order, so a query sees every snapshot
//! saved before it. At startup [`Store::open`] gives back the records that were
//! still open, so the daemon can restore them after a crash or restart.
//!
//! The store knows nothing of callbacks or calls: a record is a JSON object plus
//! the few columns it is indexed by.
//!
//! - [`database`]: the file (directories, WAL, schema version, moving a file
//!   that is not a database aside) and the statements run on it.
//! - [`writer`]: the store's thread and its queue.

mod database;
mod writer;

#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::TrySendError;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::Value;
use tokio::sync::oneshot;

use writer::{Counters, Op, QueueSender};

/// How many operations may wait for the store's thread before [`Store::save`]
/// drops snapshots: minutes of ordinary traffic, a few MB at worst.
pub const QUEUE_CAPACITY: usize = 4096;

pub use crate::history::{Record, RecordKind};

/// Which records [`Store::history`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only records created at or after this instant.
    pub since: Option<jiff::Timestamp>,
    /// At most this many entries (the newest). The caller bounds it: the whole
    /// answer is built in memory.
    pub limit: usize,
    /// Only this kind; `None`: both.
    pub kind: Option<RecordKind>,
    /// Only this customer's: callbacks with this name (any case) and the
    /// calls their attempts made.
    pub customer: Option<String>,
    /// Only this number's: callbacks listing it and calls to or from it.
    pub number: Option<String>,
}

/// Where the answer to [`Store::history`] is sent: newest first, each entry the
/// record's body with `"kind": "callback" | "call"` added.
pub type HistoryReply = oneshot::Sender<Result<Vec<Value>, StoreError>>;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory that should hold the database could not be created (a
    /// file in the way, no permission, read-only file system).
    #[error("cannot create the history directory {}: {source}", path.display())]
    CreateDirectory { path: PathBuf, source: io::Error },
    /// The database could not be opened or prepared (no permission, a directory
    /// in its place, disk full, a `records` table there that is not ours).
    #[error("cannot open the history database {}: {source}", path.display())]
    Open { path: PathBuf, source: rusqlite::Error },
    /// The database carries a schema version this build does not know (written
    /// by a newer softphoned, or by another program); it is left untouched.
    #[error("the history database {} has schema version {found}, this build knows {known}", path.display())]
    UnknownSchemaVersion { path: PathBuf, found: i64, known: i64 },
    /// A file that is not a database could not be moved aside, so no fresh
    /// database can be created in its place.
    #[error("cannot move the unreadable history database {} aside: {source}", path.display())]
    MoveAside { path: PathBuf, source: io::Error },
    /// The store's thread could not be started.
    #[error("cannot start the history store thread: {0}")]
    Spawn(io::Error),
    /// A query failed on an open database.
    #[error("history query failed: {0}")]
    Query(#[from] rusqlite::Error),
    /// The store's queue is full (the disk is slower than the daemon's
    /// changes): the history query was not asked. Ask again later.
    #[error("the history store is busy: its queue is full")]
    Busy,
    /// The store's thread has stopped (it panicked): nothing more is written
    /// or answered.
    #[error("the history store has stopped")]
    Stopped,
}

/// The handle the run loop holds. Dropping it writes everything still queued,
/// then joins the thread: a clean shutdown loses nothing.
pub struct Store {
    ops: QueueSender,
    counters: Arc<Counters>,
    /// Set while snapshots are being dropped, so a full queue logs once per
    /// burst rather than once per snapshot.
    dropping: AtomicBool,
    thread: Option<JoinHandle<()>>,
}

impl Store {
    /// Opens (creating parent directories, the file and the schema) the
    /// database at `path` and returns it with every record still open, oldest
    /// first. Blocks on the disk: call it before the run loop starts.
    ///
    /// The database runs in WAL mode with `synchronous = FULL`: each batch's
    /// commit is on disk before the next one starts, so an open callback (a
    /// promise to call a customer back) survives a power cut, not only a crash.
    /// The cost is one fsync per batch on the store's own thread; batching
    /// bounds it when changes come fast, and the run loop never waits for it.
    ///
    /// A file that is not a database is moved aside to
    /// `<name>.corrupt-<unix-seconds>` (with its `-wal` and `-shm` companions),
    /// logged, and a fresh database is created in its place.
    pub fn open(path: &Path) -> Result<(Store, Vec<Record>), StoreError> {
        let (connection, open_records) = database::open(path)?;
        let (ops, queue) = writer::queue(QUEUE_CAPACITY);
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("history-store".into())
            .spawn(move || writer::run(connection, queue, &thread_counters))
            .map_err(StoreError::Spawn)?;
        let store = Store { ops, counters, dropping: AtomicBool::new(false), thread: Some(thread) };
        Ok((store, open_records))
    }

    /// Queues a snapshot for writing; never blocks. When the queue is full the
    /// snapshot is dropped and counted (the record's next snapshot carries its
    /// latest state anyway).
    pub fn save(&self, record: Record) {
        let Err(error) = self.ops.try_send(Op::Save(record)) else {
            if self.dropping.load(Ordering::Relaxed) && self.dropping.swap(false, Ordering::Relaxed) {
                tracing::warn!(dropped_total = self.dropped(), "history store accepts snapshots again");
            }
            return;
        };
        let dropped_total = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.dropping.swap(true, Ordering::Relaxed) {
            let reason = match error {
                TrySendError::Full(_) => "its queue is full",
                TrySendError::Disconnected(_) => "it has stopped",
            };
            tracing::error!(dropped_total, "history snapshots are being dropped: {reason}");
        }
    }

    /// Asks a history query of the store's thread; never blocks. It is answered
    /// after every snapshot saved before it (read-your-writes), through `reply`.
    pub fn history(&self, query: HistoryQuery, reply: HistoryReply) {
        let (error, op) = match self.ops.try_send(Op::History(query, reply)) {
            Ok(()) => return,
            Err(TrySendError::Full(op)) => (StoreError::Busy, op),
            Err(TrySendError::Disconnected(op)) => (StoreError::Stopped, op),
        };
        if let Op::History(_, reply) = op {
            // The asker may have gone away; nobody is left to tell.
            let _ = reply.send(Err(error));
        }
    }

    /// Snapshots dropped since open because the queue was full (or the thread
    /// had stopped).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Snapshots whose write failed since open (disk full, read-only, ...).
    pub fn failed_writes(&self) -> u64 {
        self.counters.failed_writes.load(Ordering::Relaxed)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // The close waits behind every queued write.
        self.ops.send_close();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the history store thread panicked; snapshots still queued are lost");
            }
        }
    }
}
