//! Faults under loss (issue 15). This kernel has no netem qdisc, so the
//! network's faults are played in user space: sipp does the signalling
//! (`uas_media_port.xml` answers with an SDP naming a UDP port this test
//! owns), and the test is the far end's RTP sender, applying to what it
//! sends exactly what a lossy path would do to it on the way: a seeded
//! random share of packets never sent, each packet held back a random
//! 0–30 ms (so they arrive with jitter and now and then out of order), a
//! window in which nothing gets through, or silence for good.
//!
//! What is checked is what the daemon did with it: the recording of what
//! the agent heard (concealment fills the holes), the loss, MOS and jitter
//! buffer it reports to a client, the `media_timeout` hang-up the peer
//! receives as a BYE, and, for a registrar that drops everything and then
//! comes back, the REGISTERs on the wire spaced by the daemon's backoff.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::sipp::{free_port_pair, Sipp};
use common::{dial, require_tool, Daemon};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use softphoned::account::registration::backoff;
use softphoned::audio::analysis::{dominant_frequency, rms};
use softphoned::control::client::{is_call_state, Client};
use softphoned::media::g711::ulaw_encode;

/// The jitter test judges the jitter buffer's depth against a clean path's:
/// it runs alone, since the others' user-space fault relays on a loaded
/// machine add real jitter to its clean path (seen once: a 120 ms target).
static TIMING: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

const WAIT: Duration = Duration::from_secs(15);
/// The far end's tone: 1 kHz at about −12 dBFS.
const TONE_HZ: f64 = 1000.0;
const TONE_AMPLITUDE: f64 = 8000.0;
const RATE: u32 = 8000;
/// 20 ms of PCMU.
const FRAME: usize = 160;
const PACKET: Duration = Duration::from_millis(20);
/// A recorded 20 ms frame below this RMS is taken for silence: a tenth of
/// the tone's (concealment fades a lost frame to silence at 60 ms).
const SILENT_RMS: f64 = TONE_AMPLITUDE * std::f64::consts::FRAC_1_SQRT_2 / 10.0;

/// What the path between the far end and the daemon does to the far end's RTP.
#[derive(Debug, Clone, Default)]
struct Impairment {
    /// Share of packets lost, 0..1, drawn from a PRNG seeded with `seed`.
    loss: f64,
    /// Each packet is held back a uniform 0..=`jitter` (drawn from the same PRNG).
    jitter: Duration,
    /// Nothing sent in this span of the stream (counted from its first packet).
    outage: Option<Range<Duration>>,
    seed: u64,
}

/// What the far end's sender actually put on the wire.
#[derive(Debug)]
struct Sent {
    /// Packets the stream was made of (sequence numbers used).
    generated: u64,
    /// Of which never sent: lost or in the outage.
    dropped: u64,
    /// Sent after one with a higher sequence number.
    reordered: u64,
    /// When the last packet left.
    last_sent: Instant,
}

/// The far end's RTP port (and RTCP beside it), announced by the sipp UAS.
struct FarEnd {
    rtp: UdpSocket,
    _rtcp: UdpSocket,
    port: u16,
}

impl FarEnd {
    fn bind() -> FarEnd {
        for _ in 0..100 {
            let port = free_port_pair();
            if let (Ok(rtp), Ok(rtcp)) =
                (UdpSocket::bind(("127.0.0.1", port)), UdpSocket::bind(("127.0.0.1", port + 1)))
            {
                return FarEnd { rtp, _rtcp: rtcp, port };
            }
        }
        panic!("no free RTP port pair on 127.0.0.1");
    }

    /// The daemon's RTP address: the source of the first packet it sends
    /// us (it sends and receives on one port, symmetric RTP).
    async fn daemon_address(&self) -> SocketAddr {
        let socket = self.rtp.try_clone().unwrap();
        tokio::task::spawn_blocking(move || {
            socket.set_read_timeout(Some(WAIT)).unwrap();
            let mut buf = [0u8; 2048];
            let (len, from) = socket.recv_from(&mut buf).expect("the daemon sends RTP to the port in the answer");
            assert!(len >= 12 && buf[0] >> 6 == 2, "RTP version 2 from {from}");
            from
        })
        .await
        .unwrap()
    }

