//! The sound card through a JACK server (`audio.source`/`audio.sink` =
//! `jack`), seen from the JACK graph: jackd's dummy driver is the card, the
//! daemon's client appears when a call needs it, connected to the hardware
//! ports, what its playback port plays is the customer (recorded there by
//! `jack_rec`), a sine fed into its capture port reaches the customer, and
//! the client leaves the graph after the idle grace. The card's clock paces
//! what the customer receives (a card running fast sends fast), and a
//! frozen card hands the pacing to the daemon's own timer. Without a
//! server, `jack` falls back to null, says why, and calls go on.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::jack::{client_env, Jackd, JACK_RATE, JACK_TOOLS};
use common::{dial, require_tools, wav_samples, Daemon};
use serde_json::{json, Value};
use softphoned::audio::analysis::{dominant_frequency, rms};
use softphoned::audio::card::IDLE_GRACE;
use softphoned::control::client::Client;
use softphoned::media::PCM_RATE;

const WAIT: Duration = Duration::from_secs(10);
/// What the customer says, so the agent's speaker can be told apart.
const CUSTOMER_HZ: f64 = 400.0;
/// What `jack_simple_client` plays on its first port.
const SINE_CLIENT_HZ: f64 = 240.0;
/// A card 25 % fast: its 20 ms periods come 62.5 a second.
const FAST_CARD: f64 = 1.25;
/// How long the customer's packets are counted, each time.
const COUNT_FOR: Duration = Duration::from_secs(4);

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Answer the call that `customer_ui` places to `agent`; the agent's call id.
async fn call_and_answer(ui: &mut Client, customer_ui: &mut Client, agent: &Daemon) -> (String, String) {
    let call = dial(customer_ui, &agent.uri("agent")).await;
    let incoming = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    let mine = incoming["params"]["call"].as_str().unwrap().to_string();
    ui.call("call.answer", json!({"call": mine})).await.unwrap();
    (call, mine)
}

/// The customer: says [`CUSTOMER_HZ`], and what it hears goes to a WAV file in `dir`.
async fn customer_hearing_into(dir: &Path) -> (Daemon, PathBuf) {
    let heard = dir.join("customer-heard.wav");
    let config = format!("[audio]\nsource = \"tone:{CUSTOMER_HZ}\"\nsink = \"wav:{}\"", heard.display());
    (Daemon::spawn("customer", &config).await, heard)
}

/// How many half-seconds of `samples` (at the media rate) clearly carry a tone of `hz`.
fn half_seconds_of(samples: &[i16], hz: f64) -> usize {
    let window = PCM_RATE as usize / 2;
    samples.chunks_exact(window).filter(|w| dominant_frequency(w, PCM_RATE) == Some(hz) && rms(w) > 1000.0).count()
}

/// RTP packets a second the customer receives on `call`, over [`COUNT_FOR`].
async fn packets_per_second(customer_ui: &mut Client, call: &str) -> f64 {
    let mut received = async || {
        let stats = customer_ui.call("call.stats", json!({"call": call})).await.unwrap();
        (Instant::now(), stats["call"]["media"]["packets_received"].as_u64().expect("media counters"))
    };
    let (started, before) = received().await;
    tokio::time::sleep(COUNT_FOR).await;
    let (ended, after) = received().await;
    (after - before) as f64 / (ended - started).as_secs_f64()
}

async fn audio_status(ui: &mut Client) -> Value {
    ui.call("daemon.status", json!({})).await.unwrap()["audio"].clone()
}

/// Poll until `done`, or fail saying what was waited for.
async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_call_goes_through_the_jack_card_both_ways_and_the_client_leaves_after_it() {
    if !require_tools(&JACK_TOOLS) {
        return;
    }
    let jack = Jackd::start();
    let env = jack.env();
    let agent = Daemon::spawn_with_env("agent", "[audio]\nsource = \"jack\"\nsink = \"jack\"", &env_refs(&env)).await;
    let heard = tempfile::tempdir().unwrap();
    let (customer, heard_path) = customer_hearing_into(heard.path()).await;
    let mut ui = agent.client().await;
    let mut customer_ui = customer.client().await;
    let audio = audio_status(&mut ui).await;
    assert_eq!(audio["sink"]["kind"], "device", "{audio}");
    assert_eq!(audio["sink"]["device"], "jack:system", "{audio}");

    // Idle at first (the start-up proof closes after the grace): no client in the graph.
    wait_until("the card goes idle after start-up", IDLE_GRACE + WAIT, || !jack.lsp().contains("softphoned")).await;

    // A call: the client appears, its ports connected to the hardware's.
    let (call, mine) = call_and_answer(&mut ui, &mut customer_ui, &agent).await;
    wait_until("softphoned's ports in the JACK graph", WAIT, || {
        jack.connections("softphoned:playback") == ["system:playback_1", "system:playback_2"]
            && jack.connections("softphoned:capture") == ["system:capture_1"]
    })
    .await;

    // The microphone: a sine into the capture port, heard by the customer.
    let mut sine = jack.sine_client();
    jack.connect("jack_simple_client:output1", "softphoned:capture");
    let fed = Instant::now();

    // The speaker: what the playback port plays is the customer's tone.
    let recorded = heard.path().join("agent-playback.wav");
    jack.record("softphoned:playback", 2, &recorded);
    let played = wav_samples(&recorded);
    let settled = &played[played.len() / 2..];
    let level = rms(settled);
    println!(
        "softphoned:playback: {} samples, {:?} Hz, rms {level:.0}",
        played.len(),
        dominant_frequency(settled, JACK_RATE)
    );
    assert!(played.len() >= JACK_RATE as usize, "jack_rec got {} samples", played.len());
    assert_eq!(dominant_frequency(settled, JACK_RATE), Some(CUSTOMER_HZ), "the agent's speaker plays the customer");
    assert!(level > 16384.0 / 2f64.sqrt() / 4.0, "the customer's tone is faint on the card: rms {level}");
    let audio = audio_status(&mut ui).await;
    assert_eq!(audio["card"]["state"], "open", "{audio}");

    let _ = sine.kill();
    let _ = sine.wait();
    let fed_for = fed.elapsed();
    customer_ui.call("call.hangup", json!({"call": call})).await.unwrap();
    ui.wait_event(WAIT, |e| e["params"]["call"] == mine.as_str() && e["params"]["state"] == "ended").await.unwrap();
    let ended = Instant::now();

    // The client leaves the graph once the grace has passed.
    wait_until("softphoned leaves the JACK graph", IDLE_GRACE + WAIT, || !jack.lsp().contains("softphoned")).await;
    let left = ended.elapsed();
    println!("call ended -> JACK client gone {left:?}");
    assert!(left >= IDLE_GRACE - Duration::from_millis(200), "the client left {left:?} after the call: no grace");

    // What the customer heard: the sine the JACK graph fed the agent's microphone.
    let mut customer = customer;
    customer.terminate();
    let samples = wav_samples(&heard_path);
    let sine_windows = half_seconds_of(&samples, SINE_CLIENT_HZ);
    println!("customer heard {sine_windows} half-seconds of the {SINE_CLIENT_HZ} Hz sine (fed {fed_for:?})");
    assert!(sine_windows >= 2, "the customer never heard what the JACK graph fed the microphone");
}

