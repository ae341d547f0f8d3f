//! The sound card, through cpal. This module owns the device streams and
//! everything between them and the 20 ms media tick:
//!
//! - a dedicated `audio-device` thread that builds, plays and finally drops
//!   the cpal streams (a `cpal::Stream` may not be `Send`), one per direction
//!   asked for, started by [`open_device`] and stopped when the halves of
//!   [`DeviceAudio`] are gone;
//! - the real-time data callbacks ([`realtime`]), which only convert samples
//!   and move them through preallocated lock-free rings;
//! - the tick-side halves ([`tick`]), which resample between the device rate
//!   and [`PCM_RATE`](crate::media::PCM_RATE) (the stream is asked for that
//!   rate first, so usually they need not; a 48 kHz card, JACK's usual,
//!   goes through the cheap whole-factor filter of [`polyphase`]) and never
//!   block.
//!
//! Opening is the only honest test of a sound card: cpal reports a default
//! device even on a machine without one, so [`open_device`] builds and plays
//! the streams and waits for their first callbacks before it says yes.

#[cfg(feature = "jack")]
mod jack_client;
mod polyphase;
mod realtime;
mod streams;
mod tick;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use super::clock::CardClock;
pub use tick::{DeviceSink, DeviceSource};

/// The longest [`open_device`] waits for the device thread to report. ALSA
/// opens are quick; a hung driver or sound server must not hang the daemon.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// One device the audio system offers, as `audio.devices` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DeviceEntry {
    /// What to pass to [`open_device`]: the backend's stable identifier
    /// (for ALSA the PCM name, e.g. `default` or `hw:CARD=PCH,DEV=0`).
    pub name: String,
    /// A human-readable label, e.g. `HDA Intel PCH, ALC892 Analog`.
    pub description: String,
    /// Whether `None` in [`open_device`] means this device.
    pub is_default: bool,
}

/// Every capture and playback device, defaults first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DeviceList {
    pub inputs: Vec<DeviceEntry>,
    pub outputs: Vec<DeviceEntry>,
}

/// The devices the system offers: ALSA's, then a running JACK server's
/// (`jack:CLIENT`). Empty lists when there is no audio system; it never
/// fails. Blocking (ALSA probes cards): call it off the run loop.
pub fn list_devices() -> DeviceList {
    let (mut list, jack) = (streams::list(), jack_client::list());
    list.inputs.extend(jack.inputs);
    list.outputs.extend(jack.outputs);
    list
}

