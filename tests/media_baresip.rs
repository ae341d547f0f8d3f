//! The media engine against a real baresip on 127.0.0.1: each codec and
//! SRTP carry our tone to baresip and baresip's tone to us (checked in
//! baresip's own recording and in our sink), keys we send arrive as
//! baresip's DTMF events, and hold/resume in either direction changes the
//! SDP directions and the media flow as they say.

mod common;

use std::time::Duration;

use common::baresip::{self, event, Baresip, BaresipOptions, Codec, Recording, Srtp};
use common::{dial, media_counter, wait_media_counter, wav_samples, Daemon};
use serde_json::{json, Value};
use softphoned::audio::analysis::dominant_frequency;
use softphoned::control::client::{is_call_state, Client};
use softphoned::media::PCM_RATE;

const OUR_TONE: f64 = 440.0;
const BARESIP_TONE: f64 = 900.0;
const WAIT: Duration = Duration::from_secs(10);
const TOLERANCE_HZ: f64 = 20.0;

fn config_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Pcmu => "pcmu",
        Codec::Pcma => "pcma",
        Codec::G722 => "g722",
        Codec::Opus => "opus",
    }
}

async fn daemon(codec: Codec, srtp: &str) -> Daemon {
    let extra = format!(
        "[audio]\nsource = \"tone:{OUR_TONE}\"\nsink = \"wav:heard.wav\"\n[media]\ncodecs = [\"{}\"]\nsrtp = \"{srtp}\"\n",
        config_name(codec)
    );
    Daemon::spawn("agent", &extra).await
}

fn bare(dir: &std::path::Path, codec: Codec, srtp: Option<Srtp>) -> Baresip {
    Baresip::start(dir, BaresipOptions { codecs: vec![codec], srtp, tone_hz: Some(BARESIP_TONE), ..Default::default() })
}

async fn first_call(ui: &mut Client) -> Value {
    let list = ui.call("call.list", json!({})).await.unwrap();
    list["calls"][0].clone()
}

async fn tones_cross(codec: Codec, srtp: Option<Srtp>) {
    if !baresip::installed() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut peer = bare(work.path(), codec, srtp);
    let mut daemon = daemon(codec, if srtp.is_some() { "mandatory" } else { "off" }).await;
    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &peer.sip_uri()).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    peer.wait_event_type(event::ESTABLISHED, WAIT).await;
    assert_eq!(peer.negotiated_codec(), Some(codec), "baresip's codec\n{}", peer.log());
    let listed = first_call(&mut ui).await;
    assert_eq!(listed["codec"], json!(codec_wire_name(codec)), "{listed}");
    if srtp.is_some() {
        let menc = peer.events().into_iter().find(|e| e["type"] == event::MEDIA_ENCRYPTION);
        assert!(menc.is_some(), "baresip agreed no SRTP\n{}", peer.log());
        assert_eq!(listed["secure"], true, "{listed}");
    }
    peer.wait_received_audio(Duration::from_millis(1500), WAIT).await;
    wait_media_counter(&mut ui, "packets_received", 75).await;
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    peer.wait_event_type(event::CLOSED, WAIT).await;
    assert!(daemon.terminate().success());

    let heard_by_peer = Recording::read(&peer.received_audio());
    let found = heard_by_peer.dominant_frequency();
    assert!(
        found.is_some_and(|f| (f - OUR_TONE).abs() <= TOLERANCE_HZ),
        "{codec:?}: baresip heard {found:?} Hz, we sent {OUR_TONE}\n{}",
        daemon.log()
    );
    let samples = wav_samples(&daemon.path("heard.wav"));
    assert!(samples.len() >= PCM_RATE as usize, "{codec:?}: under a second in our sink");
    let middle = &samples[samples.len() / 4..samples.len() * 3 / 4];
    let found = dominant_frequency(middle, PCM_RATE);
    assert!(
        found.is_some_and(|f| (f - BARESIP_TONE).abs() <= TOLERANCE_HZ),
        "{codec:?}: we heard {found:?} Hz, baresip sent {BARESIP_TONE}"
    );
}

fn codec_wire_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Pcmu => "PCMU",
        Codec::Pcma => "PCMA",
        Codec::G722 => "G722",
        Codec::Opus => "opus",
    }
}

#[tokio::test]
async fn pcmu_both_ways() {
    tones_cross(Codec::Pcmu, None).await;
}

#[tokio::test]
async fn pcma_both_ways() {
    tones_cross(Codec::Pcma, None).await;
}

#[tokio::test]
async fn g722_both_ways() {
    tones_cross(Codec::G722, None).await;
}

#[tokio::test]
async fn opus_both_ways() {
    tones_cross(Codec::Opus, None).await;
}

#[tokio::test]
async fn srtp_mandatory_both_ways() {
    tones_cross(Codec::Pcmu, Some(Srtp::Mandatory)).await;
}

