use std::f64::consts::TAU;

use super::*;
use crate::audio::analysis::{dominant_frequency, rms};
use crate::media::g711;

const AMPLITUDE: f64 = 8000.0;
/// Codec and filter start-up transients are not what we measure.
const SETTLE: usize = 1600;
/// 250 ms is plenty for the 10 Hz resolution of `dominant_frequency`.
const ANALYSIS: usize = 4000;
const ALL: [Codec; 4] = [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus];

/// `frames` frames of a sine at `hz`.
fn tone(hz: f64, frames: usize) -> Vec<Frame> {
    tones(&[(hz, frames)])
}

/// Sines of each `(hz, frames)` in turn, with continuous phase.
fn tones(parts: &[(f64, usize)]) -> Vec<Frame> {
    let mut phase = 0.0f64;
    let mut frames = Vec::new();
    for &(hz, count) in parts {
        for _ in 0..count {
            frames.push(std::array::from_fn(|_| {
                phase = (phase + TAU * hz / PCM_RATE as f64) % TAU;
                (AMPLITUDE * phase.sin()).round() as i16
            }));
        }
    }
    frames
}

fn encode_all(codec: Codec, params: &OpusParams, input: &[Frame]) -> Vec<Vec<u8>> {
    let mut encoder = Encoder::new(codec, params).unwrap();
    let mut out = [0u8; 1500];
    input
        .iter()
        .map(|frame| {
            let len = encoder.encode(frame, &mut out).unwrap();
            out[..len].to_vec()
        })
        .collect()
}

fn decode_all(codec: Codec, packets: &[Vec<u8>]) -> Vec<i16> {
    let mut decoder = Decoder::new(codec).unwrap();
    let mut out = [0i16; 960];
    let mut pcm = Vec::new();
    for packet in packets {
        let n = decoder.decode(packet, &mut out).unwrap();
        assert_eq!(Some(n), codec.payload_samples(packet));
        pcm.extend_from_slice(&out[..n]);
    }
    pcm
}

/// One second of a tone through encode → decode, frame by frame.
fn round_trip(codec: Codec, hz: f64) -> (Vec<i16>, Vec<i16>) {
    let input = tone(hz, 50);
    let output = decode_all(codec, &encode_all(codec, &OpusParams::offer(), &input));
    (input.concat(), output)
}

fn settled(samples: &[i16]) -> &[i16] {
    &samples[SETTLE..SETTLE + ANALYSIS]
}

fn gain_db(input: &[i16], output: &[i16]) -> f64 {
    20.0 * (rms(settled(output)) / rms(settled(input))).log10()
}

fn largest_step(samples: &[i16]) -> i32 {
    samples.windows(2).map(|w| (w[1] as i32 - w[0] as i32).abs()).max().unwrap_or(0)
}

#[test]
fn every_codec_carries_a_1khz_tone_at_its_level() {
    for (codec, tolerance_db) in [(Codec::Pcmu, 0.5), (Codec::Pcma, 0.5), (Codec::G722, 1.0), (Codec::Opus, 3.0)] {
        let (input, output) = round_trip(codec, 1000.0);
        assert_eq!(output.len(), input.len(), "{codec:?}");
        assert_eq!(dominant_frequency(settled(&output), PCM_RATE), Some(1000.0), "{codec:?}");
        let gain = gain_db(&input, &output);
        assert!(gain.abs() < tolerance_db, "{codec:?}: {gain:.2} dB");
    }
}

#[test]
fn wideband_codecs_carry_a_5khz_tone() {
    for codec in [Codec::G722, Codec::Opus] {
        let (input, output) = round_trip(codec, 5000.0);
        assert_eq!(dominant_frequency(settled(&output), PCM_RATE), Some(5000.0), "{codec:?}");
        let gain = gain_db(&input, &output);
        assert!(gain.abs() < 3.0, "{codec:?}: {gain:.2} dB");
    }
}

