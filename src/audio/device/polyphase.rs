//! Resampling by a whole factor between the card's rate and the media rate
//! (48 kHz and 16 kHz: 3; 32 kHz: 2), the common case: JACK and most cards
//! run at 48 kHz. One fixed windowed-sinc low-pass, split into its phases,
//! so each output sample is one short dot product of contiguous samples:
//! about a fifth of what rubato's asynchronous sinc resampler spends (it
//! interpolates between its tables for every sample, as any ratio needs),
//! and the card's 20 ms are one call's worth of work in a few microseconds.
//! Other ratios (44.1 kHz) stay with rubato.

use std::f64::consts::PI;

use crate::media::FRAME_SAMPLES;

/// Filter taps per phase: 96 taps at 48 kHz, a 1 ms delay. Passband to
/// about 6 kHz, at least 58 dB down (Blackman) from 8.6 kHz: what folds
/// back lands in the band's top few hundred hertz, which G.722's and
/// Opus's wideband cuts at 7 kHz and G.711 never carries.
const TAPS_PER_PHASE: usize = 32;

/// The cut-off, as a fraction of the media rate's Nyquist frequency.
const CUTOFF: f64 = 0.9;

/// Which way the samples go.
enum Direction {
    /// Card to media: keep one sample of `factor`, filtered first.
    Down,
    /// Media to card: `factor` samples for each, filtered after.
    Up,
}

/// A streaming resampler by a whole factor, over `f32` mono blocks.
pub(super) struct Polyphase {
    factor: usize,
    direction: Direction,
    /// Down: the whole filter; up: phase after phase, each reversed.
    taps: Vec<f32>,
    /// The input's last samples (the filter's memory), then the new block.
    history: Vec<f32>,
    /// How much of `history` is memory.
    memory: usize,
}

impl Polyphase {
    /// Card rate to media rate, `factor` ≥ 2 to 1.
    pub(super) fn down(factor: usize) -> Polyphase {
        let taps: Vec<f32> = low_pass(factor).iter().map(|&t| t as f32).collect();
        Polyphase::new(factor, Direction::Down, taps.len() - 1, taps)
    }

    /// Media rate to card rate, 1 to `factor` ≥ 2.
    pub(super) fn up(factor: usize) -> Polyphase {
        // Each phase sees one input sample in `factor`: the gain makes up for the zeros between.
        let gain = factor as f64;
        let prototype = low_pass(factor);
        let mut taps = Vec::with_capacity(prototype.len());
        for phase in 0..factor {
            taps.extend((0..TAPS_PER_PHASE).rev().map(|k| (prototype[phase + factor * k] * gain) as f32));
        }
        Polyphase::new(factor, Direction::Up, TAPS_PER_PHASE - 1, taps)
    }

    fn new(factor: usize, direction: Direction, memory: usize, taps: Vec<f32>) -> Polyphase {
        let mut history = Vec::with_capacity(memory + factor * FRAME_SAMPLES);
        history.resize(memory, 0.0);
        Polyphase { factor, direction, taps, history, memory }
    }

    /// Input samples to one output sample (down) or output samples to one input (up).
    pub(super) fn factor(&self) -> usize {
        self.factor
    }

    /// Resample `input` into `output`; returns the samples written. Down,
    /// `input` holds a whole number of `factor`s; up, `output` has room for
    /// `factor` times `input`. Allocates nothing for blocks up to a frame
    /// at the card's rate (what the tick hands it).
    pub(super) fn process(&mut self, input: &[f32], output: &mut [f32]) -> usize {
        self.history.truncate(self.memory);
        self.history.extend_from_slice(input);
        let written = match self.direction {
            Direction::Down => {
                let outputs = output.iter_mut().take(input.len() / self.factor);
                let windows = self.history.windows(self.taps.len()).step_by(self.factor);
                outputs.zip(windows).map(|(out, window)| *out = dot(window, &self.taps)).count()
            }
            Direction::Up => {
                let phases = self.taps.chunks_exact(TAPS_PER_PHASE);
                let windows = self.history.windows(TAPS_PER_PHASE).take(input.len());
                let mut out = output.iter_mut();
                let mut written = 0;
                for window in windows {
                    for (phase, sample) in phases.clone().zip(out.by_ref()) {
                        *sample = dot(window, phase);
                        written += 1;
                    }
                }
                written
            }
        };
        let keep = self.history.len() - self.memory;
        self.history.copy_within(keep.., 0);
        written
    }
}

