//! `softphonectl callback ...` and `softphonectl history` against a real
//! daemon: every step is checked in what the daemon then reports through
//! its own socket, and the CLI's summaries against that.

mod common;

use std::process::{Command, Output};

use common::Daemon;
use serde_json::{json, Value};
use softphoned::control::client::Client;

/// Run `softphonectl --socket <daemon> args...`.
fn run(daemon: &Daemon, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_softphonectl"))
        .arg("--socket")
        .arg(&daemon.socket)
        .args(args)
        .output()
        .expect("softphonectl runs")
}

/// Run it, expect success, return its stdout without the final newline.
fn ctl(daemon: &Daemon, args: &[&str]) -> String {
    let output = run(daemon, args);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "softphonectl {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.trim_end_matches('\n').to_string()
}

/// Run it, expect failure, return its stderr.
fn ctl_fails(daemon: &Daemon, args: &[&str]) -> String {
    let output = run(daemon, args);
    assert!(!output.status.success(), "softphonectl {args:?} succeeded: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8(output.stderr).unwrap()
}

/// The open callback `id` as the daemon's `callback.list` has it.
async fn open_callback(client: &mut Client, id: &str) -> Option<Value> {
    let list = client.call("callback.list", json!({})).await.unwrap();
    list["callbacks"].as_array().unwrap().iter().find(|c| c["callback"] == id).cloned()
}

#[tokio::test]
async fn softphonectl_drives_a_callback_from_offer_to_history() {
    let daemon = Daemon::spawn("agent", "").await;
    let mut client = Client::connect(&daemon.socket).await.unwrap();

    let id = ctl(
        &daemon,
        &[
            "callback",
            "offer",
            "--customer",
            "Ada Lovelace",
            "--queue",
            "billing",
            "--number",
            "mobile=5550001",
            "--number",
            "home=5550002",
            "--reason",
            "invoice",
            "--context",
            r#"{"ticket": 42}"#,
        ],
    );
    assert!(!id.is_empty() && !id.contains(char::is_whitespace), "offer prints the id alone: {id:?}");
    let offered = open_callback(&mut client, &id).await.expect("the offer is open");
    assert_eq!(offered["state"], "offered");
    assert_eq!(
        offered["numbers"],
        json!([{ "label": "mobile", "number": "5550001" }, { "label": "home", "number": "5550002" }])
    );
    assert_eq!(
        (&offered["customer"], &offered["queue"], &offered["reason"]),
        (&json!("Ada Lovelace"), &json!("billing"), &json!("invoice"))
    );
    assert_eq!(offered["context"], json!({ "ticket": 42 }));
    assert_eq!(offered["dial_mode"], "manual");
    assert_eq!(ctl(&daemon, &["callback", "list"]), format!("{id}\toffered\tAda Lovelace\t5550001\t0\t-"));

    assert_eq!(ctl(&daemon, &["callback", "accept", &id]), "ok");
    assert_eq!(open_callback(&mut client, &id).await.unwrap()["state"], "preview");

    ctl(&daemon, &["callback", "select", &id, "home"]);
    assert_eq!(open_callback(&mut client, &id).await.unwrap()["selected"], "5550002");

    // The context card, edited: what is given replaces what was, the rest stays.
    ctl(&daemon, &["callback", "update", &id, "--reason", "invoice 4411 charged twice", "--notes", "prefers email"]);
    ctl(&daemon, &["callback", "update", &id, "--notes", "call after 5 pm"]);
    let edited = open_callback(&mut client, &id).await.unwrap();
    assert_eq!(
        (&edited["reason"], &edited["notes"], &edited["context"]),
        (&json!("invoice 4411 charged twice"), &json!("call after 5 pm"), &json!({ "ticket": 42 }))
    );

    // Exactly one transfer target: clap refuses both, and the daemon never hears of it.
    let both = ctl_fails(&daemon, &["callback", "transfer", &id, "--queue", "x", "--agent", "bob"]);
    assert!(both.contains("cannot be used with"), "{both}");
    assert_eq!(open_callback(&mut client, &id).await.unwrap()["state"], "preview");

    ctl(&daemon, &["callback", "transfer", &id, "--queue", "x"]);
    let transferring = open_callback(&mut client, &id).await.unwrap();
    assert_eq!((&transferring["state"], &transferring["transfer"]), (&json!("transferring"), &json!({ "queue": "x" })));
    ctl(&daemon, &["callback", "transfer-cancel", &id]);
    let back = open_callback(&mut client, &id).await.unwrap();
    assert_eq!(back["state"], "preview");
    assert!(back.get("transfer").is_none(), "{back}");

    ctl(&daemon, &["callback", "close", &id]);
    assert_eq!(open_callback(&mut client, &id).await, None, "a closed callback leaves the open list");
    let history = client.call("history.list", json!({})).await.unwrap();
    let entry = history["entries"].as_array().unwrap().iter().find(|e| e["callback"] == id).expect("in history");
    assert_eq!((&entry["state"], &entry["closed"]), (&json!("closed"), &json!("closed_by_agent")));
    let created_at = entry["created_at"].as_str().unwrap();
    let lines = ctl(&daemon, &["history"]);
    assert!(
        lines.lines().any(|line| line == format!("callback\t{id}\tclosed_by_agent\t{created_at}\t0 attempts")),
        "history shows the closed callback:\n{lines}"
    );

    // The contact's interactions, by name (any case) or number.
    assert!(ctl(&daemon, &["history", "--customer", "ada lovelace"]).contains(&id));
    assert!(ctl(&daemon, &["history", "--number", "5550002"]).contains(&id));
    assert_eq!(ctl(&daemon, &["history", "--customer", "Nobody"]), "");

    // The daemon refuses; softphonectl says why and fails.
    let refused = run(&daemon, &["callback", "retry", &id]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert!(stderr.contains(&format!("callback {id} is closed (closed_by_agent)")), "{stderr}");
    assert!(refused.stdout.is_empty());

    let scheduled = ctl(&daemon, &["callback", "schedule", "5551234", "2099-01-01T09:00", "--tz", "Europe/Paris"]);
    let booked = open_callback(&mut client, &scheduled).await.expect("the scheduled callback is open");
    assert_eq!(booked["state"], "scheduled");
    assert_eq!(booked["selected"], "5551234");
    assert_eq!(booked["schedule"]["tz"], "Europe/Paris");
    assert_eq!(booked["schedule"]["due_at"], "2099-01-01T08:00:00Z", "09:00 in Paris in winter is 08:00 UTC");
    assert_eq!(ctl(&daemon, &["callback", "list"]), format!("{scheduled}\tscheduled\t-\t5551234\t0\t-"));
    let raw: Value = serde_json::from_str(&ctl(&daemon, &["--json", "callback", "list"])).unwrap();
    assert_eq!(raw, client.call("callback.list", json!({})).await.unwrap(), "--json prints the result as it is");

    // Rescheduled without --tz: the zone given before stays.
    ctl(&daemon, &["callback", "reschedule", &scheduled, "2099-07-01T09:00", "--notes", "after the holidays"]);
    let moved = open_callback(&mut client, &scheduled).await.unwrap()["schedule"].clone();
    assert_eq!(
        (&moved["due_at"], &moved["tz"], &moved["notes"]),
        (&json!("2099-07-01T07:00:00Z"), &json!("Europe/Paris"), &json!("after the holidays"))
    );
    ctl(&daemon, &["callback", "cancel", &scheduled]);
    let history = client.call("history.list", json!({ "limit": 1, "kind": "callback" })).await.unwrap();
    assert_eq!(history["entries"][0]["callback"], scheduled, "newest first");
    assert_eq!(history["entries"][0]["closed"], "cancelled");
    let newest = ctl(&daemon, &["history", "--limit", "1", "--kind", "callback"]);
    assert!(newest.starts_with(&format!("callback\t{scheduled}\tcancelled\t")), "{newest}");
}

/// Scheduled from a live call: the call's party is the number, the
/// instructions ride along; rescheduled to an alternate number, that one
/// is dialled from then on and the instructions stay.
#[tokio::test]
async fn a_callback_scheduled_from_a_live_call_keeps_its_party_and_instructions() {
    let agent = Daemon::spawn("agent", "").await;
    let customer = Daemon::spawn("customer", "").await;
    let (mut ui, mut customer_ui) = (agent.client().await, customer.client().await);
    let call = common::dial(&mut ui, &customer.uri("customer")).await;
    let incoming = customer_ui.wait_event(std::time::Duration::from_secs(10), |e| e["params"]["state"] == "incoming");
    let incoming = incoming.await.unwrap();
    customer_ui.call("call.answer", json!({"call": incoming["params"]["call"]})).await.unwrap();
    let booked = ui
        .call(
            "callback.schedule",
            json!({"from_call": call, "at": "2099-06-01T10:00", "tz": "Europe/Paris",
                   "instructions": "confirm the refund went through", "numbers": [{"label": "office", "number": "5551111"}]}),
        )
        .await
        .unwrap();
    let id = booked["callback"].as_str().unwrap().to_string();
    let scheduled = open_callback(&mut ui, &id).await.unwrap();
    assert_eq!(scheduled["numbers"][0]["number"], "5551111", "the agent's numbers come first: {scheduled}");
    assert!(scheduled["numbers"].as_array().unwrap().len() == 1, "a number was given: the call's party is not added");
    assert_eq!(scheduled["schedule"]["instructions"], "confirm the refund went through");
    let plain = ui
        .call("callback.schedule", json!({"from_call": call, "at": "2099-06-01T11:00", "tz": "Europe/Paris"}))
        .await
        .unwrap();
    let plain = open_callback(&mut ui, plain["callback"].as_str().unwrap()).await.unwrap();
    assert!(plain["selected"].as_str().unwrap().starts_with("sip:customer@127.0.0.1:"), "the call's party: {plain}");

    ui.call("callback.reschedule", json!({"callback": id, "at": "2099-06-02T10:00", "number": "5559999"}))
        .await
        .unwrap();
    let moved = open_callback(&mut ui, &id).await.unwrap();
    assert_eq!((&moved["selected"], &moved["numbers"][1]["label"]), (&json!("5559999"), &json!("alternate")));
    assert_eq!(moved["schedule"]["instructions"], "confirm the refund went through");
    assert_eq!(moved["schedule"]["tz"], "Europe/Paris");
    let unknown = ui.call("callback.schedule", json!({"from_call": "nope", "at": "2099-06-01T10:00Z"})).await;
    assert!(unknown.is_err());
    let nobody = ui.call("callback.schedule", json!({"at": "2099-06-01T10:00Z"})).await.unwrap_err();
    assert!(nobody.to_string().contains("whom to call back"), "{nobody}");
}
