//! The agent's sound card from the run loop's side: opening it off the loop
//! (a card can take seconds), `audio.devices`, `audio.select` mid-call,
//! and falling back to null when the card disappears, then reconnecting
//! when it returns. Every change is published as `audio.device`.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Daemon;
use crate::audio::{self, AudioError, AudioSetup};
use crate::control::api::{self, AudioChange, AudioDeviceEvent, AudioSelectParams};
use crate::control::rpc::RpcError;

/// How often a lost card is tried again.
const RECONNECT_EVERY: Duration = Duration::from_secs(2);

/// An open finished on a blocking thread, and why it was asked for.
pub(super) struct Opened {
    why: AudioChange,
    specs: (String, String),
    result: Result<AudioSetup, AudioError>,
}

/// Open `specs` on a blocking thread; the result comes back on `done`.
pub(super) fn open_in_background(specs: (String, String), why: AudioChange, done: mpsc::UnboundedSender<Opened>) {
    tokio::task::spawn_blocking(move || {
        let result = audio::open(&specs.0, &specs.1);
        let _ = done.send(Opened { why, specs, result });
    });
}

impl Daemon {
    /// `audio.select`: the switch happens in the background and is told by
    /// `audio.device`; calls keep their media meanwhile.
    pub(super) fn select_audio(&mut self, params: AudioSelectParams) -> Result<(), RpcError> {
        if params.input.is_none() && params.output.is_none() {
            return Err(RpcError::invalid_params("give input, output or both (names from audio.devices)"));
        }
        let spec =
            |name: Option<String>, current: &String| name.map(|n| format!("device:{n}")).unwrap_or(current.clone());
        let specs = (spec(params.input, &self.audio_specs.0), spec(params.output, &self.audio_specs.1));
        open_in_background(specs, AudioChange::Selected, self.audio_done.clone());
        Ok(())
    }

    pub(super) fn on_audio_opened(&mut self, opened: Opened, now: Instant) {
        match opened.result {
            // A card was asked for and did not open: nothing changes.
            Ok(setup) if wanted_card_missing(&opened.specs, &setup) => {
                if opened.why == AudioChange::Reconnected {
                    self.reconnect_at = Some(now + RECONNECT_EVERY);
                    return;
                }
                let why = [&setup.status.source, &setup.status.sink].into_iter().find_map(|b| b.fallback.clone());
                tracing::warn!(error = ?why, "audio.select: the card did not open; the old backends stay");
                self.publish_audio(AudioChange::SelectFailed, why);
            }
            Ok(setup) => {
                self.reconnect_at = None;
                self.audio_specs = opened.specs;
                self.use_audio(setup, opened.why, None);
            }
            Err(e) => {
                tracing::warn!(error = %e, "audio switch failed; the old backends stay");
                self.publish_audio(AudioChange::SelectFailed, Some(e.to_string()));
            }
        }
    }

    fn use_audio(&mut self, setup: AudioSetup, why: AudioChange, error: Option<String>) {
        self.media.replace_audio(setup.source, setup.sink);
        self.audio_health = setup.health;
        self.audio_status = setup.status;
        tracing::info!(?why, source = ?self.audio_status.source, sink = ?self.audio_status.sink, "audio backends");
        self.publish_audio(why, error);
    }

    /// Once per tick: a card that vanished is replaced by null, and tried
    /// again every few seconds.
    pub(super) fn watch_audio(&mut self, now: Instant) {
        if self.audio_health.as_ref().is_some_and(|h| h.is_lost()) {
            tracing::warn!("sound card lost: falling back to the null backend");
            let mut null = audio::open("null", "null").expect("null always opens");
            let gone = Some("the sound card disappeared".to_string());
            for (info, spec) in
                [(&mut null.status.source, &self.audio_specs.0), (&mut null.status.sink, &self.audio_specs.1)]
            {
                info.spec = spec.clone();
                info.fallback = gone.clone();
            }
            self.use_audio(null, AudioChange::Lost, gone);
            self.reconnect_at = Some(now + RECONNECT_EVERY);
        }
        if self.reconnect_at.is_some_and(|at| at <= now) {
            self.reconnect_at = None;
            open_in_background(self.audio_specs.clone(), AudioChange::Reconnected, self.audio_done.clone());
        }
    }

    fn publish_audio(&self, change: AudioChange, error: Option<String>) {
        let event = AudioDeviceEvent { change, audio: self.audio_status.clone(), error };
        let params = serde_json::to_value(event).expect("plain struct");
        self.publish(crate::control::server::Notification::new(api::event::AUDIO_DEVICE, &params));
    }
}

/// A sound card was asked for (by either role) and none opened.
fn wanted_card_missing(specs: &(String, String), setup: &AudioSetup) -> bool {
    let wants_card = specs.0.starts_with("device") || specs.1.starts_with("device");
    wants_card && setup.health.is_none()
}
