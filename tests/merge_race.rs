//! Issue 20, end to end: a `call.merge` issued the moment a consult
//! connects, while the customer's hold re-INVITE (sent by
//! `call.transfer.consult`) is still waiting for its answer, must still
//! end with the customer off hold inside the conference, both parties
//! hearing each other. Proven against the daemon as a black box (its
//! control socket) and real peers on 127.0.0.1, from what the peers saw:
//!
//! - two baresip 1.0.0 phones that answer at once (customer and
//!   colleague, each sending its own tone), the race run 20 times: the
//!   customer's last offer received is `a=sendrecv` (its SIP trace), and
//!   every round what each party is sent is captured off the wire; on odd
//!   rounds the customer's immediate answer to the hold is held up (its
//!   process paused) until the merge is in, so the merge always crosses
//!   the hold there, as in the log; even rounds run as the peers go;
//! - a sipp customer that answers every re-INVITE after 300 ms
//!   (`tests/sipp/uas_slow_reinvite.xml`), so the merge always lands inside
//!   the hold's offer/answer: its last re-INVITE received is `a=sendrecv`,
//!   and it is sent the colleague's voice;
//! - in both, `call.list` at the end: both calls connected, in the
//!   conference, neither held.
//!
//! A control test holds and resumes the slow peer plainly, so a failure of
//! the race tests is the race, not the scenario.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::baresip::{self, event, Baresip, BaresipOptions};
use common::capture::{ulaw_window, Capture};
use common::sipp::{free_port_pair, write_tone_file, Sipp};
use common::{dial, require_tool, wait_call_counter, Daemon};
use serde_json::{json, Value};
use softphoned::audio::analysis::tone_amplitude;
use softphoned::control::client::{is_call_state, Client};

const WAIT: Duration = Duration::from_secs(10);
/// How long the calls may take to settle after the merge: the slow peer
/// needs 300 ms for the hold and 300 ms more for the resume.
const SETTLE: Duration = Duration::from_secs(5);
const AGENT_HZ: f64 = 440.0;
const CUSTOMER_HZ: f64 = 700.0;
const COLLEAGUE_HZ: f64 = 1100.0;
/// What `uas_slow_reinvite.xml` streams (`tone1k.ulaw`).
const SIPP_HZ: f64 = 1000.0;
/// A tone this loud (of half scale, ~16000) is heard; below `ABSENT` it is not.
const PRESENT: f64 = 3000.0;
const ABSENT: f64 = 600.0;
/// The race, repeated with fresh calls; bounded in time as well.
const ROUNDS: usize = 20;
const ROUNDS_LIMIT: Duration = Duration::from_secs(240);
/// Packets (20 ms each) of conference captured for an audio check.
const CONFERENCE_PACKETS: u64 = 60;
const CONFIG: &str = "[audio]\nsource = \"tone:440\"\n[media]\ncodecs = [\"pcmu\"]";

fn peers_present() -> bool {
    baresip::installed() && require_tool("sipp") && require_tool("tcpdump") && require_tool("tshark")
}

fn party(work: &Path, name: &str, hz: f64) -> Baresip {
    let options = BaresipOptions { user: name.into(), tone_hz: Some(hz), ..BaresipOptions::default() };
    Baresip::start(&work.join(name), options)
}

/// The audio direction an SDP body states (`sendrecv` when it names none).
fn sdp_direction(sdp: &str) -> &'static str {
    ["sendrecv", "sendonly", "recvonly", "inactive"]
        .into_iter()
        .find(|d| sdp.lines().any(|l| l.trim_end() == format!("a={d}")))
        .unwrap_or("sendrecv")
}

/// The directions of the offers baresip received (INVITEs with SDP), from
/// the `skip`-th received SIP message on.
fn offers_received(peer: &Baresip, skip: usize) -> Vec<&'static str> {
    let messages = peer.received_sip().into_iter().skip(skip);
    let invites = messages.filter(|m| m.starts_with("INVITE "));
    let bodies: Vec<String> = invites.filter_map(|m| Some(m.split_once("\r\n\r\n")?.1.to_string())).collect();
    bodies.iter().filter(|b| b.contains("m=audio")).map(|b| sdp_direction(b)).collect()
}

