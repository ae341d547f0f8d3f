//! The sound card as the daemon keeps it: open while calls need audio and
//! closed when none has for [`IDLE_GRACE`], because a running card costs CPU
//! around the clock (its streams wake every period) and holds the device.
//!
//! The media engine keeps one [`CardSource`]/[`CardSink`] per role that is
//! the card, for as long as the configuration names it. They are slots: the
//! daemon plugs the opened device halves in and takes them out again, and
//! an empty slot is silence. So opening and closing never touches the
//! engine's other backends (a tone, a WAV file being written). The card's
//! [`CardClock`] lives as long as the slots, through every open, and
//! paces the media tick while the card runs.
//!
//! [`Demand`] is the pure rule of when the card should be open.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use super::clock::CardClock;
use super::device::{open_clocked, DeviceAudio, DeviceChoice, DeviceError, DeviceHealth, DeviceSink, DeviceSource};
use super::{AudioSink, AudioSource};
use crate::media::FRAME_SAMPLES;

/// How long the card stays open after the last call's media ends. Long
/// enough that a transfer, a consult or the next call of a dialer (which
/// follow within a second or two) find it running, and do not pay for an
/// open; short enough that an idle agent's machine soon stops waking for it.
pub const IDLE_GRACE: Duration = Duration::from_secs(3);

type Slot<T> = Arc<Mutex<Option<T>>>;

