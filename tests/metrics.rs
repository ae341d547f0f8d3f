//! The Prometheus endpoint (`[metrics] listen`) seen from outside: the
//! real daemon on 127.0.0.1 makes and takes calls with sipp, refuses an
//! untrusted caller, runs a callback, fails to register with Kamailio; the
//! scrape passes `promtool check metrics` and its counters moved by exactly
//! what happened, as the control socket's events and sipp told it; a real
//! Prometheus server scrapes the daemon and answers a PromQL query for the
//! live-call gauge while a call is up.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::kamailio::{self, Kamailio, KamailioOptions};
use common::prometheus::{
    free_tcp_port, http_get, http_raw, metrics_section, promtool_check, samples, scrape, Prometheus,
};
use common::sipp::{free_port_pair, write_tone_file, Sipp};
use common::{dial, require_tools, wait_call_counter, Daemon};
use serde_json::{json, Value};
use softphoned::control::client::{is_call_state, Client};

const WAIT: Duration = Duration::from_secs(20);

/// A subscribed client that tallies, from every event it reads, what the
/// metrics must agree with.
struct Watch {
    ui: Client,
    qualities: u64,
    saved_bytes: u64,
    saved: u64,
    /// `registration.state` changes, by state.
    registrations: HashMap<String, u64>,
    last_registration: Option<String>,
}

impl Watch {
    fn new(ui: Client) -> Watch {
        Watch { ui, qualities: 0, saved_bytes: 0, saved: 0, registrations: HashMap::new(), last_registration: None }
    }

    fn tally(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str() {
            Some("call.quality") => self.qualities += 1,
            Some("recording.saved") => {
                self.saved += 1;
                self.saved_bytes += std::fs::metadata(params["path"].as_str().unwrap()).unwrap().len();
            }
            Some("registration.state") => {
                let state = params["state"].as_str().unwrap().to_string();
                if self.last_registration.as_ref() != Some(&state) {
                    *self.registrations.entry(state.clone()).or_default() += 1;
                    self.last_registration = Some(state);
                }
            }
            _ => {}
        }
    }

    /// The first event `wanted` accepts, tallying every one read on the way.
    async fn until(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let mut seen = Vec::new();
        let found = self
            .ui
            .wait_event(WAIT, |e| {
                seen.push(e.clone());
                wanted(e)
            })
            .await;
        for event in &seen {
            self.tally(event);
        }
        found.unwrap_or_else(|e| panic!("no {what}: {e}"))
    }

    /// Tally whatever events are already there, waiting at most `within`.
    async fn drain(&mut self, within: Duration) {
        let mut seen = Vec::new();
        let _ = self
            .ui
            .wait_event(within, |e| {
                seen.push(e.clone());
                false
            })
            .await;
        for event in &seen {
            self.tally(event);
        }
    }
}

/// A folder holding sipp's tone file, for the tone peers it starts in it.
fn tone_folder() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    write_tone_file(work.path());
    work
}

fn is_callback(event: &Value, state: &str) -> bool {
    event["method"] == "callback.state" && event["params"]["state"] == state
}

