//! Waiting on the deadlines the pure machines hand out.

use tokio::time::Instant;

/// Sleep until `deadline`; with none, never wake (a `select!` arm that
/// stays quiet until the machine has something due).
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