#[test]
fn g711_removes_what_8khz_cannot_carry() {
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let (input, output) = round_trip(codec, 6000.0);
        // Everything left counts: the aliased image and the quantisation noise.
        let gain = gain_db(&input, &output);
        assert!(gain < -30.0, "{codec:?}: {gain:.2} dB");
    }
}

#[test]
fn g711_wire_format_is_plain_8khz_g711() {
    for (codec, decode) in [(Codec::Pcmu, g711::ulaw_decode as fn(u8) -> i16), (Codec::Pcma, g711::alaw_decode)] {
        let input = tone(1000.0, 50);
        let wire: Vec<i16> =
            encode_all(codec, &OpusParams::default(), &input).concat().into_iter().map(decode).collect();
        assert_eq!(wire.len(), 8000);
        let narrow = &wire[SETTLE / 2..];
        assert_eq!(dominant_frequency(narrow, 8000), Some(1000.0), "{codec:?}");
        let gain = 20.0 * (rms(narrow) / rms(&input.concat()[SETTLE..])).log10();
        assert!(gain.abs() < 0.5, "{codec:?}: {gain:.2} dB");
    }
}

/// A decoder that has played 25 good frames of 440 Hz (a period that is
/// not a whole number of samples), and what it played.
fn decoder_in_a_tone(codec: Codec) -> (Decoder, Vec<i16>, Vec<Vec<u8>>) {
    let packets = encode_all(codec, &OpusParams::offer(), &tone(440.0, 30));
    let mut decoder = Decoder::new(codec).unwrap();
    let mut out = [0i16; 960];
    let mut played = Vec::new();
    for packet in &packets[..25] {
        let n = decoder.decode(packet, &mut out).unwrap();
        played.extend_from_slice(&out[..n]);
    }
    (decoder, played, packets)
}

#[test]
fn a_lost_frame_is_filled_without_a_click() {
    // Our PLC holds the level for 10 ms; libopus's fades at once (to -7 dB
    // over this frame for a pure tone).
    for (codec, min_level) in [(Codec::Pcmu, 0.9), (Codec::Pcma, 0.9), (Codec::G722, 0.9), (Codec::Opus, 0.3)] {
        let (mut decoder, mut played, packets) = decoder_in_a_tone(codec);
        let normal_step = largest_step(&played[SETTLE..]);
        let normal_level = rms(&played[SETTLE..]);
        let mut lost = [0i16; FRAME_SAMPLES];
        decoder.conceal(&mut lost);
        assert!(rms(&lost) > normal_level * min_level, "{codec:?}: concealment too quiet");
        let at_loss = played.len();
        played.extend_from_slice(&lost);
        let mut out = [0i16; 960];
        let n = decoder.decode(&packets[26], &mut out).unwrap();
        played.extend_from_slice(&out[..n]);
        // Steps around the loss, into it and out of it, stay like the tone's own.
        let step = largest_step(&played[at_loss - 1..]);
        assert!(step <= normal_step * 2, "{codec:?}: step {step} vs {normal_step}");
    }
}

#[test]
fn repeated_losses_fade_to_silence_and_audio_returns_smoothly() {
    for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722] {
        let (mut decoder, played, packets) = decoder_in_a_tone(codec);
        let normal_step = largest_step(&played[SETTLE..]);
        let levels: Vec<f64> = (0..5)
            .map(|_| {
                let mut lost = [0i16; FRAME_SAMPLES];
                decoder.conceal(&mut lost);
                rms(&lost)
            })
            .collect();
        assert!(levels.windows(2).take(3).all(|w| w[1] < w[0]), "{codec:?}: {levels:?}");
        assert_eq!(levels[3..], [0.0, 0.0], "{codec:?}: silent from 60 ms on");
        let mut out = [0i16; 960];
        let n = decoder.decode(&packets[26], &mut out).unwrap();
        assert!(out[0].abs() < 200, "{codec:?}: onset starts at {}", out[0]);
        assert!(largest_step(&out[..n]) <= normal_step * 2, "{codec:?}: onset clicks");
    }
}