/// Scrape until `settled` holds for the samples (figures that arrive after
/// the events the test waited for: a recording's save, a last quality
/// report), tallying the events meanwhile; the samples, checked by promtool.
async fn settled_scrape(
    watch: &mut Watch,
    addr: SocketAddr,
    settled: impl Fn(&Watch, &HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let deadline = Instant::now() + WAIT;
    loop {
        watch.drain(Duration::from_millis(100)).await;
        let text = scrape(addr);
        let now = samples(&text);
        if settled(watch, &now) {
            promtool_check(&text).unwrap_or_else(|e| panic!("promtool refused the scrape: {e}\n{text}"));
            return now;
        }
        assert!(Instant::now() < deadline, "the scrape never settled:\n{text}");
    }
}

/// How much `series` grew between two scrapes (absent: 0).
fn grew(before: &HashMap<String, f64>, after: &HashMap<String, f64>, series: &str) -> f64 {
    after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn calls_a_refusal_and_a_callback_move_the_counters_by_exactly_what_happened() {
    if !require_tools(&["sipp", "sox", "promtool"]) {
        return;
    }
    let work = tone_folder();
    let (port, trusted) = (free_tcp_port(), free_port_pair());
    // Only the caller on `trusted` may call: anyone else gets 403.
    let config = format!(
        "allow_from = [\"127.0.0.1:{trusted}\"]\n[audio]\nsource = \"tone:440\"\n[media]\nquality_interval_ms = 500\nrtcp_interval_ms = 500\n\
         [recording]\ndir = \"recordings\"\nmode = \"always\"\n{}",
        metrics_section(port)
    );
    let daemon = Daemon::spawn("agent", &config).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut watch = Watch::new(daemon.client().await);
    let before = samples(&scrape(addr));
    let target = format!("127.0.0.1:{}", daemon.sip_port);

    // We call a tone peer, talk, and hang up.
    let uas_port = free_port_pair();
    let uas = Sipp::start(work.path(), "uas_tone.xml", uas_port, free_port_pair(), &[]);
    let call = dial(&mut watch.ui, &format!("sip:uas@127.0.0.1:{uas_port}")).await;
    watch.until("connected", |e| is_call_state(e, &call, "connected")).await;
    let sent = wait_call_counter(&mut watch.ui, &call, "packets_sent", 50).await;
    let received = wait_call_counter(&mut watch.ui, &call, "packets_received", 50).await;
    watch.ui.call("call.hangup", json!({"call": call})).await.unwrap();
    watch.until("our hangup", |e| is_call_state(e, &call, "ended")).await;
    uas.expect_success().await;

    // The trusted caller calls us, we answer, it hangs up.
    let args = [target.as_str(), "-s", "agent", "-d", "1000"];
    let caller = Sipp::start(work.path(), "uac_call.xml", trusted, free_port_pair(), &args);
    let incoming = watch.until("incoming", |e| e["params"]["state"] == "incoming").await;
    let inbound = incoming["params"]["call"].as_str().unwrap().to_string();
    watch.ui.call("call.answer", json!({"call": inbound})).await.unwrap();
    let ended = watch.until("the caller's hangup", |e| is_call_state(e, &inbound, "ended")).await;
    assert_eq!(ended["params"]["reason"], "remote_hangup");
    caller.expect_success().await;

    // Anyone else is refused before it rings.
    let stranger = Sipp::call(work.path(), "uac_call_rejected.xml", &target, "agent", &[]);
    let log = stranger.expect_success().await;
    assert!(log.contains("SIP/2.0 403 "), "the stranger got 403:\n{log}");

    // A callback: the countdown dials a busy customer, the agent closes it.
    let busy_port = free_port_pair();
    let busy = Sipp::start(work.path(), "uas_busy.xml", busy_port, free_port_pair(), &[]);
    let offer = json!({
        "customer": "Ada", "queue": "billing", "type": "asap", "reason": "invoice",
        "numbers": [{"label": "mobile", "number": format!("sip:customer@127.0.0.1:{busy_port}")}],
        "dial_mode": "automatic", "countdown_ms": 300
    });
    let id = watch.ui.call("callback.offer", offer).await.unwrap()["callback"].as_str().unwrap().to_string();
    watch.ui.call("callback.accept", json!({"callback": id})).await.unwrap();
    watch.until("the dial", |e| is_callback(e, "dialing")).await;
    let back = watch.until("the busy attempt", |e| is_callback(e, "preview")).await;
    assert_eq!(back["params"]["attempts"][0]["outcome"], "busy", "{back}");
    busy.expect_success().await;
    watch.ui.call("callback.close", json!({"callback": id})).await.unwrap();
    watch.until("the close", |e| is_callback(e, "closed")).await;

    // Both answered calls were recorded; each quality report is one MOS.
    let after = settled_scrape(&mut watch, addr, |w, now| {
        w.saved == 2 && now.get("softphoned_mos_count") == Some(&(w.qualities as f64))
    })
    .await;
    let delta = |series: &str| grew(&before, &after, series);
    let calls = |direction: &str, reason: &str| {
        delta(&format!("softphoned_calls_total{{direction=\"{direction}\",reason=\"{reason}\"}}"))
    };
    assert_eq!(calls("outbound", "local_hangup"), 1.0);
    assert_eq!(calls("inbound", "remote_hangup"), 1.0);
    assert_eq!(calls("outbound", "busy"), 1.0, "the callback's attempt");
    let all_calls: f64 = after.iter().filter(|(s, _)| s.starts_with("softphoned_calls_total{")).map(|(_, v)| v).sum();
    assert_eq!(all_calls, 3.0, "the refused INVITE never became a call");
    assert_eq!(after["softphoned_live_calls"], 0.0);
    assert_eq!(delta("softphoned_inbound_calls_refused_total{code=\"403\"}"), 1.0);

    let sip = |kind: &str, labels: &str| delta(&format!("softphoned_sip_{kind}_total{{{labels}}}"));
    assert_eq!(sip("requests", "direction=\"in\",method=\"INVITE\""), 2.0, "the trusted caller's and the stranger's");
    assert_eq!(sip("requests", "direction=\"out\",method=\"INVITE\""), 2.0, "ours and the callback's");
    assert_eq!(sip("requests", "direction=\"out\",method=\"BYE\""), 1.0);
    assert_eq!(sip("requests", "direction=\"in\",method=\"BYE\""), 1.0);
    assert_eq!(sip("responses", "direction=\"out\",method=\"INVITE\",class=\"4xx\""), 1.0, "our 403");
    assert_eq!(sip("responses", "direction=\"in\",method=\"INVITE\",class=\"4xx\""), 1.0, "the customer's 486");
    assert_eq!(sip("responses", "direction=\"in\",method=\"INVITE\",class=\"2xx\""), 1.0);
    assert_eq!(sip("responses", "direction=\"out\",method=\"INVITE\",class=\"2xx\""), 1.0);

    let rtp_way = |name: &str, way: &str| delta(&format!("softphoned_{name}_total{{direction=\"{way}\"}}"));
    let rtp = |way: &str| rtp_way("rtp_packets", way);
    assert!(rtp("sent") >= sent as f64 && rtp("received") >= received as f64, "{after:?}");
    // PCMU: a byte a sample, 160 a packet.
    let payload_received = delta("softphoned_rtp_payload_bytes_total{direction=\"received\"}");
    assert_eq!(payload_received, 160.0 * rtp("received"), "{after:?}");
    assert!(delta("softphoned_rtcp_packets_total{direction=\"sent\"}") >= 1.0);
    // An RR or SR with its SDES: a few dozen bytes each.
    let (rtcp, rtcp_bytes) = (rtp_way("rtcp_packets", "sent"), rtp_way("rtcp_bytes", "sent"));
    assert!(rtcp_bytes >= 28.0 * rtcp && rtcp_bytes <= 200.0 * rtcp, "{rtcp} RTCP packets, {rtcp_bytes} bytes");
    assert!(watch.qualities >= 2, "quality every 500 ms over seconds of calls");

    assert_eq!(delta("softphoned_recordings_total{outcome=\"saved\"}"), 2.0);
    assert_eq!(delta("softphoned_recording_bytes_total"), watch.saved_bytes as f64, "the files' sizes on disk");

    let entered = |state: &str| delta(&format!("softphoned_callback_transitions_total{{state=\"{state}\"}}"));
    let entries = [entered("offered"), entered("preview"), entered("dialing"), entered("in_call"), entered("closed")];
    assert_eq!(entries, [1.0, 2.0, 1.0, 0.0, 1.0], "offered, preview, dialing, in call, closed");
    assert_eq!(delta("softphoned_callback_attempts_total{outcome=\"busy\"}"), 1.0);
    assert_eq!(delta("softphoned_callbacks_closed_total{outcome=\"closed_by_agent\"}"), 1.0);
    assert_eq!(after["softphoned_callbacks{state=\"preview\"}"], 0.0, "nothing left open");
    assert_eq!(delta("softphoned_callback_phase_seconds_count{phase=\"preview\"}"), 1.0);
    assert_eq!(delta("softphoned_countdown_lateness_seconds_count{kind=\"dial\"}"), 1.0);
    let late = delta("softphoned_countdown_lateness_seconds_sum{kind=\"dial\"}");
    assert!((0.0..0.05).contains(&late), "the countdown fired {late} s late");

    assert_eq!(after["softphoned_control_clients"], 1.0, "this test's one connection");
}

#[tokio::test]
async fn a_failed_registration_is_counted_once_per_failure_and_every_register_was_answered() {
    if !kamailio::installed(false) || !require_tools(&["promtool"]) {
        eprintln!("SKIPPED: kamailio or promtool not installed (run tests/run.sh)");
        return;
    }
    let kam = Kamailio::start(KamailioOptions::default());
    let port = free_tcp_port();
    let config = format!(
        "{}\n[[accounts]]\nid = \"main\"\naor = \"sip:agent1@127.0.0.1\"\nregistrar = \"sip:127.0.0.1:{}\"\n\
         password = \"not-the-password\"\n",
        metrics_section(port),
        kam.port
    );
    let daemon = Daemon::spawn("agent1", &config).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut watch = Watch::new(daemon.client().await);
    // The present first: the account may have failed before we subscribed.
    let list = watch.ui.call("account.list", json!({})).await.unwrap();
    let state = list["accounts"][0]["registration"]["state"].as_str().unwrap().to_string();
    if state != "failed" {
        watch.until("the failure", |e| e["method"] == "registration.state" && e["params"]["state"] == "failed").await;
    }
    // No more retries: the counts stop moving.
    watch.ui.call("account.unregister", json!({"account": "main"})).await.unwrap();
    watch.until("unregistered", |e| e["params"]["state"] == "unregistered").await;

    let text = scrape(addr);
    promtool_check(&text).unwrap_or_else(|e| panic!("promtool refused the scrape: {e}\n{text}"));
    let after = samples(&text);
    let changes = |state: &str| after[&format!("softphoned_registration_changes_total{{state=\"{state}\"}}")];
    // Those before the subscription were not seen as events: at least one
    // failure, each followed by a retry, all of them counted.
    let failures = changes("failed");
    assert!(failures >= 1.0, "{text}");
    let seen_failures = watch.registrations.get("failed").copied().unwrap_or(0) as f64;
    assert!(failures >= seen_failures, "{failures} counted, {seen_failures} seen");
    assert_eq!(changes("registering"), failures, "each failure ended a registering, the first and every retry");
    assert_eq!(changes("unregistered"), 1.0);
    assert_eq!(after["softphoned_registrations{state=\"unregistered\"}"], 1.0);
    assert_eq!(after["softphoned_registrations{state=\"failed\"}"], 0.0);
    // Every REGISTER got its final answer from Kamailio (401 challenges, then 403s).
    let registers = after["softphoned_sip_requests_total{direction=\"out\",method=\"REGISTER\"}"];
    let answered: f64 = after
        .iter()
        .filter(|(s, _)| s.starts_with("softphoned_sip_responses_total{direction=\"in\",method=\"REGISTER\""))
        .filter(|(s, _)| !s.contains("1xx"))
        .map(|(_, v)| v)
        .sum();
    assert!(registers >= 2.0 * failures, "a challenge and an answer per attempt: {text}");
    assert_eq!(answered, registers, "{text}");
    assert!(kam.registrations("agent1").is_empty());
}

#[tokio::test]
async fn bad_requests_get_their_http_error_and_idle_connections_are_bounded() {
    let port = free_tcp_port();
    let daemon = Daemon::spawn("agent", &metrics_section(port)).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let status = |request: &[u8]| http_raw(addr, request).unwrap().0;
    assert_eq!(http_get(addr, "/").unwrap().0, 404);
    assert_eq!(status(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 405);
    assert_eq!(status(b"\x16\x03\x01 not http at all\r\n\r\n"), 400);
    assert_eq!(status(b"GET /metrics SIP/2.0\r\n\r\n"), 505);
    let huge = format!("GET /metrics HTTP/1.1\r\nX-Filler: {}\r\n\r\n", "a".repeat(16 * 1024));
    assert_eq!(status(huge.as_bytes()), 431);
    // Eight connections that say nothing hold every seat: a ninth is turned away at once.
    let idle: Vec<_> = (0..8).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    let deadline = Instant::now() + WAIT;
    while status(b"GET /metrics HTTP/1.0\r\n\r\n") != 503 {
        assert!(Instant::now() < deadline, "a ninth connection was served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(idle);
    // Their seats come back when they close; the daemon served on throughout.
    let deadline = Instant::now() + WAIT;
    while http_get(addr, "/metrics").unwrap().0 != 200 {
        assert!(Instant::now() < deadline, "the seats never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ui = daemon.client().await;
    assert_eq!(ui.call("daemon.status", json!({})).await.unwrap()["calls"], 0);
}

#[tokio::test]
async fn sip_refused_before_the_stack_is_counted_by_why() {
    let port = free_tcp_port();
    let daemon = Daemon::spawn("agent", &metrics_section(port)).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let sip = SocketAddr::from(([127, 0, 0, 1], daemon.sip_port));
    let mut buf = [0u8; 2048];
    let mut ask = |request: String, answered: bool| {
        peer.send_to(request.as_bytes(), sip).unwrap();
        answered.then(|| {
            let (n, _) = peer.recv_from(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).to_string()
        })
    };
    let me = peer.local_addr().unwrap();
    // No Call-ID: answered 400 by the validation, never seen by the stack.
    let answer = ask(options(me, sip, 1, "", "Call-ID"), true).unwrap();
    assert!(answer.starts_with("SIP/2.0 400 Missing Call-ID Header"), "{answer}");
    // A known scanner is not answered at all.
    ask(options(me, sip, 2, "User-Agent: friendly-scanner\r\n", ""), false);
    // A well-formed OPTIONS reaches the stack: its request and response count there instead.
    let answer = ask(options(me, sip, 3, "", ""), true).unwrap();
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");

    let now = samples(&scrape(addr));
    assert_eq!(now["softphoned_sip_refused_total{reason=\"invalid\"}"], 1.0);
    assert_eq!(now["softphoned_sip_refused_total{reason=\"scanner\"}"], 1.0);
    assert_eq!(now["softphoned_sip_refused_total{reason=\"rate_limit\"}"], 0.0);
    assert_eq!(now["softphoned_sip_requests_total{direction=\"in\",method=\"OPTIONS\"}"], 1.0);
    let ok = "softphoned_sip_responses_total{direction=\"out\",method=\"OPTIONS\",class=\"2xx\"}";
    assert_eq!(now[ok], 1.0);
}

/// An OPTIONS from `me` to `to`, the `n`th (its branch and Call-ID), with
/// `extra` headers and without the header named `missing`.
fn options(me: SocketAddr, to: SocketAddr, n: u32, extra: &str, missing: &str) -> String {
    let headers = [
        format!("Via: SIP/2.0/UDP {me};branch=z9hG4bKprobe{n}"),
        "Max-Forwards: 70".into(),
        format!("From: <sip:probe@{me}>;tag=p{n}"),
        format!("To: <sip:agent@{to}>"),
        format!("Call-ID: probe{n}@{me}"),
        "CSeq: 1 OPTIONS".into(),
    ];
    let kept: String =
        headers.iter().filter(|h| missing.is_empty() || !h.starts_with(missing)).map(|h| format!("{h}\r\n")).collect();
    format!("OPTIONS sip:agent@{to} SIP/2.0\r\n{kept}{extra}Content-Length: 0\r\n\r\n")
}

#[tokio::test]
async fn prometheus_scrapes_the_daemon_and_answers_the_live_call_gauge() {
    if !require_tools(&["sipp", "sox", "prometheus"]) {
        return;
    }
    let work = tone_folder();
    let port = free_tcp_port();
    let daemon = Daemon::spawn("agent", &metrics_section(port)).await;
    let prometheus = Prometheus::start(SocketAddr::from(([127, 0, 0, 1], port)));
    let mut ui = daemon.client().await;
    let (within, job) = (Duration::from_secs(30), "up{job=\"softphoned\"}");
    let up = prometheus.wait_value(job, "1", within).await;
    up.unwrap_or_else(|last| panic!("the target never came up ({last:?}):\n{}", prometheus.log()));
    prometheus.wait_value("softphoned_live_calls", "0", within).await.unwrap();

    let uas_port = free_port_pair();
    let uas = Sipp::start(work.path(), "uas_tone.xml", uas_port, free_port_pair(), &[]);
    let call = dial(&mut ui, &format!("sip:uas@127.0.0.1:{uas_port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    let live = prometheus.wait_value("softphoned_live_calls", "1", within).await;
    live.unwrap_or_else(|last| panic!("PromQL never saw the call ({last:?}):\n{}", prometheus.log()));
    ui.call("call.hangup", json!({"call": call})).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "ended")).await.unwrap();
    uas.expect_success().await;
    prometheus.wait_value("softphoned_live_calls", "0", within).await.unwrap();
    let ended = "sum(softphoned_calls_total{direction=\"outbound\",reason=\"local_hangup\"})";
    prometheus.wait_value(ended, "1", within).await.unwrap();
}
