//! Noise suppression on the agent's microphone with RNNoise (`nnnoiseless`).
//! RNNoise works on 10 ms frames at 48 kHz, so each 20 ms frame of the
//! 16 kHz path is interpolated by 3, denoised as two RNNoise frames, and
//! decimated back, with windowed-sinc filters whose state carries across
//! frames. Everything is allocated once; a frame allocates nothing.

use std::f32::consts::PI;

use nnnoiseless::DenoiseState;

use crate::media::{Frame, FRAME_SAMPLES};

const FACTOR: usize = 3;
const WIDE: usize = FRAME_SAMPLES * FACTOR;
/// Filter length at 48 kHz: a steep enough cut at 8 kHz for speech.
const TAPS: usize = 48;

/// A low-pass at the 16 kHz path's Nyquist frequency, for 48 kHz samples.
fn low_pass() -> [f32; TAPS] {
    let mut taps = [0f32; TAPS];
    let cutoff = 1.0 / FACTOR as f32 * 0.9;
    let centre = (TAPS - 1) as f32 / 2.0;
    for (n, tap) in taps.iter_mut().enumerate() {
        let x = n as f32 - centre;
        let sinc = if x == 0.0 { cutoff } else { (PI * cutoff * x).sin() / (PI * x) };
        let window = 0.42 - 0.5 * (2.0 * PI * n as f32 / (TAPS - 1) as f32).cos()
            + 0.08 * (4.0 * PI * n as f32 / (TAPS - 1) as f32).cos();
        *tap = sinc * window;
    }
    let sum: f32 = taps.iter().sum();
    taps.iter_mut().for_each(|t| *t /= sum);
    taps
}

/// RNNoise over one microphone.
pub struct Denoiser {
    state: Box<DenoiseState<'static>>,
    taps: [f32; TAPS],
    /// Filter histories at 48 kHz: the last TAPS-1 samples before this frame.
    up_history: [f32; TAPS - 1 + WIDE],
    down_history: [f32; TAPS - 1 + WIDE],
    wide: [f32; WIDE],
    clean: [f32; WIDE],
}

impl Default for Denoiser {
    fn default() -> Self {
        Denoiser {
            state: DenoiseState::new(),
            taps: low_pass(),
            up_history: [0.0; TAPS - 1 + WIDE],
            down_history: [0.0; TAPS - 1 + WIDE],
            wide: [0.0; WIDE],
            clean: [0.0; WIDE],
        }
    }
}

impl Denoiser {
    /// Denoise one frame in place.
    pub fn process(&mut self, frame: &mut Frame) {
        self.interpolate(frame);
        let half = nnnoiseless::FRAME_SIZE;
        for (clean, wide) in self.clean.chunks_mut(half).zip(self.wide.chunks(half)) {
            self.state.process_frame(clean, wide);
        }
        self.decimate(frame);
    }

    /// `frame` at 48 kHz into `wide`: zero-stuffed after the history, then
    /// low-passed (the gain of 3 makes up for the stuffed zeros).
    fn interpolate(&mut self, frame: &Frame) {
        let history = TAPS - 1;
        self.up_history.copy_within(WIDE.., 0);
        for (i, sample) in frame.iter().enumerate() {
            let at = history + i * FACTOR;
            self.up_history[at] = f32::from(*sample) * FACTOR as f32;
            self.up_history[at + 1..at + FACTOR].fill(0.0);
        }
        filter(&self.taps, &self.up_history, &mut self.wide, 1);
    }

    /// `clean` back to 16 kHz into `frame`, low-passed before every third sample is kept.
    fn decimate(&mut self, frame: &mut Frame) {
        self.down_history.copy_within(WIDE.., 0);
        self.down_history[TAPS - 1..].copy_from_slice(&self.clean);
        let mut narrow = [0f32; FRAME_SAMPLES];
        filter(&self.taps, &self.down_history, &mut narrow, FACTOR);
        for (out, value) in frame.iter_mut().zip(narrow) {
            *out = value.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
        }
    }
}

/// FIR over `input` (history first), keeping every `step`-th output.
fn filter(taps: &[f32; TAPS], input: &[f32], out: &mut [f32], step: usize) {
    for (k, y) in out.iter_mut().enumerate() {
        let end = TAPS + k * step;
        *y = input[end - TAPS..end].iter().rev().zip(taps).map(|(x, t)| x * t).sum();
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::audio::analysis::{dominant_frequency, rms};
    use crate::audio::{AudioSource, ToneSource};
    use crate::media::PCM_RATE;

    #[test]
    fn the_filters_pass_speech_band_audio_untouched_in_pitch() {
        // Through up- and down-sampling alone (RNNoise bypassed) a tone keeps its frequency and level.
        let mut denoiser = Denoiser::default();
        let mut tone = ToneSource::new(1000.0);
        let mut out = Vec::new();
        for _ in 0..25 {
            let mut frame = [0i16; FRAME_SAMPLES];
            tone.read_frame(&mut frame);
            denoiser.interpolate(&frame);
            denoiser.clean = denoiser.wide;
            denoiser.decimate(&mut frame);
            out.extend_from_slice(&frame);
        }
        let settled = &out[FRAME_SAMPLES * 5..];
        assert_eq!(dominant_frequency(settled, PCM_RATE), Some(1000.0));
        let level = rms(settled) / (16384.0 / 2f64.sqrt());
        assert!((0.9..1.1).contains(&level), "level ratio {level}");
    }

    #[test]
    fn steady_noise_is_suppressed_and_silence_stays_silent() {
        let mut denoiser = Denoiser::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for n in 0..150 {
            let mut frame = [0i16; FRAME_SAMPLES];
            frame.iter_mut().for_each(|s| *s = rng.random_range(-3000..3000));
            if n >= 100 {
                before.extend_from_slice(&frame);
            }
            denoiser.process(&mut frame);
            if n >= 100 {
                after.extend_from_slice(&frame);
            }
        }
        let ratio = rms(&after) / rms(&before);
        assert!(ratio < 0.3, "noise kept {ratio:.2} of its level");
        let mut silence = [0i16; FRAME_SAMPLES];
        for _ in 0..10 {
            silence = [0; FRAME_SAMPLES];
            denoiser.process(&mut silence);
        }
        assert!(rms(&silence) < 50.0, "silence gained {}", rms(&silence));
    }
}
