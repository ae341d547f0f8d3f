//! Callbacks end to end: the real daemon, driven through its control
//! socket, dials real sipp peers on 127.0.0.1 when the countdown reaches
//! zero, retries, wraps up, keeps history, and survives a kill -9.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, SystemTime};

use common::sipp::{free_port_pair, write_tone_file, Sipp};
use common::{require_tool, wait_media_counter, Daemon};
use serde_json::{json, Value};
use softphoned::control::client::Client;

const WAIT: Duration = Duration::from_secs(15);
const COUNTDOWN_MS: u64 = 1_500;

fn is_callback(event: &Value, id: &str, state: &str) -> bool {
    event["method"] == "callback.state" && event["params"]["callback"] == id && event["params"]["state"] == state
}

/// When sipp logged the first INVITE it received, as a wall-clock time.
fn first_invite_at(sipp_log: &str) -> SystemTime {
    let mut stamp = None;
    for line in sipp_log.lines() {
        if let Some(rest) = line.strip_prefix("----------------------------------------------- ") {
            stamp = Some(rest.trim().to_string());
        } else if line.starts_with("INVITE ") {
            let stamp = stamp.expect("a timestamp line precedes each message");
            // sipp writes local time with microseconds.
            let local: jiff::civil::DateTime = stamp.replace(' ', "T").parse().unwrap();
            let zoned = local.to_zoned(jiff::tz::TimeZone::system()).unwrap();
            return SystemTime::from(zoned.timestamp());
        }
    }
    panic!("no INVITE in sipp's log:\n{sipp_log}");
}

fn ms_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

