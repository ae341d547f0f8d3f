//! The callback machine driven with explicit time: every transition, every
//! refused command, countdown reports, zero → dial exactly once.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

use super::*;

/// A clock both halves of which the test moves together.
struct Clock {
    start: Instant,
    wall0: Timestamp,
    elapsed: Duration,
}

impl Clock {
    fn new() -> Self {
        Clock { start: Instant::now(), wall0: "2026-11-21T12:00:00Z".parse().unwrap(), elapsed: Duration::ZERO }
    }

    fn now(&self) -> Now {
        Now { at: self.start + self.elapsed, wall: self.wall0 + SignedDuration::try_from(self.elapsed).unwrap() }
    }

    fn advance(&mut self, ms: u64) -> Now {
        self.elapsed += Duration::from_millis(ms);
        self.now()
    }
}

/// A two-number offer, shared with the desk's simulations.
pub(crate) fn offer(mode: DialMode, countdown_ms: u64) -> Offer {
    Offer {
        id: Some("cb1".into()),
        customer: Some("Ada Lovelace".into()),
        queue: Some("billing".into()),
        reason: Some("invoice question".into()),
        numbers: vec![
            CustomerNumber { label: "mobile".into(), number: "5551000".into() },
            CustomerNumber { label: "home".into(), number: "5552000".into() },
        ],
        dial_mode: Some(mode),
        countdown_ms: Some(countdown_ms),
        ..Offer::default()
    }
}

fn policy() -> CallbackPolicy {
    CallbackPolicy { no_answer_timeout: Duration::from_secs(20), wrapup: None, schedule_lead: Duration::from_secs(60) }
}

fn effects(outputs: &[Output]) -> Vec<Effect> {
    outputs.iter().map(|o| o.effect.clone()).collect()
}

fn last(outputs: &[Output]) -> &Callback {
    &outputs.last().expect("some output").callback
}

fn dials(outputs: &[Output]) -> usize {
    outputs.iter().filter(|o| matches!(o.effect, Effect::Dial { .. })).count()
}

fn countdowns(outputs: &[Output]) -> Vec<CountdownReport> {
    outputs
        .iter()
        .filter_map(|o| match o.effect {
            Effect::Countdown(report) => Some(report),
            _ => None,
        })
        .collect()
}

/// Poll at every deadline up to `until_ms` from now, gathering the outputs.
fn run_until(callbacks: &mut Callbacks, clock: &mut Clock, until_ms: u64) -> Vec<Output> {
    let end = clock.now().at + Duration::from_millis(until_ms);
    let mut outputs = Vec::new();
    for _ in 0..10_000 {
        match callbacks.next_deadline() {
            Some(at) if at <= end => {
                let step = at.saturating_duration_since(clock.now().at);
                clock.advance(step.as_millis() as u64);
                outputs.extend(callbacks.poll(clock.now()));
            }
            _ => break,
        }
    }
    let rest = end.saturating_duration_since(clock.now().at);
    clock.advance(rest.as_millis() as u64);
    outputs
}

fn accepted(mode: DialMode, countdown_ms: u64) -> (Callbacks, Clock) {
    let clock = Clock::new();
    let mut callbacks = Callbacks::new(policy());
    let out = callbacks.offer(offer(mode, countdown_ms), "unused".into(), clock.now()).unwrap();
    assert_eq!(last(&out).state, CallbackState::Offered);
    callbacks.command("cb1", Command::Accept, clock.now()).unwrap();
    (callbacks, clock)
}

fn state(callbacks: &Callbacks) -> CallbackState {
    callbacks.get("cb1").map(|c| c.state).unwrap_or(CallbackState::Closed)
}

