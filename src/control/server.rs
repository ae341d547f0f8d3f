//! The Unix control socket: many clients at once, one JSON-RPC object per
//! line each way. A connection task frames lines for its `Session`; the
//! daemon's run loop answers; events reach subscribed connections through
//! a broadcast channel, so a slow client can only lose its own events,
//! never stall the daemon.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::rpc::{self, code, RpcError, MAX_LINE_BYTES};
use super::session::{Access, Session};
pub use super::session::{ControlRequest, Notification, Seats};
use crate::timing::Throttled;

/// Bind the socket with mode 0600 in a private folder, replacing a stale
/// socket left by a crash but never a live daemon's.
pub async fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running daemon", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Control clients served at once: workspaces, softphonectl and tools,
/// with room to spare (a subscriber costs ~15 kB), unless the open files
/// limit allows fewer. One more is told so and closed.
pub const MAX_CLIENTS: usize = 512;

/// Accept clients until `shutdown`, at most one per seat at once.
pub async fn serve(
    listener: UnixListener,
    seats: Seats,
    requests: mpsc::Sender<ControlRequest>,
    events: broadcast::Sender<Notification>,
    shutdown: CancellationToken,
) {
    let max_clients = seats.max();
    let departed = Arc::new(AtomicUsize::new(0));
    let (mut refusals, mut failures) = (Throttled::default(), Throttled::default());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((mut stream, _)) => {
                    let Some(seat) = seats.take() else {
                        if let Some(refused) = refusals.hit(std::time::Instant::now()) {
                            tracing::warn!(max = max_clients, refused, "control clients refused: too many connected");
                        }
                        let error = RpcError::new(code::UNAVAILABLE, format!("too many control clients (at most {max_clients})"));
                        let line = rpc::response(Value::Null, Err(error)) + "\n";
                        tokio::spawn(async move { stream.write_all(line.as_bytes()).await });
                        continue;
                    };
                    let (requests, events, shutdown) = (requests.clone(), events.clone(), shutdown.clone());
                    let (seats, departed) = (seats.clone(), departed.clone());
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            _ = Connection::new(stream, requests, events).run() => {}
                        }
                        drop(seat);
                        // After a crowd leaves, give its memory back (see `return_memory`).
                        let left = departed.fetch_add(1, Ordering::Relaxed) + 1;
                        if left >= TRIM_AFTER || seats.taken() == 0 {
                            departed.store(0, Ordering::Relaxed);
                            tokio::task::spawn_blocking(return_memory);
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors: wait rather than spin on a failing accept.
                    if let Some(failures) = failures.hit(std::time::Instant::now()) {
                        tracing::warn!(error = %e, failures, "control socket accept failing: pausing between tries");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

/// Departures after which freed memory is handed back to the system.
const TRIM_AFTER: usize = 32;

/// Hand memory the allocator keeps free back to the system. glibc keeps
/// what hundreds of clients freed in its arenas, so the daemon's resident
/// size would stay at its peak; `malloc_trim` releases it (a few
/// milliseconds, on a blocking thread).
fn return_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How long a failing accept (EMFILE) waits before the next try.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// One client on the socket: lines in, lines out, its session in between.
struct Connection {
    reader: LineReader,
    writer: tokio::net::unix::OwnedWriteHalf,
    session: Session,
}

impl Connection {
    fn new(
        stream: UnixStream,
        requests: mpsc::Sender<ControlRequest>,
        events: broadcast::Sender<Notification>,
    ) -> Self {
        let (read, writer) = stream.into_split();
        Connection {
            reader: LineReader::new(read),
            writer,
            session: Session::new(requests, events, Access::Everything),
        }
    }

    async fn run(mut self) {
        loop {
            let out = tokio::select! {
                line = self.reader.next_line() => match line {
                    Ok(Some(Line::Complete(bytes))) => match self.session.handle(&bytes).await {
                        Some(out) => out,
                        None => continue,
                    },
                    Ok(Some(Line::TooLong)) => rpc::response(
                        Value::Null,
                        Err(RpcError::new(code::INVALID_REQUEST, format!("invalid request: line longer than {MAX_LINE_BYTES} bytes"))),
                    ),
                    Ok(None) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "control client read failed");
                        return;
                    }
                },
                Some(event) = self.session.next_event() => event,
            };
            if self.writer.write_all(format!("{out}\n").as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

enum Line {
    Complete(Vec<u8>),
    TooLong,
}

/// Reads `\n`-terminated lines, never holding more than `MAX_LINE_BYTES`:
/// the rest of an over-long line is skipped as it arrives.
struct LineReader {
    inner: BufReader<OwnedReadHalf>,
    pending: Vec<u8>,
    discarding: bool,
}

impl LineReader {
    fn new(read: OwnedReadHalf) -> Self {
        LineReader { inner: BufReader::new(read), pending: Vec::new(), discarding: false }
    }

    async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let buf = self.inner.fill_buf().await?;
            if buf.is_empty() {
                // A last line without its newline still counts.
                let rest = std::mem::take(&mut self.pending);
                return Ok((!rest.is_empty() && !self.discarding).then_some(Line::Complete(rest)));
            }
            let (chunk, consumed, complete) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            if !self.discarding {
                if self.pending.len() + chunk.len() > MAX_LINE_BYTES {
                    self.discarding = true;
                    self.pending = Vec::new();
                } else {
                    self.pending.extend_from_slice(chunk);
                }
            }
            self.inner.consume(consumed);
            if complete {
                if std::mem::take(&mut self.discarding) {
                    return Ok(Some(Line::TooLong));
                }
                return Ok(Some(Line::Complete(std::mem::take(&mut self.pending))));
            }
        }
    }
}
