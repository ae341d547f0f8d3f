//! The daemon driven only through its control socket by separate clients:
//! bad input, every documented method, many clients, and calls between two
//! real `softphoned` processes where each side's events prove what the
//! other side did.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::capture::{largest_gap_ms, ulaw_window, Capture};
use common::sipp::tone_peer;
use common::{dial, require_tools, wait_media_counter, Daemon};
use serde_json::{json, Value};
use softphoned::control::client::{is_call_state, Client, ClientError};

const WAIT: Duration = Duration::from_secs(10);

fn error_code(result: Result<Value, ClientError>) -> i64 {
    match result {
        Err(ClientError::Rpc(e)) => e.code,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

async fn raw_exchange(client: &mut Client, line: &[u8]) -> Value {
    client.send_line(line).await.unwrap();
    client.read_message().await.unwrap()
}

#[tokio::test]
async fn bad_input_gets_errors_and_the_connection_and_daemon_stay_up() {
    let daemon = Daemon::spawn("agent", "").await;
    let mode = std::fs::metadata(&daemon.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket must be private to its user");

    let mut client = Client::connect(&daemon.socket).await.unwrap();
    let garbage = raw_exchange(&mut client, b"this is not json").await;
    assert_eq!(garbage["error"]["code"], -32700);
    assert_eq!(garbage["id"], Value::Null);

    let not_object = raw_exchange(&mut client, b"[1,2,3]").await;
    assert_eq!(not_object["error"]["code"], -32600);

    let mut huge = br#"{"jsonrpc":"2.0","id":1,"method":"daemon.status","params":{"pad":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 100 * 1024));
    huge.extend_from_slice(br#""}}"#);
    let too_long = raw_exchange(&mut client, &huge).await;
    assert_eq!(too_long["error"]["code"], -32600);
    assert!(too_long["error"]["message"].as_str().unwrap().contains("65536"), "{too_long}");

    assert_eq!(error_code(client.call("call.fly", json!({})).await), -32601);
    assert_eq!(error_code(client.call("call.dial", json!({})).await), -32602, "missing `to`");
    assert_eq!(error_code(client.call("call.dial", json!({"to": "not a uri"})).await), -32602);
    assert_eq!(error_code(client.call("call.hangup", json!({"call": 5})).await), -32602);
    assert_eq!(error_code(client.call("call.hangup", json!({"call": "nope"})).await), -32000);
    assert_eq!(error_code(client.call("call.reject", json!({"call": "x", "reason": "because"})).await), -32602);
    assert_eq!(error_code(client.call("daemon.status", json!({"extra": 1})).await), -32602);

    // The same connection still works, and so does a new one.
    let status = client.call("daemon.status", json!({})).await.unwrap();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["audio"]["source"]["kind"], "null");
    let mut other = Client::connect(&daemon.socket).await.unwrap();
    assert_eq!(other.call("call.list", json!({})).await.unwrap(), json!({"calls": []}));
}

#[tokio::test]
async fn every_documented_method_is_answered() {
    let daemon = Daemon::spawn("agent", "").await;
    let document: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/proto/openrpc.json")).unwrap(),
    )
    .unwrap();
    let mut client = Client::connect(&daemon.socket).await.unwrap();
    let methods = document["methods"].as_array().unwrap();
    assert!(methods.len() >= 7);
    for method in methods {
        let name = method["name"].as_str().unwrap();
        // Empty params: either a result or a params/state error, never "unknown method".
        let result = client.call(name, json!({})).await;
        if let Err(ClientError::Rpc(e)) = &result {
            assert_ne!(e.code, -32601, "{name} is documented but not implemented");
        }
    }
}

#[tokio::test]
async fn two_daemons_call_each_other_and_every_subscriber_sees_it() {
    let agent = Daemon::spawn("agent", "[audio]\nsource = \"tone:1000\"").await;
    let customer = Daemon::spawn("customer", "[audio]\nsource = \"tone:400\"").await;
    let mut ui = agent.client().await;
    let mut second_ui = agent.client().await;
    let mut customer_ui = customer.client().await;

    // Outbound, answered by the other side, hung up by us.
    let call = dial(&mut ui, &customer.uri("customer")).await;
    let incoming = customer_ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    assert_eq!(incoming["params"]["direction"], "inbound");
    assert!(incoming["params"]["remote"].as_str().unwrap().starts_with("sip:agent@127.0.0.1:"), "{incoming}");
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "ringing")).await.unwrap();
    let theirs = incoming["params"]["call"].as_str().unwrap().to_string();
    customer_ui.call("call.answer", json!({"call": theirs})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    second_ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    assert_eq!(
        error_code(ui.call("call.answer", json!({"call": call})).await),
        -32001,
        "answering our own outbound call names the state"
    );
    // Media flows: wait until the customer has heard some of it.
    let received = wait_media_counter(&mut customer_ui, "packets_received", 10).await;
    assert!(received >= 10, "the customer received {received} RTP packets");
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    let ended = customer_ui.wait_event(WAIT, |e| is_call_state(e, &theirs, "ended")).await.unwrap();
    assert_eq!(ended["params"]["reason"], "remote_hangup", "the customer saw our BYE");

    // Inbound, rejected by the agent with decline: the caller sees 603.
    let back = dial(&mut customer_ui, &agent.uri("agent")).await;
    let ringing = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    ui.call("call.reject", json!({"call": ringing["params"]["call"], "reason": "decline"})).await.unwrap();
    let refused = customer_ui.wait_event(WAIT, |e| is_call_state(e, &back, "ended")).await.unwrap();
    assert_eq!(
        (refused["params"]["reason"].clone(), refused["params"]["sip_code"].clone()),
        (json!("declined"), json!(603))
    );

    // Inbound, the caller gives up before the agent answers: both see it end.
    let gave_up = dial(&mut customer_ui, &agent.uri("agent")).await;
    let ringing = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    customer_ui.wait_event(WAIT, |e| is_call_state(e, &gave_up, "ringing")).await.unwrap();
    customer_ui.call("call.hangup", json!({"call": gave_up})).await.unwrap();
    let mine = ringing["params"]["call"].as_str().unwrap();
    let cancelled = ui.wait_event(WAIT, |e| is_call_state(e, mine, "ended")).await.unwrap();
    assert_eq!(cancelled["params"]["reason"], "caller_cancelled");
    let status = ui.call("daemon.status", json!({})).await.unwrap();
    assert_eq!(status["calls"], 0, "ended calls are gone");
}

#[tokio::test]
async fn sigterm_hangs_up_live_calls_before_exiting() {
    let mut agent = Daemon::spawn("agent", "").await;
    let customer = Daemon::spawn("customer", "").await;
    let mut ui = agent.client().await;
    let mut customer_ui = customer.client().await;
    let call = dial(&mut ui, &customer.uri("c")).await;
    let incoming = customer_ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    let theirs = incoming["params"]["call"].as_str().unwrap().to_string();
    customer_ui.call("call.answer", json!({"call": theirs})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    assert!(agent.terminate().success(), "clean exit on SIGTERM:\n{}", agent.log());
    let ended = customer_ui.wait_event(WAIT, |e| is_call_state(e, &theirs, "ended")).await.unwrap();
    assert_eq!(ended["params"]["reason"], "remote_hangup");
    assert!(!agent.socket.exists(), "the control socket is removed on exit");
}

#[tokio::test]
async fn an_unanswered_invite_times_out_with_408() {
    // T1 of 20 ms: Timer B fires after 64*T1 = 1.28 s instead of 32 s.
    let agent = Daemon::spawn("agent", "t1_ms = 20").await;
    let silent_peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut ui = agent.client().await;
    let to = format!("sip:nobody@{}", silent_peer.local_addr().unwrap());
    let call = dial(&mut ui, &to).await;
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(
        (ended["params"]["reason"].clone(), ended["params"]["sip_code"].clone()),
        (json!("timeout"), json!(408))
    );
    // The peer saw the INVITE and its retransmissions.
    let mut buf = [0u8; 4096];
    let mut invites = 0;
    while let Ok(Ok(len)) = tokio::time::timeout(Duration::from_millis(100), silent_peer.recv(&mut buf)).await {
        invites += usize::from(buf[..len].starts_with(b"INVITE "));
    }
    assert!(invites >= 3, "INVITE retransmitted per RFC 3261 timer A, saw {invites}");
}

#[tokio::test]
async fn malformed_sip_datagrams_do_not_disturb_a_call() {
    let agent = Daemon::spawn("agent", "[audio]\nsource = \"tone:1000\"").await;
    let customer = Daemon::spawn("customer", "").await;
    let mut ui = agent.client().await;
    let mut customer_ui = customer.client().await;
    let call = dial(&mut ui, &customer.uri("c")).await;
    let incoming = customer_ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    customer_ui.call("call.answer", json!({"call": incoming["params"]["call"]})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();

    let prober = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sip = ("127.0.0.1", agent.sip_port);
    let me = prober.local_addr().unwrap();
    let junk: Vec<Vec<u8>> = vec![
        vec![0xff; 700],
        b"INVITE sip:agent@127.0.0.1 SIP/2.0\r\nVia: broken\r\n".to_vec(),
        // Well-formed (Max-Forwards included: without it the front answers 400).
        format!("BYE sip:agent@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: <sip:x@h>;tag=1\r\nTo: <sip:agent@h>;tag=2\r\nCall-ID: not-a-call\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n").into_bytes(),
        format!("INVITE sip:agent@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK2\r\nFrom: <sip:x@h>;tag=1\r\nTo: <sip:agent@h>\r\nCall-ID: big\r\nCSeq: 1 INVITE\r\nContent-Length: 99999\r\n\r\nv=0\r\n").into_bytes(),
        b"\r\n\r\n".to_vec(),
    ];
    for datagram in &junk {
        prober.send_to(datagram, sip).await.unwrap();
    }
    // A stray BYE for no dialog is answered 481, not obeyed.
    let mut buf = [0u8; 4096];
    let mut answers = Vec::new();
    while let Ok(Ok(len)) = tokio::time::timeout(Duration::from_millis(300), prober.recv(&mut buf)).await {
        answers.push(String::from_utf8_lossy(&buf[..len]).lines().next().unwrap_or_default().to_string());
    }
    assert!(answers.iter().any(|a| a.starts_with("SIP/2.0 481")), "answers to junk: {answers:?}");

    // The call is untouched: still connected, and audio still reaches the customer.
    let list = ui.call("call.list", json!({})).await.unwrap();
    assert_eq!(list["calls"][0]["state"], "connected");
    let before = wait_media_counter(&mut customer_ui, "packets_received", 0).await;
    let after = wait_media_counter(&mut customer_ui, "packets_received", before + 10).await;
    assert!(after >= before + 10, "RTP kept flowing: {before} -> {after}");
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
}

#[tokio::test]
async fn one_client_over_the_cap_is_told_so_and_the_others_keep_working() {
    let daemon = Daemon::spawn("agent", "").await;
    let max = softphoned::control::server::MAX_CLIENTS;
    let mut clients = Vec::with_capacity(max);
    for _ in 0..max {
        let mut client = Client::connect(&daemon.socket).await.unwrap();
        // Answered: the connection holds a seat.
        client.call("daemon.status", json!({})).await.unwrap();
        clients.push(client);
    }
    let mut extra = Client::connect(&daemon.socket).await.unwrap();
    let refusal = extra.read_message().await.unwrap();
    assert_eq!(refusal["error"]["code"], -32002, "{refusal}");
    assert!(refusal["error"]["message"].as_str().unwrap().contains("too many control clients"), "{refusal}");
    assert!(clients[0].call("call.list", json!({})).await.is_ok(), "the seated clients are served");
    // A seat freed is a seat taken.
    drop(clients.pop());
    let mut again = None;
    for _ in 0..100 {
        let mut client = Client::connect(&daemon.socket).await.unwrap();
        if client.call("daemon.status", json!({})).await.is_ok() {
            again = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(again.is_some(), "a new client is served once one left");
}

/// The daemon's resident memory, in kB.
/// The daemon's own resident memory (heap, stacks: RssAnon), what clients
/// cost. Not VmRSS: that also counts the code pages serving them faults in,
/// which the daemon unmaps again only once signalling settles
/// (`daemon/memory.rs`), and which are the page cache's, not theirs.
fn resident_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// 500 subscribers while a call runs: under 10 MB for all of them, the
/// memory given back once they leave, and the call's RTP (captured) never
/// interrupted for more than 60 ms while they come and go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_subscribers_cost_little_give_it_back_and_never_stall_a_call() {
    if !require_tools(&["sipp", "sox", "tcpdump", "tshark"]) {
        return;
    }
    let (work, peer, peer_port, peer_media) = tone_peer();
    let daemon = Daemon::spawn("agent", "").await;
    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &format!("sip:peer@127.0.0.1:{peer_port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    wait_media_counter(&mut ui, "packets_received", 10).await;
    let capture = Capture::start(work.path(), peer_media);
    // Settled: the call's own buffers are all in place.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = resident_kb(daemon.pid());

    let mut subscribers = Vec::with_capacity(500);
    for _ in 0..500 {
        // Each hears the call's state first: it is really subscribed.
        let mut client = daemon.client().await;
        client.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
        subscribers.push(client);
    }
    // Two seconds of the call with all of them listening.
    let now = wait_media_counter(&mut ui, "packets_received", 1).await;
    wait_media_counter(&mut ui, "packets_received", now + 100).await;
    let with = resident_kb(daemon.pid());
    drop(subscribers);
    // Given back once they are gone (polled: leaving takes the daemon a moment).
    let mut after = with;
    for _ in 0..100 {
        after = resident_kb(daemon.pid());
        if with.saturating_sub(after) >= (with - before) * 2 / 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let packets = capture.stop(peer_media);
    let gap = largest_gap_ms(&packets);
    println!(
        "500 subscribers: resident {before} kB before, {with} kB with them ({} kB each), {after} kB after; \
         RTP {} packets, largest gap {gap:.1} ms",
        (with - before) / 500,
        packets.len()
    );
    assert!(with - before < 10_240, "500 subscribers cost {} kB", with - before);
    assert!(
        with.saturating_sub(after) >= (with - before) * 2 / 3,
        "memory kept after they left: {before} → {with} → {after} kB"
    );
    assert!(packets.len() > 120 && gap < 60.0, "RTP: {} packets, largest gap {gap:.1} ms", packets.len());
    assert!(ui.call("call.hangup", json!({"call": call})).await.is_ok(), "the call was still there");
    peer.expect_success().await;
}

/// `audio.volume` is what the customer hears: the agent's 440 Hz reaches
/// the peer's port (captured) at half amplitude with a 0.5 microphone gain
/// and not at all with 0; `audio.level` events say as much, in dBFS.
#[tokio::test]
async fn the_microphone_gain_is_what_the_peer_receives_and_the_meter_shows_it() {
    if !require_tools(&["sipp", "sox", "tcpdump", "tshark"]) {
        return;
    }
    let (work, peer, peer_port, peer_media) = tone_peer();
    let daemon = Daemon::spawn("agent", "[audio]\nsource = \"tone:440\"\n").await;
    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &format!("sip:peer@127.0.0.1:{peer_port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    let capture = Capture::start(work.path(), peer_media);
    let mut levels = Vec::new();
    for gain in [1.0, 0.5, 0.0] {
        let set = ui.call("audio.volume", json!({"input": gain})).await.unwrap();
        assert_eq!(set, json!({"input": gain, "output": 1.0}));
        // A second of audio at this gain; the meter's latest report then
        // (events queued from before the change are read past).
        let now = wait_media_counter(&mut ui, "packets_sent", 1).await;
        wait_media_counter(&mut ui, "packets_sent", now + 50).await;
        let (mut latest, until) = (None, std::time::Instant::now() + Duration::from_secs(1));
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            if let Ok(level) = ui.wait_event(left, |e| e["method"] == "audio.level").await {
                latest = Some(level);
            }
        }
        levels.push(latest.expect("audio.level events during the call")["params"]["input_dbfs"].as_f64().unwrap());
    }
    let refused = ui.call("audio.volume", json!({"output": 3.0})).await.unwrap_err();
    assert!(refused.to_string().contains("0.0 to 2"), "{refused}");
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    peer.expect_success().await;
    let packets = capture.stop(peer_media);
    // Each gain held about two seconds; counting back from the hang-up: 0, then 0.5, then 1.
    let rms_of = |from_end: f64| softphoned::audio::analysis::rms(&ulaw_window(&packets, from_end, 0.6));
    let (full, half, none) = (rms_of(5.2), rms_of(3.2), rms_of(1.2));
    println!("peer received RMS {full:.0} / {half:.0} / {none:.0}; meter {levels:?} dBFS");
    assert!((half / full - 0.5).abs() < 0.08, "0.5 gain: {full:.0} → {half:.0}");
    assert!(none < 50.0, "0 gain: {none:.0}");
    assert!((levels[0] - levels[1] - 6.0).abs() < 1.0, "the meter: {levels:?}");
    assert_eq!(levels[2], -96.0, "the meter floor: {levels:?}");
}
