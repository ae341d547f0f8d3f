//! The agent's sound card from the run loop's side. The card is opened off
//! the loop (it can take seconds) when a call's media starts, and closed
//! [`IDLE_GRACE`](crate::audio::card::IDLE_GRACE) after the last call's media
//! ends, so an idle daemon costs nothing for it; it is also opened once at
//! start-up, to say at once whether it works. Also `audio.select` mid-call,
//! and falling back to null when the card cannot be had (or disappears),
//! trying again while a call needs it. Every change is published as
//! `audio.device`, and `daemon.status` tells the card's state.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Daemon;
use crate::audio::card::{Card, Demand};
use crate::audio::device::{DeviceAudio, DeviceError, DeviceHealth};
use crate::audio::{self, AudioError, AudioSetup, AudioStatus, BackendInfo, CardState, CardStatus};
use crate::call::CallId;
use crate::control::api::{self, AudioChange, AudioDeviceEvent, AudioSelectParams};
use crate::control::rpc::RpcError;

/// How often a card that could not be opened is tried again while a call
/// needs it.
const RECONNECT_EVERY: Duration = Duration::from_secs(2);

/// Blocking audio work, done off the loop.
pub(super) enum Job {
    /// Set up new specs and open their card (`audio.select`).
    Select((String, String)),
    /// Open the card of this generation.
    Open(Card, u64),
}

/// A job's result, for [`Daemon::on_audio_opened`]. One per open, seconds
/// apart at most: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Opened {
    Selected { specs: (String, String), result: Result<(AudioSetup, Option<DeviceAudio>), AudioError> },
    Card { generation: u64, result: Result<DeviceAudio, DeviceError>, took: Duration },
}

impl Job {
    /// Do it, here and now: blocks for as long as the card takes.
    pub(super) fn run(self) -> Opened {
        match self {
            Job::Select(specs) => {
                let result = audio::open(&specs.0, &specs.1).and_then(|setup| {
                    let device = setup.card.as_ref().map(Card::open).transpose()?;
                    Ok((setup, device))
                });
                Opened::Selected { specs, result }
            }
            Job::Open(card, generation) => {
                let asked = Instant::now();
                let result = card.open();
                Opened::Card { generation, result, took: asked.elapsed() }
            }
        }
    }

    /// Run on a blocking thread; the result comes back on `done`.
    fn spawn(self, done: &mpsc::UnboundedSender<Opened>) {
        let done = done.clone();
        tokio::task::spawn_blocking(move || {
            let _ = done.send(self.run());
        });
    }
}

/// Dropping an opened card waits for its device thread: not on the loop.
fn drop_off_loop(thing: impl Send + 'static) {
    tokio::task::spawn_blocking(move || drop(thing));
}

/// The daemon's audio: what is configured, and where the card stands.
pub(super) struct AudioState {
    /// What `daemon.status` and `audio.devices` report.
    pub(super) status: AudioStatus,
    /// `audio.source`/`audio.sink` as now chosen (config, then `audio.select`).
    specs: (String, String),
    /// Set when a role is the sound card.
    card: Option<Card>,
    /// Counts the cards `card` has been: an open of a card since replaced is dropped.
    generation: u64,
    state: CardState,
    /// Why the card is unavailable.
    why: Option<String>,
    /// Set while the card is open: it says when the card is gone.
    health: Option<DeviceHealth>,
    /// The devices last opened, for the status.
    names: (Option<String>, Option<String>),
    /// When the open under way was asked for, to time it.
    asked: Option<Instant>,
    last_open: Option<Duration>,
    /// When to try an unavailable card again.
    retry_at: Option<Instant>,
    demand: Demand<CallId>,
    done: mpsc::UnboundedSender<Opened>,
}

