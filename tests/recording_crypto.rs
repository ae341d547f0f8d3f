//! Recordings for compliance, with a sipp peer on 127.0.0.1 sending a
//! 1 kHz tone while we send 440 Hz: with `recording.encrypt_to` the file
//! on disk is age ciphertext only and decrypts with the recipient's key
//! (`softphonectl recording decrypt`, and Debian's `age`) to both sides'
//! audio; a kill -9 of the daemon mid-call leaves a file that recovers to
//! the audio up to shortly before the kill; `recording.retention_days`
//! deletes old recordings and nothing else.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use age::secrecy::ExposeSecret;
use common::recorded::{
    call_the_tone_peer, channels, lost_ms, opus_channels, record_and_hang_up, record_then_kill, recovered_sidecar,
};
use common::sipp::Sipp;
use common::{require_tool, Daemon};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use softphoned::audio::analysis::dominant_frequency;
use softphoned::control::client::Client;

/// A recipient's key pair: the identity file ops keep, the public key the config names.
struct Keys {
    identity: PathBuf,
    recipient: String,
}

fn keys(dir: &Path) -> Keys {
    let identity = age::x25519::Identity::generate();
    let path = dir.join("recordings-key.txt");
    std::fs::write(&path, format!("{}\n", identity.to_string().expose_secret())).unwrap();
    Keys { identity: path, recipient: identity.to_public().to_string() }
}

/// A recipient's keys, and the daemon recording every answered call
/// encrypted to them, in a call to the tone peer.
async fn encrypted_call(work: &Path) -> (Keys, (Sipp, Daemon, Client, String)) {
    let keys = keys(work);
    let call = call_the_tone_peer(work, &encrypted(&keys)).await;
    (keys, call)
}

/// `[recording]`: every answered call, encrypted to `keys`.
fn encrypted(keys: &Keys) -> String {
    format!("dir = \"recordings\"\nmode = \"always\"\nencrypt_to = [\"{}\"]", keys.recipient)
}

/// `softphonectl recording decrypt`; returns what it said.
fn decrypt(keys: &Keys, input: &Path, output: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_softphonectl"))
        .args(["recording", "decrypt", "--identity"])
        .args([&keys.identity, input, output])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "softphonectl recording decrypt: {said}");
    said
}

/// Shannon entropy in bits per byte.
fn entropy(bytes: &[u8]) -> f64 {
    let mut counts = [0usize; 256];
    for b in bytes {
        counts[*b as usize] += 1;
    }
    let n = bytes.len() as f64;
    counts.iter().filter(|c| **c > 0).map(|c| *c as f64 / n).map(|p| -p * p.log2()).sum()
}

