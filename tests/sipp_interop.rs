//! Interop with a real third-party SIP peer, sipp, on 127.0.0.1. The
//! scenarios live in tests/sipp/; sipp's exit code says whether it saw
//! what it expected (our BYE, our CANCEL, our answer), its message log is
//! kept for diagnosis, and our RTP is captured on the loopback interface
//! and decoded with tshark to prove what the peer received.

mod common;

use std::time::Duration;

use common::capture::Capture;
use common::sipp::{free_port_pair, write_tone_file, Sipp};
use common::{dial, require_tool, wait_media_counter, wav_samples, Daemon};
use serde_json::json;
use softphoned::audio::analysis::dominant_frequency;
use softphoned::control::client::is_call_state;
use softphoned::media::PCM_RATE;

const WAIT: Duration = Duration::from_secs(15);

fn tools_present() -> bool {
    ["sipp", "sox", "tcpdump", "tshark"].into_iter().all(require_tool)
}

#[tokio::test]
async fn we_dial_a_sipp_uas_hear_its_tone_and_it_receives_our_rtp() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    write_tone_file(work.path());
    let mut daemon = Daemon::spawn("agent", "[audio]\nsource = \"tone:440\"\nsink = \"wav:heard.wav\"").await;
    let heard = daemon.path("heard.wav");
    let (sip_port, media_port) = (free_port_pair(), free_port_pair());
    let capture = Capture::start(work.path(), media_port);
    let uas = Sipp::start(work.path(), "uas_tone.xml", sip_port, media_port, &[]);

    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &format!("sip:uas@127.0.0.1:{sip_port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    // Two seconds of audio each way before we hang up.
    let received = wait_media_counter(&mut ui, "packets_received", 100).await;
    let sent = wait_media_counter(&mut ui, "packets_sent", 100).await;
    assert!(received >= 100, "only {received} RTP packets from sipp");
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(ended["params"]["reason"], "local_hangup");
    let log = uas.expect_success().await;
    assert!(log.contains("BYE sip:"), "sipp's log shows our BYE");
    let packets = capture.stop(media_port);
    assert!(daemon.terminate().success());

    // What sipp received from us: consecutive sequence numbers, timestamps
    // 160 apart, PCMU, about 50 packets a second.
    assert!(
        packets.len() as u64 >= sent,
        "sipp's port saw {} RTP packets from us, we sent {sent}: {}",
        packets.len(),
        daemon.log().lines().filter(|l| l.contains("RTP")).collect::<Vec<_>>().join("\n")
    );
    for pair in packets.windows(2) {
        let (p0, p1) = (&pair[0], &pair[1]);
        let ((s0, t0, pt), (s1, t1)) = ((p0.sequence, p0.timestamp, p0.payload_type), (p1.sequence, p1.timestamp));
        assert_eq!(pt, 0, "PCMU");
        assert_eq!(s1, (s0 + 1) % 65536, "sequence numbers are consecutive");
        assert_eq!(t1, (t0 + 160) % (1 << 32), "timestamps advance 160 per 20 ms packet");
    }
    let gaps: Vec<f64> = packets.windows(2).map(|p| (p[1].time - p[0].time) * 1000.0).collect();
    let mean_gap = gaps.iter().sum::<f64>() / gaps.len() as f64;
    assert!((mean_gap - 20.0).abs() < 1.0, "packets are paced at 20 ms (mean {mean_gap:.3} ms)");
    let worst = gaps.iter().map(|g| (g - 20.0).abs()).fold(0.0, f64::max);
    let mean_dev = gaps.iter().map(|g| (g - 20.0).abs()).sum::<f64>() / gaps.len() as f64;
    eprintln!("pacing at the peer: {} packets, mean gap {mean_gap:.3} ms, mean deviation {mean_dev:.3} ms, worst {worst:.3} ms", packets.len());

    // What we heard: sipp's 1 kHz tone, in our sink.
    let samples = wav_samples(&heard);
    assert!(samples.len() >= PCM_RATE as usize * 2, "at least 2 s of audio in the sink");
    assert_eq!(dominant_frequency(&samples, PCM_RATE), Some(1000.0));
}

#[tokio::test]
async fn a_busy_uas_ends_the_call_with_486() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "").await;
    let sip_port = free_port_pair();
    let uas = Sipp::start(work.path(), "uas_busy.xml", sip_port, free_port_pair(), &[]);
    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &format!("sip:busy@127.0.0.1:{sip_port}")).await;
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!((ended["params"]["reason"].clone(), ended["params"]["sip_code"].clone()), (json!("busy"), json!(486)));
    let log = uas.expect_success().await;
    assert!(log.contains("ACK sip:"), "sipp got the ACK for its 486");
}

#[tokio::test]
async fn hanging_up_before_answer_sends_cancel() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "").await;
    let sip_port = free_port_pair();
    let uas = Sipp::start(work.path(), "uas_ring_cancel.xml", sip_port, free_port_pair(), &[]);
    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &format!("sip:ring@127.0.0.1:{sip_port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "ringing")).await.unwrap();
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(ended["params"]["reason"], "cancelled");
    // The scenario exits 0 only once it has received CANCEL, answered it and
    // had its 487 ACKed.
    let log = uas.expect_success().await;
    assert!(log.contains("CANCEL sip:"), "sipp's log shows our CANCEL");
}

#[tokio::test]
async fn a_sipp_uac_calls_us_we_answer_and_it_hangs_up() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "").await;
    let mut ui = daemon.client().await;
    let target = format!("127.0.0.1:{}", daemon.sip_port);
    let uac = Sipp::call(work.path(), "uac_call.xml", &target, "agent", &["-d", "1000"]);
    let incoming = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    assert!(incoming["params"]["remote"].as_str().unwrap().starts_with("sip:sipp@127.0.0.1"), "{incoming}");
    let call = incoming["params"]["call"].as_str().unwrap().to_string();
    ui.call("call.answer", json!({"call": call})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(ended["params"]["reason"], "remote_hangup");
    let log = uac.expect_success().await;
    assert!(log.contains("SIP/2.0 180 Ringing"), "sipp saw us ring");
    assert!(log.contains("m=audio") && log.contains("RTP/AVP 0"), "sipp got our SDP answer choosing PCMU");
}

#[tokio::test]
async fn a_sipp_uac_is_rejected_with_486_or_603() {
    if !tools_present() {
        return;
    }
    for (reason, code) in [("busy", "486"), ("decline", "603")] {
        let work = tempfile::tempdir().unwrap();
        let daemon = Daemon::spawn("agent", "").await;
        let mut ui = daemon.client().await;
        let target = format!("127.0.0.1:{}", daemon.sip_port);
        let uac = Sipp::call(work.path(), "uac_call_rejected.xml", &target, "agent", &[]);
        let incoming = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
        ui.call("call.reject", json!({"call": incoming["params"]["call"], "reason": reason})).await.unwrap();
        let log = uac.expect_success().await;
        assert!(log.contains(&format!("SIP/2.0 {code} ")), "sipp received {code}:\n{log}");
    }
}