/// The windowed-sinc low-pass at the card's rate, `factor × TAPS_PER_PHASE`
/// taps, cut off at [`CUTOFF`] of the media rate's Nyquist, unit DC gain.
fn low_pass(factor: usize) -> Vec<f64> {
    let len = factor * TAPS_PER_PHASE;
    let cutoff = CUTOFF / factor as f64 / 2.0;
    let middle = (len - 1) as f64 / 2.0;
    let taps: Vec<f64> = (0..len)
        .map(|n| {
            let x = n as f64 - middle;
            let sinc = if x == 0.0 { 2.0 * cutoff } else { (2.0 * PI * cutoff * x).sin() / (PI * x) };
            let phase = 2.0 * PI * n as f64 / (len - 1) as f64;
            sinc * (0.42 - 0.5 * phase.cos() + 0.08 * (2.0 * phase).cos())
        })
        .collect();
    let sum: f64 = taps.iter().sum();
    taps.iter().map(|t| t / sum).collect()
}

/// Eight running sums, so the compiler may use vector lanes (it keeps one
/// sum's order of additions and would not vectorise a single one).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use std::f64::consts::TAU;

    use super::*;
    use crate::audio::analysis::{dominant_frequency, rms, tone_amplitude};

    fn sine(rate: u32, hz: f64, len: usize) -> Vec<f32> {
        (0..len).map(|i| (0.5 * (TAU * hz * i as f64 / rate as f64).sin()) as f32).collect()
    }

    /// Resample in 20 ms blocks, as the tick does; the settled half as media samples.
    fn run(mut resampler: Polyphase, input: &[f32], block: usize, out_block: usize) -> Vec<i16> {
        let mut output = vec![0.0; out_block];
        let mut all = vec![];
        for chunk in input.chunks_exact(block) {
            let written = resampler.process(chunk, &mut output);
            assert_eq!(written, out_block);
            all.extend(output.iter().map(|s| (s * 32767.0) as i16));
        }
        all.split_off(all.len() / 2)
    }

    #[test]
    fn down_keeps_the_band_and_stops_what_would_fold_back() {
        let level = |hz: f64| {
            let out = run(Polyphase::down(3), &sine(48000, hz, 48000), 960, 320);
            (rms(&out) / (16384.0 / 2f64.sqrt()), dominant_frequency(&out, 16000))
        };
        for hz in [300.0, 1000.0, 3400.0, 5000.0] {
            let (gain, heard) = level(hz);
            assert!((0.95..1.05).contains(&gain), "{hz} Hz passes at {gain}");
            assert_eq!(heard, Some(hz));
        }
        for hz in [9000.0, 12000.0, 20000.0] {
            let (gain, _) = level(hz);
            assert!(gain < 0.003, "{hz} Hz would fold back at {gain} (> -50 dB)");
        }
    }

    #[test]
    fn up_makes_a_clean_tone_at_the_card_rate() {
        for (factor, rate) in [(3, 48000), (2, 32000)] {
            let block = 320 * factor;
            let out = run(Polyphase::up(factor), &sine(16000, 1000.0, 16000), 320, block);
            let gain = rms(&out) / (16384.0 / 2f64.sqrt());
            assert!((0.95..1.05).contains(&gain), "x{factor}: {gain}");
            assert_eq!(dominant_frequency(&out, rate), Some(1000.0), "x{factor}");
            // The images zeros between the samples make around 16 kHz are filtered out.
            let tone = tone_amplitude(&out, rate, 1000.0);
            for image in [15000.0, 17000.0].into_iter().filter(|hz| *hz < rate as f64 / 2.0) {
                let left = tone_amplitude(&out, rate, image);
                assert!(left < 0.003 * tone, "x{factor}: {image} Hz image at {left} of {tone}");
            }
        }
    }

    #[test]
    fn blocks_of_any_length_give_the_same_stream() {
        let input = sine(48000, 1234.0, 4800);
        let whole = run(Polyphase::down(3), &input, 4800, 1600);
        let mut pieces = Polyphase::down(3);
        let mut output = vec![0.0; 320];
        let mut streamed = vec![];
        for chunk in input.chunks(960) {
            let written = pieces.process(chunk, &mut output);
            streamed.extend(output[..written].iter().map(|s| (s * 32767.0) as i16));
        }
        assert_eq!(streamed[streamed.len() / 2..], whole[..]);
        assert_eq!(pieces.factor(), 3);
    }
}
