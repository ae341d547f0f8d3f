//! The store against real SQLite files in temporary directories.

use std::fs;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rusqlite::Connection;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().expect("a valid RFC 3339 instant")
}

fn record(kind: RecordKind, id: &str, open: bool, created_at: &str, body: Value) -> Record {
    let Value::Object(body) = body else { panic!("a test body is an object") };
    Record { kind, id: id.into(), open, created_at: at(created_at), body }
}

fn callback(id: &str, open: bool, created_at: &str) -> Record {
    record(
        RecordKind::Callback,
        id,
        open,
        created_at,
        json!({ "id": id, "state": if open { "scheduled" } else { "closed" } }),
    )
}

fn history(store: &Store, since: Option<&str>, limit: usize) -> Result<Vec<Value>, StoreError> {
    let (reply, answer) = oneshot::channel();
    store.history(HistoryQuery { since: since.map(at), limit, ..HistoryQuery::default() }, reply);
    answer.blocking_recv().expect("the store answers every query")
}

fn ids(entries: &[Value]) -> Vec<&str> {
    entries.iter().map(|entry| entry["id"].as_str().expect("every test body has an id")).collect()
}

fn database_path(directory: &tempfile::TempDir) -> PathBuf {
    directory.path().join("nested").join("history.db")
}

#[test]
fn open_records_come_back_after_reopening_and_closed_ones_stay_in_history() {
    let directory = tempfile::tempdir().unwrap();
    let path = database_path(&directory);
    let (store, open_records) = Store::open(&path).unwrap();
    assert!(open_records.is_empty());
    let late_open = callback("cb-late", true, "2025-03-01T12:00:00.123456Z");
    let early_open =
        record(RecordKind::Call, "call-early", true, "2025-03-01T09:00:00Z", json!({ "id": "call-early" }));
    store.save(late_open.clone());
    store.save(callback("cb-closed", false, "2025-03-01T10:00:00Z"));
    store.save(early_open.clone());
    drop(store);

    let (store, open_records) = Store::open(&path).unwrap();
    assert_eq!(open_records, vec![early_open, late_open], "open records, oldest first, kind and body intact");
    let entries = history(&store, None, 10).unwrap();
    assert_eq!(ids(&entries), ["cb-late", "cb-closed", "call-early"]);
    assert_eq!(entries[1]["kind"], "callback");
    assert_eq!(entries[2]["kind"], "call");
    assert_eq!(entries[1]["state"], "closed");
}

#[test]
fn a_later_snapshot_replaces_the_earlier_one() {
    let directory = tempfile::tempdir().unwrap();
    let path = database_path(&directory);
    let (store, _) = Store::open(&path).unwrap();
    store.save(callback("cb-1", true, "2025-03-01T10:00:00Z"));
    let mut closed = callback("cb-1", false, "2025-03-01T10:00:00Z");
    closed.body.insert("outcome".into(), "reached".into());
    store.save(closed);
    let entries = history(&store, None, 10).unwrap();
    assert_eq!(entries, [json!({ "id": "cb-1", "state": "closed", "outcome": "reached", "kind": "callback" })]);
    drop(store);

    let (_store, open_records) = Store::open(&path).unwrap();
    assert!(open_records.is_empty(), "the closing snapshot replaced the open one");
}

#[test]
fn history_is_newest_first_then_by_id_and_honours_since_and_limit() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&database_path(&directory)).unwrap();
    // Saved out of order, with a tie on created_at broken by id. "fraction"
    // checks that instants compare as numbers: as RFC 3339 text, "10:00:00.5Z"
    // would sort before "10:00:00Z".
    store.save(callback("b", false, "2025-03-01T10:00:00Z"));
    store.save(callback("old", false, "1999-12-31T23:59:59.5Z"));
    store.save(record(RecordKind::Call, "c", false, "2025-03-02T08:00:00Z", json!({ "id": "c" })));
    store.save(callback("a", false, "2025-03-01T10:00:00Z"));
    store.save(callback("fraction", false, "2025-03-01T10:00:00.5Z"));

    assert_eq!(ids(&history(&store, None, 100).unwrap()), ["c", "fraction", "a", "b", "old"]);
    assert_eq!(ids(&history(&store, None, 2).unwrap()), ["c", "fraction"]);
    assert_eq!(ids(&history(&store, Some("2025-03-01T10:00:00Z"), 100).unwrap()), ["c", "fraction", "a", "b"]);
    assert_eq!(ids(&history(&store, Some("2025-03-01T10:00:00.000001Z"), 100).unwrap()), ["c", "fraction"]);
    assert!(history(&store, None, 0).unwrap().is_empty());
}

