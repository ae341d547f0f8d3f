//! One callback's transitions: which command applies in which state, how
//! a dial attempt begins and ends, what a countdown does at zero, and what
//! a restart leaves of it.

use std::time::Duration;

use jiff::Timestamp;

use super::countdown::{CountdownKind, CountdownStop, Timers};
use super::{
    Attempt, AttemptOutcome, CallProgress, Callback, CallbackError, CallbackId, CallbackPolicy, CallbackState,
    CallbackType, CloseReason, Command, CustomerNumber, DialMode, Effect, Now, Offer, Schedule, Wrapup,
};
use crate::call::CallId;

use CallbackState as S;

impl Callback {
    pub(super) fn offered(offer: Offer, id: CallbackId, now: Now) -> Result<Callback, CallbackError> {
        let invalid = |why: &str| Err(CallbackError::Invalid(why.into()));
        let Some(first) = offer.numbers.first() else { return invalid("numbers: the customer needs at least one") };
        if offer.numbers.iter().any(|n| n.number.trim().is_empty()) {
            return invalid("numbers: a number is empty");
        }
        let dial_mode = offer.dial_mode.unwrap_or_default();
        if dial_mode == DialMode::Automatic && offer.countdown_ms.is_none() {
            return invalid("countdown_ms: required with dial_mode automatic (0 dials as soon as the agent accepts)");
        }
        let id = offer.id.unwrap_or(id);
        if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            return invalid("id: 1 to 128 printable characters");
        }
        let mut callback = Callback {
            callback: id,
            state: S::Offered,
            closed: None,
            customer: offer.customer.unwrap_or_default(),
            queue: offer.queue.unwrap_or_default(),
            kind: offer.kind.unwrap_or_default(),
            reason: offer.reason.unwrap_or_default(),
            selected: first.number.clone(),
            numbers: offer.numbers,
            dial_mode,
            countdown_ms: offer.countdown_ms.unwrap_or_default(),
            wrapup_ms: offer.wrapup_ms,
            context: offer.context,
            notes: None,
            account: offer.account,
            call: None,
            attempt: 0,
            attempts: Vec::new(),
            created_at: now.wall,
            offered_at: now.wall,
            accepted_at: None,
            preview_ms: None,
            closed_at: None,
            wrapup: None,
            transfer: None,
            schedule: None,
            restored: false,
            timers: Timers::default(),
            no_answer_hangup: false,
        };
        // Customer-first: the call is already ringing; it is the first attempt.
        if let Some(call) = offer.call {
            callback.begin_attempt(now.wall);
            callback.attempts.last_mut().expect("just begun").call = Some(call.clone());
            callback.call = Some(call);
        }
        Ok(callback)
    }

    pub(super) fn scheduled(
        offer: Offer,
        schedule: Schedule,
        id: CallbackId,
        now: Now,
    ) -> Result<Callback, CallbackError> {
        if offer.call.is_some() {
            return Err(CallbackError::Invalid("a scheduled callback cannot name a call".into()));
        }
        let mut callback = Callback::offered(offer, id, now)?;
        callback.state = S::Scheduled;
        callback.kind = CallbackType::Scheduled;
        callback.schedule = Some(schedule);
        Ok(callback)
    }

    /// A new (or rescheduled) callback announces itself and sets its wake-up.
    pub(super) fn arm(&mut self, policy: &CallbackPolicy, now: Now) -> Vec<Effect> {
        self.offer_when_due(policy, now);
        vec![Effect::StateChanged]
    }

    pub(super) fn command(
        &mut self,
        command: Command,
        policy: &CallbackPolicy,
        now: Now,
    ) -> Result<Vec<Effect>, CallbackError> {
        let refuse =
            |hint: &'static str| CallbackError::InvalidState { command: command.name(), state: self.state, hint };
        let idle = self.call.is_none();
        let mut effects = Vec::new();
        match (&command, self.state) {
            (Command::Accept, S::Offered) => {
                self.accepted_at = Some(now.wall);
                self.state = S::Preview;
                match self.call.clone() {
                    Some(call) => effects.push(Effect::AnswerCall(call)),
                    None if self.dial_mode == DialMode::Automatic => {
                        let length = Duration::from_millis(self.countdown_ms);
                        self.timers.start(CountdownKind::Dial, length, now.at, &mut effects);
                    }
                    None => {}
                }
            }
            (Command::Reject, S::Offered) => {
                if let Some(call) = self.call.clone() {
                    effects.push(Effect::RejectCall(call));
                }
                self.close(CloseReason::Rejected, now, &mut effects);
            }
            (Command::SelectNumber(number), S::Scheduled | S::Offered | S::Preview | S::Wrapup) => {
                let chosen = self.numbers.iter().find(|n| &n.number == number || &n.label == number);
                let Some(chosen) = chosen else {
                    let known: Vec<&str> = self.numbers.iter().map(|n| n.number.as_str()).collect();
                    return Err(CallbackError::Invalid(format!(
                        "{number:?} is not one of the customer's numbers {known:?}"
                    )));
                };
                self.selected = chosen.number.clone();
            }
            (Command::Call, S::Preview) if idle => {
                self.timers.stop(CountdownStop::Dialed, &mut effects);
                self.dial(&mut effects, now);
            }
            (Command::Retry, S::Preview | S::Wrapup) if idle && self.attempt > 0 => {
                self.timers.stop(CountdownStop::Dialed, &mut effects);
                self.dial(&mut effects, now);
            }
            (Command::CancelCountdown, _) if self.timers.running().is_some() => {
                self.timers.stop(CountdownStop::Cancelled, &mut effects);
            }
            (Command::Close, S::Preview) if idle => self.close(CloseReason::ClosedByAgent, now, &mut effects),
            (Command::Wrapup(wrapup), S::Wrapup) => {
                self.timers.stop(CountdownStop::Submitted, &mut effects);
                self.wrapup = Some(wrapup.clone());
                self.close(CloseReason::Completed, now, &mut effects);
            }
            (Command::Transfer(target), S::Preview) if idle => {
                self.timers.stop(CountdownStop::Transferred, &mut effects);
                self.transfer = Some(target.clone());
                self.state = S::Transferring;
            }
            // Back to preview by hand: a cancelled transfer never restarts a dial countdown.
            (Command::CancelTransfer, S::Transferring) => {
                self.transfer = None;
                self.state = S::Preview;
            }
            (Command::TransferAccepted, S::Transferring) => self.close(CloseReason::Transferred, now, &mut effects),
            (Command::Reschedule(schedule, number), S::Scheduled | S::Offered | S::Preview) if idle => {
                if let Some(number) = number {
                    if !self.numbers.iter().any(|n| &n.number == number) {
                        self.numbers.push(CustomerNumber { label: "alternate".into(), number: number.clone() });
                    }
                    self.selected = number.clone();
                }
                self.timers.stop(CountdownStop::Closed, &mut effects);
                self.schedule = Some(schedule.clone());
                self.kind = CallbackType::Scheduled;
                self.state = S::Scheduled;
                self.offer_when_due(policy, now);
            }
            (Command::Cancel, S::Scheduled) => self.close(CloseReason::Cancelled, now, &mut effects),
            // The card stays editable until the callback closes, calls and wrap-up included.
            (Command::Update(edit), state) if state.is_open() => {
                let edit = edit.clone();
                self.reason = edit.reason.unwrap_or(std::mem::take(&mut self.reason));
                self.notes = edit.notes.or(self.notes.take());
                self.context = edit.context.or(self.context.take());
            }
            (Command::Call | Command::Retry | Command::Close | Command::Transfer(_) | Command::Reschedule(..), _)
                if !idle =>
            {
                return Err(refuse(": its call is still up; hang it up first"))
            }
            (Command::Retry, S::Preview) => return Err(refuse(": nothing to retry yet; use callback.call")),
            (Command::CancelCountdown, _) => return Err(refuse(": no countdown is running")),
            (Command::Call | Command::Transfer(_) | Command::Close | Command::Retry, S::Offered) => {
                return Err(refuse(": accept it first (or reject it)"))
            }
            (Command::Close, S::Wrapup) => return Err(refuse(": submit the wrap-up with callback.wrapup")),
            (Command::Close, S::Scheduled) => return Err(refuse(": cancel it with callback.cancel")),
            _ => return Err(refuse("")),
        }
        self.restored = false;
        // A dial announces the state once the call exists (`dialed`); other
        // states come before the countdown they start, as a UI shows them.
        if !effects.iter().any(|e| matches!(e, Effect::Dial { .. })) {
            effects.insert(0, Effect::StateChanged);
        }
        Ok(effects)
    }

    /// The call asked for by `Effect::Dial` was placed (or not).
    pub(super) fn dialed(&mut self, call: Result<CallId, String>, policy: &CallbackPolicy, now: Now) -> Vec<Effect> {
        let awaiting = self.state == S::Dialing && self.call.is_none();
        let Some(attempt) = self.attempts.last_mut().filter(|_| awaiting) else { return Vec::new() };
        match call {
            Ok(call) => {
                attempt.call = Some(call.clone());
                self.call = Some(call);
                self.timers.ring(policy.no_answer_timeout, now.at);
            }
            Err(error) => {
                attempt.error = Some(error);
                self.end_attempt(AttemptOutcome::Failed, None, now);
            }
        }
        vec![Effect::StateChanged]
    }

    pub(super) fn on_call(&mut self, progress: CallProgress, policy: &CallbackPolicy, now: Now) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(attempt) = self.attempts.last_mut() else { return effects };
        match progress {
            CallProgress::Connected if attempt.answered_at.is_none() => {
                attempt.answered_at = Some(now.wall);
                attempt.outcome = Some(AttemptOutcome::Answered);
                self.timers.stop_ring();
                self.accepted_at.get_or_insert(now.wall);
                self.state = S::InCall;
            }
            CallProgress::Connected => return effects,
            CallProgress::Ended { .. } if attempt.answered_at.is_some() => {
                attempt.ended_at = Some(now.wall);
                attempt.talk_ms = attempt.answered_at.map(|at| millis_between(at, now.wall));
                self.call = None;
                self.enter_wrapup(policy, now, &mut effects);
            }
            CallProgress::Ended { outcome, sip_code } => {
                let outcome =
                    if std::mem::take(&mut self.no_answer_hangup) { AttemptOutcome::NoAnswer } else { outcome };
                let offered = self.state == S::Offered;
                self.end_attempt(outcome, sip_code, now);
                if offered && outcome == AttemptOutcome::CancelledByAgent {
                    // Customer-first: the agent refused the ringing call itself.
                    self.close(CloseReason::Rejected, now, &mut effects);
                } else if offered {
                    // The customer's call went away; the offer itself stands.
                    self.state = S::Offered;
                }
            }
        }
        effects.insert(0, Effect::StateChanged);
        effects
    }

    pub(super) fn poll(&mut self, policy: &CallbackPolicy, now: Now) -> Vec<Effect> {
        let mut effects = Vec::new();
        match self.timers.poll_countdown(now.at, &mut effects) {
            Some(CountdownKind::Dial) if self.state == S::Preview && self.call.is_none() => {
                self.dial(&mut effects, now);
            }
            Some(CountdownKind::Wrapup) if self.state == S::Wrapup => {
                self.wrapup = Some(Wrapup { auto_closed: true, ..Wrapup::default() });
                self.close(CloseReason::Completed, now, &mut effects);
                effects.push(Effect::StateChanged);
            }
            _ => {}
        }
        if self.timers.rang_out(now.at) {
            if let Some(call) = self.call.clone().filter(|_| self.state == S::Dialing) {
                self.no_answer_hangup = true;
                effects.push(Effect::Hangup(call));
            }
        }
        if self.state == S::Scheduled && self.timers.schedule_check_due(now.at) {
            self.timers.stop_schedule();
            if self.offer_when_due(policy, now) {
                effects.push(Effect::StateChanged);
            }
        }
        effects
    }

    /// After a restart: the calls are gone and nothing may dial by itself.
    pub(super) fn restore(&mut self, policy: &CallbackPolicy, now: Now) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.timers = Timers::default();
        self.restored = true;
        self.no_answer_hangup = false;
        match self.state {
            S::Dialing | S::InCall => {
                if let Some(attempt) = self.attempts.last_mut().filter(|a| a.outcome != Some(AttemptOutcome::Answered))
                {
                    attempt.outcome = Some(AttemptOutcome::Interrupted);
                }
                if let Some(attempt) = self.attempts.last_mut() {
                    attempt.ended_at.get_or_insert(now.wall);
                }
                self.call = None;
                self.state = self.after_attempt();
            }
            S::Offered => {
                if let Some(attempt) = self.attempts.last_mut().filter(|_| self.call.is_some()) {
                    attempt.outcome.get_or_insert(AttemptOutcome::Interrupted);
                    attempt.ended_at.get_or_insert(now.wall);
                }
                self.call = None;
            }
            S::Scheduled => {
                self.offer_when_due(policy, now);
            }
            S::Preview | S::Wrapup | S::Transferring | S::Closed => {}
        }
        effects.push(Effect::StateChanged);
        effects
    }

    fn begin_attempt(&mut self, wall: Timestamp) {
        self.attempt += 1;
        self.attempts.push(Attempt {
            attempt: self.attempt,
            number: self.selected.clone(),
            call: None,
            started_at: wall,
            answered_at: None,
            ended_at: None,
            outcome: None,
            sip_code: None,
            error: None,
            talk_ms: None,
        });
    }

    /// Start an attempt to the selected number: the shell places the call.
    fn dial(&mut self, effects: &mut Vec<Effect>, now: Now) {
        if self.attempt == 0 {
            self.preview_ms = self.accepted_at.map(|at| millis_between(at, now.wall));
        }
        self.begin_attempt(now.wall);
        self.state = S::Dialing;
        effects.push(Effect::Dial { number: self.selected.clone(), account: self.account.clone() });
    }

    /// An attempt ended without being answered.
    fn end_attempt(&mut self, outcome: AttemptOutcome, sip_code: Option<u16>, now: Now) {
        if let Some(attempt) = self.attempts.last_mut() {
            attempt.outcome = Some(outcome);
            attempt.sip_code = sip_code;
            attempt.ended_at = Some(now.wall);
        }
        self.call = None;
        self.timers.stop_ring();
        self.state = self.after_attempt();
    }

    /// Where an attempt leaves the callback: wrap-up once someone talked, else preview.
    fn after_attempt(&self) -> CallbackState {
        if self.attempts.iter().any(|a| a.answered_at.is_some()) {
            S::Wrapup
        } else {
            S::Preview
        }
    }

    fn enter_wrapup(&mut self, policy: &CallbackPolicy, now: Now, effects: &mut Vec<Effect>) {
        self.state = S::Wrapup;
        let length = self.wrapup_ms.map(Duration::from_millis).or(policy.wrapup);
        if let Some(length) = length {
            self.timers.start(CountdownKind::Wrapup, length, now.at, effects);
        }
    }

    fn close(&mut self, reason: CloseReason, now: Now, effects: &mut Vec<Effect>) {
        self.timers.stop(CountdownStop::Closed, effects);
        self.timers = Timers::default();
        self.state = S::Closed;
        self.closed = Some(reason);
        self.closed_at = Some(now.wall);
    }

    /// A scheduled callback within its lead time becomes an offer (says
    /// whether it did); otherwise its wake-up is set.
    fn offer_when_due(&mut self, policy: &CallbackPolicy, now: Now) -> bool {
        let Some(schedule) = self.schedule.as_ref().filter(|_| self.state == S::Scheduled) else { return false };
        let lead = jiff::SignedDuration::try_from(policy.schedule_lead).unwrap_or(jiff::SignedDuration::ZERO);
        let offer_at = schedule.due_at.checked_sub(lead).unwrap_or(schedule.due_at);
        if offer_at > now.wall {
            self.timers.wake_at_wall(offer_at, now);
            return false;
        }
        self.state = S::Offered;
        self.offered_at = now.wall;
        true
    }
}

fn millis_between(from: Timestamp, to: Timestamp) -> u64 {
    to.duration_since(from).as_millis().max(0) as u64
}
