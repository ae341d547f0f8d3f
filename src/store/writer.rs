//! The store's own thread: it owns the connection, writes queued snapshots in
//! batches (one transaction each) and answers history queries in queue order.

use std::slice;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;

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

/// Counts shared between the handle and the thread.
#[derive(Default)]
pub(super) struct Counters {
    pub dropped: AtomicU64,
    pub failed_writes: AtomicU64,
}

/// The thread's body: serves ops until [`Op::Close`] (or until the handle is
/// gone), then closes the connection, which checkpoints the WAL.
pub(super) fn run(mut connection: Connection, queue: Receiver<Op>, counters: &Counters) {
    let mut batch: Vec<EncodedRecord> = Vec::with_capacity(MAX_BATCH);
    // An op taken from the queue while draining a batch, served after the batch.
    let mut next: Option<Op> = None;
    loop {
        let Some(op) = next.take().or_else(|| queue.recv().ok()) else { return };
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
