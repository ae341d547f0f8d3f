//! What runs inside the cpal data callbacks, on the audio system's real-time
//! thread: sample-format and channel conversion between the device buffer and
//! a mono `f32` ring at the device rate, and the pulse of the card's clock
//! (one direction carries it: capture, or playback without capture). Nothing
//! here allocates, locks, logs, blocks or drops a heap object; missing audio
//! becomes silence and every loss is counted in an atomic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::Thread;

use cpal::{FromSample, Sample};

use super::Counters;
use crate::audio::clock::Pulse;

/// Tells the device thread, once, that a stream's callback has run: proof
/// that the device really delivers or consumes audio.
#[derive(Clone)]
pub(super) struct FirstCallback {
    seen: Arc<AtomicBool>,
    waiter: Thread,
}

impl FirstCallback {
    pub(super) fn new(waiter: Thread) -> Self {
        FirstCallback { seen: Arc::new(AtomicBool::new(false)), waiter }
    }

    pub(super) fn seen(&self) -> bool {
        self.seen.load(Ordering::Acquire)
    }

    fn signal(&self) {
        // `unpark` only flips a flag and wakes a futex: it neither blocks nor allocates.
        if !self.seen.load(Ordering::Relaxed) && !self.seen.swap(true, Ordering::AcqRel) {
            self.waiter.unpark();
        }
    }
}

/// The capture callback's state: device frames in, mono samples into the ring.
pub(super) struct Capture {
    ring: rtrb::Producer<f32>,
    channels: usize,
    counters: Arc<Counters>,
    started: FirstCallback,
    /// After the ring is written, so a woken tick finds the frame there.
    pulse: Option<Pulse>,
}

impl Capture {
    pub(super) fn new(
        ring: rtrb::Producer<f32>,
        channels: u16,
        counters: Arc<Counters>,
        started: FirstCallback,
        pulse: Option<Pulse>,
    ) -> Self {
        Capture { ring, channels: channels.max(1) as usize, counters, started, pulse }
    }

    /// Averages the channels of each frame (a stereo headset may carry the
    /// microphone on one side only, so no side is picked). What does not fit
    /// in the ring is dropped and counted: the newest audio is the one lost,
    /// and the tick trims the backlog anyway.
    pub(super) fn push<T: Sample>(&mut self, data: &[T])
    where
        f32: FromSample<T>,
    {
        self.started.signal();
        let frames = data.len() / self.channels;
        let stored = frames.min(self.ring.slots());
        if stored < frames {
            Counters::add(&self.counters.capture_overflow_samples, (frames - stored) as u64);
        }
        if let Ok(chunk) = self.ring.write_chunk_uninit(stored) {
            chunk.fill_from_iter(data.chunks_exact(self.channels).map(mix_down));
        }
        if let Some(pulse) = &mut self.pulse {
            pulse.advance(frames);
        }
    }
}

fn mix_down<T: Sample>(frame: &[T]) -> f32
where
    f32: FromSample<T>,
{
    frame.iter().map(|s| f32::from_sample(*s)).sum::<f32>() / frame.len() as f32
}

/// The playback callback's state: mono samples from the ring out to every
/// device channel.
pub(super) struct Playout {
    ring: rtrb::Consumer<f32>,
    channels: usize,
    /// After running dry, wait for this many samples before playing again,
    /// so one late tick does not turn into a stutter of tiny underruns.
    prime: usize,
    waiting: bool,
    counters: Arc<Counters>,
    started: FirstCallback,
    /// After the ring is read: the tick then writes what the next period plays.
    pulse: Option<Pulse>,
}

impl Playout {
    pub(super) fn new(
        ring: rtrb::Consumer<f32>,
        channels: u16,
        prime: usize,
        counters: Arc<Counters>,
        started: FirstCallback,
        pulse: Option<Pulse>,
    ) -> Self {
        Playout { ring, channels: channels.max(1) as usize, prime, waiting: true, counters, started, pulse }
    }

    pub(super) fn fill<T: Sample + FromSample<f32>>(&mut self, data: &mut [T]) {
        self.started.signal();
        let frames = data.len() / self.channels;
        if self.waiting && self.ring.slots() >= self.prime {
            self.waiting = false;
        }
        let played = if self.waiting { 0 } else { frames.min(self.ring.slots()) };
        let mut out = data.chunks_exact_mut(self.channels);
        if let Ok(chunk) = self.ring.read_chunk(played) {
            let (head, tail) = chunk.as_slices();
            for (sample, frame) in head.iter().chain(tail).zip(&mut out) {
                frame.fill(T::from_sample(*sample));
            }
            chunk.commit_all();
        }
        for frame in out {
            frame.fill(T::EQUILIBRIUM);
        }
        // Waiting at start-up, before the first tick, is not an underrun.
        if played < frames && !self.waiting {
            self.waiting = true;
            Counters::add(&self.counters.playout_underruns, 1);
        }
        if let Some(pulse) = &mut self.pulse {
            pulse.advance(frames);
        }
    }
}