impl AudioState {
    /// An open card may vanish or fall idle, an unavailable one is retried:
    /// both need the run loop's housekeeping timer; a closed card does not.
    pub(super) fn needs_watching(&self) -> bool {
        match self.state {
            CardState::Idle => false,
            CardState::Open | CardState::Opening => true,
            CardState::Unavailable => self.retry_at.is_some(),
        }
    }

    /// `setup` as [`audio::open`] made it, its card still closed.
    pub(super) fn new(
        setup_status: AudioStatus,
        card: Option<Card>,
        specs: (String, String),
        done: mpsc::UnboundedSender<Opened>,
        now: Instant,
    ) -> Self {
        AudioState {
            status: setup_status,
            specs,
            card,
            generation: 0,
            state: CardState::Idle,
            why: None,
            health: None,
            names: (None, None),
            asked: None,
            last_open: None,
            retry_at: None,
            demand: Demand::new(now),
            done,
        }
    }

    /// The start-up open of the card, to run (blocking) before the loop starts.
    pub(super) fn first_open(card: Option<&Card>) -> Option<Job> {
        card.map(|card| Job::Open(card.clone(), 0))
    }

    fn set_state(&mut self, state: CardState) {
        self.state = state;
        let Some(card) = &self.card else { return };
        let why = self.why.as_deref().filter(|_| state == CardState::Unavailable);
        let info = |spec: &str, name: &Option<String>| match why {
            Some(why) => BackendInfo::fallback(spec, why),
            None => BackendInfo::card(spec, name.as_deref()),
        };
        if card.has_input() {
            self.status.source = info(&self.specs.0, &self.names.0);
        }
        if card.has_output() {
            self.status.sink = info(&self.specs.1, &self.names.1);
        }
        let last_open_ms = self.last_open.map(|took| took.as_millis() as u64);
        self.status.card = Some(CardStatus { state, last_open_ms });
    }
}

impl Daemon {
    /// `audio.select`: the switch happens in the background and is told by
    /// `audio.device`; calls keep their media meanwhile.
    pub(super) fn select_audio(&mut self, params: AudioSelectParams) -> Result<(), RpcError> {
        if params.input.is_none() && params.output.is_none() {
            return Err(RpcError::invalid_params("give input, output or both (names from audio.devices)"));
        }
        let current = &self.audio.specs;
        let spec =
            |name: Option<String>, current: &String| name.map(|n| audio::device_spec(&n)).unwrap_or(current.clone());
        let specs = (spec(params.input, &current.0), spec(params.output, &current.1));
        Job::Select(specs).spawn(&self.audio.done);
        Ok(())
    }

    /// `call`'s media started: it needs the card, now.
    pub(super) fn audio_needed_by(&mut self, call: &CallId, now: Instant) {
        self.audio.demand.start(call.clone());
        if self.audio.state == CardState::Unavailable {
            // Retry at once: the agent is on a call, and the card may be back.
            self.audio.retry_at = Some(now);
        }
        self.keep_card(now);
    }

    /// `call`'s media ended.
    pub(super) fn audio_released_by(&mut self, call: &CallId, now: Instant) {
        self.audio.demand.stop(call, now);
    }

    pub(super) fn on_audio_opened(&mut self, opened: Opened, now: Instant) {
        match opened {
            Opened::Selected { specs, result: Ok((setup, device)) } => {
                if let Some(old) = self.audio.card.take() {
                    drop_off_loop(old.unplug());
                }
                self.media.replace_audio(setup.source, setup.sink);
                let audio = &mut self.audio;
                (audio.generation, audio.card, audio.specs, audio.status) =
                    (audio.generation + 1, setup.card, specs, setup.status);
                match device {
                    Some(device) => self.plug(device, now),
                    None => self.audio.health = None,
                }
                tracing::info!(source = ?self.audio.status.source, sink = ?self.audio.status.sink, "audio selected");
                self.publish_audio(AudioChange::Selected, None);
            }
            Opened::Selected { result: Err(e), .. } => {
                tracing::warn!(error = %e, "audio.select: not switched; the old backends stay");
                self.publish_audio(AudioChange::SelectFailed, Some(e.to_string()));
            }
            Opened::Card { generation, result, .. } if generation != self.audio.generation => drop_off_loop(result),
            Opened::Card { result: Ok(device), took, .. } => {
                let was = self.audio.state;
                self.plug(device, now);
                tracing::info!(
                    device_ms = took.as_millis() as u64, total_ms = ?self.audio.status.card.as_ref().and_then(|c| c.last_open_ms),
                    input = ?self.audio.names.0, output = ?self.audio.names.1, "sound card opened"
                );
                let change = if was == CardState::Unavailable { AudioChange::Reconnected } else { AudioChange::Opened };
                self.publish_audio(change, None);
            }
            Opened::Card { result: Err(e), .. } => self.card_unavailable(e.to_string(), now),
        }
    }

