//! Several calls at once with real peers on 127.0.0.1: answering a second
//! call (from baresip) puts the first (a sipp peer) on hold, which that peer
//! sees; the agent swaps back with hold and resume; and `calls.max` refuses
//! one more call both ways.

mod common;

use std::time::Duration;

use common::baresip::{self, event, Baresip, BaresipOptions};
use common::sipp::{free_port_pair, Sipp};
use common::{dial, require_tool, Daemon};
use serde_json::json;
use softphoned::control::client::{is_call_state, ClientError};

const WAIT: Duration = Duration::from_secs(10);

fn caller(work: &std::path::Path, daemon: &Daemon, scenario: &str) -> Sipp {
    Sipp::call(work, scenario, &format!("127.0.0.1:{}", daemon.sip_port), "agent", &[])
}

#[tokio::test]
async fn answering_a_second_call_holds_the_first_and_the_agent_swaps_back() {
    if !require_tool("sipp") || !baresip::installed() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let first_port = free_port_pair();
    let first_peer = Sipp::start(work.path(), "uas_hold.xml", first_port, free_port_pair(), &[]);
    let daemon = Daemon::spawn("agent", "").await;
    let mut ui = daemon.client().await;
    ui.call("events.subscribe", json!({})).await.unwrap();
    let first = dial(&mut ui, &format!("sip:first@127.0.0.1:{first_port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &first, "connected")).await.unwrap();

    let mut second_peer = Baresip::start(&work.path().join("second"), BaresipOptions::default());
    second_peer.dial(&daemon.uri("agent"));
    let ringing =
        ui.wait_event(WAIT, |e| e["method"] == "call.state" && e["params"]["state"] == "incoming").await.unwrap();
    let second = ringing["params"]["call"].as_str().unwrap().to_string();
    ui.call("call.answer", json!({"call": second})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &second, "connected")).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &first, "held")).await.unwrap();

    // Swap: hold the second, resume the first.
    ui.call("call.hold", json!({"call": second})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &second, "held")).await.unwrap();
    ui.call("call.resume", json!({"call": first})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &first, "connected")).await.unwrap();
    for call in [&first, &second] {
        ui.call("call.hangup", json!({"call": call})).await.unwrap();
    }
    // The first peer saw our hold (sendonly) and the resume (sendrecv); the
    // second our hold.
    let log = first_peer.expect_success().await;
    assert_eq!(log.matches("INVITE sip:").count(), 3, "call, hold, resume:\n{log}");
    assert_eq!(second_peer.last_received_sdp_direction().as_deref(), Some("sendonly"));
    second_peer.wait_event_type(event::CLOSED, WAIT).await;
}

#[tokio::test]
async fn calls_max_refuses_one_more_call_either_way() {
    if !require_tool("sipp") || !require_tool("sox") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    common::sipp::write_tone_file(work.path());
    let peer_port = free_port_pair();
    let peer = Sipp::start(work.path(), "uas_tone.xml", peer_port, free_port_pair(), &[]);
    let daemon = Daemon::spawn("agent", "[calls]\nmax = 1").await;
    let mut ui = daemon.client().await;
    ui.call("events.subscribe", json!({})).await.unwrap();
    let call = dial(&mut ui, &format!("sip:peer@127.0.0.1:{peer_port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();

    let refused = ui.call("call.dial", json!({"to": "sip:other@127.0.0.1:5999"})).await.unwrap_err();
    let ClientError::Rpc(refused) = refused else { panic!("{refused:?}") };
    assert_eq!(refused.code, -32002, "{refused:?}");
    assert!(refused.message.contains("calls.max"), "{refused:?}");
    let log = caller(work.path(), &daemon, "uac_call_rejected.xml").expect_success().await;
    assert!(log.contains("SIP/2.0 486"), "{log}");
    let listed = ui.call("call.list", json!({})).await.unwrap();
    assert_eq!(listed["calls"].as_array().map(Vec::len), Some(1), "{listed}");
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    peer.expect_success().await;
}
