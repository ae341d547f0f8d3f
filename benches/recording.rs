//! What recording costs per call: one 20 ms stereo frame appended to a WAV
//! on disk (the recorder thread's work, header made true once a second
//! included), at 16 kHz (wideband calls) and 8 kHz (G.711).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use softphoned::recorder::file::RecordingFile;

fn append_frames(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("recording 20 ms stereo frame");
    for rate in [16_000u32, 8_000] {
        let samples = rate as usize / 50;
        let (agent, remote) = (vec![1200i16; samples], vec![-800i16; samples]);
        let mut file = RecordingFile::create(&dir.path().join(format!("{rate}.wav")), rate, &[]).unwrap();
        group.throughput(Throughput::Bytes(samples as u64 * 4));
        group.bench_function(format!("{} kHz", rate / 1000), |b| {
            b.iter(|| file.write(black_box(&agent), black_box(&remote)).unwrap())
        });
        file.finish().unwrap();
    }
    group.finish();
}

criterion_group!(benches, append_frames);
criterion_main!(benches);
