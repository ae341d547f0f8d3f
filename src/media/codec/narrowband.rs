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

/// Both filters run one FIR on one phase of the signal: the 2·PAIRS odd
/// taps mirrored, oldest sample first (the even taps are zero, and the
/// centre tap touches only the other phase).
static PHASE_TAPS: LazyLock<[f32; 2 * PAIRS]> = LazyLock::new(|| {
    let odd = &*ODD_TAPS;
    std::array::from_fn(|m| if m < PAIRS { odd[PAIRS - 1 - m] } else { odd[m - PAIRS] })
});
/// Samples of one phase a filter keeps from the frame before.
const HISTORY: usize = 2 * PAIRS - 1;
/// The centre tap lags the newest sample of its phase by this many.
const CENTRE_LAG: usize = PAIRS - 1;
/// Outputs computed per pass: bounds the stack buffers (any frame length works).
const CHUNK: usize = 160;

/// `out[k] = gain · Σ taps[m] · input[k + m]`, `input` being `HISTORY`
/// samples longer than `out`. Tap by tap over the whole block, so the
/// inner loop is element-wise and vectorizes (a per-output dot product
/// would be a float reduction, which the compiler may not reorder).
fn phase_fir(input: &[f32], gain: f32, out: &mut [f32]) {
    out.fill(0.0);
    for (m, tap) in PHASE_TAPS.iter().enumerate() {
        let tap = tap * gain;
        for (acc, x) in out.iter_mut().zip(&input[m..]) {
            *acc += tap * x;
        }
    }
}

/// 16 kHz → 8 kHz with anti-alias filtering, state kept across frames.
struct Decimator {
    /// The last odd-phase (FIR) and even-phase (centre tap) input samples.
    odd: [f32; HISTORY],
    even: [f32; CENTRE_LAG],
}

impl Decimator {
    fn new() -> Self {
        Decimator { odd: [0.0; HISTORY], even: [0.0; CENTRE_LAG] }
    }

    /// Filters `wide` (an even number of samples) and calls `emit` with each
    /// 8 kHz sample.
    fn process(&mut self, wide: &[i16], mut emit: impl FnMut(i16)) {
        for block in wide.chunks(2 * CHUNK) {
            let n = block.len() / 2;
            let mut odd = [0.0f32; HISTORY + CHUNK];
            let mut even = [0.0f32; CENTRE_LAG + CHUNK];
            odd[..HISTORY].copy_from_slice(&self.odd);
            even[..CENTRE_LAG].copy_from_slice(&self.even);
            for (k, pair) in block.chunks_exact(2).enumerate() {
                even[CENTRE_LAG + k] = f32::from(pair[0]);
                odd[HISTORY + k] = f32::from(pair[1]);
            }
            let mut filtered = [0.0f32; CHUNK];
            phase_fir(&odd[..HISTORY + n], 1.0, &mut filtered[..n]);
            for (sum, centre) in filtered[..n].iter().zip(&even) {
                emit(to_pcm(sum + 0.5 * centre));
            }
            self.odd.copy_from_slice(&odd[n..n + HISTORY]);
            self.even.copy_from_slice(&even[n..n + CENTRE_LAG]);
        }
    }
}

/// 8 kHz → 16 kHz: each input sample passes through (delayed) and a
/// halfband-interpolated sample follows it, so no images above 4 kHz.
struct Interpolator {
    history: [f32; HISTORY],
}

impl Interpolator {
    fn new() -> Self {
        Interpolator { history: [0.0; HISTORY] }
    }