#[tokio::test]
async fn jack_without_a_server_falls_back_to_null_says_why_and_calls_go_on() {
    // No server of that name runs; libjack itself comes with jackd2.
    if !require_tools(&["jackd"]) {
        return;
    }
    let env = client_env(&format!("softphoned-test-absent-{}", std::process::id()));
    let agent =
        Daemon::spawn_with_env("agent", "[audio]\nsource = \"tone:1000\"\nsink = \"jack\"", &env_refs(&env)).await;
    let heard = tempfile::tempdir().unwrap();
    let (customer, heard_path) = customer_hearing_into(heard.path()).await;
    let mut ui = agent.client().await;
    let mut customer_ui = customer.client().await;
    let sink = audio_status(&mut ui).await["sink"].clone();
    assert_eq!((sink["kind"].as_str(), sink["spec"].as_str()), (Some("null"), Some("jack")), "{sink}");
    let why = sink["fallback"].as_str().unwrap_or_default();
    assert!(why.contains("no JACK server named \"softphoned-test-absent-"), "says why: {sink}");
    assert!(agent.log().contains("sound card unavailable: using the null backend instead"), "{}", agent.log());

    // A call still connects, and the agent's tone still reaches the customer.
    let (call, _) = call_and_answer(&mut ui, &mut customer_ui, &agent).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sink = audio_status(&mut ui).await["sink"].clone();
    assert_eq!(sink["kind"], "null", "tried again during the call, still no server: {sink}");
    customer_ui.call("call.hangup", json!({"call": call})).await.unwrap();
    let mut customer = customer;
    customer.terminate();
    let samples = wav_samples(&heard_path);
    assert!(half_seconds_of(&samples, 1000.0) >= 1, "the customer never heard the agent's tone");
    assert!(ui.call("daemon.status", json!({})).await.is_ok(), "the daemon runs on");
}

#[tokio::test]
async fn the_card_clock_paces_the_rtp_and_a_frozen_card_hands_over_to_the_timer() {
    if !require_tools(&JACK_TOOLS) || !require_tools(&["faketime"]) {
        return;
    }
    let jack = Jackd::start_off_clock(FAST_CARD);
    let env = jack.env();
    let agent = Daemon::spawn_with_env("agent", "[audio]\nsource = \"jack\"\nsink = \"jack\"", &env_refs(&env)).await;
    let customer =
        Daemon::spawn("customer", &format!("[audio]\nsource = \"tone:{CUSTOMER_HZ}\"\nsink = \"null\"")).await;
    let mut ui = agent.client().await;
    let mut customer_ui = customer.client().await;
    let (call, _) = call_and_answer(&mut ui, &mut customer_ui, &agent).await;
    let opened = Instant::now();
    while audio_status(&mut ui).await["card"]["state"] != "open" {
        assert!(opened.elapsed() < WAIT, "the card did not open for the call");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The card's frames pace the agent's sending: 62.5 packets a second, not the timer's 50.
    let card_paced = packets_per_second(&mut customer_ui, &call).await;
    // A stalled card: its callbacks stop, the timer takes over within a frame or two.
    jack.freeze(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let timer_paced = packets_per_second(&mut customer_ui, &call).await;
    jack.freeze(false);
    println!("customer received {card_paced:.1} packets/s on the fast card, {timer_paced:.1} with it frozen");
    assert!((56.0..68.0).contains(&card_paced), "not paced by the card (62.5/s): {card_paced:.1}/s");
    assert!((44.0..56.0).contains(&timer_paced), "not paced by the timer (50/s): {timer_paced:.1}/s");
    customer_ui.call("call.hangup", json!({"call": call})).await.unwrap();
}