#[test]
fn manual_callback_goes_from_offer_to_completed_wrapup() {
    let (mut callbacks, mut clock) = accepted(DialMode::Manual, 5_000);
    assert_eq!(state(&callbacks), CallbackState::Preview);
    assert_eq!(callbacks.next_deadline(), None, "manual mode runs no countdown");
    clock.advance(7_500);
    callbacks.command("cb1", Command::SelectNumber("home".into()), clock.now()).unwrap();
    let out = callbacks.command("cb1", Command::Call, clock.now()).unwrap();
    assert_eq!(effects(&out), vec![Effect::Dial { number: "5552000".into(), account: None }]);
    let out = callbacks.dialed("cb1", Ok("c1".into()), clock.now());
    let cb = last(&out);
    assert_eq!((cb.state, cb.call.as_deref(), cb.attempt), (CallbackState::Dialing, Some("c1"), 1));
    assert_eq!(cb.preview_ms, Some(7_500));
    clock.advance(3_000);
    callbacks.on_call("c1", CallProgress::Connected, clock.now());
    assert_eq!(state(&callbacks), CallbackState::InCall);
    clock.advance(42_000);
    let ended = CallProgress::Ended { outcome: AttemptOutcome::Failed, sip_code: None };
    let out = callbacks.on_call("c1", ended, clock.now());
    let cb = last(&out);
    assert_eq!(cb.state, CallbackState::Wrapup);
    assert_eq!(cb.attempts[0].outcome, Some(AttemptOutcome::Answered));
    assert_eq!(cb.attempts[0].talk_ms, Some(42_000));
    assert_eq!(cb.call, None);
    let wrapup = Wrapup {
        reason: Some("resolved".into()),
        notes: Some("paid".into()),
        disposition: Some("ok".into()),
        auto_closed: false,
    };
    let out = callbacks.command("cb1", Command::Wrapup(wrapup.clone()), clock.now()).unwrap();
    let cb = last(&out);
    assert_eq!((cb.state, cb.closed), (CallbackState::Closed, Some(CloseReason::Completed)));
    assert_eq!(cb.wrapup.as_ref(), Some(&wrapup));
    assert!(callbacks.get("cb1").is_none(), "a closed callback leaves the open set");
    let gone = callbacks.command("cb1", Command::Close, clock.now()).unwrap_err();
    assert_eq!(gone, CallbackError::Closed { id: "cb1".into(), reason: CloseReason::Completed });
    let never = callbacks.command("cb9", Command::Close, clock.now()).unwrap_err();
    assert_eq!(never, CallbackError::Unknown("cb9".into()));
}

#[test]
fn automatic_countdown_reports_every_second_and_dials_exactly_once_at_zero() {
    let clock = Clock::new();
    let mut callbacks = Callbacks::new(policy());
    callbacks.offer(offer(DialMode::Automatic, 3_500), "x".into(), clock.now()).unwrap();
    let mut clock = clock;
    let out = callbacks.command("cb1", Command::Accept, clock.now()).unwrap();
    let start = countdowns(&out);
    assert_eq!(
        start,
        vec![CountdownReport { kind: CountdownKind::Dial, remaining_ms: 3_500, stopped: None, late: None }]
    );
    let zero = clock.now().at + Duration::from_millis(3_500);
    let out = run_until(&mut callbacks, &mut clock, 3_499);
    let ticks: Vec<u64> = countdowns(&out).iter().map(|r| r.remaining_ms).collect();
    assert_eq!(ticks, vec![2_500, 1_500, 500]);
    assert_eq!(dials(&out), 0);
    assert_eq!(callbacks.next_deadline(), Some(zero), "the next deadline is zero itself");
    let out = run_until(&mut callbacks, &mut clock, 1);
    assert_eq!(dials(&out), 1);
    let stop = countdowns(&out);
    assert_eq!(
        stop,
        vec![CountdownReport {
            kind: CountdownKind::Dial,
            remaining_ms: 0,
            stopped: Some(CountdownStop::Elapsed),
            late: Some(Duration::ZERO)
        }]
    );
    assert_eq!(last(&out).preview_ms, Some(3_500));
    // Even if the dial fails, the countdown does not come back.
    callbacks.dialed("cb1", Err("no RTP port".into()), clock.now());
    let out = run_until(&mut callbacks, &mut clock, 60_000);
    assert_eq!(dials(&out), 0);
    let cb = callbacks.get("cb1").unwrap();
    assert_eq!(cb.state, CallbackState::Preview);
    assert_eq!(cb.attempts[0].outcome, Some(AttemptOutcome::Failed));
    assert_eq!(cb.attempts[0].error.as_deref(), Some("no RTP port"));
}

