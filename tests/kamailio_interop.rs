//! Registration and calls through a real Kamailio registrar/proxy on
//! 127.0.0.1 (config in tests/kamailio/): digest (MD5 and SHA-256) over
//! UDP, TCP and TLS, wrong passwords, a registrar that restarts, calls
//! routed to the registered daemon, and the 407 challenge on INVITE. The
//! proof is Kamailio's own location table (kamcmd) and what sipp received.

mod common;

use std::time::{Duration, Instant};

use common::kamailio::{self, Kamailio, KamailioOptions, PASSWORD};
use common::sipp::{free_port_pair, Sipp};
use common::{dial, require_tool, Daemon};
use serde_json::{json, Value};
use softphoned::control::client::{is_call_state, Client};

const WAIT: Duration = Duration::from_secs(20);

/// Kamailio (and for `tls` its TLS module) installed; a missing one fails
/// under CI=true and is skipped, saying so, elsewhere.
fn peers_present(tls: bool) -> bool {
    if !kamailio::installed(tls) {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("kamailio{} is required under CI=true: run tests/run.sh", if tls { " with tls.so" } else { "" });
        }
        eprintln!("SKIPPED: kamailio not installed (run tests/run.sh)");
        return false;
    }
    require_tool("sipp")
}

/// A daemon with one account `agent1` registering to `registrar`.
async fn agent(registrar: &str, transport: &str, password: &str, extra: &str) -> Daemon {
    let account = format!(
        "t1_ms = 50\n{extra}\n[[accounts]]\nid = \"main\"\naor = \"sip:agent1@127.0.0.1\"\n\
         registrar = \"{registrar}\"\npassword = \"{password}\"\ntransport = \"{transport}\"\n\
         expires_s = 120\nkeepalive_s = 1\n"
    );
    Daemon::spawn("agent1", &account).await
}

/// Wait for `registration.state` = `state`; on failure show both sides' logs.
/// A client subscribes before it reads `account.list`, so it misses nothing:
/// the state may already be there, or comes as an event.
async fn registration(ui: &mut Client, state: &str, daemon: &Daemon, kam: &Kamailio) -> Value {
    let list = ui.call("account.list", json!({})).await.unwrap();
    let mut current = list["accounts"][0]["registration"].clone();
    if current["state"] == state {
        current["account"] = list["accounts"][0]["account"].clone();
        return current;
    }
    let event = ui
        .wait_event(WAIT, |e| e["method"] == "registration.state" && e["params"]["state"] == state)
        .await
        .unwrap_or_else(|e| {
            panic!("no registration.state {state}: {e}\n{}\n--- kamailio ---\n{}", daemon.log(), kam.log())
        });
    event["params"].clone()
}

/// The binding of agent1 disappears from Kamailio's location table.
async fn wait_unbound(kam: &Kamailio) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if kam.registrations("agent1").is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn registers_with_digest_over_udp_and_tcp_and_unregisters_on_shutdown() {
    if !peers_present(false) {
        return;
    }
    for transport in ["udp", "tcp"] {
        let kam = Kamailio::start(KamailioOptions::default());
        let started = Instant::now();
        let mut daemon = agent(&format!("sip:127.0.0.1:{}", kam.port), transport, PASSWORD, "").await;
        let mut ui = daemon.client().await;
        let registered = registration(&mut ui, "registered", &daemon, &kam).await;
        eprintln!("{transport}: registered {} ms after the daemon was started", started.elapsed().as_millis());
        assert_eq!(registered["account"], "main");
        assert_eq!(registered["expires_s"], 120);
        let bindings = kam.wait_registered("agent1", WAIT).await;
        assert_eq!(bindings.len(), 1, "{bindings:?}");
        assert!(bindings[0].socket.starts_with(transport), "kamailio got it over {transport}: {bindings:?}");
        if transport == "tcp" {
            assert!(bindings[0].address.to_ascii_lowercase().contains("transport=tcp"), "{bindings:?}");
        }
        let list = ui.call("account.list", json!({})).await.unwrap();
        assert_eq!(list["accounts"][0]["registration"]["state"], "registered");
        ui.call("account.unregister", json!({"account": "main"})).await.unwrap();
        registration(&mut ui, "unregistered", &daemon, &kam).await;
        assert!(wait_unbound(&kam).await, "account.unregister removed the binding at the registrar");
        ui.call("account.register", json!({"account": "main"})).await.unwrap();
        registration(&mut ui, "registered", &daemon, &kam).await;
        assert_eq!(kam.wait_registered("agent1", WAIT).await.len(), 1, "account.register brought it back");
        assert!(!list.to_string().contains(PASSWORD), "account.list never shows the password");
        assert!(!daemon.log().contains(PASSWORD), "the log never shows the password");

        daemon.terminate();
        assert!(kam.registrations("agent1").is_empty(), "SIGTERM unregistered (Expires: 0) before exit");
    }
}

