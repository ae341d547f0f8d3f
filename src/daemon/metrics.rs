//! The shell's side of the metrics: the Prometheus endpoint that
//! `[metrics] listen` opens, and handing [`Metrics`] what passes through
//! the run loop.
//!
//! The endpoint is a small HTTP/1.1 responder on tokio's `TcpListener`
//! (one GET is all a scraper asks; `httparse` reads the request head): one
//! request per connection, its head read within [`HEAD_WITHIN`] and
//! [`HEAD_MAX`] bytes, at most [`MAX_SCRAPERS`] connections served at once
//! (and as many told 503).
//! `GET /metrics` gets the text format; anything else gets its HTTP error
//! and the connection is closed. The figures are encoded on this task,
//! not the run loop's: the families are atomics the loop writes as it goes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{Daemon, DaemonError};
use crate::config::Config;
use crate::control::bridge::Shared;
use crate::control::server::Seats;
use crate::metrics::{Exposition, Metrics, Pulled, CONTENT_TYPE};
use crate::sip::SipAgent;
use crate::timing::Throttled;

/// Scrapers served at once; as many more are answered 503, the rest closed.
const MAX_SCRAPERS: usize = 8;
/// A request head larger than this is refused (431).
const HEAD_MAX: usize = 8 * 1024;
/// How long a client has to send its request head (then 408).
const HEAD_WITHIN: Duration = Duration::from_secs(5);
/// How long writing the answer may take.
const WRITE_WITHIN: Duration = Duration::from_secs(10);
/// After an error answer, how much more of the request is read and
/// dropped, and for how long, before the connection is closed.
const LINGER_MAX: usize = 64 * 1024;
const LINGER_WITHIN: Duration = Duration::from_secs(2);

/// Open the endpoint if `[metrics]` names an address; the metrics to feed.
pub(super) async fn start(
    config: &Config,
    sip: &SipAgent,
    control: &Seats,
    bridge: Option<&Arc<Shared>>,
    shutdown: CancellationToken,
) -> Result<Option<Metrics>, DaemonError> {
    let Some(addr) = config.metrics.listen_addr()? else { return Ok(None) };
    let listener = TcpListener::bind(addr).await.map_err(|source| DaemonError::Metrics { addr, source })?;
    let (sip, control, bridge) = (sip.clone(), control.clone(), bridge.cloned());
    let (metrics, exposition) = Metrics::new(Pulled {
        sip: Box::new(move || sip.traffic()),
        control_clients: Box::new(move || control.taken()),
        bridge_clients: Box::new(move || bridge.as_ref().map_or(0, |b| b.seats.taken())),
    });
    let local = listener.local_addr().map_err(|source| DaemonError::Metrics { addr, source })?;
    tracing::info!(listen = %local, "metrics endpoint open: GET /metrics");
    tokio::spawn(serve(listener, exposition, shutdown));
    Ok(Some(metrics))
}

impl Daemon {
    /// Hand the metrics, when on, something that passed through the loop.
    pub(super) fn count(&mut self, observe: impl FnOnce(&mut Metrics)) {
        if let Some(metrics) = &mut self.metrics {
            observe(metrics);
        }
    }
}

async fn serve(listener: TcpListener, exposition: Exposition, shutdown: CancellationToken) {
    let (seats, turned_away) = (Seats::new(MAX_SCRAPERS), Seats::new(MAX_SCRAPERS));
    let mut failures = Throttled::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let mut stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors: wait rather than spin on a failing accept.
                if let Some(failures) = failures.hit(Instant::now()) {
                    tracing::warn!(error = %e, failures, "metrics accept failing: pausing between tries");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(seat) = seats.take() else {
            // Told so while there is room to tell; past that, closed at once.
            if let Some(seat) = turned_away.take() {
                tokio::spawn(async move {
                    answer(&mut stream, "503 Service Unavailable", "too many scrapers\n").await;
                    drop(seat);
                });
            }
            continue;
        };
        let exposition = exposition.clone();
        tokio::spawn(async move {
            scrape(stream, &exposition).await;
            drop(seat);
        });
    }
}

/// One connection: read the head, answer, close.
async fn scrape(mut stream: TcpStream, exposition: &Exposition) {
    let routed = match tokio::time::timeout(HEAD_WITHIN, read_head(&mut stream)).await {
        Ok(Ok(head)) => route(&head),
        Ok(Err(status)) => Err(status),
        Err(_) => Err("408 Request Timeout"),
    };
    match routed {
        Ok(()) => {
            let body = exposition.encode();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let write = async {
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await?;
                stream.shutdown().await
            };
            let _ = tokio::time::timeout(WRITE_WITHIN, write).await;
        }
        Err(status) => answer(&mut stream, status, "").await,
    }
}

/// Headers a scrape's request may carry; more is refused (431).
const HEADERS_MAX: usize = 32;

/// The request head, once `httparse` finds it complete; the status to
/// answer when it cannot be had.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, &'static str> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| "400 Bad Request")?;
        if n == 0 {
            return Err("400 Bad Request");
        }
        head.extend_from_slice(&chunk[..n]);
        if head.len() > HEAD_MAX {
            return Err("431 Request Header Fields Too Large");
        }
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        match httparse::Request::new(&mut headers).parse(&head) {
            Ok(httparse::Status::Complete(_)) => return Ok(head),
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Err("431 Request Header Fields Too Large"),
            Err(httparse::Error::Version) => return Err("505 HTTP Version Not Supported"),
            Err(_) => return Err("400 Bad Request"),
        }
    }
}

/// Whether a complete request head asks for the metrics; the error status if not.
fn route(head: &[u8]) -> Result<(), &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::Version) => return Err("505 HTTP Version Not Supported"),
        _ => return Err("400 Bad Request"),
    }
    if request.method != Some("GET") {
        return Err("405 Method Not Allowed");
    }
    match request.path.and_then(|path| path.split('?').next()) {
        Some("/metrics") => Ok(()),
        _ => Err("404 Not Found"),
    }
}

/// An answer with no metrics in it.
async fn answer(stream: &mut TcpStream, status: &str, body: &str) {
    let allow = if status.starts_with("405") { "Allow: GET\r\n" } else { "" };
    let text = format!(
        "HTTP/1.1 {status}\r\n{allow}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(WRITE_WITHIN, async {
        stream.write_all(text.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    // What the client still sends is read and dropped before closing:
    // closing with it unread resets the connection, and the client could
    // lose the answer it has not read yet (a lingering close).
    let linger = async {
        let mut sink = [0u8; 1024];
        let mut left = LINGER_MAX;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_WITHIN, linger).await;
}

#[cfg(test)]
mod tests {
    use super::route;

    #[test]
    fn only_a_get_of_the_metrics_path_is_served() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(()));
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Ok(()));
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Err("405 Method Not Allowed"));
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Err("404 Not Found"));
        assert_eq!(route(b"GET /metrics SIP/2.0\r\n\r\n"), Err("505 HTTP Version Not Supported"));
        assert_eq!(route(b"\x00\xff garbage\r\n\r\n"), Err("400 Bad Request"));
        assert_eq!(route(b"GET  /metrics HTTP/1.1\r\n\r\n"), Err("400 Bad Request"));
    }
}
