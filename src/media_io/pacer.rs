//! When the media thread ticks: the pure rule (time and the card's frame
//! count come in, "tick now" or "sleep until" goes out).
//!
//! With a sound card that pulses ([`CardClock`](crate::audio::clock::CardClock)),
//! the calls tick on its frames: the card's period wakes the thread, which
//! then has exactly one frame of microphone waiting and owes the speaker
//! one, and no timer of ours runs beside the card's. Our own timer stays as
//! the fallback, one frame plus [`MARGIN`] after the card's last frame, so a
//! stalled or unplugged card never stops the calls' RTP; it then ticks
//! every 20 ms on its own until the card pulses again. Without a card (a
//! tone, a file, null, or a card whose periods do not divide a frame) the
//! timer is all there is.
//!
//! Why the tick does not run in the card's callback itself, as baresip
//! encodes in its JACK thread: the tick sends datagrams, hands frames to
//! the recorder and reports to the run loop, none of which a real-time
//! thread may wait on, and with many calls it takes milliseconds, which
//! would make the whole JACK graph (every other application on the card)
//! miss its period. Waking the media thread costs one futex wake a period.

use std::time::{Duration, Instant};

use crate::media::codec::{FRAME_SAMPLES, PCM_RATE};

/// One frame of audio.
pub(super) const TICK: Duration = Duration::from_millis((FRAME_SAMPLES as u64 * 1000) / PCM_RATE as u64);
/// How late the card's next frame may be before the timer ticks instead:
/// half a frame covers a card server's scheduling jitter on a busy machine
/// and still keeps a stalled card's calls within one frame of time.
const MARGIN: Duration = Duration::from_millis(10);
/// Behind by more than this (the machine was suspended, the thread starved),
/// the tick starts afresh instead of bursting to catch up.
const MAX_BEHIND: Duration = Duration::from_millis(200);
/// [`MAX_BEHIND`] in card frames.
const MAX_BEHIND_FRAMES: u64 = (MAX_BEHIND.as_millis() / TICK.as_millis()) as u64;

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Tick,
    /// Sleep until then, or until the card's next frame wakes the thread.
    Wait(Instant),
}

/// The tick's schedule while calls have media.
#[derive(Debug, Default)]
pub(super) struct Pacer {
    /// The timer's next tick; `None` while no call has media.
    next: Option<Instant>,
    /// Card frames already ticked for. The timer's first tick after a card
    /// frame stands in for the next, late one, and counts it (one ahead of
    /// the card), so that frame does not tick a second time when it comes;
    /// further timer ticks (a stalled card) count nothing ahead, so the
    /// card's first frame after a stall takes over again at once.
    seen: u64,
    /// Whether the last tick was on a card frame.
    on_card: bool,
}

impl Pacer {
    /// No call has media: the next tick starts a new schedule.
    pub(super) fn stop(&mut self) {
        self.next = None;
    }

