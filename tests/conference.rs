//! Consult and the local conference with real peers on 127.0.0.1: two
//! baresips (the customer and the colleague), each sending its own tone,
//! and the daemon's own ears (a WAV sink). What the colleague heard is its
//! own recording; what the customer was sent is captured off the wire,
//! because baresip 1.0.0 stops recording what it hears at the first
//! re-INVITE (our hold). Those, not our events, prove who heard whom.

mod common;

use std::time::Duration;

use common::baresip::{self, event, Baresip, BaresipOptions, Recording};
use common::capture::{ulaw_window, Capture};
use common::sipp::{free_port_pair, write_tone_file, Sipp};
use common::{dial, require_tool, wait_call_counter, wav_samples, Daemon};
use serde_json::{json, Value};
use softphoned::audio::analysis::tone_amplitude;
use softphoned::control::client::{is_call_state, Client};

const WAIT: Duration = Duration::from_secs(10);
/// μ-law on the wire, so a capture decodes to what the peer heard.
const PCMU_ONLY: &str = "[media]\ncodecs = [\"pcmu\"]";
const AGENT_HZ: f64 = 440.0;
const CUSTOMER_HZ: f64 = 700.0;
const COLLEAGUE_HZ: f64 = 1100.0;
/// A tone this loud (of half scale, ~16000) is heard; below `ABSENT` it is not.
const PRESENT: f64 = 3000.0;
const ABSENT: f64 = 600.0;
/// Packets of a second of consult before the next step.
const CONSULT_PACKETS: u64 = 50;

fn peers_present() -> bool {
    baresip::installed() && require_tool("sipp")
}

fn party(work: &std::path::Path, name: &str, hz: f64) -> Baresip {
    let options = BaresipOptions { user: name.into(), tone_hz: Some(hz), ..BaresipOptions::default() };
    Baresip::start(&work.join(name), options)
}

fn is_call(event: &Value, call: &str) -> bool {
    event["method"] == "call.state" && event["params"]["call"] == call
}

/// Which of the three tones `samples` holds, as (agent, customer, colleague).
fn tones(samples: &[i16], rate: u32) -> [f64; 3] {
    [AGENT_HZ, CUSTOMER_HZ, COLLEAGUE_HZ].map(|hz| tone_amplitude(samples, rate, hz))
}

fn assert_hears(who: &str, heard: [f64; 3], expected: [bool; 3]) {
    for ((amplitude, expected), name) in heard.into_iter().zip(expected).zip(["agent", "customer", "colleague"]) {
        if expected {
            assert!(amplitude > PRESENT, "{who} should hear the {name}: {heard:?}");
        } else {
            assert!(amplitude < ABSENT, "{who} should not hear the {name}: {heard:?}");
        }
    }
}

/// The agent calls the customer, then consults the colleague. What the
/// customer is sent is captured from the start.
async fn consult(
    daemon: &Daemon,
    customer: &mut Baresip,
    colleague_uri: &str,
) -> (Client, String, String, Capture, u16, Value) {
    let mut ui = daemon.client().await;
    ui.call("events.subscribe", json!({})).await.unwrap();
    let call = dial(&mut ui, &customer.sip_uri()).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    customer.wait_event_type(event::ESTABLISHED, WAIT).await;
    let port = customer.media_port().expect("baresip's SDP names its RTP port");
    let capture_dir = customer.dir().join("capture");
    std::fs::create_dir_all(&capture_dir).unwrap();
    let capture = Capture::start(&capture_dir, port);
    let result = ui.call("call.transfer.consult", json!({"call": call, "to": colleague_uri})).await.unwrap();
    let consult = result["consult"].as_str().unwrap().to_string();
    // The hold's re-INVITE and the colleague's answer race: take both, in either order.
    let (mut held, mut connected) = (false, None);
    while !held || connected.is_none() {
        let event = ui
            .wait_event(WAIT, |e| {
                (is_call_state(e, &call, "held") && e["params"]["consult"] == consult.as_str())
                    || is_call_state(e, &consult, "connected")
            })
            .await
            .unwrap();
        if is_call_state(&event, &consult, "connected") {
            connected = Some(event);
        } else {
            held = true;
        }
    }
    (ui, call, consult, capture, port, connected.unwrap())
}

