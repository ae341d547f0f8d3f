//! The media thread allocates nothing per packet once a call runs: a real
//! `MediaIo` (its own thread, real UDP ports on 127.0.0.1, recording on)
//! carries a G.711 call with a peer on a socket of this test that sends a
//! packet every 20 ms and reads what comes back; a global allocator counts
//! what the thread named `media` allocates over two seconds of steady call,
//! after a second of warm-up.

#[path = "alloc/counting.rs"]
mod counting;

use std::cell::Cell;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use counting::Counting;
use softphoned::audio::ToneSource;
use softphoned::config::MediaConfig;
use softphoned::media::codec::{Codec, OpusParams};
use softphoned::media::params::{EventPayloads, MediaDirection, StreamParams};
use softphoned::media_io::{MediaAudio, MediaIo, MediaOut};
use softphoned::recorder::Recorder;

/// Counting is on (the steady window).
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread is the media thread: 0 not known yet, 1 yes, 2 no.
    static MEDIA: Cell<u8> = const { Cell::new(0) };
}

fn on_media_thread() -> bool {
    MEDIA
        .try_with(|media| {
            if media.get() == 0 {
                // Marked "no" first: finding the name may allocate, and that
                // allocation must not ask again.
                media.set(2);
                if std::thread::current().name() == Some("media") {
                    media.set(1);
                }
            }
            media.get() == 1
        })
        .unwrap_or(false)
}

fn note() {
    if COUNTING.load(Ordering::Relaxed) && on_media_thread() {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting(note);

const TICK: Duration = Duration::from_millis(20);
const WARM_UP: u32 = 50;
const COUNTED: u32 = 100;

/// A PCMU packet of a 1 kHz tone's worth of bytes (the content does not matter here).
fn rtp(sequence: u16, timestamp: u32) -> Vec<u8> {
    let mut packet = vec![0x80, 0];
    packet.extend(sequence.to_be_bytes());
    packet.extend(timestamp.to_be_bytes());
    packet.extend(0x0a0b_0c0du32.to_be_bytes());
    packet.extend((0..160u32).map(|i| [0xff, 0x7f, 0x00, 0x80][(i % 4) as usize]));
    packet
}

#[test]
fn a_running_call_allocates_nothing_per_packet_on_the_media_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, _reports) = Recorder::start(dir.path().to_path_buf()).unwrap();
    let audio = MediaAudio {
        source: Box::new(ToneSource::new(440.0)),
        sink: softphoned::audio::open("null", "null").unwrap().sink,
        hold_music: None,
    };
    // Quality reports are per call every few seconds, not per packet: off here.
    let config = MediaConfig { quality_interval_ms: 0, ..MediaConfig::default() };
    let (mut media, mut out) = MediaIo::start(audio, [127, 0, 0, 1].into(), config, recorder).unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let ours = media.bind_line().unwrap();
    let call = "c1".to_string();
    media.open(&call, ours);
    media.start_media(
        &call,
        StreamParams {
            remote: peer.local_addr().unwrap(),
            codec: Codec::Pcmu,
            send_pt: 0,
            receive_pt: 0,
            telephone_event: Some(EventPayloads { send: 101, receive: 101 }),
            direction: MediaDirection::SendRecv,
            srtp: None,
            opus: OpusParams::offer(),
        },
    );
    media.set_recording(&call, Some(8000));

    let packets: Vec<Vec<u8>> = (0..WARM_UP + COUNTED).map(|n| rtp(n as u16, n * 160)).collect();
    let mut buffer = [0u8; 1500];
    let mut received = 0u32;
    let mut counted_ticks = 0u32;
    let start = Instant::now();
    for (n, packet) in packets.iter().enumerate() {
        let n = n as u32;
        if n == WARM_UP {
            COUNTING.store(true, Ordering::Relaxed);
        }
        peer.send_to(packet, ours).unwrap();
        // Read what the daemon sent until this packet's 20 ms are over.
        let slot_end = start + TICK * (n + 1);
        while Instant::now() < slot_end {
            if let Ok((len, from)) = peer.recv_from(&mut buffer) {
                assert_eq!((from, len), (ours, 172), "PCMU packets from our RTP port");
                received += 1;
                counted_ticks += u32::from(COUNTING.load(Ordering::Relaxed));
            }
        }
        // The thread's reports (levels) are taken, as the run loop would.
        while let Ok(report) = out.try_recv() {
            assert!(matches!(report, MediaOut::Levels(_)), "only levels: no timeout, no keys");
        }
    }
    COUNTING.store(false, Ordering::Relaxed);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    println!(
        "{received} packets received from the media thread; {allocations} allocations in {counted_ticks} counted ticks"
    );
    assert!(counted_ticks >= COUNTED * 9 / 10, "the call ran: {counted_ticks} of {COUNTED} ticks' packets seen");
    assert_eq!(allocations, 0, "allocations on the media thread during {counted_ticks} ticks of a running call");
    // The figures say the packets were heard, not just sent.
    let (tx, rx) = tokio::sync::oneshot::channel();
    media.stats(vec![call.clone()], tx);
    let stats = rx.blocking_recv().unwrap().pop().flatten().expect("media figures");
    assert!(stats.packets_received >= u64::from(WARM_UP + COUNTED) * 9 / 10, "{stats:?}");
}