    /// Writes two 16 kHz samples per `narrow` sample into `wide`.
    fn process(&mut self, narrow: impl Iterator<Item = i16>, wide: &mut [i16]) {
        let mut narrow = narrow.peekable();
        for out in wide.chunks_mut(2 * CHUNK) {
            let mut input = [0.0f32; HISTORY + CHUNK];
            input[..HISTORY].copy_from_slice(&self.history);
            let mut n = 0;
            for (slot, sample) in input[HISTORY..HISTORY + out.len() / 2].iter_mut().zip(&mut narrow) {
                *slot = f32::from(sample);
                n += 1;
            }
            let mut between = [0.0f32; CHUNK];
            phase_fir(&input[..HISTORY + n], 2.0, &mut between[..n]);
            for (k, pair) in out.chunks_exact_mut(2).take(n).enumerate() {
                pair[0] = to_pcm(input[k + CENTRE_LAG]);
                pair[1] = to_pcm(between[k]);
            }
            self.history.copy_from_slice(&input[n..n + HISTORY]);
            if narrow.peek().is_none() {
                return;
            }
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
        NarrowbandEncoder { law, decimator: Decimator::new() }
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
        NarrowbandDecoder { law, interpolator: Interpolator::new() }
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
        let mut decimator = Decimator::new();
        let mut interpolator = Interpolator::new();
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

    fn at(signal: &[i16], i: isize) -> f32 {
        if i < 0 {
            0.0
        } else {
            f32::from(signal[i as usize])
        }
    }

    /// The decimator as its definition reads: one output at a time, the
    /// 63-tap halfband filter centred on the sample it keeps.
    fn reference_decimate(x: &[i16]) -> Vec<i16> {
        let taps = &*ODD_TAPS;
        (0..x.len() / 2)
            .map(|n| {
                let centre = 2 * n as isize + 1 - TAPS as isize / 2;
                let mut acc = 0.5 * at(x, centre);
                for (i, tap) in taps.iter().enumerate() {
                    let offset = 2 * i as isize + 1;
                    acc += tap * (at(x, centre - offset) + at(x, centre + offset));
                }
                to_pcm(acc)
            })
            .collect()
    }

    /// The interpolator as its definition reads: each sample (16 behind),
    /// then the filtered point halfway to the next.
    fn reference_interpolate(s: &[i16]) -> Vec<i16> {
        let taps = &*ODD_TAPS;
        let mut wide = Vec::new();
        for j in 0..s.len() as isize {
            let mut between = 0.0;
            for (i, tap) in taps.iter().enumerate() {
                between += 2.0 * tap * (at(s, j - 16 - i as isize) + at(s, j - 15 + i as isize));
            }
            wide.push(to_pcm(at(s, j - 16)));
            wide.push(to_pcm(between));
        }
        wide
    }

    #[test]
    fn the_block_filters_match_the_definition_within_a_step() {
        let input: Vec<i16> = (0..3200).map(|n| ((n * 7919) % 20_001 - 10_000) as i16).collect();
        let (mut decimator, mut interpolator) = (Decimator::new(), Interpolator::new());
        let mut narrow = Vec::new();
        decimator.process(&input, |s| narrow.push(s));
        let mut wide = vec![0i16; narrow.len() * 2];
        interpolator.process(narrow.iter().copied(), &mut wide);
        let within_a_step =
            |a: &[i16], b: &[i16]| a.len() == b.len() && a.iter().zip(b).all(|(a, b)| (a - b).abs() <= 1);
        assert!(within_a_step(&narrow, &reference_decimate(&input)), "decimator");
        assert!(within_a_step(&wide, &reference_interpolate(&narrow)), "interpolator");
    }

    #[test]
    fn frames_of_any_length_give_what_one_long_frame_gives() {
        let input: Vec<i16> = (0..4000).map(|n| ((n * 7919) % 20_001 - 10_000) as i16).collect();
        let whole = {
            let (mut decimator, mut interpolator) = (Decimator::new(), Interpolator::new());
            let mut narrow = Vec::new();
            decimator.process(&input, |s| narrow.push(s));
            let mut wide = vec![0i16; narrow.len() * 2];
            interpolator.process(narrow.iter().copied(), &mut wide);
            (narrow, wide)
        };
        let (mut decimator, mut interpolator) = (Decimator::new(), Interpolator::new());
        let (mut narrow, mut wide) = (Vec::new(), Vec::new());
        let mut at = 0;
        for len in [2, 160, 320, 960, 18, 642].into_iter().cycle() {
            let end = (at + len).min(input.len());
            let before = narrow.len();
            decimator.process(&input[at..end], |s| narrow.push(s));
            let mut out = vec![0i16; (narrow.len() - before) * 2];
            interpolator.process(narrow[before..].iter().copied(), &mut out);
            wide.extend(out);
            at = end;
            if at == input.len() {
                break;
            }
        }
        assert_eq!((narrow, wide), whole);
    }
}
