//! The media-tick side of the sound card: one frame at
//! [`PCM_RATE`] in or out per tick, resampled to and from the device rate
//! when the card runs at another (by a whole factor with [`Polyphase`],
//! any other ratio with rubato). Runs on the tick, never blocks and never
//! allocates after construction; keeps latency bounded when the card's
//! clock and the tick's drift apart (a card that does not pace the tick)
//! by dropping (counted) audio rather than letting it pile up.

use std::sync::Arc;

use cpal::Sample;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, Resampler, ResamplerConstructionError, SincInterpolationParameters, WindowFunction};

use super::polyphase::Polyphase;
use super::{Counters, StreamsThread};
use crate::audio::{AudioSink, AudioSource};
use crate::media::{FRAME_SAMPLES, PCM_RATE};

/// Device-rate samples in one tick's frame.
pub(super) fn device_frame(device_rate: u32) -> usize {
    (device_rate as u64 * FRAME_SAMPLES as u64).div_ceil(PCM_RATE as u64) as usize
}

/// Frames of audio the playback ring must hold before playing after a dry
/// spell: one frame of tick jitter on top of the frame being played.
pub(super) const PLAYOUT_PRIME_FRAMES: usize = 2;

/// Most frames of audio allowed to wait in a ring. Beyond it the card's clock
/// has drifted ahead (capture) or behind (playback) of the tick, and waiting
/// audio is dropped rather than turned into ever-growing delay.
const MAX_BACKLOG_FRAMES: usize = 4;

/// What capture trims a too-long backlog down to, leaving room for jitter.
const TRIMMED_BACKLOG_FRAMES: usize = 2;

/// Between the device rate and the media rate, one direction.
enum Converter {
    /// The card runs at the media rate: samples pass through untouched,
    /// which costs nothing and delays nothing.
    Same,
    /// A whole factor apart (48 kHz): a fixed polyphase filter.
    Whole(Polyphase),
    /// Any other ratio (44.1 kHz): rubato's asynchronous sinc resampler. A
    /// windowed sinc filter is needed because capture decimates and must
    /// not alias; 64 taps keep it cheap for one device.
    Sinc(Box<Async<f32>>),
}

impl Converter {
    /// Capture (`FixedAsync::Output`: a frame out) or playback (`Input`: a frame in).
    fn new(device_rate: u32, fixed: FixedAsync) -> Result<Converter, ResamplerConstructionError> {
        if device_rate == PCM_RATE {
            return Ok(Converter::Same);
        }
        if device_rate % PCM_RATE == 0 {
            let factor = (device_rate / PCM_RATE) as usize;
            return Ok(Converter::Whole(match fixed {
                FixedAsync::Output => Polyphase::down(factor),
                FixedAsync::Input => Polyphase::up(factor),
            }));
        }
        let ratio = match fixed {
            FixedAsync::Output => PCM_RATE as f64 / device_rate as f64,
            FixedAsync::Input => device_rate as f64 / PCM_RATE as f64,
        };
        let parameters = SincInterpolationParameters::new(64, WindowFunction::BlackmanHarris2);
        Async::new_sinc(ratio, 1.0, &parameters, FRAME_SAMPLES, 1, fixed).map(|r| Converter::Sinc(Box::new(r)))
    }

    /// Device samples the next frame of capture takes.
    fn input_next(&self) -> usize {
        match self {
            Converter::Same => FRAME_SAMPLES,
            Converter::Whole(filter) => FRAME_SAMPLES * filter.factor(),
            Converter::Sinc(resampler) => resampler.input_frames_next(),
        }
    }

    fn input_max(&self) -> usize {
        match self {
            Converter::Sinc(resampler) => resampler.input_frames_max(),
            _ => self.input_next(),
        }
    }

    /// Most samples one call writes.
    fn output_max(&self) -> usize {
        match self {
            Converter::Same => FRAME_SAMPLES,
            Converter::Whole(filter) => FRAME_SAMPLES * filter.factor(),
            Converter::Sinc(resampler) => resampler.output_frames_max(),
        }
    }

    /// Mono resampling between preallocated buffers (a copy at equal
    /// rates); returns the samples written.
    fn process(&mut self, input: &[f32], output: &mut [f32]) -> usize {
        let resampler = match self {
            Converter::Same => {
                output[..input.len()].copy_from_slice(input);
                return input.len();
            }
            Converter::Whole(filter) => return filter.process(input, output),
            Converter::Sinc(resampler) => resampler,
        };
        let frames_out = output.len();
        let (Ok(input), Ok(mut output)) =
            (InterleavedSlice::new(input, 1, input.len()), InterleavedSlice::new_mut(output, 1, frames_out))
        else {
            return 0;
        };
        // Sizes come from the resampler itself, so this cannot fail; silence if it ever did.
        resampler.process_into_buffer(&input, &mut output, None).map_or(0, |(_, written)| written)
    }
}

