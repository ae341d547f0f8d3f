//! Reloading the config without dropping calls, against a real Kamailio:
//! with a call up and recording, SIGHUP with an account added (Kamailio's
//! location table gets it), one removed (its binding goes) and the codec
//! list changed (the next call's INVITE offers the new order). The live
//! call's RTP goes on without a missing packet or a restarted stream, and
//! its recording holds every frame sent. A broken config, by SIGHUP or by
//! `daemon.reload`, is refused naming the key and changes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use age::secrecy::ExposeSecret;
use common::capture::{largest_gap_ms, Capture};
use common::kamailio::{self, Kamailio, KamailioOptions, PASSWORD};
use common::sipp::{free_port_pair, logged_message, tone_peer, Sipp};
use common::{dial, require_tools, wait_call_counter, wav_samples, Daemon};
use serde_json::json;
use softphoned::control::client::{is_call_state, Client};

const WAIT: Duration = Duration::from_secs(20);

fn account(id: &str, user: &str, kam: &Kamailio) -> String {
    format!(
        "[[accounts]]\nid = \"{id}\"\naor = \"sip:{user}@127.0.0.1\"\nregistrar = \"sip:127.0.0.1:{}\"\n\
         password = \"{PASSWORD}\"\nexpires_s = 120\nkeepalive_s = 0\n",
        kam.port
    )
}

/// The daemon's config: `[sip]` keys first (the harness's `[sip]` goes on
/// with them), then media, recording and the accounts.
fn config(t1_ms: u32, codecs: &str, recording: &str, accounts: &[String]) -> String {
    format!(
        "t1_ms = {t1_ms}\n[audio]\nsource = \"tone:1000\"\n[media]\ncodecs = {codecs}\n\
         [recording]\nmode = \"always\"\ndir = \"rec\"\n{recording}\n{}",
        accounts.concat()
    )
}