#[test]
fn history_sees_every_snapshot_saved_before_it() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&database_path(&directory)).unwrap();
    for round in 0..20 {
        let id = format!("cb-{round}");
        store.save(callback(&id, true, "2025-03-01T10:00:00Z"));
        let entries = history(&store, None, 1000).unwrap();
        assert_eq!(entries.len(), round + 1);
        assert!(ids(&entries).contains(&id.as_str()), "round {round}: {id} not yet visible");
    }
}

#[test]
fn a_file_that_is_not_a_database_is_moved_aside_and_a_fresh_one_works() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("history.db");
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    fs::write(&path, &garbage).unwrap();

    let (store, open_records) = Store::open(&path).unwrap();
    assert!(open_records.is_empty());
    let aside: Vec<PathBuf> = fs::read_dir(directory.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|file| file.file_name().unwrap().to_str().unwrap().starts_with("history.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "one file moved aside: {aside:?}");
    assert_eq!(fs::read(&aside[0]).unwrap(), garbage, "the original bytes are kept");

    store.save(callback("cb-1", true, "2025-03-01T10:00:00Z"));
    assert_eq!(ids(&history(&store, None, 10).unwrap()), ["cb-1"]);
    drop(store);
    assert_eq!(Store::open(&path).unwrap().1.len(), 1);
}

#[test]
fn the_database_is_in_wal_mode() {
    let directory = tempfile::tempdir().unwrap();
    let path = database_path(&directory);
    let (_store, _) = Store::open(&path).unwrap();
    let other = Connection::open(&path).unwrap();
    let mode: String = other.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

fn assert_names(error: &StoreError, path: &Path) {
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message:?} does not name {}", path.display());
}

#[test]
fn a_path_under_a_regular_file_is_an_error_naming_the_directory() {
    let directory = tempfile::tempdir().unwrap();
    let not_a_directory = directory.path().join("plain-file");
    fs::write(&not_a_directory, b"not a directory").unwrap();
    let Err(error) = Store::open(&not_a_directory.join("history.db")) else { panic!("opened under a file") };
    assert!(matches!(error, StoreError::CreateDirectory { .. }), "{error:?}");
    assert_names(&error, &not_a_directory);
    assert_eq!(fs::read(&not_a_directory).unwrap(), b"not a directory", "the file in the way is untouched");
}

#[test]
fn a_directory_in_place_of_the_file_is_an_error_naming_it() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("history.db");
    fs::create_dir(&path).unwrap();
    let Err(error) = Store::open(&path) else { panic!("opened a directory as a database") };
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    assert_names(&error, &path);
}

#[test]
fn an_unknown_schema_version_is_an_error_and_the_file_is_left_alone() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("history.db");
    Connection::open(&path).unwrap().pragma_update(None, "user_version", 7).unwrap();
    let before = fs::read(&path).unwrap();
    let Err(error) = Store::open(&path) else { panic!("opened a database of an unknown schema") };
    assert!(matches!(error, StoreError::UnknownSchemaVersion { found: 7, known: 1, .. }), "{error:?}");
    assert_names(&error, &path);
    assert!(fs::read(&path).unwrap() == before, "the database was changed");
}

#[test]
fn dropping_the_store_writes_everything_queued() {
    let directory = tempfile::tempdir().unwrap();
    let path = database_path(&directory);
    let (store, _) = Store::open(&path).unwrap();
    for n in 0..1000 {
        store.save(callback(&format!("cb-{n}"), n % 2 == 0, "2025-03-01T10:00:00Z"));
    }
    assert_eq!(store.dropped(), 0);
    drop(store);

    let (store, open_records) = Store::open(&path).unwrap();
    assert_eq!(open_records.len(), 500);
    assert_eq!(history(&store, None, 2000).unwrap().len(), 1000);
}

