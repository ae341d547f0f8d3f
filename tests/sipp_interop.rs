//! Interop with a real third-party SIP peer, sipp, on 127.0.0.1. The
//! scenarios live in tests/sipp/; sipp's exit code says whether it saw
//! what it expected (our BYE, our CANCEL, our answer), its message log is
//! kept for diagnosis, and our RTP is captured on the loopback interface
//! and decoded with tshark to prove what the peer received.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::sipp::{free_port_pair, Sipp};
use common::{dial, require_tool, wait_media_counter, wav_samples, Daemon};
use serde_json::json;
use softphoned::audio::analysis::dominant_frequency;
use softphoned::control::client::is_call_state;
use softphoned::media::PCM_RATE;

const WAIT: Duration = Duration::from_secs(15);

/// tcpdump on loopback, for the RTP sent to one port.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(dir: &Path, port: u16) -> Capture {
        let file = dir.join("rtp.pcap");
        let child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-U", "--immediate-mode", "-w"])
            .arg(&file)
            .arg(format!("udp and dst host 127.0.0.1 and dst port {port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump starts");
        let mut capture = Capture { child, file };
        capture.wait_listening();
        capture
    }

    /// tcpdump says "listening on lo" once it captures.
    fn wait_listening(&mut self) {
        use std::io::Read;
        let mut stderr = self.child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&seen).contains("listening on") {
            match stderr.read(&mut byte) {
                Ok(1) => seen.push(byte[0]),
                _ => panic!("tcpdump cannot capture on lo (root needed): {}", String::from_utf8_lossy(&seen)),
            }
        }
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    }

    /// Stop and decode: (arrival time s, sequence, timestamp, payload type) per packet.
    fn stop(mut self, port: u16) -> Vec<(f64, u32, u64, u32)> {
        Command::new("kill").arg("-INT").arg(self.child.id().to_string()).status().unwrap();
        self.child.wait().unwrap();
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&self.file)
            .args(["-d", &format!("udp.port=={port},rtp"), "-Y", "rtp", "-T", "fields"])
            .args(["-e", "frame.time_epoch", "-e", "rtp.seq", "-e", "rtp.timestamp", "-e", "rtp.p_type"])
            .output()
            .expect("tshark runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                Some((
                    f.first()?.parse().ok()?,
                    f.get(1)?.parse().ok()?,
                    f.get(2)?.parse().ok()?,
                    f.get(3)?.parse().ok()?,
                ))
            })
            .collect()
    }
}

fn tools_present() -> bool {
    ["sipp", "sox", "tcpdump", "tshark"].into_iter().all(require_tool)
}

#[tokio::test]
async fn we_dial_a_sipp_uas_hear_its_tone_and_it_receives_our_rtp() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let made = Command::new("sox")
        .current_dir(work.path())
        .args(["-n", "-r", "8000", "-c", "1", "-e", "u-law", "-t", "raw", "tone1k.ulaw", "synth", "30", "sine", "1000"])
        .status()
        .unwrap();
    assert!(made.success());
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
        let ((_, s0, t0, pt), (_, s1, t1, _)) = (pair[0], pair[1]);
        assert_eq!(pt, 0, "PCMU");
        assert_eq!(s1, (s0 + 1) % 65536, "sequence numbers are consecutive");
        assert_eq!(t1, (t0 + 160) % (1 << 32), "timestamps advance 160 per 20 ms packet");
    }
    let gaps: Vec<f64> = packets.windows(2).map(|p| (p[1].0 - p[0].0) * 1000.0).collect();
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
