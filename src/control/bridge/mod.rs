//! The browser bridge: the control protocol over a WebSocket on loopback,
//! for web workspaces (a page cannot open a Unix socket). One JSON-RPC
//! object per text frame, through the same [`Session`] as the socket.
//!
//! What stands between a web page and the agent's phone, in order:
//! 1. the [`door`]: `Host`, `Origin` and subprotocol, before the upgrade
//!    (HTTP 403 and a log line);
//! 2. the token: the first frame must be `bridge.auth` with a token paired
//!    to that very origin ([`pairings`]); nothing else is answered before;
//! 3. the origin's method list, if `bridge.methods` limits it, and never
//!    the pairing methods themselves;
//! 4. limits: the frame size, a frame rate, pings and an idle timeout.
//!
//! Every refusal after the upgrade closes with 1008 (policy) and a reason.

pub mod door;
pub mod pairings;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request as Upgrade, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::api::method;
use super::rpc::{self, code, RpcError};
use super::session::{Access, ControlRequest, Notification, Seats, Session};
use crate::timing::{Throttled, TokenBucket};
use door::{Admitted, Door, SUBPROTOCOL};
use pairings::Pairings;

/// Methods a page may never call: pairing and reloading the config are
/// for the agent's own machine, over the Unix socket.
pub const SOCKET_ONLY: &[&str] =
    &[method::BRIDGE_PAIR, method::BRIDGE_LIST, method::BRIDGE_REVOKE, method::DAEMON_RELOAD, method::DEBUG_STALL];

/// How long a page has to present its token.
const AUTH_WITHIN: Duration = Duration::from_secs(10);
/// A ping this often; a connection silent (no frame, no pong) for
/// `IDLE` is closed.
const PING_EVERY: Duration = Duration::from_secs(20);
const IDLE: Duration = Duration::from_secs(60);
/// How long a closing page may take to answer our Close.
const CLOSING: Duration = Duration::from_secs(2);
/// Pages open at once.
pub const MAX_CONNECTIONS: usize = 64;

/// What the bridge's connections share with the daemon's dispatcher.
pub struct Shared {
    pub door: Door,
    pub pairings: RwLock<Pairings>,
    /// The id of each revoked pairing, for its live connections to close.
    pub revoked: broadcast::Sender<String>,
    pub max_frame_bytes: usize,
    pub frames_per_second: u32,
    /// One per page connected, at most [`MAX_CONNECTIONS`].
    pub seats: Seats,
}

/// Accept pages on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    requests: mpsc::Sender<ControlRequest>,
    events: broadcast::Sender<Notification>,
    shutdown: CancellationToken,
) {
    let mut failures = Throttled::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                if let Some(failures) = failures.hit(Instant::now()) {
                    tracing::warn!(error = %e, failures, "bridge accept failing: pausing between tries");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(seat) = shared.seats.take() else {
            tracing::warn!(%peer, max = MAX_CONNECTIONS, "bridge connection refused: too many pages connected");
            continue;
        };
        let (shared, requests, events, shutdown) = (shared.clone(), requests.clone(), events.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = connection(stream, peer, shared, requests, events) => {}
            }
            drop(seat);
        });
    }
}

