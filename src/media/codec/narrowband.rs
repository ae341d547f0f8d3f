//! G.711 inside the 16 kHz media path: a halfband FIR decimator in front of
//! the 8 kHz companding encoder and a halfband interpolator behind the
//! decoder. The companding itself is `media::g711`.
//!
//! Hand-written rather than `rubato`: a fixed 2:1 ratio is exactly what a
//! halfband filter is for — half its taps are zero, the centre tap is ½, so
//! the decimator needs 17 multiplies per output sample and the interpolator
//! passes every other sample through untouched. Its state is two fixed
//! arrays, it accepts any frame length (10–60 ms payloads) without a
//! per-call buffer dance, and it cannot allocate. rubato's FFT resamplers
//! want fixed chunk sizes and their own buffers for the same result.

use super::to_pcm;
use std::f64::consts::PI;
use std::sync::LazyLock;

use crate::media::g711;

/// Halfband taps are nonzero at the centre and at odd offsets ±1, ±3, …,
/// ±(2·PAIRS−1). 16 pairs (63 taps at 16 kHz) give a transition band of
/// about 3.4–4.6 kHz with > 60 dB stopband.
const PAIRS: usize = 16;
const TAPS: usize = 4 * PAIRS - 1;
/// Kaiser window shape for ~70 dB sidelobe rejection.
const KAISER_BETA: f64 = 6.8;

/// The coefficients at odd offsets 1, 3, 5, … from the centre (the centre
/// tap is ½ and the even offsets are 0), normalised for unity DC gain.
static ODD_TAPS: LazyLock<[f32; PAIRS]> = LazyLock::new(|| {
    let half_length = (TAPS / 2) as f64;
    let mut taps = [0.0f64; PAIRS];
    for (i, tap) in taps.iter_mut().enumerate() {
        let offset = (2 * i + 1) as f64;
        let sinc = (PI * offset / 2.0).sin() / (PI * offset);
        let window = bessel_i0(KAISER_BETA * (1.0 - (offset / half_length).powi(2)).sqrt()) / bessel_i0(KAISER_BETA);
        *tap = sinc * window;
    }
    // DC gain is ½ + 2·Σtaps; make it exactly 1 so a 1 kHz tone keeps its level.
    let scale = 0.25 / taps.iter().sum::<f64>();
    taps.map(|t| (t * scale) as f32)
});

/// Zeroth-order modified Bessel function of the first kind, by its series.
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term) = (1.0, 1.0);
    for k in 1..50 {
        term *= (x / (2.0 * k as f64)).powi(2);
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

/// The last `N` samples, readable as one contiguous window. Every sample is
/// written twice, `N` apart, so the window never wraps.
struct DelayLine<const N: usize> {
    samples: [[f32; N]; 2],
    next: usize,
}

impl<const N: usize> DelayLine<N> {
    fn new() -> Self {
        DelayLine { samples: [[0.0; N]; 2], next: 0 }
    }

    fn push(&mut self, sample: f32) {
        let flat = self.samples.as_flattened_mut();
        flat[self.next] = sample;
        flat[self.next + N] = sample;
        self.next = (self.next + 1) % N;
    }

    /// Oldest first.
    fn window(&self) -> &[f32] {
        &self.samples.as_flattened()[self.next..self.next + N]
    }
}


/// 16 kHz → 8 kHz with anti-alias filtering, state kept across frames.
struct Decimator {
    input: DelayLine<TAPS>,
}

impl Decimator {
    /// Filters `wide` (an even number of samples) and calls `emit` with each
    /// 8 kHz sample.
    fn process(&mut self, wide: &[i16], mut emit: impl FnMut(i16)) {
        let taps = &*ODD_TAPS;
        for pair in wide.chunks_exact(2) {
            self.input.push(pair[0] as f32);
            self.input.push(pair[1] as f32);
            let w = self.input.window();
            let centre = TAPS / 2;
            let mut acc = 0.5 * w[centre];
            for (i, tap) in taps.iter().enumerate() {
                acc += tap * (w[centre - 1 - 2 * i] + w[centre + 1 + 2 * i]);
            }
            emit(to_pcm(acc));
        }
    }
}

/// 8 kHz → 16 kHz: each input sample passes through (delayed) and a
/// halfband-interpolated sample follows it, so no images above 4 kHz.
struct Interpolator {
    input: DelayLine<{ 2 * PAIRS }>,
}

impl Interpolator {
    /// Writes two 16 kHz samples per `narrow` sample into `wide`.
    fn process(&mut self, narrow: impl Iterator<Item = i16>, wide: &mut [i16]) {
        let taps = &*ODD_TAPS;
        for (sample, out) in narrow.zip(wide.chunks_exact_mut(2)) {
            self.input.push(sample as f32);
            let w = self.input.window();
            let mut between = 0.0;
            for (i, tap) in taps.iter().enumerate() {
                between += 2.0 * tap * (w[PAIRS - 1 - i] + w[PAIRS + i]);
            }
            out[0] = to_pcm(w[PAIRS - 1]);
            out[1] = to_pcm(between);
        }
    }
}

/// Which G.711 companding law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Law {
    Mu,
    A,
}