#[tokio::test]
async fn srtp_mandatory_refuses_a_plain_peer() {
    if !baresip::installed() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let peer = bare(work.path(), Codec::Pcmu, None);
    let daemon = daemon(Codec::Pcmu, "mandatory").await;
    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &peer.sip_uri()).await;
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    let reason = ended["params"]["reason"].as_str().unwrap_or_default().to_string();
    assert!(
        ["srtp_required", "no_common_codec"].contains(&reason.as_str()),
        "a plain-RTP peer must not get a call: {ended}\n{}",
        daemon.log()
    );
    assert!(
        peer.received_sip().iter().any(|m| m.contains("RTP/SAVP")),
        "baresip saw our RTP/SAVP offer\n{}",
        peer.log()
    );
}

/// Keys we send arrive as baresip's DTMF events; our hold makes baresip
/// see sendonly and stop sending to us; baresip's hold is reported as
/// remote_held and our answer lets it send only.
#[tokio::test]
async fn dtmf_and_hold_with_baresip() {
    if !baresip::installed() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut peer = bare(work.path(), Codec::Pcmu, None);
    let daemon = daemon(Codec::Pcmu, "off").await;
    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &peer.sip_uri()).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    peer.wait_event_type(event::ESTABLISHED, WAIT).await;

    ui.call("call.dtmf", json!({"call": call, "digits": "1#9*"})).await.unwrap();
    peer.wait_dtmf("1#9*", WAIT).await;
    let bad = ui.call("call.dtmf", json!({"call": call, "digits": "1x"})).await.unwrap_err();
    assert!(bad.to_string().contains("'x'"), "{bad}");

    ui.call("call.hold", json!({"call": call})).await.unwrap();
    peer.wait_received_sdp_direction("sendonly", WAIT).await;
    let held = ui.wait_event(WAIT, |e| is_call_state(e, &call, "held")).await.unwrap();
    assert_eq!(held["params"]["held"], true);
    // baresip answered recvonly: its audio to us stops while ours goes on.
    // Packets in flight drain during our next 15 (300 ms); then it is measured over 25.
    let sent = media_counter(&mut ui, "packets_sent").await;
    wait_media_counter(&mut ui, "packets_sent", sent + 15).await;
    let before = media_counter(&mut ui, "packets_received").await;
    wait_media_counter(&mut ui, "packets_sent", sent + 40).await;
    let after = media_counter(&mut ui, "packets_received").await;
    assert!(after - before <= 2, "baresip kept sending while held: {before} -> {after}");

    ui.call("call.resume", json!({"call": call})).await.unwrap();
    peer.wait_received_sdp_direction("sendrecv", WAIT).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    wait_media_counter(&mut ui, "packets_received", after + 25).await;

    peer.hold();
    let remote = ui.wait_event(WAIT, |e| is_call_state(e, &call, "remote_held")).await.unwrap();
    assert_eq!(remote["params"]["remote_held"], true);
    peer.resume();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    peer.wait_event_type(event::CLOSED, WAIT).await;
}

/// RTCP with baresip: its receiver reports on our stream reach us (loss,
/// jitter, round trip), `call.quality` comes periodically and `call.stats`
/// carries the same figures.
#[tokio::test]
async fn rtcp_reports_and_quality_with_baresip() {
    if !baresip::installed() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut peer = bare(work.path(), Codec::Pcmu, None);
    let extra = "[media]\ncodecs = [\"pcmu\"]\nrtcp_interval_ms = 500\nquality_interval_ms = 500\n";
    let daemon = Daemon::spawn("agent", &format!("[audio]\nsource = \"tone:{OUR_TONE}\"\n{extra}")).await;
    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &peer.sip_uri()).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    peer.wait_event_type(event::ESTABLISHED, WAIT).await;
    let quality = ui.wait_event(WAIT, |e| e["method"] == "call.quality" && e["params"]["call"] == call).await.unwrap();
    let mos = quality["params"]["mos"].as_f64().unwrap();
    assert!((1.0..=4.5).contains(&mos), "{quality}");
    // baresip reports on what it receives from us every few seconds.
    let mut stats = Value::Null;
    for _ in 0..150 {
        stats = ui.call("call.stats", json!({"call": call})).await.unwrap();
        if stats["call"]["media"]["rtcp"]["remote_reports"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rtcp = &stats["call"]["media"]["rtcp"];
    assert!(rtcp["remote_reports"].as_u64().unwrap_or(0) > 0, "no receiver report from baresip: {stats}");
    let rtt = rtcp["rtt_ms"].as_f64().expect("a round trip once baresip reported");
    assert!((0.0..100.0).contains(&rtt), "loopback round trip {rtt} ms: {stats}");
    assert_eq!(rtcp["remote_packets_lost"], 0, "{stats}");
    assert!(stats["quality"]["mos"].as_f64().unwrap() > 4.0, "a clean loopback call: {stats}");
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    peer.wait_event_type(event::CLOSED, WAIT).await;
}