/// The real-time half of one direction, whichever host runs it.
pub(super) enum Callback {
    Capture(Capture),
    Playout(Playout),
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    fn count(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn capture(capacity: usize, channels: u16) -> (Capture, rtrb::Consumer<f32>, Arc<Counters>) {
        let (producer, consumer) = rtrb::RingBuffer::new(capacity);
        let counters = Arc::new(Counters::default());
        let started = FirstCallback::new(std::thread::current());
        (Capture::new(producer, channels, counters.clone(), started, None), consumer, counters)
    }

    fn playout(channels: u16, prime: usize) -> (Playout, rtrb::Producer<f32>, Arc<Counters>) {
        let (producer, consumer) = rtrb::RingBuffer::new(64);
        let counters = Arc::new(Counters::default());
        let started = FirstCallback::new(std::thread::current());
        (Playout::new(consumer, channels, prime, counters.clone(), started, None), producer, counters)
    }

    fn drain(ring: &mut rtrb::Consumer<f32>) -> Vec<f32> {
        std::iter::from_fn(|| ring.pop().ok()).collect()
    }

    #[test]
    fn capture_averages_channels_of_any_format() {
        let (mut cap, mut ring, _) = capture(16, 2);
        cap.push::<i16>(&[16384, 0, -32768, -32768]);
        assert_eq!(drain(&mut ring), [0.25, -1.0]);
        cap.push::<u8>(&[128, 255, 0, 128]);
        let got = drain(&mut ring);
        assert!((got[0] - 0.496).abs() < 0.01 && (got[1] + 0.5).abs() < 0.01, "{got:?}");
        cap.push::<f64>(&[0.5, 0.25, 1.0, -1.0]);
        assert_eq!(drain(&mut ring), [0.375, 0.0]);
        let (mut mono, mut ring, _) = capture(16, 1);
        mono.push::<i32>(&[i32::MIN, 0, 1 << 30]);
        assert_eq!(drain(&mut ring), [-1.0, 0.0, 0.5]);
        assert!(mono.started.seen());
    }

    #[test]
    fn capture_overflow_drops_the_newest_and_counts() {
        let (mut cap, mut ring, counters) = capture(3, 1);
        cap.push::<f32>(&[0.1, 0.2, 0.3, 0.4, 0.5]);
        assert_eq!(drain(&mut ring), [0.1, 0.2, 0.3]);
        assert_eq!(count(&counters.capture_overflow_samples), 2);
    }

    #[test]
    fn playout_duplicates_to_every_channel_and_converts_format() {
        let (mut play, mut ring, counters) = playout(2, 2);
        for s in [0.5, -0.25, 1.0] {
            ring.push(s).unwrap();
        }
        let mut out = [7i16; 6];
        play.fill(&mut out);
        assert_eq!(out, [16384, 16384, -8192, -8192, 32767, 32767]);
        assert_eq!(count(&counters.playout_underruns), 0);
        ring.push(0.0).unwrap();
        let mut unsigned = [0u16; 2];
        play.fill(&mut unsigned);
        assert_eq!(unsigned, [32768, 32768]);
    }

    #[test]
    fn playout_waits_for_prime_then_counts_underruns_once_per_dry_spell() {
        let (mut play, mut ring, counters) = playout(1, 4);
        let mut out = [1.0f32; 3];
        ring.push(0.5).unwrap();
        play.fill(&mut out);
        assert_eq!(out, [0.0; 3], "below the prime level nothing plays");
        assert_eq!(count(&counters.playout_underruns), 0, "start-up is not an underrun");
        for _ in 0..4 {
            ring.push(0.5).unwrap();
        }
        play.fill(&mut out);
        assert_eq!(out, [0.5; 3]);
        play.fill(&mut out);
        assert_eq!(out, [0.5, 0.5, 0.0], "the dry part is silence");
        play.fill(&mut out);
        assert_eq!(out, [0.0; 3]);
        assert_eq!(count(&counters.playout_underruns), 1);
    }
}