/// Why the sound card could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No audio host (ALSA, JACK) could be initialised at all.
    #[error("no audio system is available: {0}")]
    NoHost(String),
    /// The requested device name is not among the devices the host offers.
    #[error("no {role} device named {name:?}; known {role} devices: {known:?}")]
    NotFound { role: &'static str, name: String, known: Vec<String> },
    /// The device exists but no stream could be built or started on it.
    #[error("no {role} device could be opened: {device}: {message}")]
    Open { role: &'static str, device: String, message: String },
    /// The stream started but its callback never ran: a device that only
    /// pretends to exist (or a stuck driver).
    #[error("no {role} device could be opened: {device} started but delivered no audio within {waited:?}")]
    Silent { role: &'static str, device: String, waited: Duration },
    /// No resampler exists between the device rate and the media rate.
    #[error("cannot resample the device's audio: {0}")]
    Resampler(String),
    /// The device thread did not report back in time.
    #[error("opening the audio devices did not finish within {0:?}")]
    Timeout(Duration),
    /// The device thread could not be started or died.
    #[error("audio device thread failed: {0}")]
    Thread(String),
}

/// Which device a direction uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The system's default device.
    Default,
    /// A device by its identifier, as [`list_devices`] names it.
    Named(String),
    /// A port of our JACK client connected to the ports of this JACK client
    /// (`system`: the server's hardware).
    Jack(String),
}

/// The opened sound card: hand `source` and `sink` to the media engine. The
/// streams stop when both are dropped. A direction not asked for is `None`
/// and has no stream.
pub struct DeviceAudio {
    pub source: Option<DeviceSource>,
    pub sink: Option<DeviceSink>,
    /// The identifier of the capture device actually opened (`default` when none was named).
    pub input_name: Option<String>,
    pub output_name: Option<String>,
    pub health: DeviceHealth,
}

/// Open the capture and/or playback device (`None`: that direction is not
/// wanted and no stream is built for it) and start their streams. Blocks up
/// to a few seconds: call it off the run loop.
pub fn open_device(input: Option<&DeviceChoice>, output: Option<&DeviceChoice>) -> Result<DeviceAudio, DeviceError> {
    open_clocked(input, output, None)
}

/// [`open_device`], the callback of the capture stream (of the playback
/// stream without one) pulsing `clock` at each frame.
pub(super) fn open_clocked(
    input: Option<&DeviceChoice>,
    output: Option<&DeviceChoice>,
    clock: Option<&CardClock>,
) -> Result<DeviceAudio, DeviceError> {
    let health = DeviceHealth::default();
    let request = streams::Request { input: input.cloned(), output: output.cloned(), clock: clock.cloned() };
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let counters = health.0.clone();
    let thread = std::thread::Builder::new()
        .name("audio-device".into())
        .spawn(move || streams::run(request, counters, ready_tx, stop_rx))
        .map_err(|e| DeviceError::Thread(e.to_string()))?;
    let opened = match ready_rx.recv_timeout(OPEN_TIMEOUT) {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        // The thread is stuck inside the audio system; it exits by itself
        // (dropping whatever it opened) if that ever returns.
        Err(mpsc::RecvTimeoutError::Timeout) => return Err(DeviceError::Timeout(OPEN_TIMEOUT)),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let reason = thread.join().err().and_then(panic_message).unwrap_or_else(|| "exited".into());
            return Err(DeviceError::Thread(reason));
        }
    };
    let streams = Arc::new(StreamsThread { stop: Some(stop_tx), thread: Some(thread) });
    let resampler_failed = |e: rubato::ResamplerConstructionError| DeviceError::Resampler(e.to_string());
    let (input_name, output_name) =
        (opened.capture.as_ref().map(|h| h.name.clone()), opened.playout.as_ref().map(|h| h.name.clone()));
    let source = opened
        .capture
        .map(|half| DeviceSource::new(half.ring, half.rate, health.0.clone(), streams.clone()))
        .transpose()
        .map_err(resampler_failed)?;
    let sink = opened
        .playout
        .map(|half| DeviceSink::new(half.ring, half.rate, health.0.clone(), streams))
        .transpose()
        .map_err(resampler_failed)?;
    Ok(DeviceAudio { source, sink, input_name, output_name, health })
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> Option<String> {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .map(|s| format!("panicked: {s}"))
}

/// Keeps the device thread (and so the streams) alive; shared by the source
/// and the sink, so the streams stop when the last of them is dropped.
struct StreamsThread {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for StreamsThread {
    fn drop(&mut self) {
        // Disconnecting the channel wakes the thread; joining makes sure the
        // device is released before anyone reopens it.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How the device is doing, readable from any thread; cheap to clone.
#[derive(Clone, Default)]
pub struct DeviceHealth(Arc<Counters>);

impl DeviceHealth {
    /// The audio system reported that a stream's device is gone (unplugged,
    /// or the stream was invalidated). The streams produce silence from then
    /// on; the daemon should say so and reopen.
    pub fn is_lost(&self) -> bool {
        self.0.lost.load(Ordering::Acquire)
    }

    pub fn counters(&self) -> DeviceCounters {
        let c = &self.0;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        DeviceCounters {
            capture_overflow_samples: get(&c.capture_overflow_samples),
            capture_dropped_samples: get(&c.capture_dropped_samples),
            capture_underrun_frames: get(&c.capture_underrun_frames),
            playout_underruns: get(&c.playout_underruns),
            playout_dropped_frames: get(&c.playout_dropped_frames),
            xruns: get(&c.xruns),
            stream_errors: get(&c.stream_errors),
        }
    }
}

impl std::fmt::Debug for DeviceHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceHealth").field("lost", &self.is_lost()).field("counters", &self.counters()).finish()
    }
}

/// Glitch counters since the device was opened, for `daemon.status` and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DeviceCounters {
    /// Device-rate samples the capture callback could not store: the tick
    /// fell more than a second behind.
    pub capture_overflow_samples: u64,
    /// Device-rate samples the tick skipped to keep capture latency bounded
    /// (the sound card's clock runs faster than the tick).
    pub capture_dropped_samples: u64,
    /// Frames the tick filled with silence because the card had not yet
    /// delivered enough audio.
    pub capture_underrun_frames: u64,
    /// Playback callbacks that ran out of audio and played silence.
    pub playout_underruns: u64,
    /// Frames the tick dropped because playback was already too far ahead.
    pub playout_dropped_frames: u64,
    /// Over- and underruns the audio system itself reported.
    pub xruns: u64,
    /// Other stream errors the audio system reported.
    pub stream_errors: u64,
}

/// Shared between the real-time callbacks, the tick halves and observers;
/// only atomics, so every side updates it without locking.
#[derive(Default)]
struct Counters {
    lost: AtomicBool,
    capture_overflow_samples: AtomicU64,
    capture_dropped_samples: AtomicU64,
    capture_underrun_frames: AtomicU64,
    playout_underruns: AtomicU64,
    playout_dropped_frames: AtomicU64,
    xruns: AtomicU64,
    stream_errors: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A build without the `jack` feature (which needs JACK's pkg-config file to
/// build): the same interface, and `jack` devices fail to open saying why.
#[cfg(not(feature = "jack"))]
mod jack_client {
    use std::sync::Arc;

    use super::streams::Callback;
    use super::{Counters, DeviceError};

    pub(super) fn list() -> super::DeviceList {
        super::DeviceList::default()
    }

    /// Never made: opening always fails.
    pub(super) enum JackClient {}

    pub(super) enum RunningJackClient {}

    impl JackClient {
        pub(super) fn open(_: &Arc<Counters>) -> Result<JackClient, DeviceError> {
            Err(DeviceError::NoHost(
                "JACK: this softphoned was built without JACK support (cargo feature `jack`)".into(),
            ))
        }

        pub(super) fn label(peer: &str) -> String {
            format!("jack:{peer}")
        }

        pub(super) fn rate(&self) -> u32 {
            match *self {}
        }

        pub(super) fn add(&mut self, _: &str, _: Callback) -> Result<(), DeviceError> {
            match *self {}
        }

        pub(super) fn activate(self) -> Result<RunningJackClient, DeviceError> {
            match self {}
        }
    }
}
