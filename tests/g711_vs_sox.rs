//! Cross-checks the G.711 codec against sox over every 16-bit input and every
//! code. sox is an independent implementation (Sun-derived tables).

mod common;

use common::require_tool;
use softphoned::media::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};
use std::process::Command;

/// Runs sox raw-to-raw at 8 kHz mono. `-D` is essential: without it sox adds
/// TPDF dither whenever it reduces precision (16 -> 14/13 bits for G.711),
/// so its output would not be a pure function of the input.
fn sox(input: &[u8], from: &[&str], to: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (inp, out) = (dir.path().join("in.raw"), dir.path().join("out.raw"));
    std::fs::write(&inp, input).expect("write sox input");
    let output = Command::new("sox")
        .args(["-D", "-t", "raw"])
        .args(from)
        .args(["-r", "8000", "-c", "1"])
        .arg(&inp)
        .args(["-t", "raw"])
        .args(to)
        .args(["-r", "8000", "-c", "1"])
        .arg(&out)
        .output()
        .expect("run sox");
    assert!(output.status.success(), "sox failed: {}", String::from_utf8_lossy(&output.stderr));
    std::fs::read(&out).expect("read sox output")
}

const S16: [&str; 4] = ["-e", "signed-integer", "-b", "16"];

fn encode_all_with_sox(law: &str) -> Vec<u8> {
    let pcm: Vec<u8> = (i16::MIN..=i16::MAX).flat_map(i16::to_le_bytes).collect();
    let out = sox(&pcm, &S16, &["-e", law, "-b", "8"]);
    assert_eq!(out.len(), 65_536, "sox {law} output length");
    out
}

// sox 14.4 (raw.c: SOX_SAMPLE_TO_UNSIGNED(14|13, ..)) rounds the sample to
// the nearest 14-bit (μ-law) / 13-bit (A-law) value, saturating at the top,
// where G.191 truncates. Its μ-law table (Sun g711.c) also negates negatives
// where G.191 takes the one's complement. These map each input to the G.191
// input sox effectively encodes; they differ from `x` only by that rounding.
fn sox_ulaw_input(x: i16) -> i16 {
    let r = ((x as i32 + 2) >> 2).min(8191);
    // For r < 0, (r << 2) - 1 has G.191 magnitude -r, i.e. Sun's negation.
    (if r >= 0 { r << 2 } else { (r << 2) - 1 }).max(i16::MIN as i32) as i16
}

fn sox_alaw_input(x: i16) -> i16 {
    (((x as i32 + 4) >> 3).min(4095) << 3) as i16
}

/// Asserts sox == `ours` except exactly where sox's input rounding changes the
/// code; returns (positive, negative) counts of those differing inputs.
fn compare(sox_out: &[u8], ours: fn(i16) -> u8, sox_input: fn(i16) -> i16) -> (usize, usize) {
    let (mut pos, mut neg) = (0, 0);
    for (x, &got) in (i16::MIN..=i16::MAX).zip(sox_out) {
        let expected = ours(sox_input(x));
        assert_eq!(got, expected, "x={x}: sox={got:#04x}, expected {expected:#04x}");
        if got != ours(x) {
            if x < 0 {
                neg += 1
            } else {
                pos += 1
            }
        }
    }
    (pos, neg)
}

#[test]
fn ulaw_encoder_matches_sox_on_all_inputs() {
    if !require_tool("sox") {
        return;
    }
    let out = encode_all_with_sox("u-law");
    // 2 inputs per decision threshold on each side (127 positive thresholds;
    // 127 negative plus -1/-2, which sox rounds to +0 = 0xFF, not 0x7F).
    assert_eq!(compare(&out, ulaw_encode, sox_ulaw_input), (254, 256));
}

#[test]
fn alaw_encoder_matches_sox_on_all_inputs() {
    if !require_tool("sox") {
        return;
    }
    let out = encode_all_with_sox("a-law");
    // 4 inputs per threshold: 127 positive; 127 negative plus -1..-4 (-> 0xD5).
    assert_eq!(compare(&out, alaw_encode, sox_alaw_input), (508, 512));
}

#[test]
fn decoders_match_sox_on_all_codes() {
    if !require_tool("sox") {
        return;
    }
    let codes: Vec<u8> = (0..=255).collect();
    for (law, ours) in [("u-law", ulaw_decode as fn(u8) -> i16), ("a-law", alaw_decode)] {
        let out = sox(&codes, &["-e", law, "-b", "8"], &S16);
        assert_eq!(out.len(), 512, "sox {law} decode length");
        for (c, pair) in codes.iter().zip(out.chunks_exact(2)) {
            let got = i16::from_le_bytes([pair[0], pair[1]]);
            assert_eq!(got, ours(*c), "{law} code {c:#04x}");
        }
    }
}
