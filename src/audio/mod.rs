//! Where the agent's audio comes from and goes to. The media tick pulls one
//! 20 ms frame from the source and pushes one mixed frame to the sink; a
//! backend that does blocking IO (a file, the sound card) does it on its own
//! thread behind a lock-free ring, so the tick never waits.

pub mod analysis;
pub mod card;
pub mod clock;
mod denoise;
pub mod device;
mod setup;
mod tone;
mod wav;

use std::path::PathBuf;

use serde::Serialize;

use crate::media::FRAME_SAMPLES;

pub use denoise::Denoiser;
pub use setup::{device_spec, open, AudioSetup, AudioStatus, CardState, CardStatus};
pub use tone::ToneSource;
pub use wav::{WavSink, WavSource};

/// Why an audio backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The `audio.source`/`audio.sink` value is not one we know.
    #[error("invalid audio {role} {spec:?}: expected {expected}")]
    Spec { role: &'static str, spec: String, expected: &'static str },
    /// A WAV file could not be opened, read or created.
    #[error("WAV file {path}: {message}")]
    Wav { path: PathBuf, message: String },
    /// The sound card named by `audio.select` could not be opened.
    #[error(transparent)]
    Device(#[from] device::DeviceError),
}

/// Produces the agent's microphone audio, one frame at a time.
pub trait AudioSource: Send {
    fn read_frame(&mut self, frame: &mut [i16; FRAME_SAMPLES]);

    /// The clock of the sound card behind this source, which then paces
    /// the media tick; `None` (a tone, a file): the tick keeps its own time.
    fn clock(&self) -> Option<&clock::CardClock> {
        None
    }
}

/// Consumes what the agent hears. It must not block.
pub trait AudioSink: Send {
    fn write_frame(&mut self, frame: &[i16; FRAME_SAMPLES]);

    /// As [`AudioSource::clock`].
    fn clock(&self) -> Option<&clock::CardClock> {
        None
    }
}

/// What the daemon reports about a backend in `daemon.status`: it never
/// pretends to have a sound card it does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BackendInfo {
    /// `device` (a sound card), `tone`, `wav` or `null`.
    pub kind: String,
    /// The configured value, e.g. `device`, `tone:1000` or `wav:/path`.
    pub spec: String,
    /// The sound card in use, when `kind` is `device`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Why the sound card asked for is not in use (`kind` is then `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

pub(crate) struct Silence;

impl AudioSource for Silence {
    fn read_frame(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        frame.fill(0);
    }
}

pub(crate) struct Discard;

impl AudioSink for Discard {
    fn write_frame(&mut self, _frame: &[i16; FRAME_SAMPLES]) {}
}

fn kind_of(spec: &str) -> (&str, &str) {
    spec.split_once(':').unwrap_or((spec, ""))
}

/// Open `audio.source`: `tone:HZ`, `wav:PATH` or `null`.
pub fn open_source(spec: &str) -> Result<(Box<dyn AudioSource>, BackendInfo), AudioError> {
    let bad = || AudioError::Spec {
        role: "source",
        spec: spec.into(),
        expected: "device, device:NAME, jack, jack:CLIENT, tone:HZ, wav:PATH or null",
    };
    let (kind, arg) = kind_of(spec);
    let source: Box<dyn AudioSource> = match kind {
        "null" if arg.is_empty() => Box::new(Silence),
        "tone" => Box::new(ToneSource::new(
            arg.parse::<f64>()
                .ok()
                .filter(|hz| *hz > 0.0 && *hz < f64::from(crate::media::PCM_RATE) / 2.0)
                .ok_or_else(bad)?,
        )),
        "wav" if !arg.is_empty() => Box::new(WavSource::open(arg.as_ref())?),
        _ => return Err(bad()),
    };
    Ok((source, BackendInfo { kind: kind.into(), spec: spec.into(), device: None, fallback: None }))
}

/// Open `audio.sink`: `wav:PATH` or `null`.
pub fn open_sink(spec: &str) -> Result<(Box<dyn AudioSink>, BackendInfo), AudioError> {
    let (kind, arg) = kind_of(spec);
    let sink: Box<dyn AudioSink> = match kind {
        "null" if arg.is_empty() => Box::new(Discard),
        "wav" if !arg.is_empty() => Box::new(WavSink::create(arg.as_ref())?),
        _ => {
            return Err(AudioError::Spec {
                role: "sink",
                spec: spec.into(),
                expected: "device, device:NAME, jack, jack:CLIENT, wav:PATH or null",
            })
        }
    };
    Ok((sink, BackendInfo { kind: kind.into(), spec: spec.into(), device: None, fallback: None }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_checked() {
        assert!(open_source("null").is_ok());
        assert!(open_source("tone:1000").is_ok());
        for bad in ["tone:abc", "tone:0", "tone:9000", "mic", "wav:", "null:x"] {
            let err = open_source(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(err.to_string().contains("tone:HZ"), "{err}");
        }
        assert!(open_sink("tone:100").is_err());
        assert!(open_source("wav:/nonexistent/x.wav").err().unwrap().to_string().contains("/nonexistent/x.wav"));
    }
}
