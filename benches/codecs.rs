//! What one 20 ms frame costs through each codec of the media path: encode,
//! decode, and Opus's loss concealment. Before timing, it counts the heap
//! allocations one frame makes, because the media tick must not allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{criterion_group, Criterion};
use softphoned::media::codec::{Codec, Decoder, Encoder, Frame, OpusParams, PCM_RATE};

/// The system allocator, counting. (libopus allocates, if ever, through C
/// malloc, which this cannot see; it is built to use the stack.)
struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const CODECS: [Codec; 4] = [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus];

/// A voiced-speech stand-in: a 200 Hz fundamental with two formant-ish partials.
fn speech_like_frame() -> Frame {
    std::array::from_fn(|n| {
        let t = n as f64 / PCM_RATE as f64;
        let partial = |hz: f64, amplitude: f64| amplitude * (std::f64::consts::TAU * hz * t).sin();
        (partial(200.0, 6000.0) + partial(1200.0, 3000.0) + partial(2600.0, 1500.0)) as i16
    })
}

fn allocations_in(mut work: impl FnMut()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    work();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

/// Prints allocations per frame and fails the run where the codec layer
/// promises none (all but G.722, whose crate returns a fresh `Vec`).
fn check_allocations() {
    let frame = speech_like_frame();
    for codec in CODECS {
        let mut encoder = Encoder::new(codec, &OpusParams::offer()).unwrap();
        let mut decoder = Decoder::new(codec).unwrap();
        let (mut payload, mut pcm, mut lost) = ([0u8; 1500], [0i16; 960], [0i16; 320]);
        let mut len = 0;
        let encode = allocations_in(|| len = encoder.encode(&frame, &mut payload).unwrap());
        let decode = allocations_in(|| {
            decoder.decode(&payload[..len], &mut pcm).unwrap();
        });
        let conceal = allocations_in(|| decoder.conceal(&mut lost));
        eprintln!("{}: allocations per frame: encode {encode}, decode {decode}, conceal {conceal}", codec.name());
        if codec != Codec::G722 {
            assert_eq!((encode, decode, conceal), (0, 0, 0), "{} allocates per frame", codec.name());
        }
    }
}

fn codecs(c: &mut Criterion) {
    let frame = speech_like_frame();
    let mut group = c.benchmark_group("codec 20 ms frame");
    for codec in CODECS {
        let mut encoder = Encoder::new(codec, &OpusParams::offer()).unwrap();
        let mut payload = [0u8; 1500];
        group.bench_function(format!("{} encode", codec.name()), |b| {
            b.iter(|| encoder.encode(black_box(&frame), &mut payload).unwrap())
        });
        let len = encoder.encode(&frame, &mut payload).unwrap();
        let mut decoder = Decoder::new(codec).unwrap();
        let mut pcm = [0i16; 960];
        group.bench_function(format!("{} decode", codec.name()), |b| {
            b.iter(|| decoder.decode(black_box(&payload[..len]), &mut pcm).unwrap())
        });
    }
    let mut decoder = Decoder::new(Codec::Opus).unwrap();
    let mut lost = [0i16; 320];
    group.bench_function("opus conceal", |b| b.iter(|| decoder.conceal(black_box(&mut lost))));
    group.finish();
}

criterion_group!(benches, codecs);

fn main() {
    check_allocations();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