    /// Send `duration` of PCMU tone to `to` from a thread of its own (the
    /// schedule does not wait on the test's runtime), impaired as `path`
    /// says. The stream's sequence numbers and timestamps run on through
    /// losses and the outage, as a real sender's do.
    fn send_tone(&self, to: SocketAddr, duration: Duration, path: Impairment) -> std::thread::JoinHandle<Sent> {
        let socket = self.rtp.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(path.seed);
            let packets = (duration.as_millis() / PACKET.as_millis()) as u64;
            let jitter_us = path.jitter.as_micros() as u64;
            let mut departures: Vec<(Duration, u64)> = Vec::new();
            for n in 0..packets {
                // Both draws for every packet, so the pattern depends on the seed alone.
                let lost = rng.random::<f64>() < path.loss;
                let held_us = rng.random_range(0..=jitter_us);
                let nominal = PACKET * n as u32;
                let in_outage = path.outage.as_ref().is_some_and(|o| o.contains(&nominal));
                if !lost && !in_outage {
                    departures.push((nominal + Duration::from_micros(held_us), n));
                }
            }
            departures.sort();
            let reordered = departures.windows(2).filter(|w| w[1].1 < w[0].1).count() as u64;
            let ssrc: u32 = 0x5ee_d00d;
            let (first_seq, first_ts) = (40_000u16, 1_000_000u32);
            let started = Instant::now();
            let mut last_sent = started;
            let mut packet = [0u8; 12 + FRAME];
            for (departure, n) in &departures {
                let at = started + *departure;
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
                let sequence = first_seq.wrapping_add(*n as u16);
                let timestamp = first_ts.wrapping_add(*n as u32 * FRAME as u32);
                packet[0] = 0x80;
                packet[1] = if *n == 0 { 0x80 } else { 0 }; // marker on the first, PT 0 (PCMU)
                packet[2..4].copy_from_slice(&sequence.to_be_bytes());
                packet[4..8].copy_from_slice(&timestamp.to_be_bytes());
                packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
                for (i, code) in packet[12..].iter_mut().enumerate() {
                    let k = *n as f64 * FRAME as f64 + i as f64;
                    let sample = TONE_AMPLITUDE * (std::f64::consts::TAU * TONE_HZ * k / f64::from(RATE)).sin();
                    *code = ulaw_encode(sample as i16);
                }
                socket.send_to(&packet, to).unwrap();
                last_sent = Instant::now();
            }
            Sent { generated: packets, dropped: packets - departures.len() as u64, reordered, last_sent }
        })
    }
}

/// A connected call from the daemon (sending 440 Hz, recording every call,
/// `media` as its `[media]` keys) to a sipp UAS whose SDP names `far`'s port.
struct Call {
    peer: Sipp,
    /// The UAS's SIP port.
    peer_port: u16,
    daemon: Daemon,
    ui: Client,
    id: String,
    far: FarEnd,
    daemon_rtp: SocketAddr,
    work: tempfile::TempDir,
}

async fn call_far_end(media: &str) -> Call {
    call_far_end_with("", media).await
}