#[tokio::test]
async fn countdown_dials_busy_then_retry_answers_and_history_keeps_both_attempts() {
    if !["sipp", "sox"].into_iter().all(require_tool) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    write_tone_file(work.path());
    let daemon =
        Daemon::spawn("agent", "[audio]\nsource = \"tone:440\"\n[callback]\nno_answer_timeout_ms = 10000").await;
    let port = free_port_pair();
    let customer = format!("sip:customer@127.0.0.1:{port}");
    let busy = Sipp::start(work.path(), "uas_busy.xml", port, free_port_pair(), &[]);

    let mut ui = daemon.client().await;
    let offered = ui
        .call(
            "callback.offer",
            json!({
                "customer": "Ada Lovelace", "queue": "billing", "type": "asap", "reason": "invoice question",
                "numbers": [{"label": "mobile", "number": customer}, {"label": "home", "number": "5550100"}],
                "dial_mode": "automatic", "countdown_ms": COUNTDOWN_MS,
                "context": {"ticket": 4711}
            }),
        )
        .await
        .unwrap();
    let id = offered["callback"].as_str().unwrap().to_string();
    ui.wait_event(WAIT, |e| is_callback(e, &id, "offered")).await.unwrap();

    // The agent accepts from a second window that then closes: the
    // countdown belongs to the daemon, not to a connection.
    let mut window = Client::connect(&daemon.socket).await.unwrap();
    let sent = SystemTime::now();
    window.call("callback.accept", json!({"callback": id})).await.unwrap();
    let replied = SystemTime::now();
    drop(window);

    let start = ui.wait_event(WAIT, |e| e["method"] == "callback.countdown").await.unwrap();
    assert_eq!(
        (start["params"]["kind"].as_str(), start["params"]["remaining_ms"].as_u64()),
        (Some("dial"), Some(COUNTDOWN_MS))
    );
    let tick = ui.wait_event(WAIT, |e| e["method"] == "callback.countdown").await.unwrap();
    // A second later, give or take the wake-up's own lateness.
    let remaining = tick["params"]["remaining_ms"].as_u64().unwrap();
    assert!((COUNTDOWN_MS - 1100..=COUNTDOWN_MS - 1000).contains(&remaining), "{tick}");
    let stop = ui.wait_event(WAIT, |e| e["method"] == "callback.countdown").await.unwrap();
    assert_eq!(
        (stop["params"]["remaining_ms"].as_u64(), stop["params"]["stopped"].as_str()),
        (Some(0), Some("elapsed"))
    );
    let dialing = ui.wait_event(WAIT, |e| is_callback(e, &id, "dialing")).await.unwrap();
    assert_eq!(dialing["params"]["attempt"], 1);
    assert!(dialing["params"]["call"].is_string());

    let log = busy.expect_success().await;
    // Zero fell between the accept request leaving and its reply arriving.
    let invite = first_invite_at(&log);
    let late_max = ms_between(sent, invite) - COUNTDOWN_MS as f64;
    let late_min = ms_between(replied, invite) - COUNTDOWN_MS as f64;
    eprintln!("countdown zero -> INVITE at sipp: {late_min:.3}..{late_max:.3} ms late");
    assert!(late_max >= 0.0, "the INVITE left before zero: {late_max:.3} ms");
    let preview = ui.wait_event(WAIT, |e| is_callback(e, &id, "preview")).await.unwrap();
    let attempt = &preview["params"]["attempts"][0];
    assert_eq!((attempt["outcome"].as_str(), attempt["sip_code"].as_u64()), (Some("busy"), Some(486)), "{preview}");

    // Retry: this time the customer answers and we talk.
    let answering = Sipp::start(work.path(), "uas_tone.xml", port, free_port_pair(), &[]);
    let err = ui.call("callback.close", json!({"callback": "nope"})).await.unwrap_err();
    assert!(err.to_string().contains("no such open callback"), "{err}");
    ui.call("callback.retry", json!({"callback": id})).await.unwrap();
    let in_call = ui.wait_event(WAIT, |e| is_callback(e, &id, "in_call")).await.unwrap();
    assert_eq!(in_call["params"]["attempt"], 2);
    let call = in_call["params"]["call"].as_str().unwrap().to_string();
    let refused = ui.call("callback.retry", json!({"callback": id})).await.unwrap_err();
    assert!(refused.to_string().contains("in_call"), "{refused}");
    wait_media_counter(&mut ui, "packets_received", 25).await;
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    ui.wait_event(WAIT, |e| is_callback(e, &id, "wrapup")).await.unwrap();
    let log = answering.expect_success().await;
    assert!(log.contains("BYE sip:"), "sipp saw our BYE");
    ui.call(
        "callback.wrapup",
        json!({"callback": id, "reason": "resolved", "notes": "invoice resent", "disposition": "success"}),
    )
    .await
    .unwrap();
    let closed = ui.wait_event(WAIT, |e| is_callback(e, &id, "closed")).await.unwrap();
    assert_eq!(closed["params"]["closed"], "completed");

    let history = ui.call("history.list", json!({"limit": 10, "kind": "callback"})).await.unwrap();
    let entry = &history["entries"][0];
    assert_eq!((entry["kind"].as_str(), entry["callback"].as_str()), (Some("callback"), Some(id.as_str())));
    let outcomes: Vec<&str> =
        entry["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["busy", "answered"]);
    assert!(entry["attempts"][1]["talk_ms"].as_u64().unwrap() >= 400, "{entry}");
    let preview_ms = entry["preview_ms"].as_u64().unwrap();
    assert!((COUNTDOWN_MS..COUNTDOWN_MS + 500).contains(&preview_ms), "preview {preview_ms} ms");
    assert_eq!(entry["wrapup"]["disposition"], "success");
    assert_eq!(entry["context"]["ticket"], 4711);
}

/// A UDP socket posing as the customer's phone: it only counts INVITEs.
fn silent_phone() -> (UdpSocket, String) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let uri = format!("sip:customer@{}", socket.local_addr().unwrap());
    (socket, uri)
}