/// The microphone as the media engine sees it.
pub struct DeviceSource {
    ring: rtrb::Consumer<f32>,
    resampler: Converter,
    input: Vec<f32>,
    output: Vec<f32>,
    max_backlog: usize,
    trimmed_backlog: usize,
    counters: Arc<Counters>,
    _streams: Arc<StreamsThread>,
}

impl DeviceSource {
    pub(super) fn new(
        ring: rtrb::Consumer<f32>,
        device_rate: u32,
        counters: Arc<Counters>,
        streams: Arc<StreamsThread>,
    ) -> Result<Self, ResamplerConstructionError> {
        let resampler = Converter::new(device_rate, FixedAsync::Output)?;
        Ok(DeviceSource {
            input: vec![0.0; resampler.input_max()],
            output: vec![0.0; resampler.output_max()],
            resampler,
            ring,
            max_backlog: MAX_BACKLOG_FRAMES * device_frame(device_rate),
            trimmed_backlog: TRIMMED_BACKLOG_FRAMES * device_frame(device_rate),
            counters,
            _streams: streams,
        })
    }
}

impl AudioSource for DeviceSource {
    fn read_frame(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        let needed = self.resampler.input_next();
        let available = self.ring.slots();
        if available > needed + self.max_backlog {
            let skipped = available - needed - self.trimmed_backlog;
            if let Ok(chunk) = self.ring.read_chunk(skipped) {
                chunk.commit_all();
            }
            Counters::add(&self.counters.capture_dropped_samples, skipped as u64);
        }
        let Ok(chunk) = self.ring.read_chunk(needed) else {
            // Not enough yet: the card delivers in periods that need not line
            // up with the tick. The ring keeps filling, so the next tick has more.
            frame.fill(0);
            Counters::add(&self.counters.capture_underrun_frames, 1);
            return;
        };
        let (head, tail) = chunk.as_slices();
        self.input[..head.len()].copy_from_slice(head);
        self.input[head.len()..needed].copy_from_slice(tail);
        chunk.commit_all();
        let produced = self.resampler.process(&self.input[..needed], &mut self.output);
        for (out, sample) in frame.iter_mut().zip(self.output[..produced].iter().chain(std::iter::repeat(&0.0))) {
            *out = i16::from_sample(*sample);
        }
    }
}

/// The speaker as the media engine sees it.
pub struct DeviceSink {
    ring: rtrb::Producer<f32>,
    resampler: Converter,
    input: Vec<f32>,
    output: Vec<f32>,
    max_backlog: usize,
    counters: Arc<Counters>,
    _streams: Arc<StreamsThread>,
}

impl DeviceSink {
    pub(super) fn new(
        ring: rtrb::Producer<f32>,
        device_rate: u32,
        counters: Arc<Counters>,
        streams: Arc<StreamsThread>,
    ) -> Result<Self, ResamplerConstructionError> {
        let resampler = Converter::new(device_rate, FixedAsync::Input)?;
        Ok(DeviceSink {
            input: vec![0.0; FRAME_SAMPLES],
            output: vec![0.0; resampler.output_max()],
            resampler,
            ring,
            max_backlog: MAX_BACKLOG_FRAMES * device_frame(device_rate),
            counters,
            _streams: streams,
        })
    }
}