/// Normalised cross-correlation at lag 0.
fn correlation(a: &[i16], b: &[i16]) -> f64 {
    let dot = |x: &[i16], y: &[i16]| x.iter().zip(y).map(|(&p, &q)| p as f64 * q as f64).sum::<f64>();
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
}

#[test]
fn opus_fec_recovers_a_dropped_packet_from_the_next_one() {
    const DROPPED: usize = 20;
    // The pitch jumps in the dropped frame, so guessing from the past (PLC)
    // cannot produce what FEC recovers.
    let input = tones(&[(440.0, DROPPED), (700.0, 10)]);
    let packets = encode_all(Codec::Opus, &OpusParams::offer(), &input);
    assert!(packets.iter().skip(1).all(|packet| opus::has_lbrr(packet)), "every packet but the first carries FEC");
    let reference = decode_all(Codec::Opus, &packets);
    let expected = &reference[DROPPED * FRAME_SAMPLES..(DROPPED + 1) * FRAME_SAMPLES];

    let decoder_before_the_loss = || {
        let mut decoder = Decoder::new(Codec::Opus).unwrap();
        for packet in &packets[..DROPPED] {
            decoder.decode(packet, &mut [0; 960]).unwrap();
        }
        decoder
    };
    let mut decoder = decoder_before_the_loss();
    let mut recovered = [0i16; FRAME_SAMPLES];
    assert!(decoder.decode_fec(&packets[DROPPED + 1], &mut recovered));
    let similarity = correlation(&recovered, expected);
    assert!(similarity > 0.9, "FEC frame correlates {similarity:.3} with the lost one");
    let mut out = [0i16; 960];
    assert_eq!(decoder.decode(&packets[DROPPED + 1], &mut out).unwrap(), FRAME_SAMPLES);
    let mut guessed = [0i16; FRAME_SAMPLES];
    decoder_before_the_loss().conceal(&mut guessed);
    let plc_similarity = correlation(&guessed, expected);
    assert!(plc_similarity < similarity - 0.2, "PLC alone correlates {plc_similarity:.3}");

    // Without FEC there is nothing to recover, and `out` stays untouched.
    let no_fec = OpusParams { use_inband_fec: false, ..OpusParams::offer() };
    let packets = encode_all(Codec::Opus, &no_fec, &input);
    assert!(!packets.iter().any(|packet| opus::has_lbrr(packet)));
    let mut untouched = [7i16; FRAME_SAMPLES];
    assert!(!decoder.decode_fec(&packets[DROPPED + 1], &mut untouched));
    assert_eq!(untouched, [7; FRAME_SAMPLES]);
    for codec in [Codec::Pcmu, Codec::G722] {
        assert!(!Decoder::new(codec).unwrap().decode_fec(&[0xFF; 160], &mut untouched));
    }
    assert_eq!(untouched, [7; FRAME_SAMPLES]);
}

#[test]
fn opus_from_a_48khz_stereo_sender_decodes_to_16khz_mono() {
    // Another phone's 60 ms packet, full band, stereo, 1 kHz in both channels.
    let mut sender = ::opus::Encoder::new(48_000, ::opus::Channels::Stereo, ::opus::Application::Audio).unwrap();
    let stereo: Vec<i16> =
        (0..2880).flat_map(|n| [(AMPLITUDE * (TAU * 1000.0 * n as f64 / 48_000.0).sin()) as i16; 2]).collect();
    let mut packet = [0u8; 1500];
    let mut decoder = Decoder::new(Codec::Opus).unwrap();
    let mut out = [0i16; 960];
    let mut pcm = Vec::new();
    for _ in 0..10 {
        let len = sender.encode(&stereo, &mut packet).unwrap();
        assert_eq!(Codec::Opus.payload_samples(&packet[..len]), Some(960));
        assert_eq!(decoder.decode(&packet[..len], &mut out).unwrap(), 960);
        pcm.extend_from_slice(&out);
    }
    assert_eq!(dominant_frequency(settled(&pcm), PCM_RATE), Some(1000.0));
}