    /// Whether to tick at `now`, given the card's frame count (`None`: no card).
    pub(super) fn poll(&mut self, now: Instant, card: Option<u64>) -> Step {
        let Some(next) = self.next else {
            // Media starts: at once, in step with the card's count.
            (self.seen, self.on_card) = (card.unwrap_or(0), false);
            self.next = Some(now + TICK);
            return Step::Tick;
        };
        if let Some(frames) = card {
            let due = frames.saturating_sub(self.seen);
            if due > 0 {
                // A frame late by a little is caught up at once; far behind, the backlog is skipped.
                self.seen = if due > MAX_BEHIND_FRAMES { frames } else { self.seen + 1 };
                self.next = Some(now + TICK + MARGIN);
                self.on_card = true;
                return Step::Tick;
            }
        }
        if now < next {
            return Step::Wait(next);
        }
        if let Some(frames) = card {
            self.seen = if self.on_card { self.seen + 1 } else { frames };
        }
        self.on_card = false;
        // A tick late by a little is caught up at once, so the RTP clock keeps real time.
        self.next = Some(if now - next > MAX_BEHIND { now + TICK } else { next + TICK });
        Step::Tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A card pulsing every `period` from `t0`, seen by a pacer polled every millisecond.
    struct Sim {
        pacer: Pacer,
        t0: Instant,
        ticks: Vec<Duration>,
    }

    impl Sim {
        fn new() -> Sim {
            Sim { pacer: Pacer::default(), t0: Instant::now(), ticks: vec![] }
        }

        /// Run from `from` to `to` (ms) with the card's count given per millisecond.
        fn run(&mut self, from: u64, to: u64, card: impl Fn(u64) -> Option<u64>) {
            for ms in from..to {
                let now = self.t0 + Duration::from_millis(ms);
                while self.pacer.poll(now, card(ms)) == Step::Tick {
                    self.ticks.push(now - self.t0);
                }
            }
        }

        fn ticks_in(&self, from: u64, to: u64) -> Vec<u64> {
            let range = Duration::from_millis(from)..Duration::from_millis(to);
            self.ticks.iter().filter(|t| range.contains(*t)).map(|t| t.as_millis() as u64).collect()
        }
    }

    /// A card whose frames come every `period` ms, the first at `first`.
    fn card(first: u64, period: u64) -> impl Fn(u64) -> Option<u64> {
        move |ms| Some(if ms < first { 0 } else { 1 + (ms - first) / period })
    }

    #[test]
    fn without_a_card_the_timer_ticks_every_frame() {
        let mut sim = Sim::new();
        sim.run(0, 1000, |_| None);
        assert_eq!(sim.ticks_in(0, 1000), (0..50).map(|i| i * 20).collect::<Vec<_>>());
    }

    #[test]
    fn a_running_card_paces_the_ticks_and_the_timer_stays_quiet() {
        let mut sim = Sim::new();
        // The card's frames come 7 ms after the timer would tick, and a little slow.
        let card = |ms: u64| Some(if ms < 7 { 0 } else { 1 + (ms - 7) * 1000 / 20_100 });
        sim.run(0, 2000, card);
        let ticks = sim.ticks_in(100, 2000);
        assert!(ticks.iter().all(|t| card(*t) != card(*t - 1)), "every tick on a card frame: {ticks:?}");
        let expected = (card(2000).unwrap() - card(100).unwrap()) as usize;
        assert!(ticks.len().abs_diff(expected) <= 1, "{} ticks for {expected} frames", ticks.len());
    }

    #[test]
    fn a_stalled_card_hands_over_to_the_timer_and_takes_over_again() {
        let mut sim = Sim::new();
        // Frames every 20 ms from 5 ms, none from 1005 ms to 3005 ms, then on again.
        let card = |ms: u64| match ms {
            ..1005 => card(5, 20)(ms),
            1005..3005 => card(5, 20)(1004),
            _ => card(5, 20)(1004).map(|n| n + card(3005, 20)(ms).unwrap()),
        };
        sim.run(0, 5000, card);
        let stalled = sim.ticks_in(1005, 3005);
        assert_eq!(stalled.first(), Some(&1015), "one frame and the margin after the last card frame");
        assert!(stalled.windows(2).all(|w| w[1] - w[0] == 20), "the timer ticks every frame: {stalled:?}");
        assert!(stalled.len() >= 99, "{} ticks while stalled", stalled.len());
        let resumed = sim.ticks_in(3100, 5000);
        assert!(resumed.iter().all(|t| (t - 5) % 20 == 0), "the card paces again: {resumed:?}");
        assert_eq!(resumed.len(), 95);
    }

    #[test]
    fn a_late_frame_the_timer_stood_in_for_does_not_tick_twice() {
        let mut sim = Sim::new();
        // Frames every 20 ms from 5 ms; the one due at 505 ms comes at 520 ms.
        let card = |ms: u64| match ms {
            505..520 => card(5, 20)(504),
            _ => card(5, 20)(ms),
        };
        sim.run(0, 1000, card);
        assert_eq!(sim.ticks_in(480, 600), [485, 515, 525, 545, 565, 585]);
        assert_eq!(sim.ticks_in(0, 1000).len(), 51, "the start's tick and one a card frame");
    }

    #[test]
    fn far_behind_the_backlog_is_skipped_and_a_little_behind_is_caught_up() {
        let mut pacer = Pacer::default();
        let t0 = Instant::now();
        assert_eq!(pacer.poll(t0, Some(7)), Step::Tick);
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(pacer.poll(ms(1), Some(7)), Step::Wait(ms(20)));
        // Three frames at once: three ticks, then a wait.
        let ticks = std::iter::from_fn(|| (pacer.poll(ms(65), Some(10)) == Step::Tick).then_some(())).count();
        assert_eq!(ticks, 3);
        // A second's backlog: one tick, then in step with the card.
        assert_eq!(pacer.poll(ms(1100), Some(60)), Step::Tick);
        assert_eq!(pacer.poll(ms(1100), Some(60)), Step::Wait(ms(1130)));
        // No card, a second late: one tick, then a frame on.
        let mut timer = Pacer::default();
        assert_eq!(timer.poll(t0, None), Step::Tick);
        assert_eq!(timer.poll(ms(1000), None), Step::Tick);
        assert_eq!(timer.poll(ms(1000), None), Step::Wait(ms(1020)));
        timer.stop();
        assert_eq!(timer.poll(ms(1001), None), Step::Tick, "a new schedule starts at once");
    }
}