impl AudioSink for DeviceSink {
    fn write_frame(&mut self, frame: &[i16; FRAME_SAMPLES]) {
        for (input, sample) in self.input.iter_mut().zip(frame) {
            *input = f32::from_sample(*sample);
        }
        // Resample even a frame that will be dropped, so the filter's history stays continuous.
        let produced = self.resampler.process(&self.input, &mut self.output);
        let queued = self.ring.buffer().capacity() - self.ring.slots();
        match self.ring.write_chunk_uninit(produced) {
            Ok(chunk) if queued + produced <= self.max_backlog => {
                chunk.fill_from_iter(self.output[..produced].iter().copied());
            }
            _ => Counters::add(&self.counters.playout_dropped_frames, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::TAU;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::audio::analysis::{dominant_frequency, rms};
    use crate::audio::ToneSource;

    /// Tests drive the halves directly: no device thread behind them.
    fn detached() -> Arc<StreamsThread> {
        Arc::new(StreamsThread { stop: None, thread: None })
    }

    fn sine(rate: u32, hz: f64, range: std::ops::Range<usize>) -> impl Iterator<Item = f32> {
        range.map(move |i| (0.5 * (TAU * hz * i as f64 / rate as f64).sin()) as f32)
    }

    fn source(rate: u32) -> (DeviceSource, rtrb::Producer<f32>, Arc<Counters>) {
        let (producer, consumer) = rtrb::RingBuffer::new(rate as usize);
        let counters = Arc::new(Counters::default());
        (DeviceSource::new(consumer, rate, counters.clone(), detached()).unwrap(), producer, counters)
    }

    fn sink(rate: u32) -> (DeviceSink, rtrb::Consumer<f32>, Arc<Counters>) {
        let (producer, consumer) = rtrb::RingBuffer::new(rate as usize);
        let counters = Arc::new(Counters::default());
        (DeviceSink::new(producer, rate, counters.clone(), detached()).unwrap(), consumer, counters)
    }

    #[test]
    fn source_turns_device_rate_audio_into_media_frames() {
        for rate in [48000, 44100, 32000, 22050, PCM_RATE] {
            let (mut source, mut card, counters) = source(rate);
            let (mut captured, mut frame, mut written) = (vec![], [0i16; FRAME_SAMPLES], 0);
            for _ in 0..50 {
                let period = device_frame(rate);
                for s in sine(rate, 1000.0, written..written + period) {
                    card.push(s).unwrap();
                }
                written += period;
                source.read_frame(&mut frame);
                captured.extend_from_slice(&frame);
            }
            // Skip the filter's start-up; then a clean tone at half of full scale.
            let settled = &captured[5 * FRAME_SAMPLES..];
            assert_eq!(dominant_frequency(settled, PCM_RATE), Some(1000.0), "{rate} Hz");
            let level = rms(settled) / (16384.0 / 2f64.sqrt());
            assert!((0.9..1.1).contains(&level), "{rate} Hz: level {level}");
            assert_eq!(counters.capture_dropped_samples.load(Ordering::Relaxed), 0);
            assert!(counters.capture_underrun_frames.load(Ordering::Relaxed) <= 1, "{rate} Hz");
        }
    }

    #[test]
    fn source_plays_silence_when_the_card_is_late_and_trims_when_it_runs_ahead() {
        let (mut source, mut card, counters) = source(48000);
        let mut frame = [1i16; FRAME_SAMPLES];
        source.read_frame(&mut frame);
        assert_eq!(frame, [0; FRAME_SAMPLES]);
        assert_eq!(counters.capture_underrun_frames.load(Ordering::Relaxed), 1);
        for s in sine(48000, 1000.0, 0..10 * device_frame(48000)) {
            card.push(s).unwrap();
        }
        source.read_frame(&mut frame);
        assert!(counters.capture_dropped_samples.load(Ordering::Relaxed) > 0);
        assert_eq!(source.ring.slots(), TRIMMED_BACKLOG_FRAMES * device_frame(48000));
    }

    #[test]
    fn sink_turns_media_frames_into_device_rate_audio() {
        for rate in [48000, 44100, 32000, PCM_RATE] {
            let (mut sink, mut card, counters) = sink(rate);
            let (mut tone, mut frame, mut played) = (ToneSource::new(1000.0), [0i16; FRAME_SAMPLES], vec![]);
            for _ in 0..30 {
                tone.read_frame(&mut frame);
                sink.write_frame(&frame);
                played.extend(std::iter::from_fn(|| card.pop().ok()).map(i16::from_sample));
            }
            let expected = 30 * FRAME_SAMPLES * rate as usize / PCM_RATE as usize;
            assert!(played.len().abs_diff(expected) <= device_frame(rate), "{rate} Hz: {} samples", played.len());
            let settled = &played[played.len() - rate as usize / 5..];
            assert_eq!(dominant_frequency(settled, rate), Some(1000.0), "{rate} Hz");
            assert_eq!(counters.playout_dropped_frames.load(Ordering::Relaxed), 0);
        }
    }

    #[test]
    fn sink_drops_frames_rather_than_queue_beyond_the_backlog() {
        let (mut sink, card, counters) = sink(48000);
        let frame = [1000i16; FRAME_SAMPLES];
        for _ in 0..MAX_BACKLOG_FRAMES + 3 {
            sink.write_frame(&frame);
        }
        assert!(card.slots() <= MAX_BACKLOG_FRAMES * device_frame(48000));
        assert!(counters.playout_dropped_frames.load(Ordering::Relaxed) >= 3);
    }
}
