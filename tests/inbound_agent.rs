//! The daemon as an agent's phone, against sipp on 127.0.0.1: auto-answer
//! countdowns (from policy and from the caller's hint), calls that nobody
//! answers, an agent who is not ready, callers that are not allowed, and
//! RFC 4028 session timers in both roles. Each test asserts on what sipp
//! received (its message log) as well as on the events the UI saw.

mod common;

use std::time::{Duration, Instant};

use common::sipp::{free_port_pair, Sipp};
use common::{dial, require_tool, Daemon};
use serde_json::{json, Value};
use softphoned::control::client::{is_call_state, Client};

const WAIT: Duration = Duration::from_secs(15);

fn sipp_present() -> bool {
    require_tool("sipp")
}

/// Start a sipp UAC with `scenario` calling `agent` at the daemon.
fn call_daemon(work: &std::path::Path, daemon: &Daemon, scenario: &str, extra: &[&str]) -> Sipp {
    Sipp::call(work, scenario, &format!("127.0.0.1:{}", daemon.sip_port), "agent", extra)
}

/// Every `call.countdown` of `call` until it stops, and when each came.
async fn countdown(ui: &mut Client, call: &str) -> Vec<(Instant, Value)> {
    let mut seen = Vec::new();
    loop {
        let event = ui
            .wait_event(WAIT, |e| e["method"] == "call.countdown" && e["params"]["call"] == call)
            .await
            .expect("countdown events keep coming until it stops");
        let stopped = event["params"]["stopped"].is_string();
        seen.push((Instant::now(), event["params"].clone()));
        if stopped {
            return seen;
        }
    }
}

#[tokio::test]
async fn auto_answer_counts_down_and_answers_at_zero() {
    if !sipp_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "[agent]\nauto_answer_after_ms = 2500").await;
    let mut ui = daemon.client().await;
    let uac = call_daemon(work.path(), &daemon, "uac_call.xml", &["-d", "500"]);
    let incoming = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    let call = incoming["params"]["call"].as_str().unwrap().to_string();
    let events = countdown(&mut ui, &call).await;
    let remaining: Vec<u64> = events.iter().map(|(_, e)| e["remaining_ms"].as_u64().unwrap()).collect();
    assert_eq!(remaining, [2500, 1500, 500, 0], "start, once a second, stop");
    assert_eq!(events.last().unwrap().1["stopped"], "elapsed");
    assert_eq!(events[0].1["kind"], "auto_answer");
    let took = events.last().unwrap().0 - events[0].0;
    eprintln!("auto-answer countdown of 2500 ms took {} ms between first and last event", took.as_millis());
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    let log = uac.expect_success().await;
    assert!(log.contains("SIP/2.0 200 OK") && log.contains("m=audio"), "sipp was answered with SDP");
}

#[tokio::test]
async fn a_callers_answer_after_hint_is_honoured_and_the_agent_can_answer_sooner() {
    if !sipp_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "[agent]\nanswer_after_hint = true").await;
    let mut ui = daemon.client().await;
    let hint = "Call-Info: <sip:127.0.0.1>;answer-after=9";
    let uac = call_daemon(work.path(), &daemon, "uac_call.xml", &["-d", "500", "-key", "hdr", hint]);
    let incoming = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    assert_eq!(incoming["params"]["answer_after_ms"], 9000, "{incoming}");
    assert_eq!(incoming["params"]["display_name"], "sipp", "the caller's display name reaches the UI");
    let call = incoming["params"]["call"].as_str().unwrap().to_string();
    let start = ui.wait_event(WAIT, |e| e["method"] == "call.countdown").await.unwrap();
    assert_eq!(start["params"]["remaining_ms"], 9000);
    ui.call("call.answer", json!({ "call": call })).await.unwrap();
    let stop = ui.wait_event(WAIT, |e| e["method"] == "call.countdown" && e["params"]["stopped"].is_string()).await;
    assert_eq!(stop.unwrap()["params"]["stopped"], "answered");
    uac.expect_success().await;
}

#[tokio::test]
async fn the_caller_hanging_up_stops_the_countdown_at_once() {
    if !sipp_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "[agent]\nauto_answer_after_ms = 9000").await;
    let mut ui = daemon.client().await;
    let uac = call_daemon(work.path(), &daemon, "uac_cancel.xml", &["-d", "1200"]);
    let incoming = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    let call = incoming["params"]["call"].as_str().unwrap().to_string();
    let events = countdown(&mut ui, &call).await;
    assert_eq!(events.last().unwrap().1["stopped"], "caller_cancelled");
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(ended["params"]["reason"], "caller_cancelled");
    let log = uac.expect_success().await;
    assert!(log.contains("SIP/2.0 487 "), "sipp's INVITE ended with 487, never answered:\n{log}");
}

