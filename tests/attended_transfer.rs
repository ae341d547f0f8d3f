//! Leave & transfer with Replaces, with real peers on 127.0.0.1: a
//! linphone-daemon customer (which, unlike baresip, carries Replaces from a
//! Refer-To into its INVITE) is handed to a sipp colleague we consulted.
//! What sipp saw proves the Replaces header named our consult dialog; what
//! went over the wire to each of them proves they hear each other, and not us.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::capture::{Capture, RtpSeen};
use common::linphone::{self, state, Linphone};
use common::sipp::{free_port_pair, write_tone_file, Sipp};
use common::{dial, require_tool, wait_call_counter, Daemon};
use serde_json::json;
use softphoned::audio::analysis::tone_amplitude;
use softphoned::control::client::is_call_state;

const WAIT: Duration = Duration::from_secs(10);
const AGENT_HZ: f64 = 440.0;
const CUSTOMER_HZ: f64 = 700.0;
/// What tests/sipp/uas_tone.xml streams.
const COLLEAGUE_HZ: f64 = 1000.0;
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

/// The μ-law audio sent to a port, from `from_end` seconds before the last
/// packet, `secs` long.
fn sent_audio(packets: &[RtpSeen], from_end: f64, secs: f64) -> Vec<i16> {
    let last = packets.iter().map(|p| p.time).fold(f64::MIN, f64::max);
    let mut window: Vec<&RtpSeen> = packets
        .iter()
        .filter(|p| p.payload_type == 0 && p.time >= last - from_end && p.time < last - from_end + secs)
        .collect();
    window.sort_by_key(|p| p.sequence);
    let audio: Vec<i16> =
        window.iter().flat_map(|p| p.payload.iter().map(|code| softphoned::media::g711::ulaw_decode(*code))).collect();
    assert!(audio.len() as f64 >= 0.8 * secs * 8000.0, "only {} samples sent in that window", audio.len());
    audio
}

/// One SIP message of a sipp message log.
struct Logged {
    received: bool,
    text: String,
}

impl Logged {
    fn starts(&self, start: &str) -> bool {
        self.text.starts_with(start)
    }

    fn header(&self, name: &str) -> Option<&str> {
        let head = self.text.split("\n\n").next().unwrap();
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let line = head.lines().find(|l| l.to_ascii_lowercase().starts_with(&prefix))?;
        Some(line[prefix.len()..].trim())
    }

    fn call_id(&self) -> &str {
        self.header("Call-ID").unwrap_or_else(|| panic!("no Call-ID:\n{}", self.text))
    }

    fn tag(&self, header: &str) -> String {
        let value = self.header(header).unwrap_or_else(|| panic!("no {header}:\n{}", self.text));
        let tag = value.split(";tag=").nth(1).unwrap_or_else(|| panic!("no tag in {header}:\n{}", self.text));
        tag.split(';').next().unwrap().to_string()
    }

    fn audio_port(&self) -> u16 {
        let port = self.text.lines().find_map(|l| l.strip_prefix("m=audio ")?.split(' ').next()?.parse().ok());
        port.unwrap_or_else(|| panic!("no m=audio:\n{}", self.text))
    }
}

/// The messages of a sipp `-trace_msg` log, in order.
fn sipp_messages(log: &str) -> Vec<Logged> {
    let log = log.replace("\r\n", "\n");
    let blocks = log.split("----------------------------------------------- ").skip(1);
    let messages = blocks.filter_map(|block| {
        let (how, text) = block.split_once('\n')?.1.split_once("\n\n")?;
        Some(Logged { received: how.contains("received"), text: text.trim().to_string() })
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
    let config = format!("[audio]\nsource = \"tone:{AGENT_HZ}\"\n[media]\ncodecs = [\"pcmu\"]");
    let daemon = Daemon::spawn("agent", &config).await;
    // The customer's port in its call with the colleague is known only from
    // the INVITE: capture all its ports from the start.
    let captures = [work.path().join("to-customer"), work.path().join("to-colleague")];
    captures.iter().for_each(|dir| std::fs::create_dir_all(dir).unwrap());
    let to_customer = Capture::start_port_range(&captures[0], customer.rtp_ports.clone());
    let to_colleague = Capture::start(&captures[1], colleague_media);

    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &customer.sip_uri()).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    let first = customer.wait_call_state(state::STREAMS_RUNNING, WAIT).await.id;
    customer.play_tone(first);
    let colleague_uri = format!("sip:colleague@127.0.0.1:{colleague_port}");
    let result = ui.call("call.transfer.consult", json!({"call": call, "to": colleague_uri})).await.unwrap();
    let consult = result["consult"].as_str().unwrap().to_string();
    ui.wait_event(WAIT, |e| is_call_state(e, &consult, "connected")).await.unwrap();
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
    assert_eq!(
        reasons,
        BTreeMap::from([(call.clone(), json!("transferred")), (consult.clone(), json!("transferred"))])
    );

    // The customer's own UA took the REFER and now talks to the colleague;
    // it hangs up after a while.
    customer.wait_state_of(first, state::REFERED, WAIT).await;
    let second = customer.wait_event(|e| e.id != first && e.state == state::STREAMS_RUNNING, WAIT).await.id;
    customer.play_tone(second);
    customer.wait_call_duration(second, TALK_SECS, WAIT).await;
    customer.terminate(second);
    let log = colleague.expect_success().await;

    let messages = sipp_messages(&log);
    let invites: Vec<&Logged> = messages.iter().filter(|m| m.received && m.starts("INVITE ")).collect();
    let consult_invite = invites.first().expect("we consulted the colleague");
    let consult_call_id = consult_invite.call_id();
    let answer = messages
        .iter()
        .find(|m| !m.received && m.starts("SIP/2.0 200") && m.call_id() == consult_call_id)
        .expect("the colleague answered our consult");
    let customer_invite = invites.iter().find(|m| m.call_id() != consult_call_id).expect("the customer called");
    let replaces = customer_invite.header("Replaces").unwrap_or_else(|| panic!("no Replaces:\n{log}"));
    let expected_params =
        BTreeMap::from([("to-tag".into(), answer.tag("To")), ("from-tag".into(), consult_invite.tag("From"))]);
    assert_eq!(replaces_parts(replaces), (consult_call_id.to_string(), expected_params), "{log}");
    assert!(
        messages.iter().any(|m| m.received && m.starts("BYE ") && m.call_id() == consult_call_id),
        "we ended the consult:\n{log}"
    );
    let customer_port = customer_invite.audio_port();
    assert!(customer.rtp_ports.contains(&customer_port), "{customer_port} is the customer's");

    // They hear each other, and no longer us.
    let heard_by_customer = sent_audio(&to_customer.stop(customer_port), 2.0, 1.0);
    let heard = [AGENT_HZ, COLLEAGUE_HZ].map(|hz| tone_amplitude(&heard_by_customer, 8000, hz));
    assert!(heard[1] > PRESENT && heard[0] < ABSENT, "the customer hears the colleague, not us: {heard:?}");
    let heard_by_colleague = sent_audio(&to_colleague.stop(colleague_media), 2.0, 1.0);
    let heard = [AGENT_HZ, CUSTOMER_HZ].map(|hz| tone_amplitude(&heard_by_colleague, 8000, hz));
    assert!(heard[1] > PRESENT && heard[0] < ABSENT, "the colleague hears the customer, not us: {heard:?}");
    let mut daemon = daemon;
    assert!(daemon.terminate().success());
}