/// [`call_far_end`] with `sip` as extra keys of the daemon's `[sip]`.
async fn call_far_end_with(sip: &str, media: &str) -> Call {
    let work = tempfile::tempdir().unwrap();
    let far = FarEnd::bind();
    let sip_port = free_port_pair();
    let peer = Sipp::start(
        work.path(),
        "uas_media_port.xml",
        sip_port,
        free_port_pair(),
        &["-set", "rtp_port", &far.port.to_string()],
    );
    let config = format!(
        "{sip}\n[audio]\nsource = \"tone:440\"\n[media]\n{media}\n[recording]\ndir = \"recordings\"\nmode = \"always\"\n"
    );
    let daemon = Daemon::spawn("agent", &config).await;
    let mut ui = daemon.client().await;
    let id = dial(&mut ui, &format!("sip:far@127.0.0.1:{sip_port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &id, "connected"))
        .await
        .unwrap_or_else(|e| panic!("not connected: {e}\n{}", daemon.log()));
    let daemon_rtp = far.daemon_address().await;
    Call { peer, peer_port: sip_port, daemon, ui, id, far, daemon_rtp, work }
}

impl Call {
    async fn stats(&mut self) -> Value {
        self.ui.call("call.stats", json!({"call": self.id})).await.unwrap()
    }

    /// Hang up and let sipp confirm the BYE; returns what the agent heard
    /// (the recording's right channel, read before the daemon's folder
    /// goes) and every event the client got meanwhile.
    async fn hang_up(mut self) -> (Vec<i16>, Vec<Value>) {
        let mut events = drain_events(&mut self.ui).await;
        self.ui.call("call.hangup", json!({"call": self.id})).await.unwrap();
        let id = self.id.clone();
        let saved = self
            .ui
            .wait_event(WAIT, |e| {
                events.push(e.clone());
                e["method"] == "recording.saved" && e["params"]["call"] == id.as_str()
            })
            .await
            .unwrap();
        self.peer.expect_success().await;
        let path = PathBuf::from(saved["params"]["path"].as_str().unwrap());
        assert!(path.starts_with(self.daemon.path("recordings")), "{path:?}");
        (heard(&path), events)
    }

    /// Has sipp (the peer) received a BYE so far?
    fn peer_saw_bye(&self) -> bool {
        std::fs::read_to_string(self.work.path().join("uas_media_port.msg")).unwrap_or_default().contains("BYE sip:")
    }
}

/// Every event already queued or arriving within 100 ms.
async fn drain_events(ui: &mut Client) -> Vec<Value> {
    let mut events = Vec::new();
    while let Ok(event) = ui.wait_event(Duration::from_millis(100), |_| true).await {
        events.push(event);
    }
    events
}

/// The right channel (the remote party, as the agent heard it) of a
/// recording, checked to be 8 kHz stereo.
fn heard(path: &Path) -> Vec<i16> {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.sample_rate), (2, RATE), "{path:?}");
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    samples.iter().skip(1).step_by(2).copied().collect()
}

/// Per 20 ms frame of `audio`: is it silent?
fn silent_frames(audio: &[i16]) -> Vec<bool> {
    audio.chunks_exact(FRAME).map(|f| rms(f) < SILENT_RMS).collect()
}

/// The frames from the first to the last that holds sound.
fn sounding_span(silent: &[bool]) -> Range<usize> {
    let first = silent.iter().position(|s| !s).expect("the recording holds the far end's tone");
    let last = silent.iter().rposition(|s| !s).unwrap();
    first..last + 1
}

/// The longest run of silent frames in `silent[span]`, and where it starts.
fn longest_silence(silent: &[bool], span: Range<usize>) -> (usize, usize) {
    let (mut best, mut best_at, mut run) = (0, span.start, 0);
    for i in span {
        run = if silent[i] { run + 1 } else { 0 };
        if run > best {
            (best, best_at) = (run, i + 1 - run);
        }
    }
    (best, best_at)
}