#[test]
fn dialing_sooner_stops_the_countdown_and_zero_never_dials_again() {
    let (mut callbacks, mut clock) = accepted(DialMode::Automatic, 10_000);
    clock.advance(2_000);
    let out = callbacks.command("cb1", Command::Call, clock.now()).unwrap();
    assert_eq!(dials(&out), 1);
    assert_eq!(countdowns(&out)[0].stopped, Some(CountdownStop::Dialed));
    callbacks.dialed("cb1", Ok("c1".into()), clock.now());
    let busy = CallProgress::Ended { outcome: AttemptOutcome::Busy, sip_code: Some(486) };
    callbacks.on_call("c1", busy, clock.advance(500));
    let out = run_until(&mut callbacks, &mut clock, 30_000);
    assert_eq!(dials(&out), 0, "the stopped countdown stays stopped");
    assert_eq!(last_state(&callbacks), (CallbackState::Preview, Some(AttemptOutcome::Busy), Some(486)));
}

fn last_state(callbacks: &Callbacks) -> (CallbackState, Option<AttemptOutcome>, Option<u16>) {
    let cb = callbacks.get("cb1").unwrap();
    let attempt = cb.attempts.last().unwrap();
    (cb.state, attempt.outcome, attempt.sip_code)
}

#[test]
fn a_cancelled_countdown_leaves_dialing_to_the_agent() {
    let (mut callbacks, mut clock) = accepted(DialMode::Automatic, 5_000);
    clock.advance(1_000);
    let out = callbacks.command("cb1", Command::CancelCountdown, clock.now()).unwrap();
    assert_eq!(
        countdowns(&out)[0],
        CountdownReport {
            kind: CountdownKind::Dial,
            remaining_ms: 0,
            stopped: Some(CountdownStop::Cancelled),
            late: None,
        }
    );
    assert_eq!(dials(&run_until(&mut callbacks, &mut clock, 20_000)), 0);
    let again = callbacks.command("cb1", Command::CancelCountdown, clock.now()).unwrap_err();
    assert!(again.to_string().contains("no countdown is running"), "{again}");
    let out = callbacks.command("cb1", Command::Call, clock.now()).unwrap();
    assert_eq!(dials(&out), 1);
}

#[test]
fn closing_or_rejecting_during_a_countdown_means_no_dial_ever() {
    let (mut callbacks, mut clock) = accepted(DialMode::Automatic, 5_000);
    clock.advance(4_999);
    let out = callbacks.command("cb1", Command::Close, clock.now()).unwrap();
    assert_eq!(countdowns(&out)[0].stopped, Some(CountdownStop::Closed));
    assert_eq!((last(&out).state, last(&out).closed), (CallbackState::Closed, Some(CloseReason::ClosedByAgent)));
    assert_eq!(callbacks.next_deadline(), None);
    assert!(callbacks.poll(clock.advance(10)).is_empty());

    let clock = Clock::new();
    let mut callbacks = Callbacks::new(policy());
    callbacks.offer(offer(DialMode::Automatic, 1_000), "x".into(), clock.now()).unwrap();
    let out = callbacks.command("cb1", Command::Reject, clock.now()).unwrap();
    assert_eq!(last(&out).closed, Some(CloseReason::Rejected));
    assert_eq!(callbacks.next_deadline(), None, "a rejected offer never counts down");
}

#[test]
fn transfer_stops_the_countdown_and_can_be_cancelled_until_accepted() {
    let (mut callbacks, mut clock) = accepted(DialMode::Automatic, 5_000);
    let out =
        callbacks.command("cb1", Command::Transfer(TransferTarget::Queue("retention".into())), clock.now()).unwrap();
    assert_eq!(countdowns(&out)[0].stopped, Some(CountdownStop::Transferred));
    assert_eq!(last(&out).state, CallbackState::Transferring);
    assert_eq!(dials(&run_until(&mut callbacks, &mut clock, 10_000)), 0);
    let err = callbacks.command("cb1", Command::Call, clock.now()).unwrap_err();
    assert!(err.to_string().contains("transferring"), "{err}");
    let out = callbacks.command("cb1", Command::CancelTransfer, clock.now()).unwrap();
    assert_eq!((last(&out).state, last(&out).transfer.clone()), (CallbackState::Preview, None));
    assert_eq!(callbacks.next_deadline(), None, "a cancelled transfer does not restart the dial countdown");
    callbacks.command("cb1", Command::Transfer(TransferTarget::Agent("bob".into())), clock.now()).unwrap();
    let out = callbacks.command("cb1", Command::TransferAccepted, clock.now()).unwrap();
    let cb = last(&out);
    assert_eq!(
        (cb.closed, cb.transfer.clone()),
        (Some(CloseReason::Transferred), Some(TransferTarget::Agent("bob".into())))
    );
}