#[tokio::test]
async fn an_unanswered_call_goes_back_with_the_configured_code() {
    if !sipp_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "[agent]\nring_timeout_ms = 1000\nring_timeout_code = 486").await;
    let mut ui = daemon.client().await;
    let uac = call_daemon(work.path(), &daemon, "uac_call_rejected.xml", &[]);
    let incoming = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    let call = incoming["params"]["call"].as_str().unwrap().to_string();
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(
        (ended["params"]["reason"].clone(), ended["params"]["sip_code"].clone()),
        (json!("unanswered"), json!(486))
    );
    let log = uac.expect_success().await;
    assert!(log.contains("SIP/2.0 486 "), "sipp got the configured 486:\n{log}");
}

#[tokio::test]
async fn a_not_ready_agent_is_never_rung() {
    if !sipp_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "[agent]\nnot_ready_code = 480").await;
    let mut ui = daemon.client().await;
    ui.call("agent.set_state", json!({"state": "not_ready"})).await.unwrap();
    let changed = ui.wait_event(WAIT, |e| e["method"] == "agent.state").await.unwrap();
    assert_eq!(changed["params"]["state"], "not_ready");
    let uac = call_daemon(work.path(), &daemon, "uac_call_rejected.xml", &[]);
    let log = uac.expect_success().await;
    assert!(log.contains("SIP/2.0 480 "), "sipp got 480:\n{log}");
    assert!(!log.contains("180 Ringing"), "the call never rang");
    let status = ui.call("daemon.status", json!({})).await.unwrap();
    assert_eq!(status["agent_state"], "not_ready");
    let calls = ui.call("call.list", json!({})).await.unwrap();
    assert_eq!(calls["calls"], json!([]), "no call was created for it");

    ui.call("agent.set_state", json!({"state": "ready"})).await.unwrap();
    let uac = call_daemon(work.path(), &daemon, "uac_call_rejected.xml", &[]);
    let incoming = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    ui.call("call.reject", json!({"call": incoming["params"]["call"]})).await.unwrap();
    uac.expect_success().await;
}

#[tokio::test]
async fn a_caller_outside_the_allow_list_gets_403() {
    if !sipp_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // Only a port nobody uses is allowed: sipp's own is not.
    let daemon = Daemon::spawn("agent", "allow_from = [\"127.0.0.1:9\"]").await;
    let mut ui = daemon.client().await;
    let uac = call_daemon(work.path(), &daemon, "uac_call_rejected.xml", &[]);
    let log = uac.expect_success().await;
    assert!(log.contains("SIP/2.0 403 "), "sipp got 403:\n{log}");
    let calls = ui.call("call.list", json!({})).await.unwrap();
    assert_eq!(calls["calls"], json!([]), "no call was created for it");
    assert!(daemon.log().contains("inbound call refused"), "the refusal is logged");
}

#[tokio::test]
async fn we_refresh_a_session_the_peer_requires_and_end_it_when_a_refresh_fails() {
    if !sipp_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "").await;
    let port = free_port_pair();
    let uas = Sipp::start(work.path(), "uas_session_timer.xml", port, free_port_pair(), &[]);
    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &format!("sip:timer@127.0.0.1:{port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(
        (ended["params"]["reason"].clone(), ended["params"]["sip_code"].clone()),
        (json!("session_refresh_failed"), json!(481))
    );
    let log = uas.expect_success().await;
    assert!(log.contains("Session-Expires: 1800"), "our INVITE asked for a session timer:\n{log}");
    let refreshes = log.matches("INVITE sip:").count() - 1;
    assert_eq!(refreshes, 2, "sipp saw two refresh re-INVITEs:\n{log}");
}

#[tokio::test]
async fn a_caller_that_stops_refreshing_loses_the_session() {
    if !sipp_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "[agent]\nauto_answer_after_ms = 0").await;
    let mut ui = daemon.client().await;
    let timer = "Session-Expires: 3;refresher=uac";
    let uac = call_daemon(work.path(), &daemon, "uac_call_wait_bye.xml", &["-key", "hdr", timer]);
    let incoming = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    let call = incoming["params"]["call"].as_str().unwrap().to_string();
    let connected_at = {
        ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
        Instant::now()
    };
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(ended["params"]["reason"], "session_expired");
    // RFC 4028 §10: a third of the 3 s interval before it runs out.
    let after = connected_at.elapsed();
    assert!(after >= Duration::from_millis(1900), "gave up after {after:?}, before the session could expire");
    let log = uac.expect_success().await;
    assert!(log.contains("Session-Expires: 3;refresher=uac") && log.contains("Require: timer"), "{log}");
}