/// Run the far end's tone through `path` for `duration` while polling
/// `call.stats` every 250 ms; returns what was sent and every poll.
async fn play(call: &mut Call, duration: Duration, path: Impairment) -> (Sent, Vec<Value>) {
    let sender = call.far.send_tone(call.daemon_rtp, duration, path);
    let mut polls = Vec::new();
    let deadline = Instant::now() + duration + Duration::from_secs(5);
    while !sender.is_finished() {
        assert!(Instant::now() < deadline, "the sender overran its schedule");
        polls.push(call.stats().await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let sent = sender.join().unwrap();
    // Let the last packets through the jitter buffer, and one more poll.
    tokio::time::sleep(Duration::from_millis(300)).await;
    polls.push(call.stats().await);
    (sent, polls)
}

/// Figures of one run, from the client's point of view.
#[derive(Debug)]
struct Figures {
    /// Lost packets as the daemon counts them (RTCP expected − received).
    packets_lost: i64,
    packets_received: u64,
    /// `loss_percent` of the quality reports (call.quality and call.stats).
    loss_percent: Vec<f64>,
    mos: Vec<f64>,
    /// The jitter buffer's target delay over the run (`jitter_buffer_ms`).
    target_delay_ms: Vec<u64>,
    current_delay_ms: Vec<u64>,
    jitter_ms: f64,
    late: u64,
    reordered: u64,
    concealed: u64,
}

fn figures(call_id: &str, polls: &[Value], events: &[Value]) -> Figures {
    let last = polls.last().unwrap();
    let media = &last["call"]["media"];
    let quality: Vec<&Value> = polls
        .iter()
        .map(|p| &p["quality"])
        .chain(
            events
                .iter()
                .filter(|e| e["method"] == "call.quality" && e["params"]["call"] == call_id)
                .map(|e| &e["params"]),
        )
        .filter(|q| q.is_object())
        .collect();
    let buffer = |key: &str| polls.iter().filter_map(|p| p["call"]["media"]["jitter_buffer"][key].as_u64()).collect();
    Figures {
        packets_lost: media["rtcp"]["packets_lost"].as_i64().unwrap(),
        packets_received: media["rtcp"]["packets_received"].as_u64().unwrap(),
        loss_percent: quality.iter().filter_map(|q| q["loss_percent"].as_f64()).collect(),
        mos: quality.iter().filter_map(|q| q["mos"].as_f64()).collect(),
        target_delay_ms: buffer("target_delay_ms"),
        current_delay_ms: buffer("current_delay_ms"),
        jitter_ms: media["rtcp"]["jitter_ms"].as_f64().unwrap(),
        late: media["jitter_buffer"]["late"].as_u64().unwrap(),
        reordered: media["jitter_buffer"]["reordered"].as_u64().unwrap(),
        concealed: media["jitter_buffer"]["lost"].as_u64().unwrap(),
    }
}

fn max_f(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::MIN, f64::max)
}

fn min_f(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::MAX, f64::min)
}

/// The mean of the second half of `values`: the settled figure.
fn settled(values: &[u64]) -> f64 {
    let tail = &values[values.len() / 2..];
    tail.iter().sum::<u64>() as f64 / tail.len() as f64
}

/// RTCP every 0.5–1.5 s and a `call.quality` every second, so a 10 s
/// call gets a loss figure several times.
const REPORTING: &str = "rtcp_interval_ms = 1000\nquality_interval_ms = 1000";

