//! The browser bridge from a WebSocket client that can say anything a page
//! (or a page's attacker) could: the Host, Origin and subprotocol checks
//! before the upgrade (HTTP 403), the token in the first frame (1008), an
//! origin limited to some methods, the frame size and rate limits, and
//! revocation closing a live page. Each refusal is asserted on what the
//! client saw and on the daemon's log. The real pages in real Chromium are
//! tests/browser/.

mod common;

use std::time::Duration;

use common::{Daemon, Setup};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use softphoned::control::client::{is_call_state, Client};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const WAIT: Duration = Duration::from_secs(10);
const PAGE: &str = "http://127.0.0.1:8080";
const WALLBOARD: &str = "http://localhost:9000";

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A daemon with the bridge on a free loopback port; `PAGE` may do
/// anything, `WALLBOARD` only read.
async fn agent() -> (Daemon, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let extra = format!(
        "[bridge]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\nallowed_origins = [\"{PAGE}\", \"{WALLBOARD}\"]\n\
         frames_per_second = 20\nmax_frame_bytes = 4096\n\
         [bridge.methods]\n\"{WALLBOARD}\" = [\"call.list\", \"history.list\"]\n"
    );
    let daemon = Daemon::spawn_with("agent", Setup { extra: &extra, ..Setup::default() }).await;
    (daemon, port)
}

/// Pair `origin` over the Unix socket: (id, token).
async fn pair(daemon: &Daemon, origin: &str) -> (String, String) {
    let mut ui = Client::connect(&daemon.socket).await.unwrap();
    let paired = ui.call("bridge.pair", json!({ "origin": origin })).await.unwrap();
    (paired["id"].as_str().unwrap().into(), paired["token"].as_str().unwrap().into())
}

/// Open the bridge as a page from `origin` would, with this `host` and subprotocol.
async fn open(port: u16, host: &str, origin: &str, protocol: Option<&str>) -> Result<Ws, WsError> {
    let mut request = format!("ws://127.0.0.1:{port}/").into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("host", host.parse().unwrap());
    headers.insert("origin", origin.parse().unwrap());
    if let Some(protocol) = protocol {
        headers.insert("sec-websocket-protocol", protocol.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|(ws, _)| ws)
}

async fn page(port: u16, origin: &str) -> Ws {
    open(port, &format!("127.0.0.1:{port}"), origin, Some("softphoned.v1")).await.expect("the upgrade")
}

async fn send(ws: &mut Ws, id: u64, method: &str, params: Value) {
    let frame = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    ws.send(Message::Text(frame.into())).await.unwrap();
}

/// The next frame that answers `id` (events in between are skipped).
async fn answer(ws: &mut Ws, id: u64) -> Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("an answer in time") {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["id"] == id {
                    return value;
                }
            }
            Some(Ok(_)) => continue,
            other => panic!("no answer to {id}: {other:?}"),
        }
    }
}