#[test]
fn retries_count_attempts_and_the_no_answer_timeout_ends_a_ringing_one() {
    let (mut callbacks, mut clock) = accepted(DialMode::Manual, 0);
    let err = callbacks.command("cb1", Command::Retry, clock.now()).unwrap_err();
    assert!(err.to_string().contains("nothing to retry"), "{err}");
    callbacks.command("cb1", Command::Call, clock.now()).unwrap();
    callbacks.dialed("cb1", Ok("c1".into()), clock.now());
    let busy = CallProgress::Ended { outcome: AttemptOutcome::Busy, sip_code: Some(486) };
    callbacks.on_call("c1", busy, clock.advance(1_000));
    // Retry rings too long: after the no-answer timeout we hang up.
    callbacks.command("cb1", Command::Retry, clock.advance(5_000)).unwrap();
    callbacks.dialed("cb1", Ok("c2".into()), clock.now());
    let out = run_until(&mut callbacks, &mut clock, 19_999);
    assert!(!effects(&out).contains(&Effect::Hangup("c2".into())));
    let out = run_until(&mut callbacks, &mut clock, 1);
    assert_eq!(effects(&out), vec![Effect::Hangup("c2".into())]);
    let cancelled = CallProgress::Ended { outcome: AttemptOutcome::CancelledByAgent, sip_code: Some(487) };
    callbacks.on_call("c2", cancelled, clock.advance(20));
    assert_eq!(last_state(&callbacks), (CallbackState::Preview, Some(AttemptOutcome::NoAnswer), Some(487)));
    // The agent hangs up the third attempt while it rings: that is the agent's cancel.
    callbacks.command("cb1", Command::SelectNumber("5552000".into()), clock.now()).unwrap();
    callbacks.command("cb1", Command::Retry, clock.now()).unwrap();
    callbacks.dialed("cb1", Ok("c3".into()), clock.now());
    let err = callbacks.command("cb1", Command::Retry, clock.now()).unwrap_err();
    assert!(err.to_string().contains("dialing") && err.to_string().contains("hang it up"), "{err}");
    callbacks.on_call("c3", cancelled, clock.advance(2_000));
    let cb = callbacks.get("cb1").unwrap();
    let numbers: Vec<(&str, Option<AttemptOutcome>)> =
        cb.attempts.iter().map(|a| (a.number.as_str(), a.outcome)).collect();
    assert_eq!(
        numbers,
        vec![
            ("5551000", Some(AttemptOutcome::Busy)),
            ("5551000", Some(AttemptOutcome::NoAnswer)),
            ("5552000", Some(AttemptOutcome::CancelledByAgent)),
        ]
    );
    assert_eq!(cb.attempt, 3);
    assert_eq!(cb.preview_ms, Some(0), "preview ends at the first dial only");
    let out = callbacks.command("cb1", Command::Close, clock.now()).unwrap();
    assert_eq!(last(&out).closed, Some(CloseReason::ClosedByAgent));
}