#[tokio::test]
async fn five_percent_loss_and_30_ms_jitter_are_concealed_reported_and_buffered_for() {
    let _alone = TIMING.write().await;
    if !require_tool("sipp") {
        return;
    }
    // The same call on a clean path first: the figures to compare with.
    let mut clean = call_far_end(REPORTING).await;
    let (clean_sent, clean_polls) = play(&mut clean, Duration::from_secs(4), Impairment::default()).await;
    let clean_id = clean.id.clone();
    let (_, clean_events) = clean.hang_up().await;
    let clean = figures(&clean_id, &clean_polls, &clean_events);
    assert_eq!(clean_sent.dropped, 0);
    assert_eq!(clean.packets_lost, 0, "a clean path loses nothing: {clean:?}");

    let mut lossy = call_far_end(REPORTING).await;
    let path = Impairment { loss: 0.05, jitter: Duration::from_millis(30), seed: 15, ..Impairment::default() };
    let (sent, polls) = play(&mut lossy, Duration::from_secs(10), path).await;
    assert!(!lossy.peer_saw_bye(), "the call stayed up");
    let id = lossy.id.clone();
    let log = lossy.daemon.log();
    let (audio, events) = lossy.hang_up().await;
    let lossy = figures(&id, &polls, &events);
    let dropped_percent = 100.0 * sent.dropped as f64 / sent.generated as f64;
    let counted_percent =
        100.0 * lossy.packets_lost as f64 / (lossy.packets_lost as f64 + lossy.packets_received as f64);
    eprintln!("sent {sent:?} ({dropped_percent:.1} % dropped)");
    eprintln!("clean: {clean:?}");
    eprintln!("lossy: {lossy:?} ({counted_percent:.1} % counted lost)");

    // The loss the daemon counts is the loss the path made (the last
    // packets may be among the lost, which no receiver can know of yet).
    assert!(sent.reordered > 0, "30 ms of jitter on 20 ms packets reorders some: {sent:?}");
    assert!(
        (sent.dropped as i64 - 2..=sent.dropped as i64).contains(&lossy.packets_lost),
        "the path dropped {} packets, the daemon counts {}",
        sent.dropped,
        lossy.packets_lost
    );
    assert!((3.0..=7.0).contains(&counted_percent), "{counted_percent:.1} % counted lost");
    // The quality reports show the loss, and a lower MOS than the clean call's.
    assert!(clean.loss_percent.iter().all(|l| *l == 0.0), "{clean:?}");
    assert!(max_f(&lossy.loss_percent) > 0.0, "some report shows loss: {lossy:?}");
    assert!(max_f(&lossy.loss_percent) < 20.0, "and not much more than there was: {lossy:?}");
    assert!(min_f(&lossy.mos) < min_f(&clean.mos) - 0.2, "MOS: lossy {:?}, clean {:?}", lossy.mos, clean.mos);
    assert!(
        events.iter().any(|e| e["method"] == "call.quality" && e["params"]["loss_percent"].as_f64() > Some(0.0)),
        "a call.quality event reached the client with the loss"
    );
    assert!(lossy.jitter_ms > clean.jitter_ms + 3.0, "jitter: {} vs {}", lossy.jitter_ms, clean.jitter_ms);
    // The jitter buffer aims deeper on the jittery path: about the 30 ms
    // spread plus its 12 ms band, where the clean path keeps the 20 ms floor.
    let clean_target = settled(&clean.target_delay_ms);
    let lossy_target = settled(&lossy.target_delay_ms);
    eprintln!(
        "target delay: clean {clean_target:.0} ms, lossy {lossy_target:.0} ms; time in the buffer: clean {:.0} ms, lossy {:.0} ms",
        settled(&clean.current_delay_ms),
        settled(&lossy.current_delay_ms)
    );
    assert!(
        lossy_target >= clean_target + 10.0 && lossy_target <= 60.0,
        "target delay: lossy {lossy_target} ms, clean {clean_target} ms"
    );
    assert!(lossy.reordered > 0, "the daemon saw packets out of order: {lossy:?}");
    assert!(lossy.concealed >= sent.dropped, "each lost packet concealed: {lossy:?}");
    // Few packets arrive too late for it once it has adapted.
    assert!(lossy.late * 50 <= sent.generated, "{} of {} packets late", lossy.late, sent.generated);

    // What the agent heard: the tone without a hole; every loss concealed.
    let silent = silent_frames(&audio);
    let span = sounding_span(&silent);
    let tone_s = span.len() as f64 * 0.02;
    assert!((9.5..=10.5).contains(&tone_s), "the recording holds {tone_s:.2} s of the 10 s tone");
    let (run, at) = longest_silence(&silent, span.clone());
    let holes = silent[span.clone()].iter().filter(|s| **s).count();
    eprintln!("recording: {tone_s:.2} s of tone, {holes} silent 20 ms frames in it, the longest run {} ms", run * 20);
    assert!(run <= 3, "a silent run of {} ms at {:.2} s in the tone:\n{log}", run * 20, at as f64 * 0.02);
    // Without concealment each of the lost packets would be a silent frame.
    assert!(holes <= 3, "{holes} silent frames for {} lost packets: the losses were not concealed", sent.dropped);
    let half_seconds: Vec<Option<f64>> =
        audio[span.start * FRAME..span.end * FRAME].chunks_exact(4000).map(|w| dominant_frequency(w, RATE)).collect();
    assert!(half_seconds.iter().all(|f| *f == Some(TONE_HZ)), "the tone throughout: {half_seconds:?}");
}