/// INVITEs with a Call-ID not in `seen` that reach `socket` within `window`.
fn new_invites(socket: &UdpSocket, window: Duration, seen: &mut Vec<String>) -> Vec<String> {
    let end = std::time::Instant::now() + window;
    let mut fresh = Vec::new();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < end {
        let Ok(n) = socket.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]);
        if !text.starts_with("INVITE ") {
            continue;
        }
        let call_id = text.lines().find_map(|l| l.strip_prefix("Call-ID: ")).unwrap_or_default().trim().to_string();
        if !seen.contains(&call_id) {
            seen.push(call_id.clone());
            fresh.push(call_id);
        }
    }
    fresh
}

#[tokio::test]
async fn after_kill_9_open_callbacks_come_back_in_preview_and_nothing_dials() {
    let mut daemon = Daemon::spawn("agent", "").await;
    let (phone, customer) = silent_phone();
    let mut ui = daemon.client().await;
    let offer = |id: &str, countdown_ms: u64| {
        json!({"id": id, "customer": "Grace Hopper", "queue": "support", "numbers": [{"label": "work", "number": customer}],
               "dial_mode": "automatic", "countdown_ms": countdown_ms})
    };
    // One rings the customer (its INVITE unanswered); one counts down.
    ui.call("callback.offer", offer("ringing", 0)).await.unwrap();
    ui.call("callback.accept", json!({"callback": "ringing"})).await.unwrap();
    ui.wait_event(WAIT, |e| is_callback(e, "ringing", "dialing")).await.unwrap();
    let mut seen = Vec::new();
    assert_eq!(new_invites(&phone, Duration::from_secs(1), &mut seen).len(), 1);
    ui.call("callback.offer", offer("counting", 2_000)).await.unwrap();
    ui.call("callback.accept", json!({"callback": "counting"})).await.unwrap();
    ui.wait_event(WAIT, |e| e["method"] == "callback.countdown" && e["params"]["callback"] == "counting")
        .await
        .unwrap();
    ui.call("callback.select_number", json!({"callback": "counting", "number": "work"})).await.unwrap();

    // The store writes on its own thread: a history query is answered only
    // after every write queued before it, so this is the moment all of the
    // above is on disk. (A kill within those milliseconds loses the newest
    // snapshots, never older ones.)
    ui.call("history.list", json!({})).await.unwrap();
    daemon.kill_and_restart().await;
    let mut ui = daemon.client().await;
    let mut restored = Vec::new();
    for _ in 0..2 {
        let event = ui.wait_event(WAIT, |e| e["method"] == "callback.state").await.unwrap();
        restored.push(event["params"].clone());
    }
    restored.sort_by_key(|c| c["callback"].as_str().unwrap().to_string());
    for callback in &restored {
        assert_eq!(
            (callback["state"].as_str(), callback["restored"].as_bool()),
            (Some("preview"), Some(true)),
            "{callback}"
        );
        assert!(callback.get("call").is_none());
    }
    assert_eq!(restored[0]["callback"], "counting");
    assert_eq!(restored[0]["attempts"].as_array().unwrap().len(), 0);
    assert_eq!(restored[1]["attempts"][0]["outcome"], "interrupted");
    assert_eq!(restored[1]["customer"], "Grace Hopper");

    // Past the old countdown's zero: no new INVITE, no countdown event.
    assert_eq!(new_invites(&phone, Duration::from_secs(3), &mut seen), Vec::<String>::new());
    let listed = ui.call("callback.list", json!({})).await.unwrap();
    let states: Vec<&str> =
        listed["callbacks"].as_array().unwrap().iter().map(|c| c["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["preview", "preview"]);
    assert!(ui.wait_event(Duration::from_millis(100), |e| e["method"] == "callback.countdown").await.is_err());

    // The agent is in charge again: Call number dials, once.
    ui.call("callback.call", json!({"callback": "counting"})).await.unwrap();
    assert_eq!(new_invites(&phone, Duration::from_secs(2), &mut seen).len(), 1);
    let history = ui.call("history.list", json!({"kind": "callback"})).await.unwrap();
    assert_eq!(history["entries"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn customer_first_context_card_accept_answers_the_ringing_call_and_wrapup_follows() {
    if !require_tool("sipp") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn("agent", "").await;
    let mut ui = daemon.client().await;
    // The contact center reached the customer and rings the agent.
    let uac = Sipp::call(work.path(), "uac_call_wait_bye.xml", &format!("127.0.0.1:{}", daemon.sip_port), "agent", &[]);
    let incoming =
        ui.wait_event(WAIT, |e| e["method"] == "call.state" && e["params"]["state"] == "incoming").await.unwrap();
    let call = incoming["params"]["call"].as_str().unwrap().to_string();
    let offer = json!({"customer": "Alan Turing", "queue": "sales", "numbers": [{"label": "mobile", "number": "5550199"}],
                       "call": call, "context": {"order": "A-17"}});
    let id = ui.call("callback.offer", offer).await.unwrap()["callback"].as_str().unwrap().to_string();
    let offered = ui.wait_event(WAIT, |e| is_callback(e, &id, "offered")).await.unwrap();
    assert_eq!(offered["params"]["call"], call.as_str());
    let unknown = json!({"numbers": [{"number": "1"}], "call": "no-such-call"});
    assert!(ui.call("callback.offer", unknown).await.unwrap_err().to_string().contains("no such call"));

    // Accept on the card answers the call: sipp gets its 200 and ACKs.
    ui.call("callback.accept", json!({"callback": id})).await.unwrap();
    ui.wait_event(WAIT, |e| is_callback(e, &id, "in_call")).await.unwrap();
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    let wrapup = ui.wait_event(WAIT, |e| is_callback(e, &id, "wrapup")).await.unwrap();
    assert_eq!(wrapup["params"]["attempts"][0]["outcome"], "answered");
    let log = uac.expect_success().await;
    assert!(log.contains("SIP/2.0 200 OK") && log.contains("BYE sip:"), "{log}");
    ui.call("callback.wrapup", json!({"callback": id, "disposition": "sale"})).await.unwrap();
    let closed = ui.wait_event(WAIT, |e| is_callback(e, &id, "closed")).await.unwrap();
    assert_eq!(closed["params"]["closed"], "completed");
    let again = ui.call("callback.retry", json!({"callback": id})).await.unwrap_err();
    assert!(again.to_string().contains("is closed (completed)"), "{again}");
}

#[tokio::test]
async fn a_scheduled_callback_is_offered_its_lead_time_before_it_is_due() {
    let daemon = Daemon::spawn("agent", "[callback]\nschedule_lead_ms = 60000").await;
    let mut ui = daemon.client().await;
    // Due 61 s from now in the customer's zone: offered a second from now.
    let zone = jiff::tz::TimeZone::get("America/New_York").unwrap();
    let due = jiff::Timestamp::now().to_zoned(zone) + jiff::SignedDuration::from_secs(61);
    let at = due.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let scheduled =
        json!({"number": "5550123", "at": at, "tz": "America/New_York", "customer": "Ada", "notes": "after lunch"});
    let id = ui.call("callback.schedule", scheduled).await.unwrap()["callback"].as_str().unwrap().to_string();
    let first = ui.wait_event(WAIT, |e| e["method"] == "callback.state").await.unwrap();
    assert_eq!(first["params"]["state"], "scheduled");
    assert_eq!(first["params"]["schedule"]["tz"], "America/New_York");
    let offered = ui.wait_event(WAIT, |e| is_callback(e, &id, "offered")).await.unwrap();
    assert_eq!(
        (offered["params"]["type"].as_str(), offered["params"]["dial_mode"].as_str()),
        (Some("scheduled"), Some("manual"))
    );
    assert_eq!(offered["params"]["schedule"]["notes"], "after lunch");
    let past = json!({"number": "5550123", "at": "2020-01-01T09:00:00Z"});
    let err = ui.call("callback.schedule", past).await.unwrap_err();
    assert!(err.to_string().contains("in the past"), "{err}");
}
