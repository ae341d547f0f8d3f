//! Call history with sipp peers on 127.0.0.1: every call the daemon carried
//! is in `history.list` once it ends, with its direction, parties, outcome,
//! SIP code, times and media figures, beside the callbacks.

mod common;

use std::time::Duration;

use common::sipp::{free_port_pair, write_tone_file, Sipp};
use common::{dial, require_tool, wait_call_counter, Daemon};
use serde_json::{json, Value};
use softphoned::control::client::is_call_state;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn every_ended_call_is_in_history_with_its_outcome() {
    if !require_tool("sipp") || !require_tool("sox") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    write_tone_file(work.path());
    let daemon = Daemon::spawn("agent", "").await;
    let mut ui = daemon.client().await;
    ui.call("events.subscribe", json!({})).await.unwrap();

    // Answered, talked, hung up by us.
    let talker_port = free_port_pair();
    let talker = Sipp::start(work.path(), "uas_tone.xml", talker_port, free_port_pair(), &[]);
    let talked = dial(&mut ui, &format!("sip:talker@127.0.0.1:{talker_port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &talked, "connected")).await.unwrap();
    // 60 packets of 20 ms: past the one second of talk asserted below, with margin.
    wait_call_counter(&mut ui, &talked, "packets_received", 60).await;
    // The agent flags it for escalation; the open record says so at once,
    // and another tab sees each change and the flags in its call list.
    let mut other_tab = daemon.client().await;
    other_tab.call("events.subscribe", json!({"topics": ["call"]})).await.unwrap();
    ui.call("call.flag", json!({"call": talked, "flag": "escalate"})).await.unwrap();
    ui.call("call.flag", json!({"call": talked, "flag": "callback_due"})).await.unwrap();
    ui.call("call.flag", json!({"call": talked, "flag": "callback_due", "on": false})).await.unwrap();
    let open = ui.call("history.list", json!({"kind": "call"})).await.unwrap();
    assert_eq!(open["entries"][0]["flags"], json!(["escalate"]), "{open}");
    for flags in [json!(["escalate"]), json!(["callback_due", "escalate"]), json!(["escalate"])] {
        let seen = other_tab.wait_event(WAIT, |e| e["method"] == "call.flags").await.unwrap();
        assert_eq!((&seen["params"]["call"], &seen["params"]["flags"]), (&json!(talked), &flags), "{seen}");
    }
    let listed = other_tab.call("call.list", json!({})).await.unwrap();
    assert_eq!(listed["calls"][0]["flags"], json!(["escalate"]), "{listed}");
    let bad = ui.call("call.flag", json!({"call": talked, "flag": "Escalate now!"})).await.unwrap_err();
    assert!(bad.to_string().contains("flag"), "{bad}");
    ui.call("call.hangup", json!({"call": talked})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &talked, "ended")).await.unwrap();
    talker.expect_success().await;

    // Busy.
    let busy_port = free_port_pair();
    let busy_peer = Sipp::start(work.path(), "uas_busy.xml", busy_port, free_port_pair(), &[]);
    let busy = dial(&mut ui, &format!("sip:busy@127.0.0.1:{busy_port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &busy, "ended")).await.unwrap();
    busy_peer.expect_success().await;

    // Inbound, rejected by the agent.
    let caller =
        Sipp::call(work.path(), "uac_call_rejected.xml", &format!("127.0.0.1:{}", daemon.sip_port), "agent", &[]);
    let ringing =
        ui.wait_event(WAIT, |e| e["method"] == "call.state" && e["params"]["state"] == "incoming").await.unwrap();
    let rejected = ringing["params"]["call"].as_str().unwrap().to_string();
    ui.call("call.reject", json!({"call": rejected, "reason": "decline"})).await.unwrap();
    caller.expect_success().await;

    let history = ui.call("history.list", json!({"kind": "call"})).await.unwrap();
    let entries = history["entries"].as_array().unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e["call"].as_str().unwrap()).collect();
    assert_eq!(ids, [rejected.as_str(), busy.as_str(), talked.as_str()], "newest first: {history}");
    let entry = |id: &str| -> &Value { entries.iter().find(|e| e["call"] == id).unwrap() };

    let talk = entry(&talked);
    assert_eq!((talk["kind"].as_str(), talk["direction"].as_str()), (Some("call"), Some("outbound")));
    assert_eq!(talk["reason"], "local_hangup");
    assert!(talk["remote"].as_str().unwrap().contains("talker@"), "{talk}");
    assert!(talk["talk_ms"].as_u64().unwrap() >= 1000, "{talk}");
    assert!(talk["quality"]["mos"].as_f64().unwrap() > 3.0, "{talk}");
    assert_eq!(talk["flags"], json!(["escalate"]), "the flag outlives the call: {talk}");
    let started: jiff::Timestamp = talk["created_at"].as_str().unwrap().parse().unwrap();
    let ended: jiff::Timestamp = talk["ended_at"].as_str().unwrap().parse().unwrap();
    assert!(ended > started);

    let busy = entry(&busy);
    assert_eq!((busy["reason"].as_str(), busy["sip_code"].as_u64()), (Some("busy"), Some(486)), "{busy}");
    assert!(busy["talk_ms"].is_null() && busy["answered_at"].is_null(), "{busy}");
    let rejected = entry(&rejected);
    assert_eq!((rejected["direction"].as_str(), rejected["reason"].as_str()), (Some("inbound"), Some("rejected")));
    assert_eq!(rejected["sip_code"], 603);

    // Both kinds together by default; only callbacks when asked.
    let callbacks = ui.call("history.list", json!({"kind": "callback"})).await.unwrap();
    assert_eq!(callbacks["entries"], json!([]));
    let all = ui.call("history.list", json!({"limit": 2})).await.unwrap();
    assert_eq!(all["entries"].as_array().unwrap().len(), 2);
}
