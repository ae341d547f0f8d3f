//! The store's own thread: it owns the connection, writes queued snapshots in
//! batches (one transaction each) and answers history queries in queue order.

use std::slice;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError, TrySendError};
use std::sync::Arc;

use jiff::Timestamp;
use rusqlite::Connection;

use super::database::{self, EncodedRecord};
use super::{HistoryQuery, HistoryReply, Record};

/// At most this many snapshots go into one transaction, so a long queue is
/// written in steps and a history query behind it waits for a bounded batch.
pub(super) const MAX_BATCH: usize = 256;

/// What the handle asks of the thread, in queue order.
pub(super) enum Op {
    Save(Record),
    History(HistoryQuery, HistoryReply),
    /// Sent by the handle's drop, behind every queued op.
    Close,
}

/// The handle's end of the queue: bounded in ops, but its memory is taken
/// as it fills. std's `sync_channel(n)` allocates and writes all `n` slots
/// when it is made, which kept about 400 kB of an idle daemon resident for
/// a queue that is nearly always empty; std's unbounded channel allocates
/// blocks of a few dozen slots as they are used and frees them after, and
/// the count of ops in flight is the bound.
pub(super) struct QueueSender {
    ops: Sender<Op>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

/// The thread's end of the queue.
pub(super) struct QueueReceiver {
    ops: Receiver<Op>,
    queued: Arc<AtomicUsize>,
}

/// A queue that holds at most `capacity` ops (but for [`QueueSender::send_close`]).
pub(super) fn queue(capacity: usize) -> (QueueSender, QueueReceiver) {
    let (ops, receiver) = mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (QueueSender { ops, queued: queued.clone(), capacity }, QueueReceiver { ops: receiver, queued })
}

impl QueueSender {
    /// Never blocks: `Full` when `capacity` ops wait.
    pub fn try_send(&self, op: Op) -> Result<(), TrySendError<Op>> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(TrySendError::Full(op));
        }
        self.ops.send(op).map_err(|mpsc::SendError(op)| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            TrySendError::Disconnected(op)
        })
    }

    /// [`Op::Close`], behind every queued op, even when the queue is full.
    pub fn send_close(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        let _ = self.ops.send(Op::Close);
    }
}

impl QueueReceiver {
    /// The next op; `None` once the handle is gone and the queue is empty.
    fn recv(&self) -> Option<Op> {
        let op = self.ops.recv().ok()?;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        Some(op)
    }

    /// The next op if one waits.
    fn try_recv(&self) -> Result<Op, TryRecvError> {
        let op = self.ops.try_recv()?;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        Ok(op)
    }
}

/// Counts shared between the handle and the thread.
#[derive(Default)]
pub(super) struct Counters {
    pub dropped: AtomicU64,
    pub failed_writes: AtomicU64,
}

/// The thread's body: serves ops until [`Op::Close`] (or until the handle is
/// gone), then closes the connection, which checkpoints the WAL.
pub(super) fn run(mut connection: Connection, queue: QueueReceiver, counters: &Counters) {
    let mut batch: Vec<EncodedRecord> = Vec::with_capacity(MAX_BATCH);
    // An op taken from the queue while draining a batch, served after the batch.
    let mut next: Option<Op> = None;
    loop {
        let Some(op) = next.take().or_else(|| queue.recv()) else { return };
        match op {
            Op::Save(record) => {
                batch.push(record.into());
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(Op::Save(record)) => batch.push(record.into()),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                write(&mut connection, &batch, counters);
                batch.clear();
            }
            Op::History(query, reply) => {
                // The asker may have gone away; nobody is left to tell.
                let _ = reply.send(database::history(&connection, query).map_err(Into::into));
            }
            Op::Close => return,
        }
    }
}

/// Writes a batch in one transaction. If that fails, each snapshot is retried
/// alone, so one bad snapshot costs only itself; a write that still fails is
/// logged and counted, and the thread carries on: the record's next snapshot
/// carries its latest state anyway.
fn write(connection: &mut Connection, batch: &[EncodedRecord], counters: &Counters) {
    let updated_at_us = Timestamp::now().as_microsecond();
    let error = match database::upsert(connection, batch, updated_at_us) {
        Ok(()) => return,
        Err(error) => error,
    };
    if let [record] = batch {
        count_failure(record, &error, counters);
        return;
    }
    tracing::warn!(snapshots = batch.len(), %error, "history batch write failed; writing its snapshots one by one");
    for record in batch {
        if let Err(error) = database::upsert(connection, slice::from_ref(record), updated_at_us) {
            count_failure(record, &error, counters);
        }
    }
}

fn count_failure(record: &EncodedRecord, error: &rusqlite::Error, counters: &Counters) {
    let failed_total = counters.failed_writes.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::error!(kind = record.kind.as_str(), id = %record.id, failed_total, %error, "history write failed");
}
