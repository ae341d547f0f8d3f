//! Transfers with real peers on 127.0.0.1: a real baresip as the customer
//! is REFERred by us to a sipp colleague; what baresip and sipp saw prove
//! the transfer, and a failed one leaves the customer with the agent. And
//! the other way: a sipp transferor REFERs us, and policy decides.

mod common;

use std::time::Duration;

use common::baresip::{self, event, Baresip, BaresipOptions};
use common::sipp::{free_port_pair, write_tone_file, Sipp};
use common::{dial, require_tool, wait_call_counter, wait_media_counter, Daemon};
use serde_json::{json, Value};
use softphoned::control::client::{is_call_state, Client};

const WAIT: Duration = Duration::from_secs(10);

fn peers_present() -> bool {
    baresip::installed() && ["sipp", "sox"].into_iter().all(require_tool)
}

/// We call the customer (baresip answers by itself) and talk.
async fn customer_call(daemon: &Daemon, customer: &mut Baresip) -> (Client, String) {
    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &customer.sip_uri()).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    customer.wait_event_type(event::ESTABLISHED, WAIT).await;
    (ui, call)
}

fn call_state(event: &Value, call: &str) -> bool {
    event["method"] == "call.state" && event["params"]["call"] == call
}

#[tokio::test]
async fn blind_transfer_connects_the_customer_to_the_colleague_and_our_call_ends_transferred() {
    if !peers_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    write_tone_file(work.path());
    let colleague_port = free_port_pair();
    let colleague = Sipp::start(work.path(), "uas_tone.xml", colleague_port, free_port_pair(), &[]);
    let mut customer = Baresip::start(&work.path().join("customer"), BaresipOptions::default());
    let daemon = Daemon::spawn("agent", "[audio]\nsource = \"tone:440\"").await;
    let (mut ui, call) = customer_call(&daemon, &mut customer).await;

    let target = format!("sip:colleague@127.0.0.1:{colleague_port}");
    ui.call("call.transfer.blind", json!({"call": call, "to": target})).await.unwrap();
    let transferring = ui.wait_event(WAIT, |e| is_call_state(e, &call, "transferring")).await.unwrap();
    assert_eq!(transferring["params"]["transfer"]["status"], "trying");
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(
        (ended["params"]["reason"].as_str(), ended["params"]["sip_code"].as_u64()),
        (Some("transferred"), Some(200))
    );

    // The customer's own UA now talks to the colleague.
    let to_colleague = customer
        .wait_event(
            |e| e["type"] == event::ESTABLISHED && e["param"].as_str().unwrap_or("").contains("colleague@"),
            WAIT,
        )
        .await;
    assert!(to_colleague["param"].as_str().unwrap().contains(&colleague_port.to_string()), "{to_colleague}");
    let log = customer.log();
    assert!(
        log.contains("REFER sip:") && log.contains("Refer-To: <sip:colleague@127.0.0.1"),
        "baresip saw our REFER:\n{log}"
    );
    assert!(log.contains("Referred-By: <sip:"), "{log}");
    customer.hangup();
    let sipp_log = colleague.expect_success().await;
    let invite = sipp_log.split("INVITE sip:colleague@").nth(1).expect("sipp got an INVITE");
    assert!(
        invite.contains(&format!("@127.0.0.1:{}", customer.sip_port)) || invite.contains(&customer.user),
        "the INVITE came from the customer's UA:\n{invite}"
    );
}

#[tokio::test]
async fn a_busy_colleague_fails_the_transfer_and_the_customer_stays_with_the_agent() {
    if !peers_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let colleague_port = free_port_pair();
    let colleague = Sipp::start(work.path(), "uas_busy.xml", colleague_port, free_port_pair(), &[]);
    let mut customer = Baresip::start(&work.path().join("customer"), BaresipOptions::default());
    let daemon = Daemon::spawn("agent", "[audio]\nsource = \"tone:440\"").await;
    let (mut ui, call) = customer_call(&daemon, &mut customer).await;

    let target = format!("sip:colleague@127.0.0.1:{colleague_port}");
    ui.call("call.transfer.blind", json!({"call": call, "to": target})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "transferring")).await.unwrap();
    let back =
        ui.wait_event(WAIT, |e| call_state(e, &call) && e["params"]["transfer"]["status"] == "failed").await.unwrap();
    assert_eq!(back["params"]["state"], "connected", "{back}");
    assert_eq!(back["params"]["transfer"]["sip_code"], 486, "{back}");
    colleague.expect_success().await;
    // Our call with the customer goes on: its audio keeps arriving.
    let before = wait_media_counter(&mut ui, "packets_received", 1).await;
    wait_media_counter(&mut ui, "packets_received", before + 25).await;
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(ended["params"]["reason"], "local_hangup");
}

/// A sipp transferor calls the agent (who answers) and REFERs the call to `refer_to`.
async fn refer_from_sipp(work: &std::path::Path, daemon: &Daemon, refer_to: &str) -> (Client, String, Sipp) {
    let mut ui = daemon.client().await;
    ui.call("events.subscribe", json!({})).await.unwrap();
    // -aa: sipp answers a NOTIFY that overtakes the 202 by itself.
    let keys = ["-aa", "-key", "hdr", "X-Softphoned-Test: refer", "-key", "refer_to", refer_to];
    let transferor = Sipp::call(work, "uac_refer.xml", &format!("127.0.0.1:{}", daemon.sip_port), "agent", &keys);
    let incoming =
        ui.wait_event(WAIT, |e| e["method"] == "call.state" && e["params"]["state"] == "incoming").await.unwrap();
    let call = incoming["params"]["call"].as_str().unwrap().to_string();
    ui.call("call.answer", json!({"call": call})).await.unwrap();
    (ui, call, transferor)
}

