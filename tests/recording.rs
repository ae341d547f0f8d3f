//! Call recording with a sipp peer on 127.0.0.1 sending a 1 kHz tone while
//! we send 440 Hz: the WAV's left channel holds ours and the right theirs,
//! its length matches the call, a pause is silence of the right length and
//! listed in the sidecar, and the call's history names the file.

mod common;

use std::time::Duration;

use common::recorded::{
    call_the_tone_peer, channels, first_file, lost_ms, opus_channels, record_and_hang_up, record_then_kill,
    recovered_sidecar, WAIT,
};
use common::require_tool;
use common::wait_call_counter;
use serde_json::{json, Value};
use softphoned::audio::analysis::{dominant_frequency, tone_amplitude};
use softphoned::control::client::is_call_state;

/// Every answered call recorded, under the daemon's own folder.
const ALWAYS: &str = "dir = \"recordings\"\nmode = \"always\"";

#[tokio::test]
async fn a_recorded_call_has_us_left_them_right_its_pause_as_silence_and_its_own_length() {
    if !require_tool("sipp") || !require_tool("sox") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (peer, daemon, mut ui, call) = call_the_tone_peer(work.path(), ALWAYS).await;
    let again = ui.call("call.record.start", json!({"call": call})).await.unwrap_err();
    assert!(again.to_string().contains("already being recorded"), "{again}");
    // Another tab, opened during the call, sees the recording in its snapshot
    // and follows the pause, the resume and the stop as they happen.
    let mut other_tab = daemon.client().await;
    other_tab.call("events.subscribe", json!({"topics": ["call", "recording"]})).await.unwrap();
    let listed = other_tab.wait_event(WAIT, |e| e["method"] == "call.state").await.unwrap();
    assert_eq!(
        (listed["params"]["call"].as_str(), listed["params"]["recording"]["state"].as_str()),
        (Some(call.as_str()), Some("recording"))
    );
    let recording_state = |state: &'static str| {
        let call = call.clone();
        move |e: &Value| {
            e["method"] == "recording.state" && e["params"]["call"] == call.as_str() && e["params"]["state"] == state
        }
    };

    wait_call_counter(&mut ui, &call, "packets_received", 60).await;
    ui.call("call.record.pause", json!({"call": call})).await.unwrap();
    other_tab.wait_event(WAIT, recording_state("paused")).await.unwrap();
    let now = wait_call_counter(&mut ui, &call, "packets_received", 1).await;
    wait_call_counter(&mut ui, &call, "packets_received", now + 40).await;
    ui.call("call.record.resume", json!({"call": call})).await.unwrap();
    other_tab.wait_event(WAIT, recording_state("recording")).await.unwrap();
    let now = wait_call_counter(&mut ui, &call, "packets_received", 1).await;
    wait_call_counter(&mut ui, &call, "packets_received", now + 60).await;
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    let stopped = other_tab.wait_event(WAIT, recording_state("stopped")).await.unwrap();
    let saved = ui
        .wait_event(WAIT, |e| e["method"] == "recording.saved" && e["params"]["call"] == call.as_str())
        .await
        .unwrap();
    assert_eq!(stopped["params"]["path"], saved["params"]["path"]);
    peer.expect_success().await;

    let path = std::path::PathBuf::from(saved["params"]["path"].as_str().unwrap());
    assert!(path.starts_with(daemon.path("recordings")), "{path:?}");
    assert!(path.file_name().unwrap().to_str().unwrap().contains(&call), "{path:?}");
    let (left, right, rate) = channels(&path);
    assert_eq!(rate, 8000, "a PCMU call is recorded at its own rate");
    let second = |side: &[i16], from_s: f64| {
        side[(from_s * rate as f64) as usize..((from_s + 0.5) * rate as f64) as usize].to_vec()
    };
    assert_eq!(dominant_frequency(&second(&left, 0.3), rate), Some(440.0), "left: the agent");
    assert_eq!(dominant_frequency(&second(&right, 0.3), rate), Some(1000.0), "right: the peer");

    let sidecar: Value = serde_json::from_slice(&std::fs::read(path.with_extension("json")).unwrap()).unwrap();
    let pause = &sidecar["pauses"][0];
    let (from_ms, to_ms) = (pause["from_ms"].as_u64().unwrap(), pause["to_ms"].as_u64().unwrap());
    assert!(to_ms - from_ms >= 700, "a pause of about 0.8 s: {sidecar}");
    let span = |ms: u64| (ms * rate as u64 / 1000) as usize;
    assert!(
        left[span(from_ms)..span(to_ms)].iter().chain(&right[span(from_ms)..span(to_ms)]).all(|s| *s == 0),
        "the pause is silence"
    );
    assert_eq!(
        dominant_frequency(&second(&right, to_ms as f64 / 1000.0 + 0.2), rate),
        Some(1000.0),
        "recording resumed"
    );
    assert_eq!((sidecar["call"].as_str(), sidecar["direction"].as_str()), (Some(call.as_str()), Some("outbound")));
    assert_eq!(sidecar["reason"], "local_hangup");
    assert_eq!(sidecar["sha256"].as_str().map(str::len), Some(64));

    // The file is as long as the call was answered, within 100 ms.
    let history = ui.call("history.list", json!({"kind": "call"})).await.unwrap();
    let entry = &history["entries"][0];
    assert_eq!(entry["recording"].as_str(), path.to_str());
    let answered: jiff::Timestamp = entry["answered_at"].as_str().unwrap().parse().unwrap();
    let ended: jiff::Timestamp = entry["ended_at"].as_str().unwrap().parse().unwrap();
    let call_ms = (ended - answered).total(jiff::Unit::Millisecond).unwrap();
    let file_ms = left.len() as f64 * 1000.0 / rate as f64;
    assert!((call_ms - file_ms).abs() <= 100.0, "call {call_ms} ms, recording {file_ms} ms");
}