/// Read until the server closes; the close frame's code and reason.
async fn closed(ws: &mut Ws) -> (CloseCode, String) {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("closed in time") {
            Some(Ok(Message::Close(Some(frame)))) => return (frame.code, frame.reason.to_string()),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

async fn authed(port: u16, origin: &str, token: &str) -> Ws {
    let mut ws = page(port, origin).await;
    send(&mut ws, 1, "bridge.auth", json!({ "token": token })).await;
    let welcome = answer(&mut ws, 1).await;
    assert_eq!(welcome["result"]["origin"], origin, "{welcome}");
    ws
}

fn log_lines(daemon: &Daemon, needle: &str) -> usize {
    daemon.log().lines().filter(|l| l.contains(needle)).count()
}

#[tokio::test]
async fn a_paired_page_drives_a_call_and_hears_its_events_and_a_reconnect_gets_the_present() {
    let (agent, port) = agent().await;
    let customer = Daemon::spawn("customer", "").await;
    let mut customer_ui = customer.client().await;
    let (_, token) = pair(&agent, PAGE).await;
    let mut ws = authed(port, PAGE, &token).await;
    send(&mut ws, 2, "events.subscribe", json!({})).await;
    assert!(answer(&mut ws, 2).await["result"]["topics"].is_array());
    send(&mut ws, 3, "call.dial", json!({ "to": customer.uri("customer") })).await;
    let call = answer(&mut ws, 3).await["result"]["call"].as_str().unwrap().to_string();
    let incoming = customer_ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    customer_ui.call("call.answer", json!({"call": incoming["params"]["call"]})).await.unwrap();
    // The call's events come over the bridge, and the customer's daemon sees it answered.
    let mut connected = false;
    while !connected {
        let Some(Ok(Message::Text(text))) = tokio::time::timeout(WAIT, ws.next()).await.unwrap() else { continue };
        connected = is_call_state(&serde_json::from_str(&text).unwrap(), &call, "connected");
    }
    let list = customer_ui.call("call.list", json!({})).await.unwrap();
    assert_eq!(list["calls"][0]["state"], "connected", "{list}");
    // A page that comes back hears the live call first.
    drop(ws);
    let mut again = authed(port, PAGE, &token).await;
    send(&mut again, 2, "events.subscribe", json!({"topics": ["call"]})).await;
    answer(&mut again, 2).await;
    let Some(Ok(Message::Text(first))) = tokio::time::timeout(WAIT, again.next()).await.unwrap() else { panic!() };
    assert!(is_call_state(&serde_json::from_str(&first).unwrap(), &call, "connected"), "{first}");
    send(&mut again, 4, "call.hangup", json!({ "call": call })).await;
    assert!(answer(&mut again, 4).await.get("error").is_none());
}

#[tokio::test]
async fn a_foreign_host_origin_or_subprotocol_gets_403_before_any_websocket() {
    let (agent, port) = agent().await;
    let local = format!("127.0.0.1:{port}");
    let cases = [
        ("DNS rebinding", format!("attacker.example:{port}"), PAGE, Some("softphoned.v1"), "Host"),
        ("another site", local.clone(), "http://evil.example", Some("softphoned.v1"), "Origin"),
        ("no subprotocol", local.clone(), PAGE, None, "subprotocol"),
    ];
    for (what, host, origin, protocol, logged) in cases {
        match open(port, &host, origin, protocol).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 403, "{what}"),
            other => panic!("{what}: expected 403, got {:?}", other.map(|_| "a WebSocket")),
        }
        assert!(
            agent.log().lines().any(|l| l.contains("bridge upgrade refused") && l.contains(logged)),
            "{what}: no log line naming the {logged}:\n{}",
            agent.log()
        );
    }
}

#[tokio::test]
async fn missing_wrong_other_origin_and_revoked_tokens_are_closed_with_1008() {
    let (agent, port) = agent().await;
    let (id, token) = pair(&agent, PAGE).await;
    let (_, wallboard_token) = pair(&agent, WALLBOARD).await;

    let mut no_token = page(port, PAGE).await;
    send(&mut no_token, 1, "call.dial", json!({"to": "sip:premium@127.0.0.1"})).await;
    assert_eq!(answer(&mut no_token, 1).await["error"]["code"], -32004);
    assert_eq!(closed(&mut no_token).await.0, CloseCode::Policy);

    for (what, origin, presented) in
        [("wrong", PAGE, "not-a-token"), ("other origin's", PAGE, wallboard_token.as_str())]
    {
        let mut ws = page(port, origin).await;
        send(&mut ws, 1, "bridge.auth", json!({ "token": presented })).await;
        assert_eq!(answer(&mut ws, 1).await["error"]["code"], -32004, "{what}");
        assert_eq!(closed(&mut ws).await, (CloseCode::Policy, "token not paired with this origin".into()), "{what}");
    }

    // Revoked while a page uses it: that page is closed, and the token is dead.
    let mut live = authed(port, PAGE, &token).await;
    let mut ui = Client::connect(&agent.socket).await.unwrap();
    ui.call("bridge.revoke", json!({ "id": id })).await.unwrap();
    assert_eq!(closed(&mut live).await, (CloseCode::Policy, "token revoked".into()));
    let mut again = page(port, PAGE).await;
    send(&mut again, 1, "bridge.auth", json!({ "token": token })).await;
    assert_eq!(answer(&mut again, 1).await["error"]["code"], -32004);
    let listed = ui.call("bridge.list", json!({})).await.unwrap();
    assert_eq!(listed["pairings"].as_array().unwrap().len(), 1, "only the wallboard's is left: {listed}");
    assert!(!listed.to_string().contains(&wallboard_token), "no token is ever listed");
    assert_eq!(log_lines(&agent, "bridge token refused"), 4, "{}", agent.log());
    assert_eq!(log_lines(&agent, "token revoked"), 1);
}

