//! The daemon on a machine without a sound card: asked for `device`, it
//! starts anyway on the null backend and says so in `daemon.status`, in
//! `audio.devices` and in its log, and `audio.select` of a card that does
//! not exist is refused by an `audio.device` event while calls go on.

mod common;

use std::time::Duration;

use common::Daemon;
use serde_json::json;

/// An ALSA configuration whose default PCM is a card that does not exist.
fn no_card_config() -> String {
    format!("{}/tests/alsa/missing-card.conf", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn no_sound_card_falls_back_to_null_and_says_so() {
    let config = no_card_config();
    let daemon = Daemon::spawn_with_env(
        "agent",
        "[audio]\nsource = \"device\"\nsink = \"device\"",
        &[("ALSA_CONFIG_PATH", config.as_str())],
    )
    .await;
    let mut ui = daemon.client().await;
    let status = ui.call("daemon.status", json!({})).await.unwrap();
    for role in ["source", "sink"] {
        let backend = &status["audio"][role];
        assert_eq!(backend["kind"], "null", "{role}: {backend}");
        assert_eq!(backend["spec"], "device", "{role}: {backend}");
        let why = backend["fallback"].as_str().unwrap_or_default();
        assert!(why.contains("device could be opened"), "{role} says why: {backend}");
    }
    assert!(daemon.log().contains("sound card unavailable: using the null backend instead"), "{}", daemon.log());

    let devices = ui.call("audio.devices", json!({})).await.unwrap();
    assert_eq!(devices["in_use"], status["audio"], "{devices}");
    assert!(devices["inputs"].is_array() && devices["outputs"].is_array(), "{devices}");

    ui.call("audio.select", json!({"input": "no_such_card", "output": "no_such_card"})).await.unwrap();
    let event = ui
        .wait_event(Duration::from_secs(15), |e| e["method"] == "audio.device")
        .await
        .expect("the outcome of audio.select is told");
    let params = &event["params"];
    assert_eq!(params["change"], "select_failed", "{params}");
    assert!(params["error"].as_str().unwrap_or_default().contains("no_such_card"), "{params}");
    let after = ui.call("daemon.status", json!({})).await.unwrap();
    assert_eq!(after["audio"]["source"]["kind"], "null");
}
