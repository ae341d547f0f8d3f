//! The ALSA software card the sound-card tests use on machines without one
//! (configs in tests/alsa/): FIFOs in a temporary folder, an ALSA config
//! naming them, and threads that pace the card by reading and writing the
//! FIFOs at the card's rate, as real hardware would.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use softphoned::audio::analysis::rms;

/// The test card's raw formats, as fixed in tests/alsa/*.conf.in.
pub const CARD_RATE: u32 = 48000;
pub const PLAYBACK_CHANNELS: usize = 2;

/// ToneSource and the test microphone both use half of full scale.
pub const TONE_RMS: f64 = 16384.0 / std::f64::consts::SQRT_2;

pub fn alsa_config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/alsa").join(name)
}

/// A software card: its folder, FIFOs and the ALSA config to point
/// `ALSA_CONFIG_PATH` at.
pub struct SoftwareCard {
    pub dir: tempfile::TempDir,
    pub playback: PathBuf,
    pub capture: PathBuf,
    pub config: PathBuf,
}

impl SoftwareCard {
    /// The card of `template` (a tests/alsa/*.conf.in), with fresh FIFOs.
    pub fn new(template: &str) -> SoftwareCard {
        let dir = tempfile::tempdir().unwrap();
        let (playback, capture) = (dir.path().join("playback.fifo"), dir.path().join("capture.fifo"));
        mkfifo(&playback);
        mkfifo(&capture);
        let text = std::fs::read_to_string(alsa_config(template))
            .unwrap()
            .replace("@PLAYBACK_FIFO@", playback.to_str().unwrap())
            .replace("@CAPTURE_FIFO@", capture.to_str().unwrap());
        let config = dir.path().join("asound.conf");
        std::fs::write(&config, text).unwrap();
        SoftwareCard { dir, playback, capture, config }
    }
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Paces the card's output: reads the playback FIFO at 48 kHz stereo 16-bit,
/// as a sound card would consume it. ALSA opens the FIFO several times
/// (probing, then streaming); each open and close is told, with its time.
pub struct PacedSpeaker {
    events: mpsc::Receiver<(Instant, SpeakerEvent)>,
}

pub enum SpeakerEvent {
    /// ALSA opened the FIFO: the card's playback is open.
    Opened,
    Bytes(Vec<u8>),
    Closed,
}

impl PacedSpeaker {
    pub fn start(path: PathBuf) -> Self {
        let (tx, events) = mpsc::channel();
        // Left running: it may be blocked opening the FIFO when the test ends.
        std::thread::spawn(move || {
            let bytes_per_second = (CARD_RATE as usize * PLAYBACK_CHANNELS * 2) as f64;
            let mut buffer = vec![0u8; bytes_per_second as usize / 100];
            let send = |event| tx.send((Instant::now(), event)).is_ok();
            loop {
                let Ok(mut fifo) = File::open(&path) else { return };
                // A page of pipe (21 ms of audio) rather than 64 kB (341 ms),
                // so what ALSA writes is read about when a card would play it.
                // SAFETY: fcntl on a descriptor this thread owns; no memory passed.
                unsafe { libc::fcntl(fifo.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
                if !send(SpeakerEvent::Opened) {
                    return;
                }
                let mut next = Instant::now();
                loop {
                    let n = match fifo.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if !send(SpeakerEvent::Bytes(buffer[..n].to_vec())) {
                        return;
                    }
                    // Paced by what was read, not by reads: a small pipe often holds less than a slot.
                    next += Duration::from_secs_f64(n as f64 / bytes_per_second);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                if !send(SpeakerEvent::Closed) {
                    return;
                }
            }
        });
        PacedSpeaker { events }
    }

    /// The next event, if one comes within `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<(Instant, SpeakerEvent)> {
        self.events.recv_timeout(timeout).ok()
    }

    /// Once the streams run, every probing open has closed its session.
    pub fn forget_earlier_sessions(&self) {
        while self.events.try_recv().is_ok() {}
    }

    /// Everything played until the stream closed its FIFO.
    pub fn finish(self) -> Vec<i16> {
        let mut bytes = vec![];
        loop {
            match self.next(Duration::from_secs(5)).expect("the playback stream never closed").1 {
                SpeakerEvent::Bytes(chunk) => bytes.extend_from_slice(&chunk),
                SpeakerEvent::Opened => {}
                SpeakerEvent::Closed => return samples(&bytes),
            }
        }
    }
}

/// Raw S16_LE bytes as samples.
pub fn samples(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

/// Paces the card's input: writes a tone of `hz` into the capture FIFO at
/// 48 kHz mono 16-bit, half of full scale, until the returned flag is set,
/// reopening whenever ALSA reopens.
pub fn start_microphone(path: PathBuf, hz: f64) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::spawn(move || {
        let samples_per_slot = CARD_RATE as usize / 100;
        let mut n = 0u64;
        while !stopped.load(Ordering::Acquire) {
            let Ok(mut fifo) = File::options().write(true).open(&path) else { return };
            let mut next = Instant::now();
            while !stopped.load(Ordering::Acquire) {
                let slot: Vec<u8> = (0..samples_per_slot)
                    .flat_map(|_| {
                        n += 1;
                        let phase = std::f64::consts::TAU * hz * n as f64 / CARD_RATE as f64;
                        ((phase.sin() * 16384.0) as i16).to_le_bytes()
                    })
                    .collect();
                // ALSA closed its end (a probing open): reopen for the next.
                if fifo.write_all(&slot).is_err() {
                    break;
                }
                next += Duration::from_millis(10);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }
    });
    stop
}

/// The 100 ms windows of `samples` that carry signal throughout (start-up
/// silence and the windows that straddle it left out).
pub fn loud_windows(samples: &[i16], rate: u32) -> Vec<&[i16]> {
    let window = rate as usize / 10;
    samples.chunks_exact(window).filter(|w| w.chunks(window / 10).all(|part| rms(part) > TONE_RMS / 2.0)).collect()
}