/// Replace what follows the harness's own lines (`[sip] user = ...`) in the config file.
fn rewrite(daemon: &Daemon, extra: &str) {
    let path = daemon.path("softphoned.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let end = text.find("t1_ms = ").expect("the test's own part");
    std::fs::write(&path, format!("{}{extra}\n", &text[..end])).unwrap();
}

fn sighup(daemon: &Daemon) {
    assert!(Command::new("kill").arg("-HUP").arg(daemon.pid().to_string()).status().unwrap().success());
}

/// Wait until `log` has `needle` at least `count` times.
async fn wait_logged(daemon: &Daemon, needle: &str, count: usize) {
    let deadline = Instant::now() + WAIT;
    while daemon.log().matches(needle).count() < count {
        assert!(Instant::now() < deadline, "never logged {needle:?} {count} times:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_unbound(kam: &Kamailio, user: &str) {
    let deadline = Instant::now() + WAIT;
    while !kam.registrations(user).is_empty() {
        assert!(Instant::now() < deadline, "{user} is still bound at Kamailio:\n{}", kam.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn account_ids(ui: &mut Client) -> Vec<String> {
    let list = ui.call("account.list", json!({})).await.unwrap();
    list["accounts"].as_array().unwrap().iter().map(|a| a["account"].as_str().unwrap().to_string()).collect()
}

/// The payload types of the first INVITE's `m=audio` line, as the peer logged it.
fn offered(peer_log: &str) -> String {
    let invite = logged_message(peer_log, "INVITE sip:");
    let line = invite.lines().find(|l| l.starts_with("m=audio")).expect("an audio offer");
    line.split_whitespace().skip(3).collect::<Vec<_>>().join(" ")
}

async fn media_counter_of(ui: &mut Client, call: &str) -> u64 {
    let stats = ui.call("call.stats", json!({ "call": call })).await.unwrap();
    stats["call"]["media"]["packets_sent"].as_u64().unwrap()
}

fn recordings(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(recordings(&path));
        } else if path.extension().is_some_and(|e| e == "wav") {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn sighup_changes_accounts_and_codecs_while_a_recorded_call_goes_on() {
    if !kamailio::installed(false) {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "kamailio is required under CI=true");
        eprintln!("SKIPPED: kamailio not installed (run tests/run.sh)");
        return;
    }
    if !require_tools(&["sipp", "tcpdump", "tshark"]) {
        return;
    }
    let kam = Kamailio::start(KamailioOptions::default());
    let (one, two, three) =
        (account("one", "agent1", &kam), account("two", "agent2", &kam), account("three", "bob", &kam));
    let before = config(50, "[\"pcmu\", \"pcma\"]", "", &[one.clone(), two]);
    let daemon = Daemon::spawn("agent", &before).await;
    let mut ui = daemon.client().await;
    assert_eq!(kam.wait_registered("agent1", WAIT).await.len(), 1, "{}", daemon.log());
    assert_eq!(kam.wait_registered("agent2", WAIT).await.len(), 1, "{}", daemon.log());

    // A call up, recorded, its RTP to the peer captured.
    let (work, peer, port, media) = tone_peer();
    let capture = Capture::start(work.path(), media);
    let call = dial(&mut ui, &format!("sip:tone@127.0.0.1:{port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    // A second of audio before the reload, another after the broken one.
    let sent_before = wait_call_counter(&mut ui, &call, "packets_sent", 50).await;

    // two removed, three added, the codec order changed, recordings sealed
    // to a key from now on, and t1 (bound at start).
    let key = age::x25519::Identity::generate();
    let sealed = format!("encrypt_to = [\"{}\"]", key.to_public());
    let after = config(60, "[\"pcma\", \"pcmu\"]", &sealed, &[one.clone(), three]);
    rewrite(&daemon, &after);
    let hup = Instant::now();
    sighup(&daemon);
    wait_logged(&daemon, "config reloaded", 1).await;
    assert_eq!(kam.wait_registered("bob", WAIT).await.len(), 1, "the added account registered:\n{}", daemon.log());
    let registered = hup.elapsed();
    wait_unbound(&kam, "agent2").await;
    eprintln!("SIGHUP to bob bound {registered:?}, to agent2 unbound {:?}", hup.elapsed());
    assert_eq!(kam.registrations("agent1").len(), 1, "the unchanged account kept its binding");
    assert_eq!(account_ids(&mut ui).await, ["one", "three"]);
    let log = daemon.log();
    let waits = log.lines().find(|l| l.contains("applied only at the next start")).expect("t1_ms waits for a restart");
    assert!(waits.contains("\"sip\""), "{waits}");

    // A broken config, by SIGHUP and by daemon.reload: refused, naming the key.
    let broken = config(60, "[\"pcma\", \"nope\"]", &sealed, &[one]);
    rewrite(&daemon, &broken);
    sighup(&daemon);
    wait_logged(&daemon, "reload refused", 1).await;
    let refused = daemon.log().lines().find(|l| l.contains("reload refused")).unwrap().to_string();
    assert!(refused.contains("media.codecs"), "{refused}");
    let error = ui.call("daemon.reload", json!({})).await.unwrap_err();
    assert!(error.to_string().contains("media.codecs"), "{error}");
    assert_eq!(account_ids(&mut ui).await, ["one", "three"], "the running config stayed in force");
    assert_eq!(kam.registrations("bob").len(), 1);

    // The live call went on throughout.
    let sent_by_now = media_counter_of(&mut ui, &call).await;
    wait_call_counter(&mut ui, &call, "packets_sent", sent_by_now + 50).await;
    assert!(sent_by_now > sent_before);
    let listed = ui.call("call.list", json!({})).await.unwrap();
    assert_eq!(listed["calls"][0]["state"], "connected", "{listed}");
    ui.call("call.hangup", json!({ "call": call })).await.unwrap();
    let saved = ui.wait_event(WAIT, |e| e["method"] == "recording.saved").await.unwrap();
    let first_invite = peer.expect_success().await;
    assert_eq!(offered(&first_invite), "0 8 101", "before the reload: pcmu first");
    let sent = capture.stop(media);
    assert!(sent.len() as u64 > sent_by_now, "only {} packets captured", sent.len());
    for pair in sent.windows(2) {
        assert_eq!(pair[1].sequence, (pair[0].sequence + 1) % 65536, "a packet is missing around the reload");
        assert_eq!(pair[1].timestamp, (pair[0].timestamp + 160) % (1 << 32), "the stream restarted");
    }
    let gap = largest_gap_ms(&sent);
    assert!(gap < 250.0, "the audio stopped for {gap:.0} ms");
    let path = PathBuf::from(saved["params"]["path"].as_str().unwrap());
    assert_eq!(recordings(&daemon.path("rec")), std::slice::from_ref(&path), "the live call's stays plain");
    let frames = wav_samples(&path).len() / 2 / 160;
    assert!(frames.abs_diff(sent.len()) <= 10, "{frames} frames recorded, {} sent", sent.len());

    // The next call offers the reloaded codec order, and its recording is sealed to the key.
    let (_work, peer, port, _media) = tone_peer();
    let call = dial(&mut ui, &format!("sip:tone@127.0.0.1:{port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    wait_call_counter(&mut ui, &call, "packets_sent", 25).await;
    ui.call("call.hangup", json!({ "call": call })).await.unwrap();
    assert_eq!(offered(&peer.expect_success().await), "8 0 101", "after the reload: pcma first");
    let saved = ui.wait_event(WAIT, |e| e["method"] == "recording.saved" && e["params"]["call"] == call).await.unwrap();
    let sealed = PathBuf::from(saved["params"]["path"].as_str().unwrap());
    assert!(sealed.to_str().unwrap().ends_with(".wav.age"), "{sealed:?}");
    let identity = daemon.path("identity.txt");
    std::fs::write(&identity, key.to_string().expose_secret()).unwrap();
    let wav = daemon.path("opened.wav");
    softphoned::recorder::decrypt(&identity, &sealed, &wav).unwrap();
    let frames = wav_samples(&wav).len() / 2 / 160;
    assert!(frames >= 20, "{frames} frames decrypted of 25 sent or more");
}

#[tokio::test]
async fn a_reload_names_what_waits_for_a_restart() {
    let daemon = Daemon::spawn("agent", "t1_ms = 50\n[media]\njitter_max_ms = 200\n").await;
    let mut ui = daemon.client().await;
    rewrite(&daemon, "t1_ms = 70\n[media]\njitter_max_ms = 150\nthreads = 2\n");
    let result = ui.call("daemon.reload", json!({})).await.unwrap();
    assert_eq!(result["restart_required"], json!(["sip", "media.threads"]), "{result}");
    // Nothing changed since: nothing to apply, nothing waiting but the same keys.
    let again = ui.call("daemon.reload", json!({})).await.unwrap();
    assert_eq!(again["accounts_added"], json!([]), "{again}");
    let status = ui.call("daemon.status", json!({})).await.unwrap();
    assert_eq!(status["sip_listen"].as_array().unwrap().len(), 1, "{status}");

    // A recording folder that cannot be made is refused, not found out at the next call.
    std::fs::write(daemon.path("a-file"), b"").unwrap();
    rewrite(&daemon, "t1_ms = 70\n[recording]\ndir = \"a-file/recordings\"\n");
    let error = ui.call("daemon.reload", json!({})).await.unwrap_err();
    assert!(error.to_string().contains("recording.dir"), "{error}");
    let status = ui.call("daemon.status", json!({})).await.unwrap();
    assert!(!status["recording_dir"].as_str().unwrap().contains("a-file"), "{status}");
}

/// An account a reload removes takes its registrar's trust with it: from
/// the registrar's address (sipp in its place, from its SIP port), an
/// INVITE rang the agent before and gets 403 after.
#[tokio::test]
async fn a_removed_account_s_registrar_is_no_longer_trusted() {
    if !require_tools(&["sipp"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let registrar = Sipp::start(work.path(), "uas_registrar.xml", port, free_port_pair(), &[]);
    // allow_from restricts who may call whatever the accounts; nobody listens at port 9.
    let account = format!(
        "[[accounts]]\nid = \"pbx\"\naor = \"sip:agent@127.0.0.1\"\nregistrar = \"sip:127.0.0.1:{port}\"\n\
         expires_s = 300\nkeepalive_s = 0\n"
    );
    let sip = "t1_ms = 50\nallow_from = [\"127.0.0.1:9\"]\n";
    let daemon = Daemon::spawn("agent", &format!("{sip}{account}")).await;
    let mut ui = daemon.client().await;
    registrar.expect_success().await;
    let target = format!("127.0.0.1:{}", daemon.sip_port);
    let call_from_the_registrar = |scenario: &str| {
        Sipp::start(work.path(), scenario, port, free_port_pair(), &[target.as_str(), "-s", "agent", "-d", "200"])
    };
    // It rings (uac_cancel.xml needs the 180).
    call_from_the_registrar("uac_cancel.xml").expect_success().await;

    rewrite(&daemon, sip);
    let result = ui.call("daemon.reload", json!({})).await.unwrap();
    assert_eq!(result["accounts_removed"], json!(["pbx"]), "{result}");
    // Its unregister, unanswered, gives up (64 T1) before sipp takes the port again.
    let given_up = |e: &serde_json::Value| {
        e["method"] == "registration.state" && e["params"]["account"] == "pbx" && e["params"]["state"] != "registering"
    };
    ui.wait_event(WAIT, given_up).await.unwrap();
    let refused = call_from_the_registrar("uac_call_rejected.xml").expect_success().await;
    assert!(refused.contains("SIP/2.0 403"), "the former registrar is refused:\n{refused}");
}
