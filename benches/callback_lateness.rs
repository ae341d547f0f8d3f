//! How late the callback auto-dial fires: from the countdown's zero to the
//! INVITE arriving at the customer's (a UDP socket on 127.0.0.1), with the
//! daemon idle and with calls carrying media. Zero is known to within the
//! accept request's round trip, so each run gives a lower and an upper
//! bound; medians and the worst are printed.
//!
//! `cargo bench --bench callback_lateness` (`-- --runs N --calls K`).

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use softphoned::config::Config;
use softphoned::control::client::Client;
use softphoned::daemon::{self, RunningDaemon};

const COUNTDOWN_MS: u64 = 300;

async fn start(dir: &Path, name: &str, extra: &str) -> RunningDaemon {
    let config = Config::parse(&format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:0\"]\nuser = \"{name}\"\n\
         allow_from = [\"127.0.0.1\"]\n[control]\nsocket = \"{dir}/{name}.sock\"\n\
         [store]\npath = \"{dir}/{name}.sqlite3\"\n[audio]\nsource = \"tone:440\"\n{extra}",
        dir = dir.display()
    ))
    .expect("bench config");
    daemon::start(config).await.expect("daemon starts")
}

/// The customer's phone: reports when each new INVITE arrives.
fn listen_for_invites(socket: UdpSocket) -> std::sync::mpsc::Receiver<Instant> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = std::collections::HashSet::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            let at = Instant::now();
            let text = String::from_utf8_lossy(&buf[..n]);
            let call_id = text.lines().find_map(|l| l.strip_prefix("Call-ID: ")).unwrap_or_default().to_string();
            if text.starts_with("INVITE ") && seen.insert(call_id) && tx.send(at).is_err() {
                return;
            }
        }
    });
    rx
}

/// The value `fraction` of the way up the sorted values (0.5: the median).
fn quantile(values: &mut [f64], fraction: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * fraction).round() as usize]
}

async fn measure(agent: &RunningDaemon, runs: usize, label: &str) {
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    let number = format!("sip:customer@{}", phone.local_addr().unwrap());
    let invites = listen_for_invites(phone);
    let mut ui = Client::connect(&agent.control_socket).await.unwrap();
    ui.call("events.subscribe", json!({"topics": ["callback"]})).await.unwrap();
    let (mut low, mut high) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let id = format!("{label}-{run}");
        let offer =
            json!({"id": id, "numbers": [{"number": number}], "dial_mode": "automatic", "countdown_ms": COUNTDOWN_MS});
        ui.call("callback.offer", offer).await.unwrap();
        let sent = Instant::now();
        ui.call("callback.accept", json!({"callback": id})).await.unwrap();
        let replied = Instant::now();
        let invite = invites.recv_timeout(Duration::from_secs(5)).expect("the countdown dials");
        let countdown = Duration::from_millis(COUNTDOWN_MS);
        high.push((invite - sent - countdown).as_secs_f64() * 1000.0);
        low.push(invite.saturating_duration_since(replied + countdown).as_secs_f64() * 1000.0);
        // End the unanswered attempt, then close the callback before the next run.
        let listed = ui.call("callback.list", json!({})).await.unwrap();
        let call = listed["callbacks"].as_array().unwrap().iter().find(|c| c["callback"] == id.as_str()).unwrap()
            ["call"]
            .clone();
        ui.call("call.hangup", json!({"call": call})).await.unwrap();
        let preview = |e: &serde_json::Value| {
            e["method"] == "callback.state"
                && e["params"]["callback"] == id.as_str()
                && e["params"]["state"] == "preview"
        };
        ui.wait_event(Duration::from_secs(5), preview).await.expect("the attempt ends");
        ui.call("callback.close", json!({"callback": id})).await.unwrap();
    }
    let worst = high.iter().copied().fold(0.0, f64::max);
    println!(
        "{label}: {runs} runs, countdown zero -> INVITE received: median {:.3}..{:.3} ms, p99 <= {:.3} ms, worst <= {worst:.3} ms",
        quantile(&mut low, 0.5),
        quantile(&mut high, 0.5),
        quantile(&mut high, 0.99)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    // `cargo bench` passes --bench; `cargo test --benches` does not, and gets a brief smoke run.
    let smoke = !args.iter().any(|a| a == "--bench");
    let (runs, calls) = if smoke { (2, 2) } else { (arg("--runs", 50), arg("--calls", 20)) };
    let dir = tempfile::tempdir().unwrap();
    let max = calls + 8;
    let agent =
        start(dir.path(), "agent", &format!("[callback]\nno_answer_timeout_ms = 60000\n[calls]\nmax = {max}")).await;
    measure(&agent, runs, "idle").await;

    // Calls carrying media both ways, to a peer daemon that answers at once.
    let peer = start(dir.path(), "peer", &format!("[agent]\nauto_answer_after_ms = 0\n[calls]\nmax = {max}")).await;
    let mut ui = Client::connect(&agent.control_socket).await.unwrap();
    ui.call("events.subscribe", json!({"topics": ["call"]})).await.unwrap();
    for _ in 0..calls {
        ui.call("call.dial", json!({"to": format!("sip:peer@{}", peer.sip_addr)})).await.unwrap();
    }
    let connected = |e: &serde_json::Value| e["method"] == "call.state" && e["params"]["state"] == "connected";
    for _ in 0..calls {
        ui.wait_event(Duration::from_secs(10), connected).await.expect("the peer answers");
    }
    measure(&agent, runs, &format!("with {calls} calls")).await;
    agent.stop().await;
    peer.stop().await;
}
