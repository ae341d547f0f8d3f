//! Recorded calls for the recording tests: the daemon sending 440 Hz
//! calls a sipp peer answering with 1 kHz, and what the files hold.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use softphoned::audio::analysis::dominant_frequency;
use softphoned::control::client::{is_call_state, Client};

use super::sipp::{free_port_pair, write_tone_file, Sipp};
use super::{dial, wait_call_counter, Daemon};

pub const WAIT: Duration = Duration::from_secs(10);

/// Left and right channels of a stereo WAV, and its rate.
pub fn channels(path: &Path) -> (Vec<i16>, Vec<i16>, u32) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (2, 16));
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (left, right, spec.sample_rate)
}

/// Left and right channels of a stereo Ogg/Opus file at 8 kHz.
pub fn opus_channels(path: &Path) -> (Vec<i16>, Vec<i16>) {
    let mut reader = ogg::PacketReader::new(std::fs::File::open(path).unwrap());
    let head = reader.read_packet().unwrap().unwrap();
    assert!(head.data.starts_with(b"OpusHead") && head.data[9] == 2, "stereo Opus");
    reader.read_packet().unwrap();
    let mut decoder = opus::Decoder::new(8000, opus::Channels::Stereo).unwrap();
    let (mut left, mut right) = (Vec::new(), Vec::new());
    while let Some(packet) = reader.read_packet().unwrap() {
        let mut pcm = [0i16; 320];
        let n = decoder.decode(&packet.data, &mut pcm, false).unwrap();
        for pair in pcm[..2 * n].chunks(2) {
            left.push(pair[0]);
            right.push(pair[1]);
        }
    }
    (left, right)
}

/// The daemon (sending 440 Hz, with `recording` as its `[recording]`
/// table) calls a sipp peer that answers with 1 kHz; returns once the call
/// is connected.
pub async fn call_the_tone_peer(work: &Path, recording: &str) -> (Sipp, Daemon, Client, String) {
    write_tone_file(work);
    let peer_port = free_port_pair();
    let peer = Sipp::start(work, "uas_tone.xml", peer_port, free_port_pair(), &[]);
    let daemon = Daemon::spawn("agent", &format!("[audio]\nsource = \"tone:440\"\n[recording]\n{recording}")).await;
    let mut ui = daemon.client().await;
    ui.call("events.subscribe", json!({})).await.unwrap();
    let call = dial(&mut ui, &format!("sip:peer@127.0.0.1:{peer_port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    (peer, daemon, ui, call)
}

/// The first file with extension `ext` anywhere under `dir`.
pub fn first_file(dir: &Path, ext: &str) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for path in std::fs::read_dir(&folder).into_iter().flatten().flatten().map(|e| e.path()) {
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                return Some(path);
            }
        }
    }
    None
}

/// Let the just-connected call run until `packets` have come in, then
/// SIGKILL the daemon, as a crash would, and start it again on the same
/// folder. Returns how long the call had been recorded, in ms.
pub async fn record_then_kill(daemon: &mut Daemon, ui: &mut Client, call: &str, packets: u64) -> f64 {
    let answered = std::time::Instant::now();
    wait_call_counter(ui, call, "packets_received", packets).await;
    let recorded_ms = answered.elapsed().as_millis() as f64;
    daemon.kill_and_restart().await;
    recorded_ms
}

/// The sidecar the recorder sealed at start for the recording a kill left
/// open under `dir` (it was there, provisional, from the recording's start).
pub async fn recovered_sidecar(dir: &Path) -> (PathBuf, Value) {
    for _ in 0..250 {
        let found = first_file(dir, "json").and_then(|path| {
            let meta: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            (meta["recovered"] == true).then_some((path, meta))
        });
        if let Some(found) = found {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no recording recovered at start under {}", dir.display());
}

/// How much of `recorded_ms` the WAV a kill cut short lost (said on
/// stderr), having checked that what it kept ends in both sides' audio.
pub fn lost_ms(wav: &Path, recorded_ms: f64) -> f64 {
    let (left, right, rate) = channels(wav);
    let file_ms = left.len() as f64 * 1000.0 / f64::from(rate);
    let lost_ms = recorded_ms - file_ms;
    eprintln!("kill -9 after {recorded_ms:.0} ms recorded: {file_ms:.0} ms kept, {lost_ms:.0} ms lost");
    let tail = |side: &[i16]| side[side.len() - rate as usize / 2..].to_vec();
    assert_eq!(dominant_frequency(&tail(&right), rate), Some(1000.0), "what was kept is real audio");
    assert_eq!(dominant_frequency(&tail(&left), rate), Some(440.0));
    lost_ms
}

/// Let the call run until `packets` have come in, hang up, and wait for
/// its recording to be saved and the peer to be content. Returns the
/// file and the `recording.saved` event's params.
pub async fn record_and_hang_up(ui: &mut Client, call: &str, packets: u64, peer: Sipp) -> (PathBuf, Value) {
    wait_call_counter(ui, call, "packets_received", packets).await;
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    let saved = ui.wait_event(WAIT, |e| e["method"] == "recording.saved" && e["params"]["call"] == call).await.unwrap();
    peer.expect_success().await;
    (PathBuf::from(saved["params"]["path"].as_str().unwrap()), saved["params"].clone())
}
