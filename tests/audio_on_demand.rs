//! The daemon opens the sound card only when a call needs it, only in the
//! directions configured as `device`, and closes it a few seconds after the
//! last call. Observed from outside: the ALSA software card's playback FIFO
//! (tests/alsa/playback-only.conf.in, a card with no microphone at all) is
//! open, written or closed, and what it plays is the call's audio.

mod common;

use std::time::{Duration, Instant};

use common::alsa::{samples, PacedSpeaker, SoftwareCard, SpeakerEvent, CARD_RATE, PLAYBACK_CHANNELS, TONE_RMS};
use common::{dial, Daemon};
use serde_json::{json, Value};
use softphoned::audio::analysis::{dominant_frequency, rms};
use softphoned::audio::card::IDLE_GRACE;
use softphoned::control::client::Client;

const WAIT: Duration = Duration::from_secs(10);
/// What the customer says, so the agent's speaker can be told apart.
const CUSTOMER_HZ: f64 = 400.0;
/// From the agent's answer to the customer's voice leaving the card: the
/// open (tens of ms), the jitter buffer, the card's buffers. Generous for a
/// loaded machine, yet far below what a card left closed would take (never).
const AUDIO_AFTER_ANSWER: Duration = Duration::from_millis(1500);

async fn card_state(ui: &mut Client) -> Value {
    let status = ui.call("daemon.status", json!({})).await.unwrap();
    status["audio"].clone()
}

/// Read the speaker until it has been silent (no event) for `quiet`; true
/// when the FIFO is then closed (or was never opened).
fn settle(speaker: &PacedSpeaker, quiet: Duration) -> bool {
    let mut open = false;
    while let Some((_, event)) = speaker.next(quiet) {
        open = !matches!(event, SpeakerEvent::Closed);
    }
    !open
}

#[tokio::test]
async fn card_opens_for_a_call_plays_it_without_a_microphone_and_closes_after_it() {
    let card = SoftwareCard::new("playback-only.conf.in");
    let speaker = PacedSpeaker::start(card.playback.clone());
    let agent = Daemon::spawn_with_env(
        "agent",
        "[audio]\nsource = \"tone:1000\"\nsink = \"device\"",
        &[("ALSA_CONFIG_PATH", card.config.to_str().unwrap())],
    )
    .await;
    let customer = Daemon::spawn("customer", &format!("[audio]\nsource = \"tone:{CUSTOMER_HZ}\"")).await;
    let mut ui = agent.client().await;
    let mut customer_ui = customer.client().await;

    // Start-up opened the speaker alone (there is no microphone to open) to
    // prove it works, and closes it once the grace has passed.
    let audio = card_state(&mut ui).await;
    assert_eq!((audio["source"]["kind"].as_str(), audio["sink"]["kind"].as_str()), (Some("tone"), Some("device")));
    assert_eq!(audio["sink"]["device"], "default", "{audio}");
    let waited = Instant::now();
    while card_state(&mut ui).await["card"]["state"] != "idle" {
        assert!(waited.elapsed() < IDLE_GRACE + WAIT, "the card never went idle: {}", agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(settle(&speaker, Duration::from_millis(500)), "idle, yet the card's FIFO is open");

    // A call: the card opens at the answer and plays the customer.
    let call = dial(&mut customer_ui, &agent.uri("agent")).await;
    let incoming = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    assert!(speaker.next(Duration::from_millis(300)).is_none(), "a ringing call opened the card");
    let mine = incoming["params"]["call"].as_str().unwrap().to_string();
    let answered = Instant::now();
    ui.call("call.answer", json!({"call": mine})).await.unwrap();
    let (mut opened, mut heard, mut bytes) = (None, None, Vec::new());
    while heard.is_none() {
        let Some((at, event)) = speaker.next(WAIT) else { panic!("the call's audio never reached the card") };
        match event {
            SpeakerEvent::Opened => opened = opened.or(Some(at)),
            SpeakerEvent::Closed => bytes.clear(),
            SpeakerEvent::Bytes(chunk) => {
                bytes.extend_from_slice(&chunk);
                let window = CARD_RATE as usize / 10 * PLAYBACK_CHANNELS * 2;
                if bytes.len() >= window {
                    let left: Vec<i16> =
                        samples(&bytes[bytes.len() - window..]).chunks(PLAYBACK_CHANNELS).map(|f| f[0]).collect();
                    let tone = dominant_frequency(&left, CARD_RATE).is_some_and(|hz| (hz - CUSTOMER_HZ).abs() <= 10.0);
                    if tone && rms(&left) > TONE_RMS / 2.0 {
                        heard = Some(at);
                    }
                }
            }
        }
    }
    let opened = opened.expect("the FIFO was opened").duration_since(answered);
    let heard = heard.unwrap().duration_since(answered);
    let audio = card_state(&mut ui).await;
    println!("answer -> card open {opened:?}, -> customer heard {heard:?}; status {audio}");
    assert!(heard < AUDIO_AFTER_ANSWER, "the customer was heard {heard:?} after the answer");
    assert_eq!(audio["card"]["state"], "open", "{audio}");
    assert!(audio["card"]["last_open_ms"].as_u64().is_some_and(|ms| ms < 1000), "{audio}");
    let event = ui.wait_event(WAIT, |e| e["method"] == "audio.device").await.unwrap();
    assert_eq!(event["params"]["change"], "opened", "{event}");

    // Hung up: the card stays for the grace, then closes.
    customer_ui.call("call.hangup", json!({"call": call})).await.unwrap();
    ui.wait_event(WAIT, |e| e["params"]["call"] == mine.as_str() && e["params"]["state"] == "ended").await.unwrap();
    let ended = Instant::now();
    let closed = loop {
        match speaker.next(IDLE_GRACE + WAIT) {
            Some((at, SpeakerEvent::Closed)) => break at.duration_since(ended),
            Some(_) => {}
            None => panic!("the card was never closed after the call"),
        }
    };
    println!("call ended -> card closed {closed:?}");
    assert!(closed >= IDLE_GRACE - Duration::from_millis(200), "closed {closed:?} after the call: no grace");
    assert!(closed < IDLE_GRACE + Duration::from_secs(3), "closed only {closed:?} after the call");
    let event = ui.wait_event(WAIT, |e| e["method"] == "audio.device").await.unwrap();
    assert_eq!(event["params"]["change"], "idle", "{event}");
    assert_eq!(card_state(&mut ui).await["card"]["state"], "idle");
    assert!(settle(&speaker, Duration::from_millis(500)), "closed, yet the card's FIFO was opened again");
}
