//! The loopback demo: no PBX, no sound card.
//!
//! Starts two daemons on 127.0.0.1: the agent's (microphone: a 1 kHz tone)
//! and an embedded answering peer standing in for the customer (a 400 Hz
//! tone). Through the agent's real control socket it offers a callback,
//! accepts it, lets the auto-dial countdown call the customer, lets the
//! tones cross for a few seconds, hangs up, submits the wrap-up, reads the
//! history, and prints what each side heard. Exits 0 only if audio crossed
//! both ways.
//!
//! Run: `cargo run --release --example demo` (`-- --seconds N` for longer).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use softphoned::audio::analysis::dominant_frequency;
use softphoned::config::Config;
use softphoned::control::client::Client;
use softphoned::daemon::{self, RunningDaemon};
use softphoned::media::PCM_RATE;

const AGENT_TONE: f64 = 1000.0;
const CUSTOMER_TONE: f64 = 400.0;

async fn start(dir: &Path, name: &str, tone: f64) -> anyhow::Result<RunningDaemon> {
    let config = Config::parse(&format!(
        r#"
        [sip]
        listen = ["udp:127.0.0.1:0"]
        user = "{name}"
        [control]
        socket = "{dir}/{name}.sock"
        [store]
        path = "{dir}/{name}.sqlite3"
        [audio]
        source = "tone:{tone}"
        sink = "wav:{dir}/{name}-heard.wav"
        "#,
        dir = dir.display()
    ))?;
    Ok(daemon::start(config).await?)
}

/// The customer's side: answers every call it is offered.
async fn answer_everything(mut client: Client) -> anyhow::Result<()> {
    client.call("events.subscribe", json!({"topics": ["call"]})).await?;
    loop {
        let event = client.next_event().await?;
        if event["params"]["state"] == "incoming" {
            let call = event["params"]["call"].clone();
            client.call("call.answer", json!({ "call": call })).await?;
        }
    }
}

fn print_event(who: &str, event: &Value) {
    let params = &event["params"];
    let shown = if event["method"] == "callback.state" {
        // The whole record is long: the fields a UI's header would show.
        let keys = ["callback", "state", "attempt", "call", "closed", "preview_ms"];
        let brief: serde_json::Map<String, Value> =
            keys.iter().filter(|k| !params[**k].is_null()).map(|k| (k.to_string(), params[*k].clone())).collect();
        Value::Object(brief)
    } else {
        params.clone()
    };
    println!("  [{who}] {} {shown}", event["method"].as_str().unwrap_or("?"));
}

fn is_callback_state(event: &Value, state: &str) -> bool {
    event["method"] == "callback.state" && event["params"]["state"] == state
}

fn heard(path: &Path) -> anyhow::Result<(Option<f64>, f64)> {
    let mut reader = hound::WavReader::open(path).with_context(|| format!("reading {}", path.display()))?;
    let samples: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let rate = f64::from(PCM_RATE);
    Ok((dominant_frequency(&samples, PCM_RATE), samples.len() as f64 / rate))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 =
        std::env::args().skip_while(|a| a != "--seconds").nth(1).map(|s| s.parse()).transpose()?.unwrap_or(4);
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,softphoned=error".into()))
        .init();
    let dir = tempfile::tempdir()?;
    let customer = start(dir.path(), "customer", CUSTOMER_TONE).await?;
    let agent = start(dir.path(), "agent", AGENT_TONE).await?;
    println!(
        "softphoned demo: agent at udp:{} (tone {AGENT_TONE} Hz), customer at udp:{} (tone {CUSTOMER_TONE} Hz)",
        agent.sip_addr, customer.sip_addr
    );
    println!("agent control socket: {}", agent.control_socket.display());

    let peer = tokio::spawn(answer_everything(Client::connect(&customer.control_socket).await?));
    let mut ui = Client::connect(&agent.control_socket).await?;
    ui.call("events.subscribe", json!({})).await?;
    // A callback, agent-first: offered, accepted, dialled by the countdown.
    let target = format!("sip:customer@{}", customer.sip_addr);
    let offer = json!({
        "customer": "Ada Lovelace", "queue": "billing", "type": "asap", "reason": "invoice question",
        "numbers": [{"label": "mobile", "number": target}], "dial_mode": "automatic", "countdown_ms": 3000,
    });
    println!("> callback.offer {offer}");
    let callback = ui.call("callback.offer", offer).await?["callback"].as_str().unwrap_or_default().to_string();
    ui.wait_event(Duration::from_secs(5), |e| {
        print_event("agent", e);
        is_callback_state(e, "offered")
    })
    .await?;
    println!("> callback.accept {callback}   (the countdown dials at zero)");
    ui.call("callback.accept", json!({ "callback": callback })).await?;
    let in_call = ui
        .wait_event(Duration::from_secs(15), |e| {
            print_event("agent", e);
            is_callback_state(e, "in_call") || is_callback_state(e, "preview") && e["params"]["attempt"] == 1
        })
        .await?;
    if in_call["params"]["state"] != "in_call" {
        bail!("the callback's call did not connect: {}", in_call["params"]["attempts"]);
    }
    let call = in_call["params"]["call"].as_str().unwrap_or_default().to_string();
    println!("  ... talking for {seconds} s");
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let list = ui.call("call.list", json!({})).await?;
    let media = list["calls"][0]["media"].clone();
    let mut customer_ui = Client::connect(&customer.control_socket).await?;
    let customer_media = customer_ui.call("call.list", json!({})).await?["calls"][0]["media"].clone();
    println!("> call.hangup {call}");
    ui.call("call.hangup", json!({ "call": call })).await?;
    ui.wait_event(Duration::from_secs(5), |e| {
        print_event("agent", e);
        is_callback_state(e, "wrapup")
    })
    .await?;
    let wrapup =
        json!({"callback": callback, "reason": "resolved", "notes": "invoice resent", "disposition": "success"});
    println!("> callback.wrapup {wrapup}");
    ui.call("callback.wrapup", wrapup).await?;
    ui.wait_event(Duration::from_secs(5), |e| {
        print_event("agent", e);
        is_callback_state(e, "closed")
    })
    .await?;
    let history = ui.call("history.list", json!({ "limit": 1, "kind": "callback" })).await?;
    let entry = &history["entries"][0];
    println!(
        "> history.list: {} {} closed {}, preview {} ms, attempts {}",
        entry["callback"], entry["customer"], entry["closed"], entry["preview_ms"], entry["attempts"]
    );
    peer.abort();
    agent.stop().await;
    customer.stop().await;

    let (agent_heard, agent_secs) = heard(&dir.path().join("agent-heard.wav"))?;
    let (customer_heard, customer_secs) = heard(&dir.path().join("customer-heard.wav"))?;
    println!("\nsummary");
    println!(
        "  agent:    {} sent {} RTP packets, received {}, heard {:?} Hz over {agent_secs:.2} s (expected {CUSTOMER_TONE}), MOS {}",
        media["codec"], media["packets_sent"], media["packets_received"], agent_heard, media["mos"]
    );
    println!(
        "  customer: sent {} RTP packets, received {}, heard {:?} Hz over {customer_secs:.2} s (expected {AGENT_TONE})",
        customer_media["packets_sent"], customer_media["packets_received"], customer_heard
    );
    let ok = agent_heard == Some(CUSTOMER_TONE) && customer_heard == Some(AGENT_TONE);
    if !ok {
        bail!("audio did not cross both ways");
    }
    println!("  ok: each side heard the other's tone");
    Ok(())
}
