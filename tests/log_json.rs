//! `[log] format = "json"`: every line the daemon writes to stderr is one
//! JSON object, and a call's id is a field of its own (`"call": "..."`),
//! not words inside a message, so a log collector can search by it.

mod common;

use std::time::Duration;

use common::sipp::{free_port_pair, Sipp};
use common::{dial, require_tool, Daemon};
use serde_json::Value;
use softphoned::control::client::is_call_state;

#[tokio::test]
async fn json_lines_carry_the_call_id_as_a_field() {
    if !require_tool("sipp") {
        return;
    }
    let agent = Daemon::spawn("agent", "[log]\nformat = \"json\"\n").await;
    let mut ui = agent.client().await;
    let work = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let busy = Sipp::start(work.path(), "uas_busy.xml", port, free_port_pair(), &[]);
    let call = dial(&mut ui, &format!("sip:busy@127.0.0.1:{port}")).await;
    ui.wait_event(Duration::from_secs(10), |e| is_call_state(e, &call, "ended")).await.unwrap();
    busy.expect_success().await;

    let log = agent.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
        .collect();
    assert!(lines.iter().all(|l| l["timestamp"].is_string() && l["level"].is_string() && l["message"].is_string()));
    let ended = lines
        .iter()
        .find(|l| l["call"] == call.as_str() && l["message"] == "call state" && l["state"] == "Ended")
        .unwrap_or_else(|| panic!("no \"call state\" line with call {call:?} as a field:\n{log}"));
    // A number, not the words of a Rust debug print.
    assert_eq!(ended["sip_code"], 486, "{ended}");
}
