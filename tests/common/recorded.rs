//! Recorded calls for the recording tests: the daemon sending 440 Hz
//! calls a sipp peer answering with 1 kHz, and what the files hold.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use softphoned::control::client::{is_call_state, Client};

use super::sipp::{free_port_pair, write_tone_file, Sipp};
use super::{dial, Daemon};

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