fn sidecar(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn an_encrypted_recording_is_ciphertext_on_disk_and_decrypts_to_what_both_sides_sent() {
    if !require_tool("sipp") || !require_tool("sox") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (keys, (peer, _daemon, mut ui, call)) = encrypted_call(work.path()).await;
    let (path, saved) = record_and_hang_up(&mut ui, &call, 150, peer).await;
    assert!(path.to_str().unwrap().ends_with(".wav.age"), "{path:?}");

    // On disk: an age file, nothing of a WAV, bytes as random as a cipher makes them.
    let stored = std::fs::read(&path).unwrap();
    assert!(stored.starts_with(b"age-encryption.org/v1\n"), "an age file");
    assert!(!stored.windows(4).any(|w| w == b"RIFF" || w == b"WAVE" || w == b"fmt "), "no WAV header");
    let bits = entropy(&stored[300..]);
    assert!(bits > 7.99, "{bits:.4} bits per byte");
    let meta = sidecar(&path.with_extension("json"));
    assert_eq!(meta["encryption"], json!({ "scheme": "age", "recipients": [keys.recipient] }), "{meta}");
    assert_eq!(meta["sha256_of"], "ciphertext");
    let digest: String = Sha256::digest(&stored).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(meta["sha256"].as_str(), Some(digest.as_str()), "the sidecar hashes the file as stored");

    // Decrypted with the recipient's key: us left, them right, as long as the call.
    let wav = work.path().join("decrypted.wav");
    let said = decrypt(&keys, &path, &wav);
    assert!(!said.contains("cut short"), "{said}");
    let (left, right, rate) = channels(&wav);
    assert_eq!(dominant_frequency(&left[2400..6400], rate), Some(440.0), "left: the agent");
    assert_eq!(dominant_frequency(&right[2400..6400], rate), Some(1000.0), "right: the peer");
    let tail = |side: &[i16]| side[side.len() - 4000..].to_vec();
    assert_eq!(dominant_frequency(&tail(&right), rate), Some(1000.0), "to the end");
    let file_ms = left.len() as u64 * 1000 / u64::from(rate);
    assert_eq!(file_ms, saved["duration_ms"].as_u64().unwrap());

    // Debian's age reads it too, to the very same file: a WAV with its true sizes.
    let header = String::from_utf8_lossy(&stored[..300]).into_owned();
    assert_eq!(header.matches("-> X25519 ").count(), 1, "sealed to the recipient alone: {header}");
    if require_tool("age") {
        let by_age = work.path().join("by-age.wav");
        let mut age = Command::new("age");
        age.args(["-d", "-i"]).args([&keys.identity]).arg("-o").args([&by_age, &path]);
        assert!(age.status().unwrap().success());
        assert_eq!(std::fs::read(&wav).unwrap(), std::fs::read(&by_age).unwrap(), "the same WAV");
        let (by_age_left, _, _) = channels(&by_age);
        assert_eq!(by_age_left.len(), left.len(), "read whole by a plain WAV reader");
    }
}

#[tokio::test]
async fn an_encrypted_ogg_opus_recording_decrypts_to_both_sides() {
    if !require_tool("sipp") || !require_tool("sox") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let keys = keys(work.path());
    let recording = format!("{}\nformat = \"ogg_opus\"", encrypted(&keys));
    let (peer, _daemon, mut ui, call) = call_the_tone_peer(work.path(), &recording).await;
    let (path, _) = record_and_hang_up(&mut ui, &call, 100, peer).await;
    assert!(path.to_str().unwrap().ends_with(".opus.age"), "{path:?}");
    let stored = std::fs::read(&path).unwrap();
    assert!(!stored.windows(4).any(|w| w == b"OggS"), "no Ogg page in the clear");
    let opus = work.path().join("decrypted.opus");
    decrypt(&keys, &path, &opus);
    let (left, right) = opus_channels(&opus);
    assert_eq!(dominant_frequency(&left[4000..8000], 8000), Some(440.0), "left: the agent");
    assert_eq!(dominant_frequency(&right[4000..8000], 8000), Some(1000.0), "right: the peer");
}

#[tokio::test]
async fn a_kill_during_an_encrypted_call_leaves_a_file_that_recovers_to_shortly_before_the_kill() {
    if !require_tool("sipp") || !require_tool("sox") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (keys, (_peer, mut daemon, mut ui, call)) = encrypted_call(work.path()).await;
    // The real softphoned, SIGKILLed, then started again on the same folder.
    let recorded_ms = record_then_kill(&mut daemon, &mut ui, &call, 300).await;
    let (meta_path, meta) = recovered_sidecar(&daemon.path("recordings")).await;
    assert_eq!(meta["call"], call.as_str(), "{meta}");
    assert_eq!(meta["encryption"]["recipients"], json!([keys.recipient]), "{meta}");
    assert_eq!(meta["sha256_of"], "ciphertext", "{meta}");
    let path = meta_path.with_extension("age");
    assert!(path.exists(), "{path:?}");

    if require_tool("age") {
        let whole = Command::new("age").args(["-d", "-i"]).args([&keys.identity, &path]).output().unwrap();
        assert!(!whole.status.success(), "a plain decrypt refuses a file without its last chunk");
    }
    let wav = work.path().join("recovered.wav");
    let said = decrypt(&keys, &path, &wav);
    assert!(said.contains("cut short"), "{said}");
    // At most one 64 KiB chunk (2048 ms of 8 kHz stereo) and the ticks in flight.
    let lost_ms = lost_ms(&wav, recorded_ms);
    assert!(lost_ms <= 2300.0, "lost {lost_ms} ms of {recorded_ms} ms");
}

/// Make `path` look last written `days` days ago.
fn age_file(path: &Path, days: u64) {
    let then = SystemTime::now() - Duration::from_secs(days * 24 * 3600);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(then).unwrap();
}

#[tokio::test]
async fn retention_deletes_old_recordings_and_their_sidecars_and_nothing_else() {
    let work = tempfile::tempdir().unwrap();
    let (dir, outside) = (work.path().join("recordings"), work.path().join("elsewhere"));
    let file = |path: PathBuf, days: u64| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"audio").unwrap();
        age_file(&path, days);
        path
    };
    let old = [
        file(dir.join("2026/10/01/20261001-101010-c1-alice.wav"), 40),
        file(dir.join("2026/10/01/20261001-101010-c1-alice.json"), 40),
        file(dir.join("2026/10/02/20261002-101010-c2-bob.wav.age"), 40),
        file(dir.join("2026/10/02/20261002-101010-c2-bob.wav.json"), 40),
        file(dir.join("2026/10/03/20261003-101010-c3-carol.opus"), 31),
    ];
    let kept = [
        file(dir.join("2026/11/30/20261130-101010-c4-dave.wav"), 5),
        file(dir.join("2026/11/30/20261130-101010-c4-dave.json"), 5),
        file(dir.join("notes.txt"), 400),
        file(dir.join("2025/01/01/minutes.wav"), 400),
        file(dir.join("2025/01/01/20250101-101010-c5-erin.json"), 400),
        file(outside.join("20250101-101010-c6-frank.wav"), 400),
    ];
    std::os::unix::fs::symlink(&outside, dir.join("2025/02")).unwrap();
    let link = dir.join("2025/01/01/20250101-101010-c7-link.wav");
    std::os::unix::fs::symlink(&kept[5], &link).unwrap();

    let config = format!("[recording]\ndir = \"{}\"\nretention_days = 30", dir.display());
    let _daemon = Daemon::spawn("agent", &config).await;
    let mut swept = false;
    for _ in 0..250 {
        swept = old.iter().all(|path| !path.exists());
        if swept {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<&PathBuf> = old.iter().filter(|path| path.exists()).collect();
    assert!(swept, "old recordings and their sidecars are deleted at start: {left:?} remain");
    for path in &kept {
        assert!(path.exists(), "{path:?} is kept");
    }
    assert!(link.symlink_metadata().is_ok(), "a link is neither followed nor deleted");
}