#[tokio::test]
async fn sha256_digest_is_answered() {
    if !peers_present(false) {
        return;
    }
    let kam = Kamailio::start(KamailioOptions { sha256: true, ..Default::default() });
    let daemon = agent(&format!("sip:127.0.0.1:{}", kam.port), "udp", PASSWORD, "").await;
    let mut ui = daemon.client().await;
    registration(&mut ui, "registered", &daemon, &kam).await;
    assert_eq!(kam.wait_registered("agent1", WAIT).await.len(), 1);
    // Kamailio (WITH_SHA256) challenges with SHA-256 and answers any other
    // response with 403: its own log says it accepted ours.
    assert_eq!(kam.log_count("REGISTER forbidden"), 0, "{}", kam.log());
    assert!(kam.log_count("REGISTER ok 200 user=agent1") >= 1, "{}", kam.log());
}

#[tokio::test]
async fn a_wrong_password_fails_with_the_code_and_a_clear_reason() {
    if !peers_present(false) {
        return;
    }
    let kam = Kamailio::start(KamailioOptions::default());
    let daemon = agent(&format!("sip:127.0.0.1:{}", kam.port), "udp", "not-the-password", "").await;
    let mut ui = daemon.client().await;
    let failed = registration(&mut ui, "failed", &daemon, &kam).await;
    let code = failed["sip_code"].as_u64().unwrap();
    assert!(code == 401 || code == 403, "{failed}");
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.contains("password"), "the reason tells what to check: {reason}");
    assert!(failed["retry_in_ms"].as_u64().unwrap() >= 1000, "it retries, with backoff: {failed}");
    assert!(kam.registrations("agent1").is_empty());
}

#[tokio::test]
async fn a_restarted_registrar_gets_the_binding_back_by_itself() {
    if !peers_present(false) {
        return;
    }
    for transport in ["udp", "tcp"] {
        let mut kam = Kamailio::start(KamailioOptions::default());
        let daemon = agent(&format!("sip:127.0.0.1:{}", kam.port), transport, PASSWORD, "").await;
        let mut ui = daemon.client().await;
        registration(&mut ui, "registered", &daemon, &kam).await;
        kam.stop();
        // UDP: the keep-alive OPTIONS goes unanswered; TCP: the connection drops.
        let lost = ui
            .wait_event(WAIT, |e| {
                e["method"] == "registration.state"
                    && ["failed", "registering"].contains(&e["params"]["state"].as_str().unwrap_or(""))
            })
            .await
            .unwrap_or_else(|e| panic!("{transport}: outage not noticed: {e}\n{}", daemon.log()));
        eprintln!("{transport}: outage noticed as {}", lost["params"]);
        kam.restart();
        let back = Instant::now();
        registration(&mut ui, "registered", &daemon, &kam).await;
        eprintln!("{transport}: registered again {} ms after the restart", back.elapsed().as_millis());
        assert_eq!(kam.wait_registered("agent1", WAIT).await.len(), 1, "the new Kamailio has the binding");
    }
}

#[tokio::test]
async fn a_call_through_kamailio_rings_the_registered_agent() {
    if !peers_present(false) {
        return;
    }
    for transport in ["udp", "tcp"] {
        let kam = Kamailio::start(KamailioOptions::default());
        let daemon = agent(&format!("sip:127.0.0.1:{}", kam.port), transport, PASSWORD, "").await;
        let mut ui = daemon.client().await;
        registration(&mut ui, "registered", &daemon, &kam).await;
        let work = tempfile::tempdir().unwrap();
        let target = kam.addr().to_string();
        let uac = Sipp::call(work.path(), "uac_call.xml", &target, "agent1", &["-d", "500"]);
        let incoming = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
        assert_eq!(incoming["params"]["account"], "main", "{incoming}");
        let call = incoming["params"]["call"].as_str().unwrap().to_string();
        ui.call("call.answer", json!({ "call": call })).await.unwrap();
        let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
        assert_eq!(ended["params"]["reason"], "remote_hangup");
        let log = uac.expect_success().await;
        assert!(log.contains("Record-Route:"), "the call went through Kamailio:\n{log}");
    }
}