/// One page, from the upgrade to the close.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    requests: mpsc::Sender<ControlRequest>,
    events: broadcast::Sender<Notification>,
) {
    let admitted: Arc<Mutex<Option<Admitted>>> = Arc::default();
    // tungstenite's callback signature: its error type is what it is.
    #[allow(clippy::result_large_err)]
    let check = {
        let (shared, admitted) = (shared.clone(), admitted.clone());
        move |upgrade: &Upgrade, mut response: Response| -> Result<Response, ErrorResponse> {
            let header = |name: &str| upgrade.headers().get(name).and_then(|v| v.to_str().ok());
            match shared.door.check(header("host"), header("origin"), header("sec-websocket-protocol")) {
                Ok(entry) => {
                    response.headers_mut().insert("sec-websocket-protocol", SUBPROTOCOL.parse().expect("a token"));
                    *admitted.lock().expect("admission") = Some(entry);
                    Ok(response)
                }
                Err(refusal) => {
                    tracing::warn!(%peer, why = %refusal, "bridge upgrade refused (403)");
                    let mut forbidden = ErrorResponse::new(Some(format!("{refusal}\n")));
                    *forbidden.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::FORBIDDEN;
                    Err(forbidden)
                }
            }
        }
    };
    let config = WebSocketConfig::default()
        .max_frame_size(Some(shared.max_frame_bytes))
        .max_message_size(Some(shared.max_frame_bytes));
    let upgraded =
        tokio::time::timeout(AUTH_WITHIN, tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config)));
    let mut ws = match upgraded.await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "bridge upgrade failed");
            return;
        }
        Err(_) => return,
    };
    let Some(Admitted { origin, methods }) = admitted.lock().expect("admission").take() else { return };

    // The first frame must be the token.
    let pairing = match authenticate(&mut ws, &shared, &origin).await {
        Ok(pairing) => pairing,
        Err(why) => {
            tracing::warn!(%peer, %origin, why, "bridge token refused (1008)");
            close(&mut ws, why).await;
            return;
        }
    };
    tracing::info!(%peer, %origin, pairing = %pairing, "bridge page connected");
    let access = match methods {
        Some(only) => {
            Access::Only(Arc::new(only.iter().filter(|m| !SOCKET_ONLY.contains(&m.as_str())).cloned().collect()))
        }
        None => Access::AllBut(SOCKET_ONLY),
    };
    let mut session = Session::new(requests, events, access);
    let mut revoked = shared.revoked.subscribe();
    let mut frames = TokenBucket::full(shared.frames_per_second, Instant::now());
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut last_heard = Instant::now();
    let why = loop {
        let out: Vec<String> = tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    if !frames.take(shared.frames_per_second, last_heard) {
                        break "too many frames";
                    }
                    session.answer(text.as_bytes()).await.unwrap_or_default()
                }
                Some(Ok(Message::Binary(_))) => break "binary frames are not spoken here",
                Some(Ok(Message::Close(_))) | None => return,
                Some(Ok(_)) => {
                    // Ping (answered by the library) or pong.
                    last_heard = Instant::now();
                    continue;
                }
                Some(Err(WsError::Capacity(_))) => break "frame too large",
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "bridge read failed");
                    return;
                }
            },
            Some(event) = session.next_event() => vec![event],
            id = revoked.recv() => match id {
                Ok(id) if id == pairing => break "token revoked",
                _ => continue,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE {
                    break "idle";
                }
                if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
                continue;
            }
        };
        for line in out {
            if ws.send(Message::Text(line.into())).await.is_err() {
                return;
            }
        }
    };
    tracing::warn!(%peer, %origin, why, "bridge page closed (1008)");
    close(&mut ws, why).await;
}

type Socket = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Read the first frame: `bridge.auth` with a token paired to `origin`.
/// Answers it; returns the pairing's id, or why not.
async fn authenticate(ws: &mut Socket, shared: &Shared, origin: &str) -> Result<String, &'static str> {
    let first = match tokio::time::timeout(AUTH_WITHIN, ws.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => text,
        Ok(Some(Ok(_))) => return Err("the first frame must be bridge.auth"),
        Ok(Some(Err(WsError::Capacity(_)))) => return Err("frame too large"),
        Ok(_) => return Err("closed before bridge.auth"),
        Err(_) => return Err("no bridge.auth in time"),
    };
    let request = rpc::parse_request(first.as_bytes()).map_err(|_| "the first frame must be bridge.auth")?;
    let token = (request.method == method::BRIDGE_AUTH)
        .then(|| request.params.get("token").and_then(Value::as_str).map(str::to_owned))
        .flatten();
    let id = request.id.unwrap_or(Value::Null);
    let Some(token) = token else {
        let refused = RpcError::new(code::FORBIDDEN, "the first frame must be bridge.auth with a token");
        let _ = ws.send(Message::Text(rpc::response(id, Err(refused)).into())).await;
        return Err("no token");
    };
    let pairing = shared.pairings.read().expect("pairings").verify(origin, &token).map(|p| p.id.clone());
    let Some(pairing) = pairing else {
        let refused = RpcError::new(code::FORBIDDEN, "token refused: not paired with this origin, or revoked");
        let _ = ws.send(Message::Text(rpc::response(id, Err(refused)).into())).await;
        return Err("token not paired with this origin");
    };
    let methods = shared.door.methods_of(origin);
    let answer = json!({ "origin": origin, "methods": methods });
    ws.send(Message::Text(rpc::response(id, Ok(answer)).into())).await.map_err(|_| "closed")?;
    Ok(pairing)
}

/// Close with 1008 and `why`, then let the page finish: our side is shut
/// (FIN after the Close frame) and what the page still sends is read and
/// dropped until it closes too or a moment has passed. Dropping the socket
/// with a flood or an oversized frame unread would make the kernel reset
/// it, and the page would see 1006 instead of our reason.
async fn close(ws: &mut Socket, why: &'static str) {
    let frame = CloseFrame { code: CloseCode::Policy, reason: why.into() };
    if let Err(e) = ws.close(Some(frame)).await {
        tracing::debug!(error = %e, "bridge close frame not sent");
    }
    let tcp = ws.get_mut();
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(CLOSING, async { while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {} }).await;
}