/// Whether `offers` is a call put on hold and taken off it again: a
/// `sendonly` offer, and a `sendrecv` one last.
fn held_then_resumed(offers: &[&str]) -> bool {
    let hold = offers.iter().position(|d| *d == "sendonly");
    hold.is_some() && offers.last() == Some(&"sendrecv")
}

/// Wait (bounded) until the offers baresip received since `skip` were a
/// hold and then a resume; returns them either way.
async fn wait_resumed_offer(peer: &Baresip, skip: usize, limit: Duration) -> Vec<&'static str> {
    let deadline = Instant::now() + limit;
    loop {
        let offers = offers_received(peer, skip);
        if held_then_resumed(&offers) || Instant::now() >= deadline {
            return offers;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Both calls connected, in the conference, neither held, in `list`.
fn settled(list: &Value, calls: &[&str]) -> bool {
    calls.iter().all(|id| {
        let Some(calls) = list["calls"].as_array() else { return false };
        calls.iter().any(|c| {
            c["call"] == *id
                && c["state"] == "connected"
                && c["held"] == false
                && c["remote_held"] == false
                && c["conference"] == true
        })
    })
}

/// Each call of `list` as (id, state, held, remote_held, conference): a
/// failure message without the media counters.
fn brief(list: &Value) -> String {
    let calls = list["calls"].as_array().cloned().unwrap_or_default();
    let each = calls.iter().map(|c| {
        let conference = c["conference"].as_bool().unwrap_or(false);
        format!(
            "{} {} held={} remote_held={} conference={conference}",
            c["call"], c["state"], c["held"], c["remote_held"]
        )
    });
    format!("[{}]", each.collect::<Vec<_>>().join("; "))
}

/// `call.list` until [`settled`], waiting for the next `call.state` event
/// in between (never a blind sleep); the last list if not within `limit`.
async fn wait_settled(ui: &mut Client, calls: &[&str], limit: Duration) -> Result<Value, Value> {
    let deadline = Instant::now() + limit;
    loop {
        let list = ui.call("call.list", json!({})).await.unwrap();
        if settled(&list, calls) {
            return Ok(list);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(list);
        }
        let _ = ui.wait_event(left, |e| e["method"] == "call.state").await;
    }
}

/// A process of ours stopped (SIGSTOP) until this is dropped (SIGCONT):
/// what it is sent waits in its socket, as on a slow path to it.
struct Paused(u32);

impl Paused {
    fn new(pid: u32) -> Paused {
        signal(pid, "-STOP");
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

fn signal(pid: u32, which: &str) {
    let sent = std::process::Command::new("kill").args([which, &pid.to_string()]).status().unwrap();
    assert!(sent.success(), "kill {which} {pid}");
}

/// Consult `colleague` for `call` and merge both the moment the consult
/// reports `connected`, without waiting for the customer's hold to be
/// answered. With `pause`, the customer's process (that pid) is stopped
/// from just before the consult until the merge has been answered, so its
/// immediate answer to the hold arrives just after the merge (the order of
/// the log). Returns the consult's id, whether the customer's hold
/// had already completed (its `held` state came first) and how long after
/// the `connected` event the merge's reply came (the merge was sent before).
async fn consult_then_merge_at_once(
    ui: &mut Client,
    call: &str,
    colleague: &str,
    pause: Option<u32>,
) -> (String, bool, Duration) {
    let paused = pause.map(Paused::new);
    let result = ui.call("call.transfer.consult", json!({"call": call, "to": colleague})).await.unwrap();
    let consult = result["consult"].as_str().unwrap().to_string();
    let mut hold_done_first = false;
    ui.wait_event(WAIT, |e| {
        hold_done_first |= is_call_state(e, call, "held");
        is_call_state(e, &consult, "connected")
    })
    .await
    .unwrap_or_else(|e| panic!("the consult to {colleague} never connected: {e}"));
    let connected_at = Instant::now();
    let merged = ui.call("call.merge", json!({"calls": [call, consult]})).await;
    let lag = connected_at.elapsed();
    drop(paused);
    assert!(merged.is_ok(), "call.merge of two connected calls: {merged:?}");
    (consult, hold_done_first, lag)
}

/// Hang up both calls and wait until the daemon says they ended.
async fn hang_up(ui: &mut Client, calls: &[&str]) {
    for call in calls {
        ui.call("call.hangup", json!({ "call": call })).await.unwrap();
    }
    for call in calls {
        ui.wait_event(WAIT, |e| is_call_state(e, call, "ended")).await.unwrap();
    }
}

/// Wait until each leg has sent [`CONFERENCE_PACKETS`] more packets (both
/// legs run at once: the second wait is mostly over when the first is).
async fn let_the_conference_talk(ui: &mut Client, calls: &[&str]) {
    let mut marks = Vec::new();
    for leg in calls {
        marks.push(wait_call_counter(ui, leg, "packets_sent", 1).await);
    }
    for (leg, mark) in calls.iter().zip(marks) {
        wait_call_counter(ui, leg, "packets_sent", mark + CONFERENCE_PACKETS).await;
    }
}

/// Capture what is sent to each of `ports` (each in its own folder under `dir`).
fn capture(dir: &Path, ports: &[u16]) -> Vec<Capture> {
    let mut captures = Vec::new();
    for port in ports {
        let folder = dir.join(format!("capture-{port}"));
        std::fs::create_dir_all(&folder).unwrap();
        captures.push(Capture::start(&folder, *port));
    }
    captures
}

/// About a second of what was sent to `port`: the end of the capture.
fn heard(capture: Capture, port: u16) -> Vec<i16> {
    ulaw_window(&capture.stop(port), 1.0, 0.8)
}

fn amplitudes(samples: &[i16], tones: &[(&str, f64)]) -> String {
    let each: Vec<String> =
        tones.iter().map(|(name, hz)| format!("{name} {:.0}", tone_amplitude(samples, 8000, *hz))).collect();
    each.join(", ")
}

#[tokio::test]
async fn merge_at_the_consult_s_answer_never_leaves_the_customer_on_hold_20_rounds() {
    if !peers_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut customer = party(work.path(), "customer", CUSTOMER_HZ);
    let mut colleague = party(work.path(), "colleague", COLLEAGUE_HZ);
    let daemon = Daemon::spawn("agent", CONFIG).await;
    let mut ui = daemon.client().await;
    let started = Instant::now();
    let (mut crossed, mut lags) = (0, Vec::new());
    for round in 1..=ROUNDS {
        assert!(started.elapsed() < ROUNDS_LIMIT, "round {round} not reached within {ROUNDS_LIMIT:?}");
        let skip = customer.received_sip().len();
        let call = dial(&mut ui, &customer.sip_uri()).await;
        ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
        customer.wait_event_type(event::ESTABLISHED, WAIT).await;

        // Odd rounds: the customer's answer to the hold is held up on its
        // way until the merge is in; even rounds: as the peers go.
        let pause = if round % 2 == 1 { customer.pid() } else { None };
        let (consult, hold_done_first, lag) =
            consult_then_merge_at_once(&mut ui, &call, &colleague.sip_uri(), pause).await;
        crossed += usize::from(!hold_done_first);
        lags.push(lag);
        colleague.wait_event_type(event::ESTABLISHED, WAIT).await;
        let calls = [call.as_str(), consult.as_str()];

        // What the customer's phone was last offered: off hold.
        let offers = wait_resumed_offer(&customer, skip, SETTLE).await;
        let state = wait_settled(&mut ui, &calls, SETTLE).await;
        assert!(
            held_then_resumed(&offers),
            "round {round} (merge {} the hold's answer): the customer's phone was offered {offers:?} \
             (a hold that no resume followed: it stays on hold in the conference); call.list: {}",
            if hold_done_first { "after" } else { "before" },
            brief(state.as_ref().unwrap_or_else(|l| l)),
        );
        let list = state.unwrap_or_else(|list| {
            panic!("round {round}: not both connected, in the conference and off hold: {}", brief(&list))
        });

        // Who hears whom, off the wire, every round.
        {
            let ports = [customer.media_port().unwrap(), colleague.media_port().unwrap()];
            let mut captures = capture(&work.path().join(format!("round-{round}")), &ports);
            let_the_conference_talk(&mut ui, &calls).await;
            let to_colleague = heard(captures.pop().unwrap(), ports[1]);
            let to_customer = heard(captures.pop().unwrap(), ports[0]);
            let tones = [("agent", AGENT_HZ), ("customer", CUSTOMER_HZ), ("colleague", COLLEAGUE_HZ)];
            let (to_customer_said, to_colleague_said) =
                (amplitudes(&to_customer, &tones), amplitudes(&to_colleague, &tones));
            assert!(
                tone_amplitude(&to_customer, 8000, COLLEAGUE_HZ) > PRESENT,
                "round {round}: the customer should hear the colleague: {to_customer_said}"
            );
            assert!(
                tone_amplitude(&to_customer, 8000, AGENT_HZ) > PRESENT,
                "round {round}: the customer should hear the agent: {to_customer_said}"
            );
            assert!(
                tone_amplitude(&to_colleague, 8000, CUSTOMER_HZ) > PRESENT,
                "round {round}: the colleague should hear the customer: {to_colleague_said}"
            );
            assert!(tone_amplitude(&to_customer, 8000, CUSTOMER_HZ) < ABSENT, "no echo: {to_customer_said}");
            assert!(tone_amplitude(&to_colleague, 8000, COLLEAGUE_HZ) < ABSENT, "no echo: {to_colleague_said}");
        }
        // Still so at the end of the round.
        let end = ui.call("call.list", json!({})).await.unwrap();
        assert!(
            settled(&end, &calls),
            "round {round}: the conference came apart: {} (was {})",
            brief(&end),
            brief(&list)
        );
        hang_up(&mut ui, &calls).await;
        customer.wait_event_type(event::CLOSED, WAIT).await;
        colleague.wait_event_type(event::CLOSED, WAIT).await;
        let when = if hold_done_first { "after" } else { "before" };
        eprintln!("round {round}: merged {when} the hold's answer; {:.1} s", started.elapsed().as_secs_f64());
    }
    let slowest = lags.iter().max().unwrap();
    eprintln!(
        "{ROUNDS} rounds in {:.1} s; the merge crossed the hold's answer in {crossed}; \
         merge answered at most {slowest:?} after the consult's connected",
        started.elapsed().as_secs_f64()
    );
}

/// The directions of the re-INVITEs sipp received (every INVITE after the
/// first), from its message log.
fn reinvites_received(log: &str) -> Vec<&'static str> {
    let received =
        log.split("-----------------------------------------------").filter(|m| m.contains("message received"));
    let invites: Vec<&str> = received.filter(|m| m.lines().any(|l| l.starts_with("INVITE sip:"))).collect();
    invites.iter().skip(1).map(|m| sdp_direction(m.split_once("\n\n").map_or("", |(_, body)| body))).collect()
}

/// The customer is sipp answering re-INVITEs after 300 ms (a baresip
/// colleague); the daemon dials it and `ui` is subscribed.
async fn slow_customer(work: &Path) -> (Sipp, u16, Baresip, Daemon, Client, String) {
    write_tone_file(work);
    let (port, media) = (free_port_pair(), free_port_pair());
    let customer = Sipp::start(work, "uas_slow_reinvite.xml", port, media, &[]);
    let colleague = party(work, "colleague", COLLEAGUE_HZ);
    let daemon = Daemon::spawn("agent", CONFIG).await;
    let mut ui = daemon.client().await;
    let call = dial(&mut ui, &format!("sip:customer@127.0.0.1:{port}")).await;
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    (customer, media, colleague, daemon, ui, call)
}

#[tokio::test]
async fn merge_during_a_300_ms_hold_answer_takes_the_customer_off_hold() {
    if !peers_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (customer, customer_media, mut colleague, _daemon, mut ui, call) = slow_customer(work.path()).await;
    let (consult, hold_done_first, lag) = consult_then_merge_at_once(&mut ui, &call, &colleague.sip_uri(), None).await;
    assert!(!hold_done_first, "the hold took 300 ms: the merge came before its answer");
    eprintln!("merge answered {lag:?} after the consult's connected");
    colleague.wait_event_type(event::ESTABLISHED, WAIT).await;
    let calls = [call.as_str(), consult.as_str()];
    let state = wait_settled(&mut ui, &calls, SETTLE).await;

    // A second of conference, off the wire, when it settled.
    let audio = if state.is_ok() {
        let ports = [customer_media, colleague.media_port().unwrap()];
        let mut captures = capture(work.path(), &ports);
        let_the_conference_talk(&mut ui, &calls).await;
        let to_colleague = heard(captures.pop().unwrap(), ports[1]);
        Some((heard(captures.pop().unwrap(), ports[0]), to_colleague))
    } else {
        None
    };
    let end = ui.call("call.list", json!({})).await.unwrap();
    hang_up(&mut ui, &calls).await;
    colleague.wait_event_type(event::CLOSED, WAIT).await;
    let log = customer.expect_success().await;

    let reinvites = reinvites_received(&log);
    assert_eq!(
        reinvites.last(),
        Some(&"sendrecv"),
        "the slow customer's last re-INVITE must take it off hold; it got {reinvites:?}; call.list: {}",
        brief(state.as_ref().unwrap_or_else(|l| l))
    );
    assert_eq!(reinvites.first(), Some(&"sendonly"), "the consult held it first: {reinvites:?}");
    let list =
        state.unwrap_or_else(|list| panic!("not both connected, in the conference and off hold: {}", brief(&list)));
    assert!(settled(&end, &calls), "the conference came apart: {} (was {})", brief(&end), brief(&list));
    let (to_customer, to_colleague) = audio.unwrap();
    let tones = [("agent", AGENT_HZ), ("customer", SIPP_HZ), ("colleague", COLLEAGUE_HZ)];
    let said = amplitudes(&to_customer, &tones);
    assert!(tone_amplitude(&to_customer, 8000, COLLEAGUE_HZ) > PRESENT, "the customer hears the colleague: {said}");
    assert!(tone_amplitude(&to_customer, 8000, AGENT_HZ) > PRESENT, "and the agent: {said}");
    let said = amplitudes(&to_colleague, &tones);
    assert!(tone_amplitude(&to_colleague, 8000, SIPP_HZ) > PRESENT, "the colleague hears the customer: {said}");
}

/// Control: the slow peer held and resumed one step at a time (each
/// command after the last one's answer) answers both correctly, so the
/// race tests above fail on the race, not on the scenario.
#[tokio::test]
async fn the_slow_peer_answers_a_plain_hold_and_resume_in_the_right_directions() {
    if !peers_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (customer, _, _colleague, _daemon, mut ui, call) = slow_customer(work.path()).await;
    ui.call("call.hold", json!({ "call": call })).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "held")).await.unwrap();
    ui.call("call.resume", json!({ "call": call })).await.unwrap();
    ui.wait_event(WAIT, |e| is_call_state(e, &call, "connected")).await.unwrap();
    let list = ui.call("call.list", json!({})).await.unwrap();
    assert_eq!(list["calls"][0]["held"], false, "{}", brief(&list));
    hang_up(&mut ui, &[&call]).await;
    let log = customer.expect_success().await;
    assert_eq!(reinvites_received(&log), ["sendonly", "sendrecv"], "{log}");
    assert!(log.contains("a=recvonly"), "the hold was answered recvonly:\n{log}");
}
