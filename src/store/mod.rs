//! Call and callback history in SQLite (slot: being written on branch `store`).
