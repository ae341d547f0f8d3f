//! Callbacks through the whole desk: the countdown's INVITE on its exact
//! instant, busy then Retry on another number, the no-answer timeout,
//! customer-first accept, wrap-up auto-close, and a restart.

use std::time::Duration;

use super::*;
use crate::callback::{AttemptOutcome, CallbackState, CountdownReport, DialMode, Offer};

pub(super) use crate::callback::tests::offer;

fn act(bench: &mut Bench, command: crate::callback::Command, ms: u64) -> Result<Reply, DeskError> {
    bench.command(Command::Callback { callback: "cb1".into(), command }, ms)
}

pub(super) fn countdowns(bench: &Bench) -> Vec<CountdownReport> {
    bench
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::CallbackCountdown { countdown, .. } => Some(countdown),
            _ => None,
        })
        .collect()
}

pub(super) fn callback_state(bench: &Bench) -> crate::callback::Callback {
    bench
        .events()
        .into_iter()
        .rev()
        .find_map(|e| match e {
            Event::CallbackState(c) => Some(*c),
            _ => None,
        })
        .expect("a callback.state was published")
}

#[test]
fn the_countdown_dials_at_exactly_accept_plus_countdown() {
    let mut bench = Bench::new(config());
    let offered = bench.command(Command::Offer { offer: offer(DialMode::Automatic, 3500), id: "x".into() }, 0);
    assert_eq!(offered.unwrap(), Reply::Callback("cb1".into()));
    // Accepted at an odd instant: the dial must land on accept + 3.5 s to the microsecond.
    let accepted_us = 1_234_567;
    bench
        .handle(
            Input::Command(Command::Callback { callback: "cb1".into(), command: crate::callback::Command::Accept }),
            bench.at_us(accepted_us),
        )
        .unwrap();
    bench.run_until(bench.t0 + Duration::from_secs(10));
    let invites = bench.invites();
    assert_eq!(invites.len(), 1, "exactly one dial: {invites:?}");
    let (at, call, to) = &invites[0];
    assert_eq!(*at - bench.t0, Duration::from_micros(accepted_us + 3_500_000));
    assert_eq!(to, "sip:5551000@pbx.test", "the first number at the account's domain");
    let reported: Vec<u64> = countdowns(&bench).iter().map(|c| c.remaining_ms).collect();
    assert_eq!(reported, vec![3500, 2500, 1500, 500, 0], "start, every second, and the stop at zero");
    let card = callback_state(&bench);
    assert_eq!((card.state, card.call.as_deref()), (CallbackState::Dialing, Some(call.as_str())));
    // The call's media ports were given to it before its INVITE went out.
    let open = bench
        .outputs
        .iter()
        .position(|(_, o)| matches!(o, Output::Media(MediaCommand::Open { call: c, .. }) if c == call));
    let invite =
        bench.outputs.iter().position(|(_, o)| matches!(o, Output::Sip { action: SipAction::Invite { .. }, .. }));
    assert!(open.unwrap() < invite.unwrap());
}

#[test]
fn busy_then_retry_on_another_number() {
    let mut bench = Bench::new(config());
    bench.command(Command::Offer { offer: offer(DialMode::Manual, 0), id: "x".into() }, 0).unwrap();
    act(&mut bench, crate::callback::Command::Accept, 10).unwrap();
    act(&mut bench, crate::callback::Command::Call, 2000).unwrap();
    let first = bench.invites()[0].1.clone();
    bench.signal(&first, Signal::Failed { code: 486 }, 2500);
    let card = callback_state(&bench);
    assert_eq!(card.state, CallbackState::Preview);
    assert_eq!(card.attempts[0].outcome, Some(AttemptOutcome::Busy));
    assert_eq!(card.preview_ms, Some(1990), "preview duration is accept → first dial");
    act(&mut bench, crate::callback::Command::SelectNumber("home".into()), 3000).unwrap();
    act(&mut bench, crate::callback::Command::Retry, 3100).unwrap();
    let invites = bench.invites();
    assert_eq!(invites.len(), 2);
    assert_eq!(invites[1].2, "sip:5552000@pbx.test");
    assert_ne!(invites[1].1, first, "a new call");
    assert_eq!(callback_state(&bench).attempt, 2);
}

#[test]
fn an_attempt_nobody_answers_is_hung_up_after_the_no_answer_timeout() {
    let mut bench = Bench::new(config());
    bench.command(Command::Offer { offer: offer(DialMode::Manual, 0), id: "x".into() }, 0).unwrap();
    act(&mut bench, crate::callback::Command::Accept, 0).unwrap();
    act(&mut bench, crate::callback::Command::Call, 1000).unwrap();
    let call = bench.invites()[0].1.clone();
    bench.signal(&call, Signal::Progress { code: 180, sdp: None }, 1100);
    bench.run_ms(30_999);
    assert!(!bench.sip().iter().any(|(_, _, a)| *a == SipAction::Cancel), "not before the timeout");
    bench.run_ms(31_000);
    let cancel = bench.sip().into_iter().find(|(_, _, a)| *a == SipAction::Cancel).expect("a CANCEL");
    assert_eq!((cancel.0 - bench.t0, cancel.1), (Duration::from_secs(31), call));
    let card = callback_state(&bench);
    assert_eq!((card.state, card.attempts[0].outcome), (CallbackState::Preview, Some(AttemptOutcome::NoAnswer)));
}

