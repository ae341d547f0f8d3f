//! G.711 μ-law / A-law companding of 16-bit linear PCM (ITU-T G.711), bit-exact
//! with the ITU-T G.191 reference `g711.c` (ulaw/alaw compress and expand).

// G.191 takes the one's complement of negative samples (not the negation), so
// -1 has magnitude 0 and the code space is symmetric around -0.5.
const fn magnitude(sample: i16) -> u16 {
    (if sample < 0 { !sample } else { sample }) as u16
}

const fn sign_bit(sample: i16) -> u8 {
    ((sample >= 0) as u8) << 7
}

/// Encode one sample; only the 14 most significant bits are used.
pub fn ulaw_encode(sample: i16) -> u8 {
    // 33 is the μ-law bias at 14-bit scale (0x84 >> 2); it makes the segment
    // boundaries powers of two. Clamping here is the G.711 overload point.
    let biased = ((magnitude(sample) >> 2) + 33).min(0x1FFF);
    let seg = 17 - (biased >> 6).leading_zeros() as u16; // 1..=8
    let mantissa = (biased >> seg) & 0x0F;
    // μ-law transmits all bits inverted (except sign, which means "positive").
    (((8 - seg) << 4) as u8 | (0x0F - mantissa) as u8) | sign_bit(sample)
}

/// Encode one sample; only the 13 most significant bits are used.
pub fn alaw_encode(sample: i16) -> u8 {
    let ix = magnitude(sample) >> 4; // 0..=2047
    let code = if ix > 15 {
        let exp = 16 - ix.leading_zeros() as u16 - 4; // 1..=7
        (exp << 4) | ((ix >> (exp - 1)) & 0x0F)
    } else {
        ix
    };
    // Even-bit inversion keeps long runs of zeros off the line for quiet input.
    (code as u8 | sign_bit(sample)) ^ 0x55
}

const fn ulaw_expand(code: u8) -> i16 {
    let inv = !code;
    let exponent = ((inv >> 4) & 0x07) as i32;
    let step = 4 << (exponent + 1);
    // Reconstruct at mid-step, then remove the encoder's bias of 33 (x4).
    let mag = (0x80 << exponent) + step * (inv & 0x0F) as i32 + step / 2 - 4 * 33;
    (if code < 0x80 { -mag } else { mag }) as i16
}

const fn alaw_expand(code: u8) -> i16 {
    let ix = ((code ^ 0x55) & 0x7F) as i32;
    let (exp, mant) = (ix >> 4, ix & 0x0F);
    // Segments above 0 carry an implicit leading 1; +8 is half a step.
    let mag = match exp {
        0 => (mant << 4) + 8,
        _ => (((mant + 16) << 4) + 8) << (exp - 1),
    };
    (if code > 127 { mag } else { -mag }) as i16
}

const fn build_table(ulaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if ulaw { ulaw_expand(i as u8) } else { alaw_expand(i as u8) };
        i += 1;
    }
    t
}

static ULAW_TABLE: [i16; 256] = build_table(true);
static ALAW_TABLE: [i16; 256] = build_table(false);

pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TABLE[code as usize]
}

pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TABLE[code as usize]
}

// The frame helpers process the common prefix if lengths differ, rather than
// panicking in the media path; callers are expected to pass equal lengths.

/// Encode a frame; `out.len()` must equal `pcm.len()`.
pub fn encode_ulaw_frame(pcm: &[i16], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = ulaw_encode(s);
    }
}

/// Decode a frame; `out.len()` must equal `codes.len()`.
pub fn decode_ulaw_frame(codes: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = ulaw_decode(c);
    }
}

/// Encode a frame; `out.len()` must equal `pcm.len()`.
pub fn encode_alaw_frame(pcm: &[i16], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = alaw_encode(s);
    }
}

