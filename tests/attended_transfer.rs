//! Leave & transfer with Replaces, with real peers on 127.0.0.1: a
//! linphone-daemon customer (which, unlike baresip, carries Replaces from a
//! Refer-To into its INVITE) is handed to the colleague we consulted: sipp,
//! which leaves the consult to us to end, or another linphone, which ends
//! it itself. What the colleague logged proves the Replaces header named
//! our consult dialog; what went over the wire to each of them proves they
//! hear each other, and not us.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::capture::{ulaw_window, Capture, RtpSeen};
use common::linphone::{self, state, Linphone, SipMessage};
use common::sipp::{free_port_pair, write_tone_file, Sipp};
use common::{dial, require_tool, wait_call_counter, Daemon};
use serde_json::json;
use softphoned::audio::analysis::tone_amplitude;
use softphoned::control::client::is_call_state;

const WAIT: Duration = Duration::from_secs(10);
const AGENT_HZ: f64 = 440.0;
const CUSTOMER_HZ: f64 = 700.0;
/// What tests/sipp/uas_tone.xml streams.
const SIPP_HZ: f64 = 1000.0;
/// The tone of a linphone colleague.
const COLLEAGUE_HZ: f64 = 1100.0;
/// μ-law on the wire, so a capture decodes to what the peer heard.
const PCMU_ONLY: &str = "[media]\ncodecs = [\"pcmu\"]";
/// A tone this loud (of half scale, ~16000) is heard; below `ABSENT` it is not.
const PRESENT: f64 = 3000.0;
const ABSENT: f64 = 600.0;
/// Packets of a second of consult before the transfer.
const CONSULT_PACKETS: u64 = 50;
/// How long the customer and the colleague talk before the customer hangs up.
const TALK_SECS: u64 = 5;

fn peers_present() -> bool {
    linphone::installed() && ["sipp", "sox", "tcpdump", "tshark"].into_iter().all(require_tool)
}

/// The messages of a sipp `-trace_msg` log, in order.
fn sipp_messages(log: &str) -> Vec<SipMessage> {
    let log = log.replace("\r\n", "\n");
    let blocks = log.split("----------------------------------------------- ").skip(1);
    let messages = blocks.filter_map(|block| {
        let (how, text) = block.split_once('\n')?.1.split_once("\n\n")?;
        Some(SipMessage { received: how.contains("received"), text: text.trim().to_string() })
    });
    messages.collect()
}

/// `CALLID;to-tag=..;from-tag=..` as its Call-ID and parameters, whatever their order.
fn replaces_parts(value: &str) -> (String, BTreeMap<String, String>) {
    let mut parts = value.split(';').map(str::trim);
    let call_id = parts.next().unwrap().to_string();
    let params = parts.filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()));
    (call_id, params.collect())
}

/// In the second before the last second of `packets` (the end of a call):
/// `present` is heard there and `absent` is not.
fn assert_hears(who: &str, packets: &[RtpSeen], present: f64, absent: f64) {
    let audio = ulaw_window(packets, 2.0, 1.0);
    let heard = [present, absent].map(|hz| tone_amplitude(&audio, 8000, hz));
    assert!(heard[0] > PRESENT && heard[1] < ABSENT, "{who} hears {present} Hz, not {absent} Hz: {heard:?}");
}

/// The messages a colleague saw: our consult INVITE first, then the
/// customer's, whose Replaces must name our consult dialog exactly. Returns
/// the consult's Call-ID and the customer's INVITE.
fn assert_replaces_names_the_consult(messages: &[SipMessage]) -> (String, SipMessage) {
    let all = || messages.iter().map(|m| m.text.as_str()).collect::<Vec<_>>().join("\n----\n");
    let invites: Vec<&SipMessage> = messages.iter().filter(|m| m.received && m.starts("INVITE ")).collect();
    let consult_invite = invites.first().unwrap_or_else(|| panic!("we consulted the colleague:\n{}", all()));
    let consult_call_id = consult_invite.call_id();
    let answer = messages
        .iter()
        .find(|m| !m.received && m.starts("SIP/2.0 200") && m.call_id() == consult_call_id)
        .unwrap_or_else(|| panic!("the colleague answered our consult:\n{}", all()));
    let customer_invite = invites
        .iter()
        .find(|m| m.call_id() != consult_call_id)
        .unwrap_or_else(|| panic!("the customer called the colleague:\n{}", all()));
    let replaces = customer_invite.header("Replaces").unwrap_or_else(|| panic!("no Replaces:\n{}", all()));
    let expected_params =
        BTreeMap::from([("to-tag".into(), answer.tag("To")), ("from-tag".into(), consult_invite.tag("From"))]);
    assert_eq!(replaces_parts(replaces), (consult_call_id.to_string(), expected_params), "{}", all());
    (consult_call_id.to_string(), (*customer_invite).clone())
}

