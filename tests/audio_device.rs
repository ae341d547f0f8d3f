//! The sound-card backend against real ALSA streams, on machines without a
//! sound card: ALSA's software plugins (configs in tests/alsa/) stand in for
//! the card. ALSA reads `ALSA_CONFIG_PATH` once per process, so every scenario
//! runs in a child process: the visible test re-executes this binary with the
//! config in its environment and runs the matching ignored `child_*` test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::alsa::{
    alsa_config, loud_windows, start_microphone, PacedSpeaker, SoftwareCard, CARD_RATE, PLAYBACK_CHANNELS,
};

use common::alsa::TONE_RMS;
use softphoned::audio::analysis::{dominant_frequency, rms};
use softphoned::audio::device::{list_devices, open_device, DeviceChoice};
use softphoned::audio::{AudioSink, AudioSource, ToneSource};
use softphoned::media::{FRAME_SAMPLES, PCM_RATE};

/// Set in a child's environment to the directory holding its FIFOs.
const SCENARIO_DIR: &str = "SOFTPHONED_TEST_ALSA_DIR";
/// Set in a child's environment to `INPUT,OUTPUT` to open devices by name.
const SCENARIO_DEVICES: &str = "SOFTPHONED_TEST_ALSA_DEVICES";
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

const TICK: Duration = Duration::from_millis(20);
/// What the card's microphone hears, distinct from what we play.
const MIC_HZ: f64 = 440.0;
const SPEAKER_HZ: f64 = 1000.0;