#[test]
fn a_failed_write_is_counted_and_the_store_keeps_serving() {
    let directory = tempfile::tempdir().unwrap();
    let path = database_path(&directory);
    let (store, _) = Store::open(&path).unwrap();
    // Another connection makes one record unwritable, as a full disk would.
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON records WHEN NEW.id = 'poison'
             BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END;",
        )
        .unwrap();
    store.save(callback("before", true, "2025-03-01T10:00:00Z"));
    store.save(callback("poison", true, "2025-03-01T11:00:00Z"));
    store.save(callback("after", true, "2025-03-01T12:00:00Z"));
    assert_eq!(ids(&history(&store, None, 10).unwrap()), ["after", "before"]);
    assert_eq!(store.failed_writes(), 1);
    assert_eq!(store.dropped(), 0);
}

#[test]
fn a_full_queue_drops_and_counts_snapshots_and_refuses_queries() {
    let directory = tempfile::tempdir().unwrap();
    let path = database_path(&directory);
    let (store, _) = Store::open(&path).unwrap();
    // Another connection holds the write lock, so the store's thread waits in
    // its first write and the queue fills behind it.
    let mut blocker = Connection::open(&path).unwrap();
    let lock = blocker.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
    // Beyond the queue, the thread holds at most the batch it is writing.
    let offered = (QUEUE_CAPACITY + writer::MAX_BATCH + 10) as u64;
    for n in 0..offered {
        store.save(callback(&format!("cb-{n}"), true, "2025-03-01T10:00:00Z"));
    }
    let (reply, answer) = oneshot::channel();
    store.history(HistoryQuery { limit: 1, ..HistoryQuery::default() }, reply);
    assert!(matches!(answer.blocking_recv().unwrap(), Err(StoreError::Busy)));
    let dropped = store.dropped();
    assert!(dropped >= 10, "dropped {dropped}");
    lock.rollback().unwrap();
    drop(store);

    let (_store, open_records) = Store::open(&path).unwrap();
    assert_eq!(open_records.len() as u64 + dropped, offered, "every snapshot is either written or counted as dropped");
}

#[test]
fn record_kinds_serialize_as_their_stored_names() {
    for kind in [RecordKind::Callback, RecordKind::Call] {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
    }
}

#[test]
fn a_contacts_interactions_are_found_by_customer_or_number() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&database_path(&directory)).unwrap();
    let ada = json!({ "id": "cb-ada", "customer": "Ada Lovelace",
        "numbers": [{ "label": "mobile", "number": "+15551230000" }], "attempts": [{ "call": "c-1" }, { "call": "c-2" }] });
    store.save(record(RecordKind::Callback, "cb-ada", false, "2025-03-01T10:00:00Z", ada));
    let bob =
        json!({ "id": "cb-bob", "customer": "Bob", "numbers": [{ "label": "", "number": "5550000" }], "attempts": [] });
    store.save(record(RecordKind::Callback, "cb-bob", false, "2025-03-01T11:00:00Z", bob));
    for (id, remote, at_) in [
        ("c-1", "sip:+15551230000@pbx.example.com", "2025-03-01T10:01:00Z"),
        ("c-2", "sip:+15551230000@pbx.example.com;user=phone", "2025-03-01T10:05:00Z"),
        ("c-3", "sip:+15551230000@pbx.example.com", "2025-03-02T09:00:00Z"),
        ("c-4", "sip:15551230000@pbx.example.com", "2025-03-02T09:30:00Z"),
        ("c-5", "tel:+15551230000", "2025-03-02T10:00:00Z"),
    ] {
        store.save(record(RecordKind::Call, id, false, at_, json!({ "id": id, "remote": remote })));
    }
    let find = |customer: Option<&str>, number: Option<&str>| {
        let (reply, answer) = oneshot::channel();
        let query = HistoryQuery {
            limit: 100,
            customer: customer.map(String::from),
            number: number.map(String::from),
            ..HistoryQuery::default()
        };
        store.history(query, reply);
        let entries = answer.blocking_recv().unwrap().unwrap();
        ids(&entries).into_iter().map(String::from).collect::<Vec<_>>()
    };
    // Ada's callback and the two calls its attempts made, whatever the case of her name.
    assert_eq!(find(Some("ada lovelace"), None), ["c-2", "c-1", "cb-ada"]);
    // Her number: her callback and every call to it, not a longer number that contains it.
    assert_eq!(find(None, Some("+15551230000")), ["c-5", "c-3", "c-2", "c-1", "cb-ada"]);
    assert_eq!(find(Some("Ada Lovelace"), Some("+15551230000")), ["c-2", "c-1", "cb-ada"]);
    assert_eq!(find(None, Some("5550000")), ["cb-bob"]);
    assert!(find(Some("Nobody"), None).is_empty());
}
