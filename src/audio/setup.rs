//! The agent's audio as `audio.source`/`audio.sink` name it: the sound card
//! (`device`, `device:NAME`) when one really opens, else the null backend in
//! its place, said loudly; or a stand-in (`tone:HZ`, `wav:PATH`, `null`).

use serde::Serialize;

use super::device::{self, DeviceHealth};
use super::{open_sink, open_source, AudioError, AudioSink, AudioSource, BackendInfo, Discard, Silence};

/// What one role asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    /// The sound card; `None` is the system default.
    Device(Option<String>),
    Other(String),
}

impl Wanted {
    fn parse(spec: &str) -> Wanted {
        match spec.split_once(':') {
            _ if spec == "device" => Wanted::Device(None),
            Some(("device", name)) if !name.is_empty() => Wanted::Device(Some(name.into())),
            _ => Wanted::Other(spec.into()),
        }
    }

    fn device(&self) -> Option<Option<&str>> {
        match self {
            Wanted::Device(name) => Some(name.as_deref()),
            Wanted::Other(_) => None,
        }
    }
}

/// The backends in use, for the media engine, `daemon.status` and `audio.device`.
pub struct AudioSetup {
    pub source: Box<dyn AudioSource>,
    pub sink: Box<dyn AudioSink>,
    pub status: AudioStatus,
    /// Set while a sound card is in use: it says when the card is gone.
    pub health: Option<DeviceHealth>,
    /// The half of an opened card that no role uses, kept so its stream lives.
    _spare: Option<Box<dyn Send>>,
}

/// The audio backends in use. `tone`, `wav` and `null` are not a sound
/// card, and the daemon says so here rather than pretend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AudioStatus {
    pub source: BackendInfo,
    pub sink: BackendInfo,
}

/// Open what the specs name. A sound card that cannot be opened is not an
/// error: the roles that wanted it get `null` and say why.
/// May block for seconds while a card is probed: call it off the run loop.
pub fn open(source_spec: &str, sink_spec: &str) -> Result<AudioSetup, AudioError> {
    let (input, output) = (Wanted::parse(source_spec), Wanted::parse(sink_spec));
    let card = match (input.device(), output.device()) {
        (None, None) => None,
        (wanted_in, wanted_out) => Some(device::open_device(wanted_in.flatten(), wanted_out.flatten())),
    };
    let (mut card, failure) = match card {
        Some(Ok(card)) => (Some(card), None),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "sound card unavailable: using the null backend instead");
            (None, Some(e.to_string()))
        }
        None => (None, None),
    };
    let health = card.as_ref().map(|c| c.health.clone());
    let (source, source_info) = match (&input, card.as_mut()) {
        (Wanted::Device(_), Some(card)) => {
            let source = std::mem::replace(&mut card.source, Box::new(Silence));
            (source, BackendInfo::device(source_spec, &card.input_name))
        }
        (Wanted::Device(_), None) => {
            (Box::new(Silence) as Box<dyn AudioSource>, BackendInfo::fallback(source_spec, &failure))
        }
        (Wanted::Other(spec), _) => open_source(spec)?,
    };
    let (sink, sink_info) = match (&output, card.as_mut()) {
        (Wanted::Device(_), Some(card)) => {
            let sink = std::mem::replace(&mut card.sink, Box::new(Discard));
            (sink, BackendInfo::device(sink_spec, &card.output_name))
        }
        (Wanted::Device(_), None) => {
            (Box::new(Discard) as Box<dyn AudioSink>, BackendInfo::fallback(sink_spec, &failure))
        }
        (Wanted::Other(spec), _) => open_sink(spec)?,
    };
    let spare = card.map(|card| match input {
        Wanted::Other(_) => Box::new(card.source) as Box<dyn Send>,
        Wanted::Device(_) => Box::new(card.sink),
    });
    for info in [&source_info, &sink_info].into_iter().filter(|i| i.kind != "device") {
        // Loudly, as DESIGN asks: these are stand-ins, not a sound card.
        tracing::warn!(backend = %info.spec, kind = %info.kind, "audio backend is not a sound card");
    }
    Ok(AudioSetup { source, sink, status: AudioStatus { source: source_info, sink: sink_info }, health, _spare: spare })
}

impl BackendInfo {
    fn device(spec: &str, name: &str) -> Self {
        BackendInfo { kind: "device".into(), spec: spec.into(), device: Some(name.into()), fallback: None }
    }

    fn fallback(spec: &str, why: &Option<String>) -> Self {
        BackendInfo { kind: "null".into(), spec: spec.into(), device: None, fallback: why.clone() }
    }
}