#[test]
fn customer_first_accept_answers_the_ringing_call_and_wrapup_closes_by_itself() {
    let mut config = config();
    config.callback.wrapup = Some(Duration::from_secs(5));
    let mut bench = Bench::new(config);
    bench.ring("in1", "sip:customer@127.0.0.1:5070", 0);
    let card = Offer { call: Some("in1".into()), ..offer(DialMode::Manual, 0) };
    bench.command(Command::Offer { offer: card, id: "x".into() }, 100).unwrap();
    act(&mut bench, crate::callback::Command::Accept, 200).unwrap();
    assert!(
        bench.sip().iter().any(|(_, call, a)| call == "in1" && matches!(a, SipAction::Accept { .. })),
        "accepting the callback answers its call"
    );
    assert_eq!(callback_state(&bench).state, CallbackState::InCall);
    bench.signal("in1", Signal::RemoteBye, 10_000);
    assert_eq!(callback_state(&bench).state, CallbackState::Wrapup);
    bench.run_ms(14_999);
    assert_eq!(callback_state(&bench).state, CallbackState::Wrapup);
    bench.run_ms(15_000);
    let card = callback_state(&bench);
    assert_eq!(card.state, CallbackState::Closed);
    assert!(card.wrapup.is_some_and(|w| w.auto_closed), "closed by the countdown");
    let stored = bench.stored();
    let last = stored.iter().rev().find(|r| r.kind == crate::history::RecordKind::Callback).unwrap();
    assert!(!last.open, "the closed snapshot reached the store");
}

#[test]
fn a_restart_brings_open_callbacks_back_without_dialing() {
    let mut bench = Bench::new(config());
    bench.command(Command::Offer { offer: offer(DialMode::Automatic, 5000), id: "x".into() }, 0).unwrap();
    act(&mut bench, crate::callback::Command::Accept, 100).unwrap();
    let snapshot = bench.stored().into_iter().rev().find(|r| r.open).unwrap();
    let mut restarted = Bench::new(config());
    restarted.handle(Input::Restore(vec![snapshot]), restarted.at(0)).unwrap();
    restarted.run_ms(60_000);
    assert!(restarted.invites().is_empty(), "nothing dials until the agent acts");
    let card = callback_state(&restarted);
    assert_eq!((card.state, card.restored), (CallbackState::Preview, true));
    restarted
        .command(Command::Callback { callback: "cb1".into(), command: crate::callback::Command::Call }, 61_000)
        .unwrap();
    assert_eq!(restarted.invites().len(), 1);
}

#[test]
fn countdowns_ending_together_all_dial_on_time_though_the_spare_lines_run_out() {
    let mut bench = Bench::new(config());
    for n in 1..=4 {
        let offer = Offer { id: Some(format!("cb{n}")), ..offer(DialMode::Automatic, 2000) };
        bench.command(Command::Offer { offer, id: "x".into() }, 0).unwrap();
        let accept = Command::Callback { callback: format!("cb{n}"), command: crate::callback::Command::Accept };
        bench.command(accept, 100).unwrap();
    }
    bench.run_ms(5000);
    let invites = bench.invites();
    assert_eq!(invites.len(), 4, "{invites:?}");
    assert!(invites.iter().all(|(at, _, _)| *at - bench.t0 == Duration::from_millis(2100)), "{invites:?}");
    let calls: std::collections::BTreeSet<&String> = invites.iter().map(|(_, call, _)| call).collect();
    assert_eq!(calls.len(), 4, "each on a line of its own");
    let failed = bench.events().into_iter().any(|e| {
        matches!(e, Event::CallbackState(c) if c.attempts.iter().any(|a| a.outcome == Some(AttemptOutcome::Failed)))
    });
    assert!(!failed, "no attempt failed for want of a line");
}

#[test]
fn a_call_is_in_history_from_its_answer_and_a_crash_leaves_it_interrupted_with_its_recording() {
    let mut config = config();
    config.recording.mode = crate::recording::RecordingMode::Always;
    let mut bench = Bench::new(config.clone());
    bench.command(Command::Dial { to: "5551000".into(), account: None }, 0).unwrap();
    bench.answer("c1", 1000);
    let open = bench.stored().into_iter().rev().find(|r| r.kind == crate::history::RecordKind::Call).unwrap();
    assert!(open.open, "stored at the answer, open");
    assert_eq!(open.body["answered_at"], serde_json::json!(bench.at(1000).wall));
    let path = open.body["recording"].as_str().expect("names its recording").to_string();
    // The daemon is killed here; the next run finds the open record.
    let mut restarted = Bench::new(config);
    restarted.handle(Input::Restore(vec![open]), restarted.at(0)).unwrap();
    let [closed] = &restarted.stored()[..] else { panic!("one record: {:?}", restarted.stored()) };
    assert!(!closed.open);
    assert_eq!((closed.body["reason"].as_str(), closed.body["state"].as_str()), (Some("interrupted"), Some("ended")));
    assert_eq!(closed.body["recording"].as_str(), Some(path.as_str()));
    assert_eq!(closed.body["answered_at"], serde_json::json!(bench.at(1000).wall));
}