#[tokio::test]
async fn a_two_second_outage_is_survived_and_the_audio_comes_back() {
    let _shared = TIMING.read().await;
    if !require_tool("sipp") {
        return;
    }
    // The default media timeout (30 s) is far off; the outage must not end
    // the call. RTCP and call.quality every second or so, as in the loss test.
    let mut call = call_far_end(REPORTING).await;
    let path = Impairment { outage: Some(Duration::from_secs(3)..Duration::from_secs(5)), ..Impairment::default() };
    let (sent, polls) = play(&mut call, Duration::from_secs(8), path).await;
    assert_eq!(sent.dropped, 100, "2 s of 20 ms packets");

    // Still up: connected for the client, no BYE at the peer.
    let list = call.ui.call("call.list", json!({})).await.unwrap();
    assert_eq!(list["calls"][0]["state"], "connected", "{list}");
    assert!(!call.peer_saw_bye(), "no BYE during or after the outage");
    let last = polls.last().unwrap()["call"]["media"].clone();
    assert_eq!(last["rtcp"]["packets_lost"], 100, "the outage's packets are counted lost: {last}");
    assert_eq!(last["rtcp"]["packets_received"], sent.generated - 100, "and all the rest arrived: {last}");
    // The first RTCP interval closed after the outage holds its losses:
    // the quality figures the client sees drop (they cannot move during the
    // outage itself, when no packet arrives to close an interval).
    let id = call.id.clone();
    let (audio, events) = call.hang_up().await;
    assert!(!events.iter().any(|e| is_call_state(e, &id, "ended") && e["params"]["reason"] != "local_hangup"));
    let outage_figures = figures(&id, &polls, &events);
    eprintln!("quality: loss {:?} %, MOS {:?}", outage_figures.loss_percent, outage_figures.mos);
    assert!(max_f(&outage_figures.loss_percent) >= 25.0, "the outage shows as loss: {outage_figures:?}");
    assert!(min_f(&outage_figures.mos) < 2.5, "and as a poor MOS: {outage_figures:?}");

    // The recording: tone, about 2 s of silence, tone again to the end.
    let silent = silent_frames(&audio);
    let span = sounding_span(&silent);
    let tone_s = span.len() as f64 * 0.02;
    assert!((7.6..=8.4).contains(&tone_s), "{tone_s:.2} s from the first sound to the last");
    let (run, at) = longest_silence(&silent, span.clone());
    let gap_ms = run * 20;
    let gap_from_s = (at - span.start) as f64 * 0.02;
    eprintln!("outage 2000 ms: heard silence {gap_ms} ms from {gap_from_s:.2} s into the tone");
    // Concealment covers the first 40 ms or so, and the audio is back within 100 ms.
    assert!((1860..=2100).contains(&gap_ms), "the silence heard is the outage: {gap_ms} ms");
    assert!((2.9..=3.2).contains(&gap_from_s), "and where it was: {gap_from_s:.2} s");
    let after = at + run;
    let (run_after, _) = longest_silence(&silent, after..span.end);
    assert_eq!(run_after, 0, "no silence after the audio came back");
    let back: Vec<Option<f64>> =
        audio[after * FRAME..span.end * FRAME].chunks_exact(4000).map(|w| dominant_frequency(w, RATE)).collect();
    assert!(back.len() >= 5 && back.iter().all(|f| *f == Some(TONE_HZ)), "the tone is back: {back:?}");
}

#[tokio::test]
async fn a_far_end_that_goes_silent_is_hung_up_on_with_media_timeout() {
    let _shared = TIMING.read().await;
    if !require_tool("sipp") {
        return;
    }
    const TIMEOUT_MS: u64 = 1500;
    let mut call = call_far_end(&format!("media_timeout_ms = {TIMEOUT_MS}")).await;
    // Two seconds of audio, then the far end's RTP stops for good (no BYE).
    let (sent, _) = play(&mut call, Duration::from_secs(2), Impairment::default()).await;
    let id = call.id.clone();
    let ended = call
        .ui
        .wait_event(WAIT, |e| is_call_state(e, &id, "ended"))
        .await
        .unwrap_or_else(|e| panic!("not ended: {e}\n{}", call.daemon.log()));
    let silent_for = sent.last_sent.elapsed();
    eprintln!("ended {} ms after the far end's last packet: {}", silent_for.as_millis(), ended["params"]);
    assert_eq!(ended["params"]["reason"], "media_timeout", "{ended}");
    let timeout = Duration::from_millis(TIMEOUT_MS);
    assert!(
        silent_for >= timeout && silent_for <= timeout + Duration::from_millis(1000),
        "ended {silent_for:?} after the last packet, the timeout is {timeout:?}"
    );
    // The peer got our BYE and answered it (the scenario ends on it).
    let log = call.peer.expect_success().await;
    assert!(log.contains("BYE sip:"), "{log}");
}