#[test]
fn commands_that_do_not_fit_the_state_are_refused_by_name() {
    let clock = Clock::new();
    let mut callbacks = Callbacks::new(policy());
    callbacks.offer(offer(DialMode::Manual, 0), "x".into(), clock.now()).unwrap();
    let cases = [
        (Command::Call, "cannot call a callback that is offered: accept it first"),
        (Command::Close, "cannot close a callback that is offered"),
        (Command::Wrapup(Wrapup::default()), "cannot wrapup a callback that is offered"),
        (Command::CancelTransfer, "cannot transfer.cancel a callback that is offered"),
        (Command::Cancel, "cannot cancel a callback that is offered"),
    ];
    for (command, message) in cases {
        let err = callbacks.command("cb1", command, clock.now()).unwrap_err();
        assert!(err.to_string().starts_with(message), "{err}");
    }
    callbacks.command("cb1", Command::Accept, clock.now()).unwrap();
    let twice = callbacks.command("cb1", Command::Accept, clock.now()).unwrap_err();
    assert!(twice.to_string().starts_with("cannot accept a callback that is preview"), "{twice}");
    let unknown = callbacks.command("cb1", Command::SelectNumber("999".into()), clock.now()).unwrap_err();
    assert!(unknown.to_string().contains("5551000"), "{unknown}");
    callbacks.command("cb1", Command::Call, clock.now()).unwrap();
    callbacks.dialed("cb1", Ok("c1".into()), clock.now());
    callbacks.on_call("c1", CallProgress::Connected, clock.now());
    for command in [Command::Retry, Command::Close, Command::Transfer(TransferTarget::Queue("q".into()))] {
        let err = callbacks.command("cb1", command, clock.now()).unwrap_err();
        assert!(err.to_string().contains("in_call"), "{err}");
    }
    let dup = callbacks.offer(offer(DialMode::Manual, 0), "x".into(), clock.now()).unwrap_err();
    assert_eq!(dup, CallbackError::Duplicate("cb1".into()));
    let empty = Offer { numbers: vec![], ..offer(DialMode::Manual, 0) };
    assert!(matches!(callbacks.offer(empty, "y".into(), clock.now()), Err(CallbackError::Invalid(_))));
    let no_length = Offer { id: Some("cb3".into()), countdown_ms: None, ..offer(DialMode::Automatic, 0) };
    let err = callbacks.offer(no_length, "y".into(), clock.now()).unwrap_err();
    assert!(err.to_string().contains("countdown_ms"), "{err}");
}

#[test]
fn wrapup_countdown_closes_by_itself_and_a_retry_from_wrapup_stops_it() {
    let (mut callbacks, mut clock) = accepted(DialMode::Manual, 0);
    let connect_and_end = |callbacks: &mut Callbacks, clock: &mut Clock, call: &str| {
        callbacks.dialed("cb1", Ok(call.into()), clock.now());
        callbacks.on_call(call, CallProgress::Connected, clock.advance(1_000));
        let ended = CallProgress::Ended { outcome: AttemptOutcome::Failed, sip_code: None };
        callbacks.on_call(call, ended, clock.advance(10_000))
    };
    let offer_wrapup = callbacks.get("cb1").unwrap().wrapup_ms;
    assert_eq!(offer_wrapup, None);
    // With neither the offer nor the policy naming one, wrap-up waits for the agent.
    callbacks.command("cb1", Command::Call, clock.now()).unwrap();
    let out = connect_and_end(&mut callbacks, &mut clock, "c1");
    assert!(countdowns(&out).is_empty());
    assert_eq!(callbacks.next_deadline(), None);

    let clock2 = Clock::new();
    let mut clock = clock2;
    let mut callbacks = Callbacks::new(CallbackPolicy { wrapup: Some(Duration::from_secs(2)), ..policy() });
    callbacks.offer(offer(DialMode::Manual, 0), "x".into(), clock.now()).unwrap();
    callbacks.command("cb1", Command::Accept, clock.now()).unwrap();
    callbacks.command("cb1", Command::Call, clock.now()).unwrap();
    let out = connect_and_end(&mut callbacks, &mut clock, "c1");
    assert_eq!(
        countdowns(&out),
        vec![CountdownReport { kind: CountdownKind::Wrapup, remaining_ms: 2_000, stopped: None, late: None }]
    );
    // The agent redials from wrap-up: the wrap-up countdown stops.
    let out = callbacks.command("cb1", Command::Retry, clock.advance(500)).unwrap();
    assert_eq!(countdowns(&out)[0].stopped, Some(CountdownStop::Dialed));
    let out = connect_and_end(&mut callbacks, &mut clock, "c2");
    assert_eq!(countdowns(&out)[0].remaining_ms, 2_000);
    let out = run_until(&mut callbacks, &mut clock, 2_000);
    let cb = last(&out);
    assert_eq!((cb.state, cb.closed), (CallbackState::Closed, Some(CloseReason::Completed)));
    assert!(cb.wrapup.as_ref().unwrap().auto_closed);
    assert_eq!(cb.attempts.len(), 2);
    assert_eq!(countdowns(&out).last().unwrap().stopped, Some(CountdownStop::Elapsed));
}