/// Lock a slot without ever waiting: the run loop holds it only to plug or
/// unplug, and the tick would rather play one frame of silence than wait.
fn try_lock<T>(slot: &Slot<T>) -> Option<MutexGuard<'_, Option<T>>> {
    match slot.try_lock() {
        Ok(guard) => Some(guard),
        // A panic elsewhere cannot leave an `Option` half-written.
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

fn lock<T>(slot: &Slot<T>) -> MutexGuard<'_, Option<T>> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The microphone, when it is the card's: silence while the card is closed.
pub struct CardSource(Slot<DeviceSource>, CardClock);

impl AudioSource for CardSource {
    fn read_frame(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        match try_lock(&self.0).as_deref_mut() {
            Some(Some(device)) => device.read_frame(frame),
            _ => frame.fill(0),
        }
    }

    fn clock(&self) -> Option<&CardClock> {
        Some(&self.1)
    }
}

/// The speaker, when it is the card's: discards while the card is closed.
pub struct CardSink(Slot<DeviceSink>, CardClock);

impl AudioSink for CardSink {
    fn write_frame(&mut self, frame: &[i16; FRAME_SAMPLES]) {
        if let Some(Some(device)) = try_lock(&self.0).as_deref_mut() {
            device.write_frame(frame);
        }
    }

    fn clock(&self) -> Option<&CardClock> {
        Some(&self.1)
    }
}

/// The daemon's handle on the card: which devices each role uses, and the
/// slots the engine reads. Cheap to clone (a clone opens on another thread).
#[derive(Clone)]
pub struct Card {
    input: Option<(DeviceChoice, Slot<DeviceSource>)>,
    output: Option<(DeviceChoice, Slot<DeviceSink>)>,
    clock: CardClock,
}

/// What [`Card::plug`] put in use.
pub struct Plugged {
    pub input_name: Option<String>,
    pub output_name: Option<String>,
    pub health: DeviceHealth,
}

/// Device halves taken out of the slots. Dropping them waits for the device
/// thread to release the card (milliseconds): drop them off the run loop.
pub struct Unplugged {
    _source: Option<DeviceSource>,
    _sink: Option<DeviceSink>,
}

impl Card {
    /// A closed card for the roles given, and the engine's ends of its slots.
    pub(super) fn new(
        input: Option<DeviceChoice>,
        output: Option<DeviceChoice>,
    ) -> (Card, Option<CardSource>, Option<CardSink>) {
        let (input, output) = (input.map(|c| (c, Slot::default())), output.map(|c| (c, Slot::default())));
        let clock = CardClock::default();
        let source = input.as_ref().map(|(_, slot)| CardSource(slot.clone(), clock.clone()));
        let sink = output.as_ref().map(|(_, slot)| CardSink(slot.clone(), clock.clone()));
        (Card { input, output, clock }, source, sink)
    }

    pub fn has_input(&self) -> bool {
        self.input.is_some()
    }

    pub fn has_output(&self) -> bool {
        self.output.is_some()
    }

    /// Open the devices of the card's roles, and only those, pulsing the
    /// card's clock. Blocks up to a few seconds: call it off the run loop.
    pub fn open(&self) -> Result<DeviceAudio, DeviceError> {
        let (input, output) = (self.input.as_ref().map(|(c, _)| c), self.output.as_ref().map(|(c, _)| c));
        open_clocked(input, output, Some(&self.clock))
    }

    /// Put opened devices in the slots; the next tick uses them. Anything the
    /// slots held before is returned, to be dropped off the run loop.
    pub fn plug(&self, audio: DeviceAudio) -> (Plugged, Unplugged) {
        let mut old = Unplugged { _source: None, _sink: None };
        if let Some((_, slot)) = &self.input {
            old._source = std::mem::replace(&mut *lock(slot), audio.source);
        }
        if let Some((_, slot)) = &self.output {
            old._sink = std::mem::replace(&mut *lock(slot), audio.sink);
        }
        (Plugged { input_name: audio.input_name, output_name: audio.output_name, health: audio.health }, old)
    }

    /// Take the devices out: the roles go silent, and once the returned
    /// halves are dropped the card is closed.
    pub fn unplug(&self) -> Unplugged {
        Unplugged {
            _source: self.input.as_ref().and_then(|(_, slot)| lock(slot).take()),
            _sink: self.output.as_ref().and_then(|(_, slot)| lock(slot).take()),
        }
    }
}

/// When the card should be open: while any call has media, and for
/// [`IDLE_GRACE`] after the last one's ended. Pure: time comes in.
pub struct Demand<K> {
    calls: HashSet<K>,
    idle_since: Instant,
}

impl<K: Hash + Eq> Demand<K> {
    /// Idle since `now`: whatever opened the card at start-up keeps it for the grace.
    pub fn new(now: Instant) -> Self {
        Demand { calls: HashSet::new(), idle_since: now }
    }

    /// `call`'s media started (again, after a re-offer: counted once).
    pub fn start(&mut self, call: K) {
        self.calls.insert(call);
    }

    /// `call`'s media ended.
    pub fn stop(&mut self, call: &K, now: Instant) {
        if self.calls.remove(call) && self.calls.is_empty() {
            self.idle_since = now;
        }
    }

    pub fn wanted(&self, now: Instant) -> bool {
        !self.calls.is_empty() || now < self.idle_since + IDLE_GRACE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_is_wanted_during_calls_and_for_the_grace_after_the_last() {
        let t0 = Instant::now();
        let mut demand = Demand::new(t0);
        assert!(demand.wanted(t0), "start-up counts as the end of a call");
        assert!(!demand.wanted(t0 + IDLE_GRACE));
        let later = t0 + 10 * IDLE_GRACE;
        demand.start("a");
        demand.start("b");
        demand.start("a");
        demand.stop(&"a", later);
        assert!(demand.wanted(later + 2 * IDLE_GRACE), "b still has media");
        let end = later + 3 * IDLE_GRACE;
        demand.stop(&"b", end);
        demand.stop(&"b", end + IDLE_GRACE);
        assert!(demand.wanted(end + IDLE_GRACE / 2));
        assert!(!demand.wanted(end + IDLE_GRACE), "a second stop does not extend the grace");
        demand.start("c");
        assert!(demand.wanted(end + 5 * IDLE_GRACE), "a new call wants it again");
    }

    #[test]
    fn empty_slots_are_silence_and_unplugging_an_empty_card_is_harmless() {
        let (card, source, sink) = Card::new(None, Some(DeviceChoice::Default));
        assert!(source.is_none() && !card.has_input() && card.has_output());
        let mut sink = sink.unwrap();
        sink.write_frame(&[1; FRAME_SAMPLES]);
        let (_, Some(mut source), _) = Card::new(Some(DeviceChoice::Default), None) else { panic!("no source") };
        let mut frame = [7; FRAME_SAMPLES];
        source.read_frame(&mut frame);
        assert_eq!(frame, [0; FRAME_SAMPLES]);
        let Unplugged { _source, _sink } = card.unplug();
        assert!(_source.is_none() && _sink.is_none());
    }
}