#[tokio::test]
async fn an_invite_challenged_with_407_is_sent_again_with_credentials() {
    if !peers_present(false) {
        return;
    }
    let kam = Kamailio::start(KamailioOptions { invite_auth: true, ..Default::default() });
    let proxy = format!("outbound_proxy = \"sip:127.0.0.1:{}\"", kam.port);
    let account = format!(
        "t1_ms = 50\n[[accounts]]\nid = \"main\"\naor = \"sip:alice@127.0.0.1\"\n{proxy}\npassword = \"{PASSWORD}\"\n"
    );
    let daemon = Daemon::spawn("alice", &account).await;
    let work = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let uas = Sipp::start(work.path(), "uas_busy.xml", port, free_port_pair(), &[]);
    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &format!("sip:busy@127.0.0.1:{port}")).await;
    let ended = ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    assert_eq!(ended["params"]["sip_code"], 486, "the INVITE got past the 407 to sipp: {ended}");
    let log = uas.expect_success().await;
    assert!(log.contains("INVITE sip:busy@"), "sipp received the authenticated INVITE");
    assert_eq!(kam.log_count("INVITE challenge 407 from=alice"), 1, "kamailio challenged once");
    assert_eq!(kam.log_count("INVITE authenticated from=alice"), 1, "and accepted our credentials");
}

#[tokio::test]
async fn registers_over_tls_with_the_test_ca_and_refuses_a_server_it_cannot_verify() {
    if !peers_present(true) {
        return;
    }
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = kamailio::make_test_pki(pki_dir.path());
    let kam = Kamailio::start(KamailioOptions { tls: Some(pki.clone()), ..Default::default() });
    let registrar = format!("sip:127.0.0.1:{}", kam.tls_addr().port());

    let trusted = format!("tls_ca_file = \"{}\"", pki.ca_cert.display());
    let daemon = agent(&registrar, "tls", PASSWORD, &trusted).await;
    let mut ui = daemon.client().await;
    registration(&mut ui, "registered", &daemon, &kam).await;
    let bindings = kam.wait_registered("agent1", WAIT).await;
    assert!(bindings.iter().any(|b| b.socket.starts_with("tls")), "kamailio got it over TLS: {bindings:?}");
    // A call for agent1 reaches us over that TLS connection.
    let work = tempfile::tempdir().unwrap();
    let target = kam.addr().to_string();
    let uac = Sipp::call(work.path(), "uac_call.xml", &target, "agent1", &["-d", "300"]);
    let incoming = ui.wait_event(WAIT, |e| e["params"]["state"] == "incoming").await.unwrap();
    ui.call("call.answer", json!({ "call": incoming["params"]["call"] })).await.unwrap();
    uac.expect_success().await;
    let routed = kam.log().lines().find(|l| l.contains("ROUTE INVITE to=agent1 registered")).map(str::to_lowercase);
    assert!(routed.as_deref().is_some_and(|l| l.contains("transport=tls")), "relayed over TLS: {routed:?}");
    drop(ui);
    let mut daemon = daemon;
    daemon.terminate();
    assert!(kam.registrations("agent1").is_empty(), "unregistered over TLS on shutdown");

    let untrusted = format!("tls_ca_file = \"{}\"", pki.wrong_ca_cert.display());
    let daemon = agent(&registrar, "tls", PASSWORD, &untrusted).await;
    let mut ui = daemon.client().await;
    let failed = registration(&mut ui, "failed", &daemon, &kam).await;
    let reason = failed["reason"].as_str().unwrap().to_ascii_lowercase();
    assert!(reason.contains("certificate") || reason.contains("issuer"), "a clear TLS reason: {failed}");
    assert!(kam.registrations("agent1").is_empty());
    drop(ui);
    drop(daemon);

    // The lab opt-out: same untrusted CA, verification explicitly off.
    let lab = format!("{untrusted}\ntls_verify = false");
    let daemon = agent(&registrar, "tls", PASSWORD, &lab).await;
    let mut ui = daemon.client().await;
    registration(&mut ui, "registered", &daemon, &kam).await;
    assert!(daemon.log().contains("NOT authenticated"), "the daemon warns about it");
}