/// The agent calls the customer (who then sends its tone), consults the
/// colleague for a second and leaves them together with Replaces; both our
/// calls end `transferred`. A linphone colleague sends its tone in the
/// consult (with nothing to play it sends no RTP at all). Returns the
/// customer's id of our call, and a linphone colleague's of the consult.
async fn leave_and_transfer(
    daemon: &Daemon,
    customer: &mut Linphone,
    colleague_uri: &str,
    linphone_colleague: Option<&mut Linphone>,
) -> (u32, Option<u32>) {
    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &customer.sip_uri()).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    let first = customer.wait_call_state(state::STREAMS_RUNNING, WAIT).await.id;
    customer.play_tone(first);
    let result = ui.call("call.transfer.consult", json!({"call": call, "to": colleague_uri})).await.unwrap();
    let consult = result["consult"].as_str().unwrap().to_string();
    ui.wait_event(WAIT, |e| is_call_state(e, &consult, "connected")).await.unwrap();
    let mut consulted = None;
    if let Some(colleague) = linphone_colleague {
        let id = colleague.wait_call_state(state::STREAMS_RUNNING, WAIT).await.id;
        colleague.play_tone(id);
        consulted = Some(id);
    }
    let now = wait_call_counter(&mut ui, &consult, "packets_received", 1).await;
    wait_call_counter(&mut ui, &consult, "packets_received", now + CONSULT_PACKETS).await;

    ui.call("call.transfer.complete", json!({"call": call, "consult": consult})).await.unwrap();
    let transferring = ui.wait_event(WAIT, |e| is_call_state(e, &call, "transferring")).await.unwrap();
    assert_eq!(transferring["params"]["transfer"]["replaces"], true, "{transferring}");
    let mut reasons = BTreeMap::new();
    while reasons.len() < 2 {
        let ended = ui
            .wait_event(WAIT, |e| is_call_state(e, &call, "ended") || is_call_state(e, &consult, "ended"))
            .await
            .unwrap();
        reasons.insert(ended["params"]["call"].as_str().unwrap().to_string(), ended["params"]["reason"].clone());
    }
    assert_eq!(reasons, BTreeMap::from([(call, json!("transferred")), (consult, json!("transferred"))]));
    // The customer's own UA took the REFER.
    customer.wait_state_of(first, state::REFERED, WAIT).await;
    (first, consulted)
}