#[tokio::test]
async fn a_refer_to_an_allowed_host_is_followed_and_the_transferor_hears_how_it_went() {
    if !require_tool("sipp") || !require_tool("sox") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    write_tone_file(work.path());
    let target_port = free_port_pair();
    let target = Sipp::start(work.path(), "uas_tone.xml", target_port, free_port_pair(), &[]);
    let daemon = Daemon::spawn("agent", "[transfer]\nrefer_allowed_hosts = [\"127.0.0.1\"]").await;
    let refer_to = format!("sip:target@127.0.0.1:{target_port}");
    let (mut ui, call, transferor) = refer_from_sipp(work.path(), &daemon, &refer_to).await;

    // We call the target, linked to the call that REFERred us.
    let placed = ui
        .wait_event(WAIT, |e| e["method"] == "call.state" && e["params"]["referred_by"] == call.as_str())
        .await
        .unwrap();
    let placed = placed["params"]["call"].as_str().unwrap().to_string();
    ui.wait_event(WAIT, |e| is_call_state(e, &placed, "connected")).await.unwrap();
    // Told 200, the transferor hangs up its call with us.
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap_or_else(|e| {
        let sipp =
            |ext: &str| std::fs::read_to_string(work.path().join(format!("uac_refer.{ext}"))).unwrap_or_default();
        panic!(
            "{e}\n--- transferor errors:\n{}\n--- transferor messages:\n{}\n--- daemon:\n{}",
            sipp("err"),
            sipp("msg"),
            daemon.log()
        )
    });
    assert_eq!(ended["params"]["reason"], "remote_hangup");
    let log = transferor.expect_success().await;
    let notifies: Vec<&str> = log.split("NOTIFY sip:").skip(1).collect();
    assert!(notifies.first().is_some_and(|n| n.contains("SIP/2.0 100 Trying")), "{log}");
    let last = notifies.last().unwrap();
    assert!(last.contains("SIP/2.0 200 OK") && last.contains("terminated"), "{log}");
    assert!(notifies.iter().all(|n| n.contains("Event: refer") && n.contains("message/sipfrag")), "{log}");

    let media = wait_call_counter(&mut ui, &placed, "packets_received", 1).await;
    assert!(media >= 1);
    ui.call("call.hangup", json!({"call": placed})).await.unwrap();
    let target_log = target.expect_success().await;
    let invite = target_log.split("INVITE sip:target@").nth(1).expect("the target got our INVITE");
    assert!(invite.contains("Referred-By: <sip:sipp@127.0.0.1"), "{invite}");
}

#[tokio::test]
async fn a_refer_to_a_host_not_allowed_or_from_outside_a_dialog_is_refused() {
    if !require_tool("sipp") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "[transfer]\nrefer_allowed_hosts = [\"127.0.0.1\"]").await;
    let (mut ui, call, transferor) = refer_from_sipp(work.path(), &daemon, "sip:+19005550100@premium.invalid").await;
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(ended["params"]["reason"], "remote_hangup");
    let log = transferor.expect_success().await;
    assert!(log.contains("SIP/2.0 403") && !log.contains("NOTIFY"), "{log}");
    let calls = ui.call("call.list", json!({})).await.unwrap();
    assert_eq!(calls["calls"], json!([]), "nothing was dialled");

    let stranger = Sipp::call(
        work.path(),
        "uac_refer_out_of_dialog.xml",
        &format!("127.0.0.1:{}", daemon.sip_port),
        "agent",
        &["-key", "refer_to", "sip:target@127.0.0.1:5999"],
    );
    stranger.expect_success().await;
    assert_eq!(ui.call("call.list", json!({})).await.unwrap()["calls"], json!([]));
}

#[tokio::test]
async fn a_customer_phone_that_refuses_refer_keeps_the_call_and_the_agent_is_told() {
    if !require_tool("sipp") || !require_tool("sox") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    write_tone_file(work.path());
    let customer_port = free_port_pair();
    let customer = Sipp::start(work.path(), "uas_tone.xml", customer_port, free_port_pair(), &[]);
    let daemon = Daemon::spawn("agent", "").await;
    let mut ui = daemon.client().await;
    ui.call("events.subscribe", json!({})).await.unwrap();
    let call = dial(&mut ui, &format!("sip:customer@127.0.0.1:{customer_port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();

    ui.call("call.transfer.blind", json!({"call": call, "to": "sip:colleague@127.0.0.1:5999"})).await.unwrap();
    let told =
        ui.wait_event(WAIT, |e| call_state(e, &call) && e["params"]["transfer"]["status"] == "failed").await.unwrap();
    assert_eq!(
        (told["params"]["state"].as_str(), told["params"]["transfer"]["sip_code"].as_u64()),
        (Some("connected"), Some(501))
    );
    // The customer is still there: its tone keeps arriving.
    let now = wait_call_counter(&mut ui, &call, "packets_received", 1).await;
    wait_call_counter(&mut ui, &call, "packets_received", now + 25).await;
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    let log = customer.expect_success().await;
    assert!(log.contains("REFER sip:") && log.contains("SIP/2.0 501 Not Implemented"), "{log}");
}
