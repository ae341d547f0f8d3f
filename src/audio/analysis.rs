//! Measuring audio we produced or received: which frequency dominates a
//! recording. Used by the demo and the tests to prove audio really crossed.

use std::f64::consts::TAU;

/// The frequency (Hz, 10 Hz resolution, 50..=rate/2-50) with the most
/// energy in `samples`, by a Goertzel scan; `None` for silence.
pub fn dominant_frequency(samples: &[i16], rate: u32) -> Option<f64> {
    let energy = |hz: f64| goertzel_power(samples, rate, hz);
    let nyquist = rate as f64 / 2.0;
    let mut best = (0.0, 0.0);
    let mut hz = 50.0;
    while hz <= nyquist - 50.0 {
        let p = energy(hz);
        if p > best.1 {
            best = (hz, p);
        }
        hz += 10.0;
    }
    (best.1 > 0.0 && rms(samples) > 30.0).then_some(best.0)
}

/// Root mean square level of `samples`.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// The amplitude (in sample units) of the `hz` component of `samples`: a
/// sine of amplitude A reads close to A, other frequencies near 0. Lets a
/// test say "this recording holds that tone and not this one" when several
/// tones are mixed.
pub fn tone_amplitude(samples: &[i16], rate: u32, hz: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    2.0 * goertzel_power(samples, rate, hz).max(0.0).sqrt() / samples.len() as f64
}

fn goertzel_power(samples: &[i16], rate: u32, hz: f64) -> f64 {
    let coefficient = 2.0 * (TAU * hz / rate as f64).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for sample in samples {
        let s0 = *sample as f64 + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coefficient * s1 * s2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{AudioSource, ToneSource};
    use crate::media::{FRAME_SAMPLES, PCM_RATE};

    #[test]
    fn finds_the_tone_and_ignores_silence() {
        for hz in [400.0, 1000.0, 2500.0, 6000.0] {
            let mut tone = ToneSource::new(hz);
            let mut samples = vec![];
            let mut frame = [0i16; FRAME_SAMPLES];
            for _ in 0..50 {
                tone.read_frame(&mut frame);
                samples.extend_from_slice(&frame);
            }
            assert_eq!(dominant_frequency(&samples, PCM_RATE), Some(hz));
        }
        assert_eq!(dominant_frequency(&[0; 8000], 8000), None);
    }

    #[test]
    fn tone_amplitude_separates_mixed_tones() {
        let (mut low, mut high) = (ToneSource::new(700.0), ToneSource::new(1500.0));
        let (mut a, mut b) = ([0i16; FRAME_SAMPLES], [0i16; FRAME_SAMPLES]);
        let mut mixed = vec![];
        for _ in 0..25 {
            low.read_frame(&mut a);
            high.read_frame(&mut b);
            mixed.extend(a.iter().zip(&b).map(|(x, y)| x / 2 + y / 2));
        }
        for hz in [700.0, 1500.0] {
            let amplitude = tone_amplitude(&mixed, PCM_RATE, hz);
            assert!((amplitude - 8192.0).abs() < 400.0, "{hz} Hz: {amplitude}");
        }
        assert!(tone_amplitude(&mixed, PCM_RATE, 1100.0) < 200.0);
        assert_eq!(tone_amplitude(&[], PCM_RATE, 1100.0), 0.0);
    }
}