#[test]
fn after_a_restart_nothing_dials_by_itself() {
    let (mut callbacks, mut clock) = accepted(DialMode::Automatic, 3_000);
    let mut records = vec![callbacks.get("cb1").unwrap().clone()];
    // A second one was ringing its customer when the daemon died.
    let mut ringing = offer(DialMode::Automatic, 1_000);
    ringing.id = Some("cb2".into());
    callbacks.offer(ringing, "x".into(), clock.now()).unwrap();
    callbacks.command("cb2", Command::Accept, clock.now()).unwrap();
    let out = run_until(&mut callbacks, &mut clock, 1_000);
    assert_eq!(dials(&out), 1);
    callbacks.dialed("cb2", Ok("c9".into()), clock.now());
    // Through JSON, as the store keeps them.
    records.push(callbacks.get("cb2").unwrap().clone());
    let records: Vec<Callback> =
        records.iter().map(|r| serde_json::from_value(serde_json::to_value(r).unwrap()).unwrap()).collect();

    let mut clock = Clock::new();
    let mut restarted = Callbacks::new(policy());
    let out = restarted.restore(records, clock.now());
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| o.effect == Effect::StateChanged && o.callback.restored));
    assert_eq!(restarted.next_deadline(), None, "no countdown survives a restart");
    assert_eq!(dials(&run_until(&mut restarted, &mut clock, 60_000)), 0);
    let cb2 = restarted.get("cb2").unwrap();
    assert_eq!((cb2.state, cb2.call.as_deref()), (CallbackState::Preview, None));
    assert_eq!(cb2.attempts[0].outcome, Some(AttemptOutcome::Interrupted));
    assert_eq!(restarted.get("cb1").unwrap().state, CallbackState::Preview);
    let out = restarted.command("cb2", Command::Retry, clock.now()).unwrap();
    assert_eq!(dials(&out), 1);
    assert!(!last(&out).restored, "the agent's step clears the flag");
}

#[test]
fn a_scheduled_callback_is_offered_its_lead_time_before_it_is_due() {
    let mut clock = Clock::new();
    let mut callbacks = Callbacks::new(policy());
    let due = clock.now().wall + SignedDuration::from_secs(300);
    let schedule = Schedule {
        due_at: due,
        tz: None,
        local: due.to_string(),
        notes: Some("after lunch".into()),
        instructions: Some("confirm the refund".into()),
    };
    let mut wanted = offer(DialMode::Manual, 0);
    wanted.id = None;
    let out = callbacks.schedule(wanted.clone(), schedule.clone(), "s1".into(), clock.now()).unwrap();
    assert_eq!((last(&out).state, last(&out).kind), (CallbackState::Scheduled, CallbackType::Scheduled));
    let out = run_until(&mut callbacks, &mut clock, 239_000);
    assert!(out.iter().all(|o| o.effect != Effect::StateChanged), "not yet: {out:?}");
    let out = run_until(&mut callbacks, &mut clock, 1_000);
    assert_eq!(last(&out).state, CallbackState::Offered);
    assert_eq!(last(&out).schedule.as_ref().unwrap().notes.as_deref(), Some("after lunch"));
    // Moved to later, then cancelled.
    let later = Schedule { due_at: due + SignedDuration::from_hours(24), ..schedule.clone() };
    let out = callbacks.command("s1", Command::Reschedule(later, Some("5559999".into())), clock.now()).unwrap();
    assert_eq!(last(&out).selected, "5559999", "the alternate number is dialled from now on");
    assert_eq!(last(&out).numbers.last().map(|n| n.label.as_str()), Some("alternate"));
    assert_eq!(last(&out).state, CallbackState::Scheduled);
    assert!(run_until(&mut callbacks, &mut clock, 600_000).is_empty());
    let out = callbacks.command("s1", Command::Cancel, clock.now()).unwrap();
    assert_eq!(last(&out).closed, Some(CloseReason::Cancelled));
    // One already within its lead time is offered at once.
    let soon = Schedule { due_at: clock.now().wall + SignedDuration::from_secs(30), ..schedule };
    let out = callbacks.schedule(wanted, soon, "s2".into(), clock.now()).unwrap();
    assert_eq!(last(&out).state, CallbackState::Offered);
}