#[test]
fn sdp_and_config_names_round_trip() {
    for codec in ALL {
        assert_eq!(Codec::from_rtpmap(codec.name(), codec.rtp_clock_rate(), codec.sdp_channels()), Some(codec));
        assert_eq!(Codec::from_config(&codec.name().to_lowercase()), Some(codec));
        assert_eq!(Codec::from_config(&codec.name().to_uppercase()), Some(codec));
        assert_eq!(serde_json::to_string(&codec).unwrap(), format!("\"{}\"", codec.name()));
        assert_eq!(codec.timestamp_step() * 50, codec.rtp_clock_rate());
    }
    assert_eq!(ALL.map(Codec::static_payload_type), [Some(0), Some(8), Some(9), None]);
    assert_eq!(ALL.map(Codec::timestamp_step), [160, 160, 160, 960]);
    assert_eq!(Codec::from_rtpmap("pcma", 8000, Some(1)), Some(Codec::Pcma));
    assert_eq!(Codec::from_rtpmap("OPUS", 48_000, Some(2)), Some(Codec::Opus));
    for (name, rate, channels) in [
        ("G722", 16_000, None),
        ("PCMU", 8000, Some(2)),
        ("opus", 48_000, None),
        ("opus", 16_000, Some(2)),
        ("G729", 8000, None),
    ] {
        assert_eq!(Codec::from_rtpmap(name, rate, channels), None, "{name}/{rate}/{channels:?}");
    }
    assert_eq!(Codec::from_config("g.722"), None);
}

#[test]
fn payload_durations_and_misuse_are_reported() {
    assert_eq!(Codec::Pcmu.payload_samples(&[0; 80]), Some(160));
    assert_eq!(Codec::G722.payload_samples(&[0; 480]), Some(960));
    for codec in ALL {
        assert_eq!(codec.payload_samples(&[]), None);
        let mut decoder = Decoder::new(codec).unwrap();
        assert!(matches!(decoder.decode(&[], &mut [0; 960]), Err(CodecError::EmptyPayload)));
        let packet = &encode_all(codec, &OpusParams::offer(), &tone(1000.0, 1))[0];
        assert_eq!(codec.payload_samples(packet), Some(FRAME_SAMPLES), "{codec:?}");
        let short = decoder.decode(packet, &mut [0; 100]);
        assert!(matches!(short, Err(CodecError::OutputTooSmall { needed: 320, available: 100 })), "{short:?}");
    }
    // Frame count code 3 with no count byte is not an Opus packet.
    assert_eq!(Codec::Opus.payload_samples(&[0x4B]), None);
    let invalid = Decoder::new(Codec::Opus).unwrap().decode(&[0x4B], &mut [0; 960]);
    assert!(matches!(invalid, Err(CodecError::InvalidPayload(Codec::Opus))), "{invalid:?}");
    let mut encoder = Encoder::new(Codec::G722, &OpusParams::default()).unwrap();
    assert!(matches!(encoder.encode(&[0; FRAME_SAMPLES], &mut [0; 100]), Err(CodecError::OutputTooSmall { .. })));
}

#[test]
fn to_pcm_rounds_half_away_from_zero_and_saturates_as_round_and_clamp_would() {
    let reference = |x: f32| x.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16;
    let just_below_half = 0.5f32.next_down();
    let mut samples = vec![0.0, 0.5, -0.5, just_below_half, -just_below_half, 1.49, -1.5, 2.5, 32766.6, 32767.4];
    samples.extend([32767.5, -32768.6, 1e9, -1e9, f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
    samples.extend((-70_000..70_000).map(|n| n as f32 * 0.73));
    for x in samples {
        assert_eq!(super::to_pcm(x), reference(x), "{x}");
    }
}
