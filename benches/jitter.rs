//! The jitter buffer's per-packet cost in steady state: one 20 ms G.711
//! packet inserted and one popped, as a call's media tick does 50 times a second.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use softphoned::media::jitter::{JitterBuffer, JitterConfig, PacketMeta, Popped};

const FRAME: u32 = 160;

fn insert_and_pop(c: &mut Criterion) {
    let mut buffer = JitterBuffer::new(JitterConfig::new(8000));
    let payload = [0xd5u8; FRAME as usize];
    let start = Instant::now();
    let (mut sequence, mut timestamp, mut sent) = (0u16, 0u32, start);
    // Simulated time advances one frame per iteration, so the buffer stays
    // at its target (one or two packets queued) however long the run.
    let mut step = move |buffer: &mut JitterBuffer| {
        let meta = PacketMeta { sequence, timestamp, ssrc: 0x5eed, duration: FRAME };
        buffer.insert(meta, &payload, sent);
        let played = matches!(buffer.pop(sent + Duration::from_millis(10)), Popped::Packet { .. });
        sequence = sequence.wrapping_add(1);
        timestamp = timestamp.wrapping_add(FRAME);
        sent += Duration::from_millis(20);
        played
    };
    for _ in 0..100 {
        step(&mut buffer);
    }
    c.bench_function("jitter insert+pop, 20 ms G.711, steady state", |b| b.iter(|| black_box(step(&mut buffer))));
    assert!(step(&mut buffer), "steady state plays a packet every tick");
}

criterion_group!(benches, insert_and_pop);
criterion_main!(benches);
