//! What the browser bridge costs a workspace: one `daemon.status` round
//! trip through the WebSocket bridge beside the same request through the
//! Unix socket, against one in-process daemon, measured in the same run
//! (the machines here are shared: compare the two, not either alone).
//!
//! `cargo bench --bench bridge_roundtrip`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use softphoned::config::Config;
use softphoned::control::client::Client;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const ORIGIN: &str = "http://127.0.0.1:8080";

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A daemon with its bridge, a Unix socket client and a paired page.
async fn setup(dir: &std::path::Path) -> (softphoned::daemon::RunningDaemon, Client, Ws) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = Config::parse(&format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:0\"]\n[control]\nsocket = \"{dir}/bench.sock\"\n\
         [store]\npath = \"{dir}/bench.sqlite3\"\n[audio]\nsource = \"null\"\nsink = \"null\"\n\
         [bridge]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\nallowed_origins = [\"{ORIGIN}\"]\n\
         frames_per_second = 100000\n",
        dir = dir.display()
    ))
    .expect("bench config");
    let daemon = softphoned::daemon::start(config).await.expect("daemon starts");
    let mut socket = Client::connect(&daemon.control_socket).await.unwrap();
    let paired = socket.call("bridge.pair", json!({ "origin": ORIGIN })).await.unwrap();
    let mut request = format!("ws://127.0.0.1:{port}/").into_client_request().unwrap();
    request.headers_mut().insert("origin", ORIGIN.parse().unwrap());
    request.headers_mut().insert("sec-websocket-protocol", "softphoned.v1".parse().unwrap());
    let (mut page, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let auth = json!({"jsonrpc": "2.0", "id": 0, "method": "bridge.auth", "params": {"token": paired["token"]}});
    ask(&mut page, auth.to_string()).await;
    (daemon, socket, page)
}

/// Send one frame and wait for its answer.
async fn ask(page: &mut Ws, frame: String) -> Value {
    page.send(Message::Text(frame.into())).await.unwrap();
    loop {
        if let Some(Ok(Message::Text(text))) = page.next().await {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (daemon, mut socket, mut page) = runtime.block_on(setup(dir.path()));
    let status = json!({"jsonrpc": "2.0", "id": 1, "method": "daemon.status"}).to_string();
    let mut group = c.benchmark_group("control_roundtrip");
    group.bench_function("unix_socket_daemon_status", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    socket.call("daemon.status", json!({})).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("bridge_daemon_status", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    assert!(ask(&mut page, status.clone()).await["result"].is_object());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    runtime.block_on(async {
        drop(page);
        tokio::time::timeout(Duration::from_secs(5), daemon.stop()).await.ok();
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