#[tokio::test]
async fn a_kill_during_a_recorded_call_leaves_a_valid_wav_missing_at_most_the_last_second() {
    if !require_tool("sipp") || !require_tool("sox") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (_peer, mut daemon, mut ui, call) = call_the_tone_peer(work.path(), ALWAYS).await;
    let recorded_ms = record_then_kill(&mut daemon, &mut ui, &call, 160).await;
    // At start the recorder repairs what the kill left and seals its sidecar.
    let (sidecar, meta) = recovered_sidecar(&daemon.path("recordings")).await;
    assert_eq!(meta["call"], call.as_str(), "the sidecar names the call: {meta}");
    assert!(meta["remote"].as_str().is_some_and(|r| r.starts_with("sip:")), "and the parties: {meta}");
    assert!(meta.get("provisional").is_none(), "{meta}");
    // History has the call from its answer on: closed as interrupted at the restart.
    let mut ui = daemon.client().await;
    let history = ui.call("history.list", json!({"kind": "call"})).await.unwrap();
    let entry = history["entries"].as_array().unwrap().iter().find(|e| e["call"] == call.as_str()).cloned();
    let entry = entry.unwrap_or_else(|| panic!("the killed call is in history: {history}"));
    assert_eq!((entry["reason"].as_str(), entry["state"].as_str()), (Some("interrupted"), Some("ended")), "{entry}");
    assert!(entry["answered_at"].is_string(), "{entry}");
    let named = std::path::Path::new(entry["recording"].as_str().unwrap()).with_extension("json");
    assert_eq!(named, sidecar, "history names the recording");
    let lost_ms = lost_ms(&sidecar.with_extension("wav"), recorded_ms);
    assert!(lost_ms <= 1100.0, "lost {lost_ms} ms of {recorded_ms} ms");
}

/// A tmpfs this small, mounted for the test and unmounted after it.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    fn mount(at: std::path::PathBuf, size: &str) -> Option<TinyDisk> {
        std::fs::create_dir_all(&at).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted && std::env::var("CI").as_deref() == Ok("true") {
            panic!("cannot mount a tmpfs (root is needed) for the full-disk test");
        }
        mounted.then_some(TinyDisk(at))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_the_recording_and_not_the_call() {
    if !require_tool("sipp") || !require_tool("sox") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // 48 KiB: about a second and a half of 8 kHz stereo.
    let Some(disk) = TinyDisk::mount(work.path().join("tiny"), "48k") else {
        eprintln!("SKIPPED: cannot mount a tmpfs (not root)");
        return;
    };
    let recording = format!("dir = \"{}\"", disk.0.display());
    let (peer, _daemon, mut ui, call) = call_the_tone_peer(work.path(), &recording).await;
    ui.call("call.record.start", json!({"call": call})).await.unwrap();
    let failed = ui
        .wait_event(WAIT, |e| e["method"] == "recording.failed" && e["params"]["call"] == call.as_str())
        .await
        .unwrap();
    assert!(failed["params"]["reason"].as_str().unwrap().contains("No space left"), "{failed}");
    // The call goes on: audio keeps flowing both ways after the failure.
    let (received, sent) = (
        wait_call_counter(&mut ui, &call, "packets_received", 1).await,
        wait_call_counter(&mut ui, &call, "packets_sent", 1).await,
    );
    wait_call_counter(&mut ui, &call, "packets_received", received + 50).await;
    wait_call_counter(&mut ui, &call, "packets_sent", sent + 50).await;
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(ended["params"]["reason"], "local_hangup");
    peer.expect_success().await;
    // What fitted is still a readable WAV of real audio.
    let wav = first_file(&disk.0, "wav").expect("the recording's file");
    let (_, right, rate) = channels(&wav);
    assert!(right.len() >= rate as usize / 2, "{} samples kept", right.len());
    assert_eq!(dominant_frequency(&right[..rate as usize / 2], rate), Some(1000.0));
}