#[tokio::test]
async fn merged_three_way_call_each_party_hears_the_other_two_and_not_itself() {
    if !peers_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut customer = party(work.path(), "customer", CUSTOMER_HZ);
    let mut colleague = party(work.path(), "colleague", COLLEAGUE_HZ);
    let config =
        format!("[audio]\nsource = \"tone:{AGENT_HZ}\"\nsink = \"wav:heard.wav\"\n[media]\ncodecs = [\"pcmu\"]");
    let mut daemon = Daemon::spawn("agent", &config).await;
    let (mut ui, call, consult, capture, customer_port, linked) =
        consult(&daemon, &mut customer, &colleague.sip_uri()).await;
    assert_eq!(linked["params"]["consult_for"], call.as_str(), "{linked}");
    colleague.wait_event_type(event::ESTABLISHED, WAIT).await;
    let now = wait_call_counter(&mut ui, &consult, "packets_received", 1).await;
    wait_call_counter(&mut ui, &consult, "packets_received", now + CONSULT_PACKETS).await;

    let merged = ui.call("call.merge", json!({"calls": [call, consult]})).await.unwrap();
    let mut members = vec![call.clone(), consult.clone()];
    members.sort();
    assert_eq!(merged["conference"], json!(members));
    // The customer is taken off hold into the conference.
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected") && e["params"]["conference"] == true).await.unwrap();
    customer.wait_received_sdp_direction("sendrecv", WAIT).await;
    // Three seconds of conference on both legs, then everyone leaves.
    for leg in [&call, &consult] {
        let now = wait_call_counter(&mut ui, leg, "packets_received", 1).await;
        wait_call_counter(&mut ui, leg, "packets_received", now + 150).await;
    }
    ui.call("call.hangup", json!({"call": consult})).await.unwrap();
    // The colleague leaving leaves the customer connected, out of the conference.
    let alone = ui.wait_event(WAIT, |e| is_call(e, &call) && e["params"]["conference"].is_null()).await.unwrap();
    assert_eq!(alone["params"]["state"], "connected", "{alone}");
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    for peer in [&mut customer, &mut colleague] {
        peer.wait_event_type(event::CLOSED, WAIT).await;
    }
    daemon.terminate();

    // The tails of the peers' recordings are the conference (before the
    // hangups, and well after the merge).
    let to_customer = ulaw_window(&capture.stop(customer_port), 2.5, 1.0);
    assert_hears("the customer", tones(&to_customer, 8000), [true, false, true]);
    let heard_by_colleague = Recording::read(&colleague.received_audio());
    let window = &heard_by_colleague.tail(2.5)[..heard_by_colleague.rate as usize];
    assert_hears("the colleague", tones(window, heard_by_colleague.rate), [true, true, false]);
    let agent = wav_samples(&daemon.path("heard.wav"));
    let rate = softphoned::media::PCM_RATE;
    // The agent's ears: one second, half a second before the colleague left.
    let end = agent.len() - (rate as usize * 3) / 2;
    assert_hears("the agent", tones(&agent[end - rate as usize..end], rate), [false, true, true]);
}

#[tokio::test]
async fn cancelling_a_consult_gives_the_customer_the_agent_again() {
    if !peers_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut customer = party(work.path(), "customer", CUSTOMER_HZ);
    let colleague_port = free_port_pair();
    write_tone_file(work.path());
    let colleague = Sipp::start(work.path(), "uas_tone.xml", colleague_port, free_port_pair(), &[]);
    let daemon = Daemon::spawn("agent", &format!("[audio]\nsource = \"tone:{AGENT_HZ}\"\n{PCMU_ONLY}")).await;
    let colleague_uri = format!("sip:colleague@127.0.0.1:{colleague_port}");
    let (mut ui, call, consult, capture, customer_port, _) = consult(&daemon, &mut customer, &colleague_uri).await;
    customer.wait_received_sdp_direction("sendonly", WAIT).await;
    let now = wait_call_counter(&mut ui, &consult, "packets_received", 1).await;
    wait_call_counter(&mut ui, &consult, "packets_received", now + CONSULT_PACKETS).await;

    ui.call("call.transfer.cancel", json!({"call": call, "consult": consult})).await.unwrap();
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &consult, "ended")).await.unwrap();
    assert_eq!(ended["params"]["reason"], "local_hangup");
    let back = ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    assert!(back["params"]["consult"].is_null(), "{back}");
    customer.wait_received_sdp_direction("sendrecv", WAIT).await;
    let now = wait_call_counter(&mut ui, &call, "packets_sent", 1).await;
    wait_call_counter(&mut ui, &call, "packets_sent", now + 100).await;
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    customer.wait_event_type(event::CLOSED, WAIT).await;
    colleague.expect_success().await;
    let packets = capture.stop(customer_port);
    // On hold the customer was sent silence (no hold music configured), not
    // the agent; then, resumed, the agent (and never the colleague's 1 kHz).
    let on_hold = ulaw_window(&packets, 2.8, 0.5);
    assert_hears("the customer, on hold", tones(&on_hold, 8000), [false, false, false]);
    let after_cancel = ulaw_window(&packets, 1.5, 1.0);
    assert_hears("the customer, after the cancel", tones(&after_cancel, 8000), [true, false, false]);
    assert!(tone_amplitude(&after_cancel, 8000, 1000.0) < ABSENT);
}