/// Captures of what is sent to each of `port_ranges`, from now on.
fn captures(work: &std::path::Path, port_ranges: [std::ops::RangeInclusive<u16>; 2]) -> [Capture; 2] {
    [0, 1].map(|i| {
        let dir = work.join(format!("capture-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        Capture::start_port_range(&dir, port_ranges[i].clone())
    })
}

/// sipp as the colleague does not act on Replaces: we end the consult.
#[tokio::test]
async fn leave_and_transfer_with_replaces_hands_linphone_to_the_colleague() {
    if !peers_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut customer = Linphone::start(&work.path().join("customer"), "customer", CUSTOMER_HZ);
    write_tone_file(work.path());
    let (colleague_port, colleague_media) = (free_port_pair(), free_port_pair());
    // Two calls: our consult, then the customer's.
    let colleague = Sipp::start(work.path(), "uas_tone.xml", colleague_port, colleague_media, &["-m", "2"]);
    let mut daemon = Daemon::spawn("agent", &format!("[audio]\nsource = \"tone:{AGENT_HZ}\"\n{PCMU_ONLY}")).await;
    // The customer's port in its call with the colleague is known only from
    // the INVITE: capture all its ports from the start.
    let [to_customer, to_colleague] =
        captures(work.path(), [customer.rtp_ports.clone(), colleague_media..=colleague_media]);

    let colleague_uri = format!("sip:colleague@127.0.0.1:{colleague_port}");
    let (first, _) = leave_and_transfer(&daemon, &mut customer, &colleague_uri, None).await;
    // The customer now talks to the colleague; it hangs up after a while.
    let second = customer.wait_event(|e| e.id != first && e.state == state::STREAMS_RUNNING, WAIT).await.id;
    customer.play_tone(second);
    customer.wait_call_duration(second, TALK_SECS, WAIT).await;
    customer.terminate(second);
    let log = colleague.expect_success().await;

    let messages = sipp_messages(&log);
    let (consult_call_id, customer_invite) = assert_replaces_names_the_consult(&messages);
    assert!(
        messages.iter().any(|m| m.received && m.starts("BYE ") && m.call_id() == consult_call_id),
        "we ended the consult:\n{log}"
    );
    let customer_port = customer_invite.audio_port();
    assert!(customer.rtp_ports.contains(&customer_port), "{customer_port} is the customer's");

    // They hear each other, and no longer us.
    assert_hears("the customer", &to_customer.stop(customer_port), SIPP_HZ, AGENT_HZ);
    assert_hears("the colleague", &to_colleague.stop(colleague_media), CUSTOMER_HZ, AGENT_HZ);
    assert!(daemon.terminate().success());
}

/// A colleague that honours Replaces (linphone) ends our consult with its
/// own BYE when the customer's INVITE replaces it, before it even answers,
/// so before the customer's NOTIFY 200 reaches us: the consult still ends
/// `transferred`, and we send no BYE of our own for it.
#[tokio::test]
async fn leave_and_transfer_to_a_linphone_colleague_that_ends_the_consult_itself() {
    if !peers_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut customer = Linphone::start(&work.path().join("customer"), "customer", CUSTOMER_HZ);
    let mut colleague = Linphone::start(&work.path().join("colleague"), "colleague", COLLEAGUE_HZ);
    let mut daemon = Daemon::spawn("agent", &format!("[audio]\nsource = \"tone:{AGENT_HZ}\"\n{PCMU_ONLY}")).await;
    let [to_customer, to_colleague] = captures(work.path(), [customer.rtp_ports.clone(), colleague.rtp_ports.clone()]);

    let colleague_uri = colleague.sip_uri();
    let (first, consulted) = leave_and_transfer(&daemon, &mut customer, &colleague_uri, Some(&mut colleague)).await;
    let consulted = consulted.unwrap();
    colleague.wait_state_of(consulted, state::END, WAIT).await;
    let answered = colleague.wait_event(|e| e.id != consulted && e.state == state::STREAMS_RUNNING, WAIT).await.id;
    colleague.play_tone(answered);
    let second = customer.wait_event(|e| e.id != first && e.state == state::STREAMS_RUNNING, WAIT).await.id;
    customer.play_tone(second);
    customer.wait_call_duration(second, TALK_SECS, WAIT).await;
    customer.terminate(second);
    colleague.wait_state_of(answered, state::END, WAIT).await;

    let messages = colleague.sip_messages();
    let (consult_call_id, customer_invite) = assert_replaces_names_the_consult(&messages);
    let consult_byes = |received: bool| {
        let byes = messages.iter().filter(|m| m.received == received && m.starts("BYE "));
        byes.filter(|m| m.call_id() == consult_call_id).count()
    };
    assert_eq!(consult_byes(false), 1, "the colleague ended the consult: {messages:#?}");
    assert_eq!(consult_byes(true), 0, "we did not: {messages:#?}");
    let colleague_answer = messages
        .iter()
        .find(|m| !m.received && m.starts("SIP/2.0 200") && m.call_id() == customer_invite.call_id())
        .expect("the colleague answered the customer");

    assert_hears("the customer", &to_customer.stop(customer_invite.audio_port()), COLLEAGUE_HZ, AGENT_HZ);
    assert_hears("the colleague", &to_colleague.stop(colleague_answer.audio_port()), CUSTOMER_HZ, AGENT_HZ);
    assert!(daemon.terminate().success());
}
