//! Keys, hold and silence against sipp on 127.0.0.1: RFC 4733 events from
//! sipp's own captures and SIP INFO keys come out as `call.dtmf`; a peer's
//! hold is answered recvonly and reported; our hold reaches the peer as
//! sendonly; a peer that sends no RTP is hung up on with `media_timeout`.

mod common;

use std::time::Duration;

use common::capture::Capture;
use common::sipp::{free_port_pair, Sipp};
use common::{dial, media_counter, require_tool, wait_media_counter, Daemon};
use serde_json::{json, Value};
use softphoned::audio::analysis::dominant_frequency;
use softphoned::control::client::{is_call_state, Client};
use softphoned::media::g711::ulaw_decode;

const WAIT: Duration = Duration::from_secs(15);

async fn answer_incoming(ui: &mut Client) -> String {
    let incoming = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    let call = incoming["params"]["call"].as_str().unwrap().to_string();
    ui.call("call.answer", json!({"call": call})).await.unwrap();
    call
}

fn call_daemon(work: &std::path::Path, daemon: &Daemon, scenario: &str, extra: &[&str]) -> Sipp {
    Sipp::call(work, scenario, &format!("127.0.0.1:{}", daemon.sip_port), "agent", extra)
}

#[tokio::test]
async fn keys_from_rfc4733_captures_and_sip_info_are_reported() {
    if !require_tool("sipp") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "").await;
    let mut ui = daemon.client().await;
    let uac = call_daemon(work.path(), &daemon, "uac_dtmf.xml", &["-d", "500"]);
    let call = answer_incoming(&mut ui).await;
    let mut keys: Vec<(String, String)> = Vec::new();
    while keys.len() < 4 {
        let event = ui
            .wait_event(WAIT, |e| e["method"] == "call.dtmf" && e["params"]["call"] == call)
            .await
            .unwrap_or_else(|e| panic!("only {keys:?} arrived: {e}\n{}", daemon.log()));
        let p = &event["params"];
        keys.push((p["digit"].as_str().unwrap().into(), p["via"].as_str().unwrap().into()));
    }
    let expected = [("1", "rtp"), ("#", "rtp"), ("7", "info"), ("*", "info")];
    assert_eq!(keys, expected.map(|(d, v)| (d.to_string(), v.to_string())));
    uac.expect_success().await;
}

#[tokio::test]
async fn a_peer_hold_is_answered_recvonly_and_reported() {
    if !require_tool("sipp") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "").await;
    let mut ui = daemon.client().await;
    let uac = call_daemon(work.path(), &daemon, "uac_hold.xml", &["-d", "300"]);
    let call = answer_incoming(&mut ui).await;
    let held = ui.wait_event(WAIT, |e| is_call_state(e, &call, "remote_held")).await.unwrap();
    assert_eq!((held["params"]["remote_held"].clone(), held["params"]["held"].clone()), (json!(true), json!(false)));
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    // sipp checked our answers (recvonly, then sendrecv); its log shows them.
    let log = uac.expect_success().await;
    assert!(log.contains("a=recvonly"), "{log}");
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
}

#[tokio::test]
async fn our_hold_and_resume_reach_the_peer() {
    if !require_tool("sipp") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "").await;
    let mut ui = daemon.client().await;
    let port = free_port_pair();
    let uas = Sipp::start(work.path(), "uas_hold.xml", port, free_port_pair(), &[]);
    let call = dial(&mut ui, &format!("sip:uas@127.0.0.1:{port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    ui.call("call.hold", json!({"call": call})).await.unwrap();
    let held: Value = ui.wait_event(WAIT, |e| is_call_state(e, &call, "held")).await.unwrap();
    assert_eq!(held["params"]["held"], true);
    let again = ui.call("call.hold", json!({"call": call})).await.unwrap_err();
    assert!(again.to_string().contains("hold"), "{again}");
    ui.call("call.resume", json!({"call": call})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    let log = uas.expect_success().await;
    assert!(log.contains("a=sendonly") && log.contains("a=sendrecv"), "{log}");
}

#[tokio::test]
async fn silence_on_the_wire_ends_the_call_with_media_timeout() {
    if !require_tool("sipp") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "[media]\nmedia_timeout_ms = 1000").await;
    let mut ui = daemon.client().await;
    let port = free_port_pair();
    // This peer answers and then sends no RTP at all.
    let _uas = Sipp::start(work.path(), "uas_hold.xml", port, free_port_pair(), &[]);
    let call = dial(&mut ui, &format!("sip:uas@127.0.0.1:{port}")).await;
    let connected = ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(ended["params"]["reason"], "media_timeout", "{connected} -> {ended}");
    let messages = work.path().join("uas_hold.msg");
    for _ in 0..100 {
        if std::fs::read_to_string(&messages).unwrap_or_default().contains("BYE sip:") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the peer never got our BYE:\n{}", std::fs::read_to_string(&messages).unwrap_or_default());
}

/// While we hold the peer, what goes over the wire to it is the hold music,
/// not the agent's microphone (decoded from a capture of our RTP).
#[tokio::test]
async fn the_held_party_gets_hold_music() {
    if !require_tool("sipp") || !require_tool("tcpdump") || !require_tool("tshark") {
        return;
    }
    const MUSIC: u32 = 700;
    let work = tempfile::tempdir().unwrap();
    let music = work.path().join("hold.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&music, spec).unwrap();
    for n in 0..16000 {
        let phase = std::f64::consts::TAU * f64::from(MUSIC) * f64::from(n) / 16000.0;
        writer.write_sample((phase.sin() * 12000.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
    let extra = format!("[audio]\nsource = \"tone:440\"\n[media]\nhold_music = \"{}\"\n", music.display());
    let daemon = Daemon::spawn("agent", &extra).await;
    let mut ui = daemon.client().await;
    let (port, media_port) = (free_port_pair(), free_port_pair());
    let capture = Capture::start(work.path(), media_port);
    let uas = Sipp::start(work.path(), "uas_hold.xml", port, media_port, &[]);
    let call = dial(&mut ui, &format!("sip:uas@127.0.0.1:{port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    ui.call("call.hold", json!({"call": call})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "held")).await.unwrap();
    // A second of our RTP while held, then half a second after resume.
    let sent = media_counter(&mut ui, "packets_sent").await;
    wait_media_counter(&mut ui, "packets_sent", sent + 50).await;
    ui.call("call.resume", json!({"call": call})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    let sent = media_counter(&mut ui, "packets_sent").await;
    wait_media_counter(&mut ui, "packets_sent", sent + 25).await;
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    uas.expect_success().await;
    let packets = capture.stop(media_port);
    let audio: Vec<i16> = packets.iter().flat_map(|p| p.payload.iter().map(|b| ulaw_decode(*b))).collect();
    // Half-second windows: the microphone, then the music while held, then the microphone again.
    let heard: Vec<Option<f64>> = audio.chunks(4000).map(|w| dominant_frequency(w, 8000)).collect();
    let music_windows = heard.iter().filter(|f| **f == Some(f64::from(MUSIC))).count();
    assert!(music_windows >= 1, "no hold music on the wire: {heard:?}");
    assert_eq!(heard.last().copied().flatten(), Some(440.0), "the microphone again after resume: {heard:?}");
}