/// Decode a frame; `out.len()` must equal `codes.len()`.
pub fn decode_alaw_frame(codes: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = alaw_decode(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Sun Microsystems' public-domain g711.c (BIAS 0x84, segment-end tables),
    // fed the 16-bit input as G.191 does. `g191_negatives = false` is Sun's
    // original `-(x >> 2)`, which is one LSB larger than G.191's `(!x) >> 2`.
    fn sun_linear2ulaw(pcm: i16, g191_negatives: bool) -> u8 {
        const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
        let (v, mask) = match (pcm < 0, g191_negatives) {
            (false, _) => ((pcm as i32) >> 2, 0xFF),
            (true, true) => ((!pcm as i32) >> 2, 0x7F),
            (true, false) => (-((pcm as i32) >> 2), 0x7F),
        };
        let v = v.min(8159) + (0x84 >> 2);
        match SEG_UEND.iter().position(|&end| v <= end) {
            None => 0x7F ^ mask,
            Some(seg) => ((seg << 4) as u8 | ((v >> (seg + 1)) & 0x0F) as u8) ^ mask,
        }
    }

    fn sun_linear2alaw(pcm: i16) -> u8 {
        const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
        let v = (pcm as i32) >> 3;
        let (v, mask) = if v >= 0 { (v, 0xD5) } else { (-v - 1, 0x55) };
        match SEG_AEND.iter().position(|&end| v <= end) {
            None => 0x7F ^ mask,
            // Segments 0 and 1 share a step size, hence the shift of at least 1.
            Some(seg) => ((seg << 4) as u8 | ((v >> seg.max(1)) & 0x0F) as u8) ^ mask,
        }
    }

    fn sun_ulaw2linear(code: u8) -> i16 {
        let u = !code as i32;
        let t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4);
        (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
    }

    fn sun_alaw2linear(code: u8) -> i16 {
        let a = (code ^ 0x55) as i32;
        let seg = (a & 0x70) >> 4;
        let t = ((a & 0x0F) << 4) + if seg == 0 { 8 } else { 0x108 };
        let t = if seg > 1 { t << (seg - 1) } else { t };
        (if a & 0x80 != 0 { t } else { -t }) as i16
    }

    #[test]
    fn encoders_match_sun_formulation_on_all_inputs() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(x), sun_linear2ulaw(x, true), "ulaw x={x}");
            assert_eq!(alaw_encode(x), sun_linear2alaw(x), "alaw x={x}");
        }
        // Unadapted Sun μ-law is not G.191: it differs on the 4 lowest
        // negative inputs of every decision interval but the overload one.
        let n = (i16::MIN..=i16::MAX).filter(|&x| ulaw_encode(x) != sun_linear2ulaw(x, false)).count();
        assert_eq!(n, 127 * 4);
    }

    #[test]
    fn decoders_match_itu_values_and_reencode() {
        for c in 0..=255u8 {
            assert_eq!(ulaw_decode(c), sun_ulaw2linear(c), "ulaw code={c:#04x}");
            assert_eq!(alaw_decode(c), sun_alaw2linear(c), "alaw code={c:#04x}");
            // μ-law 0x7F is "negative zero"; it decodes to 0, which encodes as +0.
            let want = if c == 0x7F { 0xFF } else { c };
            assert_eq!(ulaw_encode(ulaw_decode(c)), want, "ulaw code={c:#04x}");
            assert_eq!(alaw_encode(alaw_decode(c)), c, "alaw code={c:#04x}");
        }
        let u = [0xFF, 0x7F, 0x80, 0x00, 0xFE, 0x7E].map(ulaw_decode);
        assert_eq!(u, [0, 0, 32124, -32124, 8, -8]);
        let a = [0xD5, 0x55, 0xAA, 0x2A, 0xD4, 0xC5].map(alaw_decode);
        assert_eq!(a, [8, -8, 32256, -32256, 24, 264]);
    }

    #[test]
    fn round_trip_error_within_half_step() {
        for x in i16::MIN..=i16::MAX {
            // Half a step, except beyond μ-law's last decision value
            // (|x| > 32636, codes 0x00/0x80) where G.711 saturates.
            let c = ulaw_encode(x);
            let step = 8 << ((!c >> 4) & 0x07);
            let bound = if c & 0x7F == 0 { step } else { step / 2 };
            let err = (ulaw_decode(c) as i32 - x as i32).abs();
            assert!(err <= bound, "ulaw x={x} err={err} step={step}");

            let c = alaw_encode(x);
            let step = 16 << (((c ^ 0x55) >> 4) & 0x07).saturating_sub(1);
            let err = (alaw_decode(c) as i32 - x as i32).abs();
            assert!(err <= step / 2, "alaw x={x} err={err} step={step}");
        }
    }

    #[test]
    fn frames_apply_the_per_sample_codec() {
        let pcm = [0i16, -1, 1000, -32768, 32767];
        let (mut u, mut a, mut d) = ([0u8; 5], [0u8; 5], [0i16; 5]);
        encode_ulaw_frame(&pcm, &mut u);
        assert_eq!(u, pcm.map(ulaw_encode));
        encode_alaw_frame(&pcm, &mut a);
        assert_eq!(a, pcm.map(alaw_encode));
        decode_ulaw_frame(&u, &mut d);
        assert_eq!(d, u.map(ulaw_decode));
        decode_alaw_frame(&a, &mut d);
        assert_eq!(d, a.map(alaw_decode));
        // Mismatched lengths must not panic in the media path.
        encode_ulaw_frame(&pcm, &mut u[..2]);
        decode_alaw_frame(&a[..1], &mut d);
    }
}
