//! The agent's audio as `audio.source`/`audio.sink` name it: the sound card
//! (ALSA's `device`, `device:NAME`, or a JACK server's `jack`,
//! `jack:CLIENT`; opened only for the roles that name it, and only when a
//! call needs it), or a stand-in (`tone:HZ`, `wav:PATH`, `null`); and how
//! `daemon.status` reports them.

use serde::Serialize;

use super::card::Card;
use super::device::DeviceChoice;
use super::{open_sink, open_source, AudioError, AudioSink, AudioSource, BackendInfo};

/// The JACK client whose ports are the server's hardware: what `jack` alone connects to.
const JACK_HARDWARE: &str = "system";

/// What one role asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    Device(DeviceChoice),
    Other(String),
}

impl Wanted {
    fn parse(spec: &str) -> Wanted {
        match spec.split_once(':') {
            _ if spec == "device" => Wanted::Device(DeviceChoice::Default),
            Some(("device", name)) if !name.is_empty() => Wanted::Device(DeviceChoice::Named(name.into())),
            _ if spec == "jack" => Wanted::Device(DeviceChoice::Jack(JACK_HARDWARE.into())),
            Some(("jack", peer)) if !peer.is_empty() => Wanted::Device(DeviceChoice::Jack(peer.into())),
            _ => Wanted::Other(spec.into()),
        }
    }

    fn device(&self) -> Option<DeviceChoice> {
        match self {
            Wanted::Device(choice) => Some(choice.clone()),
            Wanted::Other(_) => None,
        }
    }
}

/// The `audio.source`/`audio.sink` spec of a device as `audio.devices`
/// names it: JACK's are listed as specs already (`jack:CLIENT`, never bare
/// `jack`, which ALSA's jack plugin may name a PCM), ALSA's get `device:`.
pub fn device_spec(name: &str) -> String {
    match name.strip_prefix("jack:") {
        Some(peer) if !peer.is_empty() => name.into(),
        _ => format!("device:{name}"),
    }
}

/// The backends for the media engine, and what `daemon.status` says of them.
pub struct AudioSetup {
    pub source: Box<dyn AudioSource>,
    pub sink: Box<dyn AudioSink>,
    /// The roles as configured. A role that is the card says `device` here
    /// until the daemon knows better (see [`AudioStatus::card`]).
    pub status: AudioStatus,
    /// Set when a role is the sound card, which starts closed: the daemon
    /// opens it (off its loop) when a call needs audio.
    pub card: Option<Card>,
}

/// The audio backends in use. `tone`, `wav` and `null` are not a sound
/// card, and the daemon says so here rather than pretend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AudioStatus {
    pub source: BackendInfo,
    pub sink: BackendInfo,
    /// The sound card, when a role is configured as one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<CardStatus>,
}

/// Whether the sound card is open, and what opening it costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CardStatus {
    pub state: CardState,
    /// How long the last open took, from asking to audio flowing, in
    /// milliseconds; a call's audio waits this long after its answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_open_ms: Option<u64>,
}

/// The sound card's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardState {
    /// Its streams run: calls hear and are heard through it.
    Open,
    /// Being opened for a call; the call has silence until it is.
    Opening,
    /// Closed because no call has needed audio for a while; opened again
    /// when one does.
    Idle,
    /// It could not be opened (or disappeared): its roles use `null`, and it
    /// is tried again while a call needs it.
    Unavailable,
}

/// Set up what the specs name. A role that is the sound card gets a slot
/// that the daemon fills by opening the card (see [`Card`]); only WAV files
/// are opened here.
pub fn open(source_spec: &str, sink_spec: &str) -> Result<AudioSetup, AudioError> {
    let (input, output) = (Wanted::parse(source_spec), Wanted::parse(sink_spec));
    let (card, card_source, card_sink) = match (input.device(), output.device()) {
        (None, None) => (None, None, None),
        (input, output) => {
            let (card, source, sink) = Card::new(input, output);
            (Some(card), source, sink)
        }
    };
    let (source, source_info) = match card_source {
        Some(source) => (Box::new(source) as Box<dyn AudioSource>, BackendInfo::card(source_spec, None)),
        None => open_source(source_spec)?,
    };
    let (sink, sink_info) = match card_sink {
        Some(sink) => (Box::new(sink) as Box<dyn AudioSink>, BackendInfo::card(sink_spec, None)),
        None => open_sink(sink_spec)?,
    };
    for info in [&source_info, &sink_info].into_iter().filter(|i| i.kind != "device") {
        // Loudly, as DESIGN asks: these are stand-ins, not a sound card.
        tracing::warn!(backend = %info.spec, kind = %info.kind, "audio backend is not a sound card");
    }
    let status = AudioStatus { source: source_info, sink: sink_info, card: None };
    Ok(AudioSetup { source, sink, status, card })
}

impl BackendInfo {
    /// A role that is the card; `device` names the one last opened.
    pub fn card(spec: &str, device: Option<&str>) -> Self {
        BackendInfo { kind: "device".into(), spec: spec.into(), device: device.map(Into::into), fallback: None }
    }

    /// A role that wanted the card, which is not to be had: null, and why.
    pub fn fallback(spec: &str, why: &str) -> Self {
        BackendInfo { kind: "null".into(), spec: spec.into(), device: None, fallback: Some(why.into()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jack_names_a_jack_client_and_device_stays_alsa() {
        let jack = |peer: &str| Wanted::Device(DeviceChoice::Jack(peer.into()));
        assert_eq!(Wanted::parse("jack"), jack(JACK_HARDWARE));
        assert_eq!(Wanted::parse("jack:pulse_sink"), jack("pulse_sink"));
        assert_eq!(Wanted::parse("device:jack"), Wanted::Device(DeviceChoice::Named("jack".into())));
        assert_eq!(Wanted::parse("jack:"), Wanted::Other("jack:".into()));
        assert_eq!(device_spec("jack:system"), "jack:system");
        assert_eq!(device_spec("jack"), "device:jack", "an ALSA PCM named jack");
        assert_eq!(device_spec("hw:CARD=PCH,DEV=0"), "device:hw:CARD=PCH,DEV=0");
    }
}