/// Run `child_test` of this binary with ALSA reading `config`; return its output.
fn run_child(child_test: &str, config: &Path, dir: &Path, devices: Option<&str>) -> String {
    let mut command = Command::new(std::env::current_exe().expect("test binary path"));
    if let Some(devices) = devices {
        command.env(SCENARIO_DEVICES, devices);
    }
    let child = command
        .args([child_test, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("ALSA_CONFIG_PATH", config)
        .env(SCENARIO_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start child test process");
    let pid = child.id();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || done_tx.send(child.wait_with_output()));
    let Ok(output) = done_rx.recv_timeout(CHILD_TIMEOUT) else {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        panic!("{child_test} did not finish within {CHILD_TIMEOUT:?}");
    };
    let output = output.expect("wait for child test process");
    let text = format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{child_test} failed:\n{text}");
    assert!(text.contains("test result: ok. 1 passed"), "{child_test} did not run:\n{text}");
    text
}

/// Run `child_software_card` on a fresh software card. One at a time: the
/// card is paced by sleeping threads, and two cards at once on a small
/// machine starve each other.
fn with_software_card(devices: Option<&str>) {
    static ONE_CARD_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _card = ONE_CARD_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let card = SoftwareCard::new("file-card.conf.in");
    let output = run_child("child_software_card", &card.config, card.dir.path(), devices);
    println!("{output}");
}

#[test]
fn default_device_plays_and_captures_through_alsa_software_card() {
    with_software_card(None);
}

#[test]
fn named_devices_play_and_capture_through_alsa_software_card() {
    with_software_card(Some("softphoned_mic,softphoned_speaker"));
}

#[test]
fn missing_card_fails_quickly_and_clearly() {
    let dir = tempfile::tempdir().unwrap();
    run_child("child_no_usable_device", &alsa_config("missing-card.conf"), dir.path(), None);
}

#[test]
fn configuration_without_any_pcm_fails_quickly_and_clearly() {
    let dir = tempfile::tempdir().unwrap();
    run_child("child_no_usable_device", &alsa_config("no-pcm.conf"), dir.path(), None);
}

#[test]
#[ignore = "child process of the ALSA tests above; does nothing on its own"]
fn child_no_usable_device() {
    if std::env::var_os(SCENARIO_DIR).is_none() {
        return;
    }
    let started = Instant::now();
    let devices = list_devices();
    println!("devices: {devices:?}");
    let default = Some(&DeviceChoice::Default);
    let error = open_device(default, default).err().expect("no usable card, yet the device opened");
    let message = error.to_string();
    println!("open_device: {message}");
    assert!(message.starts_with("no input device could be opened: default: "), "{message}");
    let missing = DeviceChoice::Named("no-such-device".into());
    let error = open_device(Some(&missing), None).err().expect("a device that does not exist opened");
    assert!(error.to_string().starts_with("no input device named \"no-such-device\""), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[test]
#[ignore = "child process of the ALSA tests above; does nothing on its own"]
fn child_software_card() {
    let Some(dir) = std::env::var_os(SCENARIO_DIR).map(PathBuf::from) else { return };
    let speaker = PacedSpeaker::start(dir.join("playback.fifo"));
    let stop_mic = start_microphone(dir.join("capture.fifo"), MIC_HZ);

    let devices = list_devices();
    println!("devices: {devices:?}");
    assert!(devices.inputs.iter().any(|d| d.name == "default" && d.is_default), "{devices:?}");
    assert!(devices.outputs.iter().any(|d| d.name == "softphoned_speaker" && !d.is_default), "{devices:?}");

    let names = std::env::var(SCENARIO_DEVICES).ok();
    let (input, output) =
        names.as_deref().map(|n| n.split_once(',').expect("INPUT,OUTPUT")).unwrap_or(("default", "default"));
    let choice = |name: &str| match name {
        "default" => DeviceChoice::Default,
        name => DeviceChoice::Named(name.into()),
    };
    let audio = open_device(Some(&choice(input)), Some(&choice(output))).expect("open the software card");
    assert_eq!((audio.input_name.as_deref(), audio.output_name.as_deref()), (Some(input), Some(output)));
    let health = audio.health.clone();
    let (mut source, mut sink) = (audio.source.expect("capture asked for"), audio.sink.expect("playback asked for"));
    speaker.forget_earlier_sessions();

    // 1.5 s of a call, paced like the daemon's media tick.
    let (mut tone, mut frame, mut captured) = (ToneSource::new(SPEAKER_HZ), [0i16; FRAME_SAMPLES], vec![]);
    let mut next_tick = Instant::now();
    for _ in 0..75 {
        tone.read_frame(&mut frame);
        sink.write_frame(&frame);
        source.read_frame(&mut frame);
        captured.extend_from_slice(&frame);
        next_tick += TICK;
        std::thread::sleep(next_tick.saturating_duration_since(Instant::now()));
    }
    assert!(!health.is_lost());
    let counters = health.counters();
    println!("counters: {counters:?}");
    drop((source, sink));
    let played = speaker.finish();
    stop_mic.store(true, Ordering::Release);

    // What the card played: our tone, resampled to 48 kHz, at full level.
    assert!(played.chunks_exact(PLAYBACK_CHANNELS).all(|f| f[1] == f[0]), "both speakers play the same");
    let left: Vec<i16> = played.chunks_exact(PLAYBACK_CHANNELS).map(|f| f[0]).collect();
    let tone_windows = loud_windows(&left, CARD_RATE);
    println!("played {} samples, {} loud 100 ms windows", left.len(), tone_windows.len());
    assert!(tone_windows.len() >= 10, "at most {} of 15 tone windows played", tone_windows.len());
    for window in &tone_windows {
        assert_near_tone(window, CARD_RATE, SPEAKER_HZ);
        assert!((rms(window) / TONE_RMS - 1.0).abs() < 0.1, "played level {}", rms(window));
    }
    // What the card's microphone heard reached the tick as frames at the media rate.
    // The software card may glitch while ALSA starts it (a short FIFO read
    // inserts a gap), so the first 200 ms are start-up, not evidence.
    let heard = loud_windows(&captured[PCM_RATE as usize / 5..], PCM_RATE);
    println!("captured {} samples, {} loud 100 ms windows", captured.len(), heard.len());
    assert!(heard.len() >= 10, "only {} of 13 capture windows carried audio", heard.len());
    for window in &heard {
        assert_near_tone(window, PCM_RATE, MIC_HZ);
        assert!((rms(window) / TONE_RMS - 1.0).abs() < 0.1, "captured level {}", rms(window));
    }
}

/// The software card is paced by sleeping threads: when one is late, a short
/// FIFO read leaves a gap of a few milliseconds in its audio, which moves a
/// 100 ms window's peak by one 10 Hz analysis step. More would be our fault.
fn assert_near_tone(window: &[i16], rate: u32, hz: f64) {
    let found = dominant_frequency(window, rate).expect("a loud window has a frequency");
    assert!((found - hz).abs() <= 10.0, "{found} Hz where {hz} Hz was expected");
}