/// baresip 1.0.0 cannot carry Replaces into its INVITE (it garbles the
/// Request-URI instead) and does not say it supports it: Leave & transfer
/// then ends our consult first and REFERs baresip plainly to the colleague.
#[tokio::test]
async fn leave_and_transfer_without_replaces_ends_the_consult_then_refers_and_they_hear_each_other() {
    if !peers_present() || !require_tool("sox") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut customer = party(work.path(), "customer", CUSTOMER_HZ);
    write_tone_file(work.path());
    let (colleague_port, colleague_media) = (free_port_pair(), free_port_pair());
    // Two calls: our consult, then the customer's.
    let colleague = Sipp::start(work.path(), "uas_tone.xml", colleague_port, colleague_media, &["-m", "2"]);
    let daemon = Daemon::spawn("agent", &format!("[audio]\nsource = \"tone:{AGENT_HZ}\"\n{PCMU_ONLY}")).await;
    let colleague_uri = format!("sip:colleague@127.0.0.1:{colleague_port}");
    let (mut ui, call, consult, _, _, _) = consult(&daemon, &mut customer, &colleague_uri).await;
    let colleague_capture_dir = work.path().join("colleague-capture");
    std::fs::create_dir_all(&colleague_capture_dir).unwrap();
    let to_colleague = Capture::start(&colleague_capture_dir, colleague_media);

    ui.call("call.transfer.complete", json!({"call": call, "consult": consult})).await.unwrap();
    let consult_ended = ui.wait_event(WAIT, |e| is_call_state(e, &consult, "ended")).await.unwrap();
    assert_eq!(consult_ended["params"]["reason"], "transferred", "{consult_ended}");
    let transferring = ui.wait_event(WAIT, |e| is_call_state(e, &call, "transferring")).await.unwrap();
    assert_eq!(transferring["params"]["transfer"]["replaces"], false, "{transferring}");
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(ended["params"]["reason"], "transferred", "{ended}");
    customer
        .wait_event(
            |e| e["type"] == event::ESTABLISHED && e["param"].as_str().unwrap_or("").contains("colleague@"),
            WAIT,
        )
        .await;
    customer.wait_received_audio(Duration::from_secs(1), WAIT).await;
    customer.hangup();
    customer.wait_event_type(event::CLOSED, WAIT).await;
    let log = colleague.expect_success().await;
    let second_invite = log.split("INVITE sip:colleague@").nth(2).expect("the customer called the colleague");
    assert!(!second_invite.split("\n\n").next().unwrap().contains("Replaces:"), "{second_invite}");
    assert!(log.contains("BYE sip:"), "our consult was ended:\n{log}");
    assert!(customer.log().contains("Refer-To: <sip:colleague@127.0.0.1"), "{}", customer.log());

    // They hear each other: the colleague's 1 kHz in the customer's new
    // call, the customer's tone on the wire to the colleague.
    let heard = Recording::read(&customer.received_audio());
    assert!(tone_amplitude(heard.tail(1.0), heard.rate, 1000.0) > PRESENT, "the customer hears the colleague");
    assert!(tone_amplitude(heard.tail(1.0), heard.rate, AGENT_HZ) < ABSENT, "and not the agent");
    let to_colleague = ulaw_window(&to_colleague.stop(colleague_media), 0.8, 0.5);
    assert!(tone_amplitude(&to_colleague, 8000, CUSTOMER_HZ) > PRESENT, "the colleague hears the customer");
    let mut daemon = daemon;
    assert!(daemon.terminate().success());
}