/// One REGISTER datagram as the registrar's address received it.
struct Seen {
    at: Instant,
    branch: String,
}

/// T1 of 20 ms: a REGISTER nobody answers fails after 64·T1 = 1.28 s, so
/// the backoff waits, not the transaction timeout, dominate the spacing.
const T1_MS: u64 = 20;

#[tokio::test]
async fn an_unreachable_registrar_is_retried_with_growing_backoff_and_registered_with_when_back() {
    let _shared = TIMING.read().await;
    if !require_tool("sipp") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // The registrar's address, where every datagram is read and dropped.
    let registrar_port = free_port_pair();
    let blackhole = tokio::net::UdpSocket::bind(("127.0.0.1", registrar_port)).await.unwrap();
    let account = format!(
        "t1_ms = {T1_MS}\n[[accounts]]\nid = \"main\"\naor = \"sip:agent@127.0.0.1\"\n\
         registrar = \"sip:127.0.0.1:{registrar_port}\"\nexpires_s = 300\nkeepalive_s = 0\n"
    );
    let daemon = Daemon::spawn("agent", &account).await;
    let mut ui = daemon.client().await;

    // Three attempts go unanswered: read the wire until the daemon reports
    // the third failure (and with it the 4 s wait before the fourth).
    const FAILURES: usize = 3;
    let mut seen: Vec<Seen> = Vec::new();
    let mut failed: Vec<(Instant, Value)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0u8; 65536];
    while failed.len() < FAILURES {
        assert!(Instant::now() < deadline, "only {} failures reported:\n{}", failed.len(), daemon.log());
        tokio::select! {
            received = blackhole.recv_from(&mut buf) => {
                let (len, _) = received.unwrap();
                let text = String::from_utf8_lossy(&buf[..len]).to_string();
                assert!(text.starts_with("REGISTER "), "only REGISTERs reach the registrar: {text}");
                let branch = text.split("branch=").nth(1).unwrap().split([';', '\r', ',']).next().unwrap().to_string();
                seen.push(Seen { at: Instant::now(), branch });
            }
            event = ui.wait_event(Duration::from_millis(200), |e| e["method"] == "registration.state") => {
                if let Ok(event) = event {
                    if event["params"]["state"] == "failed" {
                        failed.push((Instant::now(), event["params"].clone()));
                    }
                }
            }
        }
    }
    // The registrar comes back on the same address.
    drop(blackhole);
    let registrar = Sipp::start(work.path(), "uas_registrar.xml", registrar_port, free_port_pair(), &[]);
    let registered = ui
        .wait_event(WAIT, |e| e["method"] == "registration.state" && e["params"]["state"] == "registered")
        .await
        .unwrap_or_else(|e| panic!("not registered again: {e}\n{}", daemon.log()));
    let registered_at = Instant::now();
    registrar.expect_success().await;
    let list = ui.call("account.list", json!({})).await.unwrap();
    assert_eq!(list["accounts"][0]["registration"]["state"], "registered", "{list}");
    assert_eq!(registered["params"]["expires_s"], 300, "{registered}");

    // Attempts on the wire: a new transaction (branch) each; each one
    // retransmitted on T1's schedule before it is given up.
    let mut attempts: Vec<(Instant, usize)> = Vec::new();
    let mut branches: Vec<&str> = Vec::new();
    for datagram in &seen {
        match branches.iter().position(|b| *b == datagram.branch) {
            Some(i) => attempts[i].1 += 1,
            None => {
                branches.push(&datagram.branch);
                attempts.push((datagram.at, 1));
            }
        }
    }
    let retry_in: Vec<u64> = failed.iter().map(|(_, p)| p["retry_in_ms"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (0..FAILURES as u32).map(|n| backoff(n).as_millis() as u64).collect();
    // Start to start, less the 64·T1 each unanswered transaction lasts:
    // the wait the daemon chose. The last is up to the REGISTER sipp answered.
    let transaction = Duration::from_millis(64 * T1_MS);
    let mut waits: Vec<u64> =
        attempts.windows(2).map(|w| (w[1].0 - w[0].0).saturating_sub(transaction).as_millis() as u64).collect();
    waits.push((registered_at - failed.last().unwrap().0).as_millis() as u64);
    eprintln!(
        "REGISTER attempts (datagrams each): {:?}; waits seen {waits:?} ms; retry_in_ms reported {retry_in:?}",
        attempts.iter().map(|a| a.1).collect::<Vec<_>>()
    );
    assert_eq!(attempts.len(), FAILURES, "one transaction per attempt: {} branches", attempts.len());
    assert!(attempts.iter().all(|a| a.1 >= 4), "each attempt retransmitted: {:?}", attempts.iter().map(|a| a.1));
    assert_eq!(retry_in, expected, "the failures report backoff() as the wait");
    assert_eq!(expected, [1000, 2000, 4000], "and it doubles");
    for (seen, wanted) in waits.iter().zip(&expected) {
        assert!(seen.abs_diff(*wanted) <= 300, "waited {waits:?} ms, backoff says {expected:?}");
    }
}

/// The far end's host is gone altogether: no RTP, and its SIP address
/// drops everything, so our BYE is never answered. The call still ends,
/// on time, and the BYE was tried (retransmitted) all the same.
#[tokio::test]
async fn a_far_end_that_vanishes_entirely_is_hung_up_on_even_though_the_bye_goes_unanswered() {
    let _shared = TIMING.read().await;
    if !require_tool("sipp") {
        return;
    }
    const TIMEOUT_MS: u64 = 1500;
    let mut call = call_far_end_with("t1_ms = 50", &format!("media_timeout_ms = {TIMEOUT_MS}")).await;
    let (sent, _) = play(&mut call, Duration::from_secs(1), Impairment::default()).await;
    // The host vanishes: sipp is killed, its SIP port now reads and drops.
    let Call { peer, peer_port, mut ui, id, daemon, .. } = call;
    drop(peer);
    let mut dead_host = None;
    for _ in 0..100 {
        match tokio::net::UdpSocket::bind(("127.0.0.1", peer_port)).await {
            Ok(socket) => {
                dead_host = Some(socket);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let dead_host = dead_host.expect("sipp's SIP port is free once it is killed");
    let ended = ui
        .wait_event(WAIT, |e| is_call_state(e, &id, "ended"))
        .await
        .unwrap_or_else(|e| panic!("not ended: {e}\n{}", daemon.log()));
    let silent_for = sent.last_sent.elapsed();
    assert_eq!(ended["params"]["reason"], "media_timeout", "{ended}");
    let timeout = Duration::from_millis(TIMEOUT_MS);
    assert!(silent_for >= timeout && silent_for <= timeout + Duration::from_millis(1000), "ended after {silent_for:?}");
    let list = ui.call("call.list", json!({})).await.unwrap();
    assert_eq!(list["calls"], json!([]), "the call is gone at once: {list}");
    // Our BYE reached the dead host's address and was retransmitted (T1
    // 50 ms: at 0, 50, 150, 350 ms ...), until the transaction gave up.
    let mut byes = 0;
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(64 * 50 + 500);
    while let Ok(Ok(len)) = tokio::time::timeout_at(deadline, dead_host.recv(&mut buf)).await {
        byes += usize::from(buf[..len].starts_with(b"BYE "));
    }
    eprintln!("ended {} ms after the last packet; {byes} BYE datagrams to the dead host", silent_for.as_millis());
    assert!(byes >= 3, "the BYE was sent and retransmitted: {byes}");
    let status = ui.call("daemon.status", json!({})).await.unwrap();
    assert!(status.is_object(), "the daemon carries on: {status}");
}
