//! The sound card's clock, as the media tick follows it. A call that uses
//! the card ticks when the card has moved one more 20 ms frame through its
//! callback, not on a timer of its own: one clock, the card's, paces the
//! microphone, the speaker and the RTP we send, so the rings between the
//! callback and the tick never drift (the jitter buffer absorbs the drift
//! between the card and the peer's clock, as it must anyway), and no
//! second timer wakes the daemon beside the card's period.
//!
//! This module owns the two ends of that: [`CardClock`], which the card's
//! slots carry and the media thread reads (a count of frames, and whom to
//! wake), and [`Pulse`], which the real-time callback advances. A card
//! whose period does not divide a frame (e.g. 256 samples at 48 kHz) would
//! pace the tick unevenly, and the RTP with it: its pulse stays silent, and
//! the media thread's own timer paces the calls as it does without a card.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;

/// One card's clock, shared by its slots, the callback that pulses it and
/// the media thread that follows it. Cheap to clone.
#[derive(Clone, Default)]
pub struct CardClock(Arc<Shared>);

#[derive(Default)]
struct Shared {
    /// Frames the card has moved, over every time it was open.
    frames: AtomicU64,
    /// Whether the listener wants a wake-up per frame (only while calls tick:
    /// a card kept open through the idle grace must not wake an idle thread).
    listening: AtomicBool,
    /// The thread to wake: the media thread, the only one that listens.
    listener: OnceLock<Thread>,
}

impl CardClock {
    /// Frames the card has moved so far; it only grows.
    pub fn frames(&self) -> u64 {
        self.0.frames.load(Ordering::Acquire)
    }

    /// Have each frame wake the calling thread (or stop). The first thread
    /// that listens is the one woken, ever after.
    pub fn listen(&self, on: bool) {
        if on {
            self.0.listener.get_or_init(std::thread::current);
        }
        if self.0.listening.load(Ordering::Relaxed) != on {
            self.0.listening.store(on, Ordering::Release);
        }
    }

    /// The callback's end, for a card running `per_frame` samples to a frame.
    pub(crate) fn pulse(&self, per_frame: usize) -> Pulse {
        Pulse { shared: self.0.clone(), per_frame, pending: 0 }
    }
}

/// The real-time callback's end of a [`CardClock`]: it counts the samples
/// the card moves and, at each whole frame, counts one and wakes the
/// listener. Neither allocates, locks nor blocks: two atomics and, when the
/// listener sleeps, one futex wake.
pub(crate) struct Pulse {
    shared: Arc<Shared>,
    per_frame: usize,
    pending: usize,
}

impl Pulse {
    /// The card moved `samples` more samples (one callback's worth).
    pub(crate) fn advance(&mut self, samples: usize) {
        // Periods that do not divide a frame would pulse unevenly; such a
        // card is no clock to send by, and the timer paces instead.
        if samples == 0 || self.per_frame % samples != 0 {
            self.pending = 0;
            return;
        }
        self.pending += samples;
        if self.pending < self.per_frame {
            return;
        }
        self.pending = 0;
        self.shared.frames.fetch_add(1, Ordering::Release);
        if self.shared.listening.load(Ordering::Acquire) {
            if let Some(listener) = self.shared.listener.get() {
                // `unpark` only flips a flag and wakes a futex: it neither blocks nor allocates.
                listener.unpark();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_frame_is_counted_once_its_samples_have_gone_through() {
        let clock = CardClock::default();
        let mut pulse = clock.pulse(960);
        pulse.advance(480);
        assert_eq!(clock.frames(), 0);
        pulse.advance(480);
        assert_eq!(clock.frames(), 1);
        pulse.advance(960);
        assert_eq!(clock.frames(), 2, "a period of a whole frame pulses every time");
        let mut reopened = clock.pulse(960);
        reopened.advance(960);
        assert_eq!(clock.frames(), 3, "a card opened again counts on");
    }

    #[test]
    fn periods_that_do_not_divide_a_frame_never_pulse() {
        let clock = CardClock::default();
        let mut pulse = clock.pulse(960);
        for period in [256, 1024, 1920, 0] {
            for _ in 0..20 {
                pulse.advance(period);
            }
        }
        assert_eq!(clock.frames(), 0);
        pulse.advance(480);
        pulse.advance(256);
        pulse.advance(480);
        assert_eq!(clock.frames(), 0, "an uneven period starts the count afresh");
        pulse.advance(480);
        assert_eq!(clock.frames(), 1);
    }

    #[test]
    fn only_a_listening_thread_is_woken() {
        let clock = CardClock::default();
        let mut pulse = clock.pulse(320);
        let listener = {
            let clock = clock.clone();
            std::thread::spawn(move || {
                clock.listen(true);
                // Woken by a frame, not by the timeout (a minute).
                while clock.frames() < 3 {
                    std::thread::park_timeout(Duration::from_secs(60));
                }
                clock.listen(false);
            })
        };
        while !clock.0.listening.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        for _ in 0..3 {
            pulse.advance(320);
        }
        listener.join().unwrap();
        assert!(!clock.0.listening.load(Ordering::Acquire));
        pulse.advance(320);
        assert_eq!(clock.frames(), 4, "frames count on when nobody listens");
    }
}
