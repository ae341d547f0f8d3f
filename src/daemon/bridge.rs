//! The browser bridge's place in the shell: opened from `[bridge]` at
//! start, and the pairing methods (`bridge.pair`, `bridge.list`,
//! `bridge.revoke`), which only the Unix socket may call.

use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::dispatch::reply;
use super::{Daemon, DaemonError};
use crate::config::Config;
use crate::control::api::{BridgeListResult, BridgePairResult, Empty, Request};
use crate::control::bridge::door::Door;
use crate::control::bridge::pairings::Pairings;
use crate::control::bridge::{self, Shared};
use crate::control::rpc::{code, RpcError};
use crate::control::session::{ControlRequest, Notification, Seats};

/// Open the bridge if `[bridge]` enables it: check the config (loopback
/// only, known methods), load the pairings, bind, serve.
pub(super) async fn start(
    config: &Config,
    requests: mpsc::Sender<ControlRequest>,
    events: broadcast::Sender<Notification>,
    shutdown: CancellationToken,
) -> Result<Option<Arc<Shared>>, DaemonError> {
    let settings = &config.bridge;
    if !settings.enabled {
        return Ok(None);
    }
    let known: Vec<&str> = Request::METHODS.iter().map(|m| m.name).collect();
    settings.check_methods(&known)?;
    let addr = settings.listen_addr()?;
    let pairings_path = match config.store.path.parent() {
        Some(dir) if settings.pairings.is_relative() => dir.join(&settings.pairings),
        _ => settings.pairings.clone(),
    };
    let pairings = Pairings::load(&pairings_path).map_err(|e| DaemonError::Bridge(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| DaemonError::Bridge(format!("bridge.listen {addr}: {e}")))?;
    let port = listener.local_addr().map_err(|e| DaemonError::Bridge(e.to_string()))?.port();
    let shared = Arc::new(Shared {
        door: Door::new(port, settings.allowed_origins.clone(), settings.methods.clone()),
        pairings: RwLock::new(pairings),
        revoked: broadcast::channel(16).0,
        max_frame_bytes: settings.max_frame_bytes,
        frames_per_second: settings.frames_per_second,
        seats: Seats::new(bridge::MAX_CONNECTIONS),
    });
    tracing::info!(listen = %addr.ip(), port, origins = ?settings.allowed_origins, "browser bridge open");
    tokio::spawn(bridge::serve(listener, shared.clone(), requests, events, shutdown));
    Ok(Some(shared))
}

impl Daemon {
    /// `bridge.*` asked over the Unix socket.
    pub(super) fn bridge_request(&mut self, request: Request) -> Result<Value, RpcError> {
        let Some(bridge) = self.bridge.clone() else {
            return Err(RpcError::new(code::UNAVAILABLE, "the browser bridge is off ([bridge] enabled = false)"));
        };
        let file_error = |e: bridge::pairings::PairingError| RpcError::new(code::UNAVAILABLE, e.to_string());
        match request {
            Request::BridgePair(p) => {
                if !self.config.bridge.allowed_origins.contains(&p.origin) {
                    let message =
                        format!("{:?} is not in bridge.allowed_origins: a page from it could not connect", p.origin);
                    return Err(RpcError::invalid_params(message));
                }
                let id: String = rand::random::<[u8; 6]>().iter().map(|b| format!("{b:02x}")).collect();
                let made = bridge.pairings.write().expect("pairings").pair(
                    &p.origin,
                    id,
                    &rand::random::<[u8; 32]>(),
                    Timestamp::now().to_string(),
                );
                let (pairing, token) = made.map_err(file_error)?;
                tracing::info!(origin = %pairing.origin, id = %pairing.id, "bridge origin paired");
                reply(BridgePairResult { id: pairing.id, origin: pairing.origin, token })
            }
            Request::BridgeList(_) => {
                reply(BridgeListResult { pairings: bridge.pairings.read().expect("pairings").list() })
            }
            Request::BridgeRevoke(p) => {
                if !bridge.pairings.write().expect("pairings").revoke(&p.id).map_err(file_error)? {
                    return Err(RpcError::invalid_params(format!("no pairing {:?}", p.id)));
                }
                tracing::info!(id = %p.id, "bridge pairing revoked");
                // Pages still using it are closed; none listening is fine.
                let _ = bridge.revoked.send(p.id);
                reply(Empty {})
            }
            _ => Err(RpcError::new(
                code::FORBIDDEN,
                "bridge.auth is the bridge's first frame; the Unix socket needs none",
            )),
        }
    }
}
