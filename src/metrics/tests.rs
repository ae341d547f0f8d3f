//! The aggregation fed by hand-made outputs and reports, and by a real
//! callback machine; each test reads the scrape text as Prometheus would.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::call::phone::CallSummary;
use crate::call::{Direction, EndReason};
use crate::callback::tests::offer;
use crate::callback::{
    AttemptOutcome, CallProgress, CallbackPolicy, Callbacks, Command, DialMode, Effect, Now, Output as CallbackOutput,
    Wrapup,
};
use crate::media::stream::MediaStats;
use crate::sip::traffic::{Flow, SipCounts};

fn metrics() -> (Metrics, Exposition) {
    Metrics::new(Pulled {
        sip: Box::new(|| SipCounts {
            requests: vec![(Flow::In, "INVITE", 3)],
            responses: vec![(Flow::Out, "INVITE", "2xx", 2)],
            refused: vec![("rate_limit", 4)],
        }),
        control_clients: Box::new(|| 2),
        bridge_clients: Box::new(|| 0),
    })
}

/// The value of one series in the scrape; `None` when absent.
fn value(exposition: &Exposition, series: &str) -> Option<f64> {
    let text = exposition.encode();
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn summary(call: &str, state: CallState, direction: Direction, reason: Option<EndReason>) -> Output {
    Output::Event(Event::CallState(Box::new(CallSummary {
        call: call.into(),
        state,
        direction,
        remote: "sip:customer@127.0.0.1".into(),
        display_name: None,
        account: None,
        answer_after_ms: None,
        held: false,
        remote_held: false,
        muted: false,
        codec: None,
        secure: false,
        transfer: None,
        links: Default::default(),
        reason,
        sip_code: None,
    })))
}

fn reject(call: &str, code: u16) -> Output {
    Output::Sip { call: call.into(), action: SipAction::Reject { code } }
}

#[test]
fn calls_count_once_when_they_end_and_refusals_are_told_from_rejects() {
    let (mut m, exposition) = metrics();
    m.output(&summary("c1", CallState::Dialing, Direction::Outbound, None));
    m.output(&summary("c2", CallState::Incoming, Direction::Inbound, None));
    m.output(&summary("c1", CallState::Connected, Direction::Outbound, None));
    assert_eq!(value(&exposition, "softphoned_live_calls"), Some(2.0));
    // The agent rejects c2: its 603 goes out while the call is live.
    m.output(&reject("c2", 603));
    m.output(&summary("c2", CallState::Ended, Direction::Inbound, Some(EndReason::Rejected)));
    m.output(&summary("c1", CallState::Ended, Direction::Outbound, Some(EndReason::RemoteHangup)));
    m.output(&summary("c1", CallState::Ended, Direction::Outbound, Some(EndReason::RemoteHangup)));
    // An INVITE refused before it became a call.
    m.output(&reject("c3", 403));
    assert_eq!(value(&exposition, "softphoned_live_calls"), Some(0.0));
    let calls =
        |d: &str, r: &str| value(&exposition, &format!("softphoned_calls_total{{direction=\"{d}\",reason=\"{r}\"}}"));
    assert_eq!(calls("outbound", "remote_hangup"), Some(1.0), "a repeated end is counted once");
    assert_eq!(calls("inbound", "rejected"), Some(1.0));
    assert_eq!(value(&exposition, "softphoned_inbound_calls_refused_total{code=\"403\"}"), Some(1.0));
    assert_eq!(value(&exposition, "softphoned_inbound_calls_refused_total{code=\"603\"}"), None);
}

#[test]
fn registrations_by_state_follow_each_account_and_count_changes() {
    let (mut m, exposition) = metrics();
    let mut accounts: HashMap<&str, RegState> = HashMap::new();
    let mut report = |account, state| {
        let before = accounts.insert(account, state);
        m.registration(before, state, |wanted| accounts.values().filter(|s| **s == wanted).count());
    };
    report("a", RegState::Registering);
    report("b", RegState::Registering);
    report("a", RegState::Registered);
    report("b", RegState::Failed);
    report("b", RegState::Failed);
    let gauge = |s: &str| value(&exposition, &format!("softphoned_registrations{{state=\"{s}\"}}"));
    let changes = |s: &str| value(&exposition, &format!("softphoned_registration_changes_total{{state=\"{s}\"}}"));
    assert_eq!((gauge("registered"), gauge("failed"), gauge("registering")), (Some(1.0), Some(1.0), Some(0.0)));
    assert_eq!((changes("registering"), changes("failed")), (Some(2.0), Some(1.0)), "a repeat is no change");
}

#[test]
fn media_counters_grow_by_each_reports_difference_and_quality_is_observed() {
    let (mut m, exposition) = metrics();
    let stats = |sent: u64, received: u64, lost: i64| {
        let mut stats = MediaStats {
            codec: crate::media::codec::Codec::Pcmu,
            secure: false,
            packets_sent: sent,
            packets_received: received,
            packets_discarded: 0,
            playout_underruns: 0,
            rtcp: Default::default(),
            jitter_buffer: Default::default(),
            missing_percent: 0.0,
            mos: 4.3,
            payload_bytes_received: received * 160,
        };
        stats.rtcp.octets_sent = sent * 160;
        stats.rtcp.packets_lost = lost;
        stats.rtcp.reports_sent = 1;
        stats.rtcp.report_bytes_sent = 60;
        stats.rtcp.jitter_ms = 3.0;
        Box::new(stats)
    };
    let quality = |call: &str, stats| Output::Event(Event::CallQuality { call: call.into(), stats });
    m.output(&quality("c1", stats(250, 240, 2)));
    m.media(&MediaReport::Stopped { call: "c1".into(), stats: Some(stats(500, 490, 5)) });
    m.output(&quality("c2", stats(100, 100, -1)));
    let rtp = |d: &str| value(&exposition, &format!("softphoned_rtp_packets_total{{direction=\"{d}\"}}"));
    assert_eq!((rtp("sent"), rtp("received")), (Some(600.0), Some(590.0)));
    let bytes = |d: &str| value(&exposition, &format!("softphoned_rtp_payload_bytes_total{{direction=\"{d}\"}}"));
    assert_eq!((bytes("sent"), bytes("received")), (Some(600.0 * 160.0), Some(590.0 * 160.0)));
    assert_eq!(value(&exposition, "softphoned_rtp_lost_packets_total"), Some(5.0), "duplicates are no loss");
    assert_eq!(value(&exposition, "softphoned_rtcp_packets_total{direction=\"sent\"}"), Some(2.0));
    assert_eq!(value(&exposition, "softphoned_rtcp_bytes_total{direction=\"sent\"}"), Some(120.0));
    assert_eq!(value(&exposition, "softphoned_mos_count"), Some(2.0), "one observation per quality report");
    assert_eq!(value(&exposition, "softphoned_mos_bucket{le=\"4.2\"}"), Some(0.0));
    assert_eq!(value(&exposition, "softphoned_rtp_jitter_seconds_bucket{le=\"0.005\"}"), Some(2.0));
}

#[test]
fn recordings_and_the_recorders_running_drop_count() {
    let (mut m, exposition) = metrics();
    let saved = |dropped| RecorderReport::Saved {
        call: "c1".into(),
        path: "/r/c1.wav".into(),
        duration_ms: 1000,
        bytes: 32_044,
        frames_dropped_total: dropped,
    };
    m.recorder(&saved(3));
    m.recorder(&saved(5));
    m.recorder(&RecorderReport::Failed { call: "c2".into(), reason: "disk full".into() });
    assert_eq!(value(&exposition, "softphoned_recordings_total{outcome=\"saved\"}"), Some(2.0));
    assert_eq!(value(&exposition, "softphoned_recordings_total{outcome=\"failed\"}"), Some(1.0));
    assert_eq!(value(&exposition, "softphoned_recording_bytes_total"), Some(64_088.0));
    assert_eq!(value(&exposition, "softphoned_recorder_frames_dropped_total"), Some(5.0));
}

/// A callback's outputs as the desk publishes them.
fn publish(m: &mut Metrics, outputs: Vec<CallbackOutput>) {
    for output in outputs {
        let event = match output.effect {
            Effect::StateChanged => Event::CallbackState(Box::new(output.callback)),
            Effect::Countdown(countdown) => Event::CallbackCountdown { callback: output.callback.callback, countdown },
            _ => continue,
        };
        m.output(&Output::Event(event));
    }
}

#[test]
fn a_callback_from_offer_to_wrapup_counts_its_states_attempt_phases_and_countdown() {
    let (mut m, exposition) = metrics();
    let mut callbacks = Callbacks::new(CallbackPolicy::default());
    let (start, wall) = (Instant::now(), Timestamp::from_second(1_800_000_000).unwrap());
    let at =
        |ms: u64| Now { at: start + Duration::from_millis(ms), wall: wall + SignedDuration::from_millis(ms as i64) };
    publish(&mut m, callbacks.offer(offer(DialMode::Automatic, 2_000), "x".into(), at(0)).unwrap());
    publish(&mut m, callbacks.command("cb1", Command::Accept, at(1_000)).unwrap());
    assert_eq!(value(&exposition, "softphoned_callbacks{state=\"preview\"}"), Some(1.0));
    // The countdown's zero is at 3 000 ms; the shell wakes 1.5 ms late.
    let fired = callbacks.poll(Now { at: at(3_000).at + Duration::from_micros(1_500), ..at(3_000) });
    publish(&mut m, fired);
    publish(&mut m, callbacks.dialed("cb1", Ok("c1".into()), at(3_001)));
    publish(&mut m, callbacks.on_call("c1", CallProgress::Connected, at(5_000)));
    let ended = CallProgress::Ended { outcome: AttemptOutcome::Failed, sip_code: None };
    publish(&mut m, callbacks.on_call("c1", ended, at(65_000)));
    publish(&mut m, callbacks.command("cb1", Command::Wrapup(Wrapup::default()), at(95_000)).unwrap());
    let entered = |s: &str| value(&exposition, &format!("softphoned_callback_transitions_total{{state=\"{s}\"}}"));
    for state in ["offered", "preview", "dialing", "in_call", "wrapup", "closed"] {
        assert_eq!(entered(state), Some(1.0), "{state}");
    }
    assert_eq!(value(&exposition, "softphoned_callbacks{state=\"wrapup\"}"), Some(0.0), "closed: no longer open");
    assert_eq!(value(&exposition, "softphoned_callbacks_closed_total{outcome=\"completed\"}"), Some(1.0));
    assert_eq!(value(&exposition, "softphoned_callback_attempts_total{outcome=\"answered\"}"), Some(1.0));
    let phase = |p: &str| value(&exposition, &format!("softphoned_callback_phase_seconds_sum{{phase=\"{p}\"}}"));
    assert_eq!((phase("preview"), phase("talk"), phase("wrapup")), (Some(2.0), Some(60.0), Some(30.0)));
    let late = value(&exposition, "softphoned_countdown_lateness_seconds_sum{kind=\"dial\"}").unwrap();
    assert!((late - 0.0015).abs() < 1e-9, "{late}");
}

#[test]
fn pulled_figures_are_read_at_each_scrape() {
    let (_m, exposition) = metrics();
    assert_eq!(value(&exposition, "softphoned_sip_requests_total{direction=\"in\",method=\"INVITE\"}"), Some(3.0));
    let ok = "softphoned_sip_responses_total{direction=\"out\",method=\"INVITE\",class=\"2xx\"}";
    assert_eq!(value(&exposition, ok), Some(2.0));
    assert_eq!(value(&exposition, "softphoned_sip_refused_total{reason=\"rate_limit\"}"), Some(4.0));
    assert_eq!(value(&exposition, "softphoned_control_clients"), Some(2.0));
}
