//! Packet loss concealment for the codecs that have none of their own
//! (G.711, G.722), after ITU-T G.711 Appendix I in spirit: a lost frame is
//! filled by repeating the last pitch period of what was played, held for
//! 10 ms and then faded to silence at 60 ms; the first good frame after a
//! loss is cross-faded in from the continuing concealment so it does not
//! click. Works on the 16 kHz output, so one implementation serves both.

use super::to_pcm;
use super::PCM_RATE;

const MS: usize = PCM_RATE as usize / 1000;
/// What was played, newest last: enough for the longest period plus the
/// correlation window.
const HISTORY: usize = 40 * MS;
/// Pitch search range, 5–20 ms. The lower bound is not the shortest voice
/// pitch: a short period is found as a multiple of itself, and repeating
/// several periods sounds less buzzy than repeating one.
const MIN_PERIOD: usize = 5 * MS;
const MAX_PERIOD: usize = 20 * MS;
const CORRELATION_WINDOW: usize = HISTORY - MAX_PERIOD;
/// Concealment plays at full level this long, then fades out…
const HOLD: usize = 10 * MS;
/// …reaching silence at this point of the loss.
const SILENT_AFTER: usize = 60 * MS;
/// Length of the cross-fade into the first good frame.
const ONSET: usize = 5 * MS;

pub(super) struct Concealment {
    history: [i16; HISTORY],
    /// The pitch period being repeated; the first `period_len` are valid.
    period: [f32; MAX_PERIOD],
    period_len: usize,
    phase: usize,
    /// Samples synthesised in the current loss; 0 when not in a loss.
    concealed: usize,
}

impl Concealment {
    pub(super) fn new() -> Self {
        Concealment { history: [0; HISTORY], period: [0.0; MAX_PERIOD], period_len: MIN_PERIOD, phase: 0, concealed: 0 }
    }

    /// Call with every decoded frame before it is played. After a loss this
    /// cross-fades its start in.
    pub(super) fn on_decoded(&mut self, pcm: &mut [i16]) {
        if self.concealed > 0 {
            let fade_len = ONSET.min(pcm.len());
            for (i, sample) in pcm[..fade_len].iter_mut().enumerate() {
                let weight = (i + 1) as f32 / (fade_len + 1) as f32;
                let synthetic = self.next_synthetic();
                *sample = to_pcm(weight * *sample as f32 + (1.0 - weight) * synthetic);
            }
            self.concealed = 0;
        }
        self.remember(pcm);
    }

    /// Fill `out` for lost audio.
    pub(super) fn conceal(&mut self, out: &mut [i16]) {
        if self.concealed == 0 {
            self.extract_period();
        }
        for sample in out.iter_mut() {
            *sample = to_pcm(self.next_synthetic());
        }
        self.remember(out);
    }

    fn next_synthetic(&mut self) -> f32 {
        let gain = if self.concealed < HOLD {
            1.0
        } else {
            SILENT_AFTER.saturating_sub(self.concealed) as f32 / (SILENT_AFTER - HOLD) as f32
        };
        let sample = self.period[self.phase] * gain;
        self.phase = (self.phase + 1) % self.period_len;
        self.concealed += 1;
        sample
    }

    fn remember(&mut self, played: &[i16]) {
        let kept = played.len().min(HISTORY);
        self.history.copy_within(kept.., 0);
        self.history[HISTORY - kept..].copy_from_slice(&played[played.len() - kept..]);
    }

    /// Finds the lag at which the recent history best repeats itself and
    /// takes the last period of it. The period's tail is blended towards the
    /// samples just before the period's start, so looping it has no seam.
    fn extract_period(&mut self) {
        let recent = &self.history[HISTORY - CORRELATION_WINDOW..];
        let mut best = (MIN_PERIOD, f64::MIN);
        for lag in MIN_PERIOD..=MAX_PERIOD {
            let earlier = &self.history[HISTORY - CORRELATION_WINDOW - lag..HISTORY - lag];
            let (mut cross, mut energy) = (0.0f64, 0.0f64);
            for (&a, &b) in recent.iter().zip(earlier) {
                cross += a as f64 * b as f64;
                energy += b as f64 * b as f64;
            }
            let score = if energy > 0.0 { cross / energy.sqrt() } else { 0.0 };
            if score > best.1 {
                best = (lag, score);
            }
        }
        let len = best.0;
        let blend = len / 4;
        let start = HISTORY - len;
        for (i, slot) in self.period[..len].iter_mut().enumerate() {
            *slot = self.history[start + i] as f32;
        }
        for i in 0..blend {
            let weight = (i + 1) as f32 / (blend + 1) as f32;
            let one_period_earlier = self.history[start - blend + i] as f32;
            let slot = &mut self.period[len - blend + i];
            *slot = (1.0 - weight) * *slot + weight * one_period_earlier;
        }
        self.period_len = len;
        self.phase = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f64, n: usize) -> i16 {
        (8000.0 * (std::f64::consts::TAU * hz * n as f64 / PCM_RATE as f64).sin()) as i16
    }

    #[test]
    fn a_periodic_signal_continues_seamlessly() {
        // 440 Hz: its period (36.4 samples) is not a whole number of samples.
        let mut plc = Concealment::new();
        let mut good: Vec<i16> = (0..640).map(|n| sine(440.0, n)).collect();
        plc.on_decoded(&mut good);
        let mut lost = [0i16; 160];
        plc.conceal(&mut lost);
        let expected_step = 8000.0 * std::f64::consts::TAU * 440.0 / PCM_RATE as f64;
        let mut previous = good[639];
        for (n, &s) in lost.iter().enumerate() {
            let step = (s as f64 - previous as f64).abs();
            assert!(step < expected_step * 1.1, "step {step} at {n}");
            // Within the hold time the synthetic wave stays close to the real one.
            assert!((s as f64 - sine(440.0, 640 + n) as f64).abs() < 400.0, "sample {n}");
            previous = s;
        }
    }

    #[test]
    fn silence_conceals_as_silence() {
        let mut plc = Concealment::new();
        let mut out = [1i16; 320];
        plc.conceal(&mut out);
        assert_eq!(out, [0; 320]);
    }
}