#[tokio::test]
async fn a_read_only_origin_cannot_dial_and_no_page_can_pair() {
    let (agent, port) = agent().await;
    let (_, token) = pair(&agent, WALLBOARD).await;
    let mut wallboard = authed(port, WALLBOARD, &token).await;
    send(&mut wallboard, 2, "call.list", json!({})).await;
    assert!(answer(&mut wallboard, 2).await["result"]["calls"].is_array());
    send(&mut wallboard, 3, "call.dial", json!({"to": "sip:premium@127.0.0.1"})).await;
    let refused = answer(&mut wallboard, 3).await;
    assert_eq!(refused["error"]["code"], -32004, "{refused}");
    let (_, page_token) = pair(&agent, PAGE).await;
    let mut full = authed(port, PAGE, &page_token).await;
    send(&mut full, 2, "bridge.pair", json!({"origin": PAGE})).await;
    assert_eq!(answer(&mut full, 2).await["error"]["code"], -32004, "pairing is for the Unix socket");
    let mut ui = Client::connect(&agent.socket).await.unwrap();
    assert!(ui.call("call.list", json!({})).await.unwrap()["calls"].as_array().unwrap().is_empty(), "nothing dialled");
}

#[tokio::test]
async fn an_oversized_frame_and_a_flood_get_the_policy_close_and_the_daemon_goes_on() {
    let (agent, port) = agent().await;
    let (_, token) = pair(&agent, PAGE).await;
    let mut big = authed(port, PAGE, &token).await;
    let _ = big.send(Message::Text("x".repeat(8192).into())).await;
    assert_eq!(closed(&mut big).await, (CloseCode::Policy, "frame too large".into()));

    let mut flood = authed(port, PAGE, &token).await;
    let status = json!({"jsonrpc": "2.0", "id": 9, "method": "daemon.status"}).to_string();
    for _ in 0..200 {
        if flood.send(Message::Text(status.clone().into())).await.is_err() {
            break;
        }
    }
    assert_eq!(closed(&mut flood).await, (CloseCode::Policy, "too many frames".into()));

    let mut calm = authed(port, PAGE, &token).await;
    send(&mut calm, 2, "daemon.status", json!({})).await;
    assert!(answer(&mut calm, 2).await["result"]["version"].is_string(), "the bridge still serves");
    assert_eq!(log_lines(&agent, "bridge page closed (1008)"), 2, "{}", agent.log());
}

#[tokio::test]
async fn a_bridge_on_a_non_loopback_address_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("softphoned.toml");
    std::fs::write(&config, "[bridge]\nenabled = true\nlisten = \"0.0.0.0:7443\"\n").unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_softphoned")).arg("--config").arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("bridge.listen") && stderr.contains("loopback"), "{stderr}");
}

/// `softphonectl bridge pair` prints a token a page can use; `list` names
/// the pairing without it; `revoke` ends it.
#[tokio::test]
async fn softphonectl_pairs_lists_and_revokes() {
    let (agent, port) = agent().await;
    let ctl = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_softphonectl"))
            .arg("--socket")
            .arg(&agent.socket)
            .args(["bridge"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let token = ctl(&["pair", PAGE]).trim().to_string();
    authed(port, PAGE, &token).await;
    let listed = ctl(&["list"]);
    let id = listed.split('\t').next().unwrap().to_string();
    assert!(listed.contains(PAGE) && !listed.contains(&token), "{listed}");
    ctl(&["revoke", &id]);
    assert_eq!(ctl(&["list"]), "");
    let mut refused = page(port, PAGE).await;
    send(&mut refused, 1, "bridge.auth", json!({ "token": token })).await;
    assert_eq!(answer(&mut refused, 1).await["error"]["code"], -32004);
}