#[test]
fn customer_first_offer_follows_its_ringing_call() {
    let clock = Clock::new();
    let mut callbacks = Callbacks::new(policy());
    let linked = Offer { call: Some("in1".into()), ..offer(DialMode::Manual, 0) };
    callbacks.offer(linked.clone(), "x".into(), clock.now()).unwrap();
    let out = callbacks.command("cb1", Command::Accept, clock.now()).unwrap();
    assert!(effects(&out).contains(&Effect::AnswerCall("in1".into())));
    callbacks.on_call("in1", CallProgress::Connected, clock.now());
    assert_eq!(state(&callbacks), CallbackState::InCall);
    let err = callbacks.offer(Offer { id: Some("cb2".into()), ..linked.clone() }, "x".into(), clock.now()).unwrap_err();
    assert!(err.to_string().contains("already belongs"), "{err}");

    // Rejecting sends the ringing call back (to the queue).
    let mut callbacks = Callbacks::new(policy());
    callbacks.offer(linked.clone(), "x".into(), clock.now()).unwrap();
    let out = callbacks.command("cb1", Command::Reject, clock.now()).unwrap();
    assert!(effects(&out).contains(&Effect::RejectCall("in1".into())));
    // The caller giving up leaves the offer standing, without a call.
    let mut callbacks = Callbacks::new(policy());
    callbacks.offer(linked, "x".into(), clock.now()).unwrap();
    let gone = CallProgress::Ended { outcome: AttemptOutcome::NoAnswer, sip_code: None };
    let out = callbacks.on_call("in1", gone, clock.now());
    let cb = last(&out);
    assert_eq!((cb.state, cb.call.as_deref()), (CallbackState::Offered, None));
    assert_eq!(cb.attempts[0].outcome, Some(AttemptOutcome::NoAnswer));
}

#[test]
fn the_context_card_is_editable_until_the_callback_closes_and_the_countdown_runs_on() {
    let (mut callbacks, mut clock) = accepted(DialMode::Automatic, 5_000);
    clock.advance(1_000);
    let edit = CardEdit {
        reason: Some("Invoice 4411 charged twice".into()),
        notes: Some("wants email".into()),
        context: None,
    };
    let out = callbacks.command("cb1", Command::Update(edit), clock.now()).unwrap();
    let cb = last(&out);
    assert_eq!((cb.reason.as_str(), cb.notes.as_deref()), ("Invoice 4411 charged twice", Some("wants email")));
    assert_eq!(cb.state, CallbackState::Preview);
    // Only what is given changes; the dial countdown is not disturbed.
    let out = callbacks
        .command(
            "cb1",
            Command::Update(CardEdit { notes: Some("call after 5".into()), ..CardEdit::default() }),
            clock.now(),
        )
        .unwrap();
    assert_eq!(
        (last(&out).reason.as_str(), last(&out).notes.as_deref()),
        ("Invoice 4411 charged twice", Some("call after 5"))
    );
    assert_eq!(dials(&run_until(&mut callbacks, &mut clock, 4_000)), 1, "the countdown still dials at 5 s");
    callbacks.command("cb1", Command::Close, clock.now()).unwrap_err();
    callbacks.dialed("cb1", Ok("c1".into()), clock.now());
    callbacks.on_call("c1", CallProgress::Connected, clock.now());
    assert!(callbacks
        .command(
            "cb1",
            Command::Update(CardEdit { notes: Some("during the call".into()), ..CardEdit::default() }),
            clock.now()
        )
        .is_ok());
    callbacks.on_call("c1", CallProgress::Ended { outcome: AttemptOutcome::Failed, sip_code: None }, clock.now());
    callbacks.command("cb1", Command::Wrapup(Wrapup::default()), clock.now()).unwrap();
    let closed = callbacks.command("cb1", Command::Update(CardEdit::default()), clock.now());
    assert!(closed.is_err(), "a closed callback's card is history");
}
