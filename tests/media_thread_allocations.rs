//! The media threads allocate nothing per packet once calls run: a real
//! `MediaIo` (its own threads, real UDP ports on 127.0.0.1, recording on)
//! carries G.711 calls with peers on sockets of this test that send a
//! packet every 20 ms and read what comes back; a global allocator counts
//! what the threads named `media` allocate over two seconds of steady
//! calls, after a second of warm-up. With one call one thread does the
//! tick; with 40 it is spread over two, and both are seen working.

#[path = "alloc/counting.rs"]
mod counting;

use std::cell::Cell;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use counting::Counting;
use softphoned::audio::ToneSource;
use softphoned::config::MediaConfig;
use softphoned::media::codec::{Codec, OpusParams};
use softphoned::media::params::{EventPayloads, MediaDirection, StreamParams};
use softphoned::media_io::{MediaAudio, MediaIo, MediaOut};
use softphoned::recorder::{Recorder, RecorderSettings};

/// Counting is on (the steady window).
static COUNTING: AtomicBool = AtomicBool::new(false);
/// One test at a time: they share the counter.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
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
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    steady_calls(1, 1);
}

#[test]
fn forty_calls_spread_over_two_media_threads_allocate_nothing_per_packet() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let busy = steady_calls(40, 2);
    assert!(busy >= 2, "the tick was spread: {busy} media threads worked more than 1 ms in the window");
}

/// `calls` calls through `threads` media threads, each sent a packet every
/// 20 ms; asserts that they ran and allocated nothing in the counted window,
/// and returns how many media threads ran for more than 1 ms in it.
fn steady_calls(calls: usize, threads: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, _reports) = Recorder::start(RecorderSettings::new(dir.path().to_path_buf())).unwrap();
    let audio = MediaAudio {
        source: Box::new(ToneSource::new(440.0)),
        sink: softphoned::audio::open("null", "null").unwrap().sink,
        hold_music: None,
    };
    // Quality reports are per call every few seconds, not per packet: off here.
    // Spread from the first tick on, however fast this machine does it alone.
    let config = MediaConfig { quality_interval_ms: 0, threads, spread_above_ms: 0, ..MediaConfig::default() };
    let (mut media, mut out) = MediaIo::start(audio, [127, 0, 0, 1].into(), config, recorder).unwrap();
    let mut peers: Vec<(String, UdpSocket, SocketAddr)> = Vec::new();
    for n in 0..calls {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_nonblocking(true).unwrap();
        let ours = media.bind_line().unwrap();
        let call = format!("c{n}");
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
        peers.push((call, peer, ours));
    }

    let packets: Vec<Vec<u8>> = (0..WARM_UP + COUNTED).map(|n| rtp(n as u16, n * 160)).collect();
    let mut buffer = [0u8; 1500];
    let mut received = 0u32;
    let mut counted = 0u32;
    let mut busy_before = Vec::new();
    let start = Instant::now();
    for (n, packet) in packets.iter().enumerate() {
        let n = n as u32;
        if n == WARM_UP {
            busy_before = media_thread_runtimes();
            COUNTING.store(true, Ordering::Relaxed);
        }
        for (_, peer, ours) in &peers {
            peer.send_to(packet, ours).unwrap();
        }
        // Read what the daemon sent until this packet's 20 ms are over.
        let slot_end = start + TICK * (n + 1);
        while Instant::now() < slot_end {
            for (_, peer, ours) in &peers {
                while let Ok((len, from)) = peer.recv_from(&mut buffer) {
                    assert_eq!((from, len), (*ours, 172), "PCMU packets from our RTP port");
                    received += 1;
                    counted += u32::from(COUNTING.load(Ordering::Relaxed));
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        // The threads' reports (levels) are taken, as the run loop would.
        while let Ok(report) = out.try_recv() {
            assert!(matches!(report, MediaOut::Levels(_)), "only levels: no timeout, no keys");
        }
    }
    COUNTING.store(false, Ordering::Relaxed);
    let busy_after = media_thread_runtimes();
    let allocations = ALLOCATIONS.swap(0, Ordering::Relaxed);
    let counted_ticks = counted / calls as u32;
    println!(
        "{calls} calls: {received} packets received from the media threads; {allocations} allocations in \
         {counted_ticks} counted ticks; runtime per media thread {busy_before:?} -> {busy_after:?} ns"
    );
    assert!(counted_ticks >= COUNTED * 9 / 10, "the calls ran: {counted_ticks} of {COUNTED} ticks' packets seen");
    assert_eq!(
        allocations, 0,
        "allocations on the media threads during {counted_ticks} ticks of {calls} running calls"
    );
    // The figures say the packets were heard, not just sent.
    let (tx, rx) = tokio::sync::oneshot::channel();
    media.stats(peers.iter().map(|(call, ..)| call.clone()).collect(), tx);
    for stats in rx.blocking_recv().unwrap() {
        let stats = stats.expect("media figures");
        assert!(stats.packets_received >= u64::from(WARM_UP + COUNTED) * 9 / 10, "{stats:?}");
    }
    busy_after
        .iter()
        .filter(|(tid, after)| {
            let before = busy_before.iter().find(|(t, _)| t == tid).map_or(0, |(_, ns)| *ns);
            after - before > 1_000_000
        })
        .count()
}

/// Each thread named `media` of this process, with the nanoseconds it has
/// run (schedstat's first field).
fn media_thread_runtimes() -> Vec<(u32, u64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "media" {
            continue;
        }
        let schedstat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        let runtime = schedstat.split_whitespace().next().and_then(|ns| ns.parse().ok()).unwrap_or(0);
        let tid = task.file_name().to_string_lossy().parse().unwrap_or(0);
        threads.push((tid, runtime));
    }
    threads
}
