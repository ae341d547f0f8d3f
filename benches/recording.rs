//! What recording costs per call: one 20 ms stereo frame appended to a WAV
//! on disk (the recorder thread's work, header made true once a second
//! included), at 16 kHz (wideband calls) and 8 kHz (G.711), plain and
//! encrypted to one age recipient (`recording.encrypt_to`); and what the
//! end of an encrypted recording costs: sealing it again with its true
//! header (a minute of 16 kHz audio read back and written once more).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use softphoned::recorder::file::RecordingFile;

fn append_frames(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("recording 20 ms stereo frame");
    let recipient = age::x25519::Identity::generate().to_public();
    for (rate, recipients, kind) in
        [(16_000u32, &[][..], "plain"), (8_000, &[][..], "plain"), (16_000, std::slice::from_ref(&recipient), "age")]
    {
        let samples = rate as usize / 50;
        let (agent, remote) = (vec![1200i16; samples], vec![-800i16; samples]);
        let path = dir.path().join(format!("{rate}-{kind}.wav"));
        let mut file = RecordingFile::create(&path, rate, recipients).unwrap();
        group.throughput(Throughput::Bytes(samples as u64 * 4));
        group.bench_function(format!("{} kHz {kind}", rate / 1000), |b| {
            b.iter(|| file.write(black_box(&agent), black_box(&remote)).unwrap())
        });
        file.finish().unwrap();
    }
    group.finish();
}

/// Writing a minute of 16 kHz audio to an encrypted WAV and finishing it:
/// the finish reads it back and seals it again with the true header.
fn finish_encrypted(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let recipient = age::x25519::Identity::generate().to_public();
    let (agent, remote) = (vec![1200i16; 320], vec![-800i16; 320]);
    let mut group = c.benchmark_group("encrypted recording, one minute at 16 kHz");
    group.sample_size(10);
    let mut n = 0;
    for (name, finish) in [("written", false), ("written and finished", true)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                n += 1;
                let path = dir.path().join(format!("{n}.wav.age"));
                let mut file = RecordingFile::create(&path, 16_000, std::slice::from_ref(&recipient)).unwrap();
                for _ in 0..3000 {
                    file.write(&agent, &remote).unwrap();
                }
                if finish {
                    file.finish().unwrap();
                }
                std::fs::remove_file(path).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append_frames, finish_encrypted);
criterion_main!(benches);