impl Law {
    fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => g711::ulaw_encode(sample),
            Law::A => g711::alaw_encode(sample),
        }
    }

    fn decode(self, code: u8) -> i16 {
        match self {
            Law::Mu => g711::ulaw_decode(code),
            Law::A => g711::alaw_decode(code),
        }
    }
}

/// 16 kHz PCM in, G.711 bytes (8 kHz, one per sample) out.
pub(super) struct NarrowbandEncoder {
    law: Law,
    decimator: Decimator,
}

impl NarrowbandEncoder {
    pub(super) fn new(law: Law) -> Self {
        NarrowbandEncoder { law, decimator: Decimator { input: DelayLine::new() } }
    }

    /// Bytes produced for `pcm_len` 16 kHz samples.
    pub(super) const fn encoded_len(pcm_len: usize) -> usize {
        pcm_len / 2
    }

    /// `out` must hold `encoded_len(pcm.len())` bytes.
    pub(super) fn encode(&mut self, pcm: &[i16], out: &mut [u8]) {
        let law = self.law;
        let mut codes = out.iter_mut();
        self.decimator.process(pcm, |sample| {
            if let Some(code) = codes.next() {
                *code = law.encode(sample);
            }
        });
    }
}

/// G.711 bytes in, 16 kHz PCM out (two samples per byte).
pub(super) struct NarrowbandDecoder {
    law: Law,
    interpolator: Interpolator,
}

impl NarrowbandDecoder {
    pub(super) fn new(law: Law) -> Self {
        NarrowbandDecoder { law, interpolator: Interpolator { input: DelayLine::new() } }
    }

    /// `out` must hold `2 * payload.len()` samples.
    pub(super) fn decode(&mut self, payload: &[u8], out: &mut [i16]) {
        let law = self.law;
        self.interpolator.process(payload.iter().map(|&code| law.decode(code)), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gain in dB of a steady tone through decimate→interpolate (no G.711).
    fn filter_gain_db(hz: f64) -> f64 {
        let mut decimator = Decimator { input: DelayLine::new() };
        let mut interpolator = Interpolator { input: DelayLine::new() };
        let input: Vec<i16> =
            (0..16_000).map(|n| (8000.0 * (2.0 * PI * hz * n as f64 / 16_000.0).sin()) as i16).collect();
        let mut narrow = Vec::new();
        decimator.process(&input, |s| narrow.push(s));
        let mut output = vec![0i16; input.len()];
        interpolator.process(narrow.into_iter(), &mut output);
        // Skip the filters' settling time.
        let settled = |s: &[i16]| crate::audio::analysis::rms(&s[1600..]);
        20.0 * (settled(&output) / settled(&input)).log10()
    }

    #[test]
    fn passband_is_flat_and_stopband_is_deep() {
        for hz in [300.0, 1000.0, 2000.0, 3000.0] {
            let gain = filter_gain_db(hz);
            assert!(gain.abs() < 0.2, "{hz} Hz: {gain:.2} dB");
        }
        assert!(filter_gain_db(3400.0) > -1.0);
        for hz in [4800.0, 6000.0, 7000.0] {
            let gain = filter_gain_db(hz);
            assert!(gain < -55.0, "{hz} Hz: {gain:.2} dB");
        }
    }

    #[test]
    fn delay_line_window_is_the_last_n_oldest_first() {
        let mut line = DelayLine::<4>::new();
        for s in 1..=6 {
            line.push(s as f32);
        }
        assert_eq!(line.window(), [3.0, 4.0, 5.0, 6.0]);
    }
}