    /// Put an opened card in use.
    fn plug(&mut self, device: DeviceAudio, now: Instant) {
        let Some(card) = &self.audio.card else { return drop_off_loop(device) };
        let (plugged, old) = card.plug(device);
        drop_off_loop(old);
        let audio = &mut self.audio;
        audio.health = Some(plugged.health);
        audio.names = (plugged.input_name, plugged.output_name);
        audio.last_open = audio.asked.take().map(|asked| now.saturating_duration_since(asked)).or(audio.last_open);
        (audio.why, audio.retry_at) = (None, None);
        audio.set_state(CardState::Open);
    }

    /// The card could not be opened, or went away: its roles are null until
    /// it is back, and it is tried again while a call needs it.
    fn card_unavailable(&mut self, why: String, now: Instant) {
        if let Some(card) = &self.audio.card {
            drop_off_loop(card.unplug());
        }
        let audio = &mut self.audio;
        let news = audio.state != CardState::Unavailable || audio.why.as_ref() != Some(&why);
        (audio.health, audio.asked, audio.retry_at) = (None, None, Some(now + RECONNECT_EVERY));
        if news {
            tracing::warn!(error = %why, "sound card unavailable: using the null backend instead");
            audio.why = Some(why.clone());
            audio.set_state(CardState::Unavailable);
            self.publish_audio(AudioChange::Lost, Some(why));
        }
    }

    /// Once per tick: notice a card that vanished, and open or close the
    /// card as calls need it.
    pub(super) fn watch_audio(&mut self, now: Instant) {
        if self.audio.health.as_ref().is_some_and(|h| h.is_lost()) {
            self.card_unavailable("the sound card disappeared".into(), now);
        }
        self.keep_card(now);
    }

    /// Open the card when calls want it and it is closed, close it when
    /// they have not for the grace.
    fn keep_card(&mut self, now: Instant) {
        let audio = &mut self.audio;
        let Some(card) = &audio.card else { return };
        let wanted = audio.demand.wanted(now);
        let retry_due = audio.retry_at.is_some_and(|at| at <= now);
        match audio.state {
            CardState::Idle | CardState::Unavailable if wanted && (audio.state == CardState::Idle || retry_due) => {
                audio.asked = Some(now);
                audio.retry_at = None;
                Job::Open(card.clone(), audio.generation).spawn(&audio.done);
                if audio.state == CardState::Idle {
                    audio.set_state(CardState::Opening);
                }
            }
            CardState::Open if !wanted => {
                drop_off_loop(card.unplug());
                audio.health = None;
                audio.set_state(CardState::Idle);
                tracing::info!("no call needs audio: sound card closed");
                self.publish_audio(AudioChange::Idle, None);
            }
            _ => {}
        }
    }

    fn publish_audio(&self, change: AudioChange, error: Option<String>) {
        let event = AudioDeviceEvent { change, audio: self.audio.status.clone(), error };
        let params = serde_json::to_value(event).expect("plain struct");
        self.publish(crate::control::server::Notification::new(api::event::AUDIO_DEVICE, &params));
    }
}