#[tokio::test]
async fn an_ogg_opus_recording_keeps_both_sides_in_a_tenth_of_the_space() {
    if !require_tool("sipp") || !require_tool("sox") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let recording = format!("{ALWAYS}\nformat = \"ogg_opus\"");
    let (peer, _daemon, mut ui, call) = call_the_tone_peer(work.path(), &recording).await;
    let (path, saved) = record_and_hang_up(&mut ui, &call, 100, peer).await;
    assert_eq!(path.extension().and_then(|e| e.to_str()), Some("opus"));
    let duration_s = saved["duration_ms"].as_u64().unwrap() as f64 / 1000.0;
    let wav_bytes = duration_s * 8000.0 * 4.0;
    assert!((std::fs::metadata(&path).unwrap().len() as f64) < wav_bytes / 4.0, "smaller than the WAV would be");

    let (left, right) = opus_channels(&path);
    assert_eq!(dominant_frequency(&left[4000..8000], 8000), Some(440.0), "left: the agent");
    assert_eq!(dominant_frequency(&right[4000..8000], 8000), Some(1000.0), "right: the peer");
}

/// RTP from an address that is not the peer's never reaches the call:
/// a 2.3 kHz stream sent to the agent's RTP port from elsewhere, looking
/// like any RTP, is counted as discarded and absent from the recording,
/// where the peer's 1 kHz goes on.
#[tokio::test]
async fn rtp_from_an_unexpected_source_is_not_heard() {
    if !require_tool("sipp") || !require_tool("sox") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (peer, _daemon, mut ui, call) = call_the_tone_peer(work.path(), ALWAYS).await;
    // Our RTP port, from the INVITE sipp logged.
    let log = std::fs::read_to_string(work.path().join("uas_tone.msg")).unwrap();
    let port: u16 = log.split("m=audio ").nth(1).and_then(|rest| rest.split(' ').next()?.parse().ok()).unwrap();
    let made = std::process::Command::new("sox")
        .current_dir(work.path())
        .args([
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "u-law",
            "-t",
            "raw",
            "tone2300.ulaw",
            "synth",
            "3",
            "sine",
            "2300",
        ])
        .status()
        .unwrap();
    assert!(made.success());
    let tone = std::fs::read(work.path().join("tone2300.ulaw")).unwrap();
    let intruder = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for (n, payload) in tone.chunks(160).enumerate() {
        tick.tick().await;
        let n = n as u16;
        let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
        packet[2..4].copy_from_slice(&(1000 + n).to_be_bytes());
        packet[4..8].copy_from_slice(&(u32::from(n) * 160).to_be_bytes());
        packet.extend_from_slice(payload);
        intruder.send_to(&packet, ("127.0.0.1", port)).await.unwrap();
    }
    let stats = ui.call("call.stats", json!({"call": call})).await.unwrap();
    let discarded = stats["call"]["media"]["packets_discarded"].as_u64().unwrap();
    assert!(discarded >= 140, "the intruder's 150 packets: {stats}");
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    let saved = ui
        .wait_event(WAIT, |e| e["method"] == "recording.saved" && e["params"]["call"] == call.as_str())
        .await
        .unwrap();
    peer.expect_success().await;
    let (_, heard, rate) = channels(std::path::Path::new(saved["params"]["path"].as_str().unwrap()));
    let (peer_tone, intruder_tone) = (tone_amplitude(&heard, rate, 1000.0), tone_amplitude(&heard, rate, 2300.0));
    assert!(
        peer_tone > 1000.0 && intruder_tone < peer_tone / 100.0,
        "1 kHz {peer_tone:.0}, 2.3 kHz {intruder_tone:.0}"
    );
}
