//! What a local conference costs per 20 ms frame: the mixer's work for a
//! three-way call (the agent and two parties, each hearing the others)
//! against the same three calls kept apart. Decoding and encoding are the
//! same either way (one frame in and one out per call), so the difference
//! is all the conference adds.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use softphoned::audio::{AudioSource, ToneSource};
use softphoned::media::mixer::{LegMix, Mixer};
use softphoned::media::{Frame, FRAME_SAMPLES};

fn tone(hz: f64) -> Frame {
    let mut frame = [0; FRAME_SAMPLES];
    ToneSource::new(hz).read_frame(&mut frame);
    frame
}

/// One frame: every call's playout in, what each call is sent out.
fn frame(mixer: &mut Mixer, legs: &[(Frame, LegMix)], mic: &Frame, music: &Frame) -> i64 {
    mixer.start_frame();
    for (heard, leg) in legs {
        mixer.add_heard(heard, *leg);
    }
    let mut out = [0; FRAME_SAMPLES];
    let mut checksum = i64::from(mixer.agent_frame(&mut out)[0]);
    for (heard, leg) in legs {
        checksum += i64::from(mixer.outgoing(*leg, mic, music, heard, &mut out)[7]);
    }
    checksum
}

fn conference_against_separate_calls(c: &mut Criterion) {
    let (mic, music) = (tone(440.0), [0; FRAME_SAMPLES]);
    let mut mixer = Mixer::default();
    let parties = [tone(700.0), tone(1100.0)];
    let merged: Vec<(Frame, LegMix)> =
        parties.iter().map(|p| (*p, LegMix { conference: true, ..LegMix::default() })).collect();
    let apart: Vec<(Frame, LegMix)> = parties.iter().map(|p| (*p, LegMix::default())).collect();
    c.bench_function("mixer frame, 3-way conference (agent + 2 parties)", |b| {
        b.iter(|| black_box(frame(&mut mixer, black_box(&merged), &mic, &music)))
    });
    c.bench_function("mixer frame, the same 2 calls apart", |b| {
        b.iter(|| black_box(frame(&mut mixer, black_box(&apart), &mic, &music)))
    });
}

criterion_group!(benches, conference_against_separate_calls);
criterion_main!(benches);
