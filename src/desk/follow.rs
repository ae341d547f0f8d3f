//! Where calls and callbacks meet: a callback's attempt follows its call
//! (answered, or ended with an outcome), a callback's decisions become
//! calls placed, answered, rejected or hung up, and its snapshots go to
//! history. Also the call a peer's REFER asks us to place.

use serde_json::Value;

use super::vocabulary::{Booking, DeskError, Event, Output, Reply};
use super::Desk;
use crate::call::phone::{CallSummary, PhoneError};
use crate::call::{CallId, CallState, Command as CallCommand, EndReason, RejectReason};
use crate::callback::{
    self, parse_at, AttemptOutcome, CallProgress, Callback, CallbackId, CustomerNumber, Effect, Offer,
};
use crate::history::{Record, RecordKind};

impl Desk {
    pub(super) fn offer(&mut self, offer: Offer, id: CallbackId) -> Result<Reply, DeskError> {
        // Customer-first: the context card belongs to a call that exists.
        let linked = match &offer.call {
            Some(call) => {
                Some(self.call(call).ok_or_else(|| crate::call::phone::PhoneError::UnknownCall(call.clone()))?)
            }
            None => None,
        };
        let outputs = self.callbacks.offer(offer, id, self.now)?;
        let id = outputs.first().map(|o| o.callback.callback.clone()).unwrap_or_default();
        self.queue_callbacks(outputs);
        if let Some(call) = linked {
            // Offered for a call already answered: the callback catches up.
            self.follow_call(&call);
        }
        Ok(Reply::Callback(id))
    }

    pub(super) fn schedule(&mut self, booking: Booking) -> Result<Reply, DeskError> {
        let Booking { mut offer, at, tz, notes, instructions, from_call, id } = booking;
        if let Some(call) = from_call {
            self.fill_from_call(&mut offer, &call)?;
        }
        if offer.numbers.is_empty() {
            return Err(DeskError::InvalidParams("give number, numbers or from_call: whom to call back".into()));
        }
        let mut schedule = parse_at(&at, tz.as_deref(), notes, self.now.wall).map_err(invalid)?;
        schedule.instructions = instructions;
        let outputs = self.callbacks.schedule(offer, schedule, id, self.now)?;
        let id = outputs.first().map(|o| o.callback.callback.clone()).unwrap_or_default();
        self.queue_callbacks(outputs);
        Ok(Reply::Callback(id))
    }

    /// A callback booked from a live call: the callback that call serves
    /// gives its customer, queue, reason, numbers and context; a call that
    /// serves none gives its own party. What the agent gave stays.
    fn fill_from_call(&self, offer: &mut Offer, call: &str) -> Result<(), DeskError> {
        let summary = self.call(call).ok_or_else(|| PhoneError::UnknownCall(call.to_string()))?;
        let served = self.callbacks.list().into_iter().find(|cb| cb.call.as_deref() == Some(call));
        match served {
            Some(callback) => {
                offer.customer = offer.customer.take().or(Some(callback.customer));
                offer.queue = offer.queue.take().or(Some(callback.queue));
                offer.reason = offer.reason.take().or(Some(callback.reason));
                offer.context = offer.context.take().or(callback.context);
                offer.account = offer.account.take().or(callback.account);
                for number in callback.numbers {
                    if !offer.numbers.iter().any(|n| n.number == number.number) {
                        offer.numbers.push(number);
                    }
                }
            }
            None => {
                offer.customer = offer.customer.take().or(summary.display_name);
                offer.account = offer.account.take().or(summary.account);
                if offer.numbers.is_empty() {
                    offer.numbers.push(CustomerNumber { label: String::new(), number: summary.remote });
                }
            }
        }
        Ok(())
    }

    pub(super) fn reschedule(
        &mut self,
        id: CallbackId,
        at: &str,
        tz: Option<String>,
        notes: Option<String>,
        instructions: Option<String>,
        number: Option<String>,
    ) -> Result<Reply, DeskError> {
        let earlier = self.callbacks.get(&id).and_then(|c| c.schedule.clone());
        let tz = tz.or_else(|| earlier.as_ref().and_then(|s| s.tz.clone()));
        let notes = notes.or_else(|| earlier.as_ref().and_then(|s| s.notes.clone()));
        let instructions = instructions.or_else(|| earlier.and_then(|s| s.instructions));
        let mut schedule = parse_at(at, tz.as_deref(), notes, self.now.wall).map_err(invalid)?;
        schedule.instructions = instructions;
        let outputs = self.callbacks.command(&id, callback::Command::Reschedule(schedule, number), self.now)?;
        self.queue_callbacks(outputs);
        Ok(Reply::Done)
    }

    /// Carry out one decision of the callback machine.
    pub(super) fn callback_effect(&mut self, callback::Output { callback, effect }: callback::Output) {
        let id = callback.callback.clone();
        match effect {
            Effect::StateChanged => {
                tracing::info!(callback = %id, state = callback.state.as_str(), attempt = callback.attempt,
                    call = callback.call.as_deref().unwrap_or(""), closed = ?callback.closed, "callback state");
                self.emit(Output::Store(record(&callback)));
                self.emit(Output::Event(Event::CallbackState(Box::new(callback))));
            }
            Effect::Countdown(countdown) => {
                self.emit(Output::Event(Event::CallbackCountdown { callback: id, countdown }));
            }
            Effect::Dial { number, account } => {
                let placed = self.place_call(&number, account, None).map_err(|e| e.to_string());
                if let Err(error) = &placed {
                    tracing::warn!(callback = %id, %number, %error, "callback dial failed");
                }
                let outputs = self.callbacks.dialed(&id, placed, self.now);
                self.queue_callbacks(outputs);
            }
            Effect::Hangup(call) => {
                tracing::info!(callback = %id, %call, "no answer in callback.no_answer_timeout_ms: hanging up");
                self.call_command(&call, CallCommand::Hangup);
            }
            Effect::AnswerCall(call) => self.call_command(&call, CallCommand::Answer),
            Effect::RejectCall(call) => self.call_command(&call, CallCommand::Reject(RejectReason::Busy)),
        }
    }

    /// A command a callback gives its call; the call may be gone already.
    fn call_command(&mut self, call: &str, command: CallCommand) {
        match self.phone.command(call, command, self.now.at) {
            Ok(outputs) => self.queue_calls(outputs),
            Err(e) => tracing::warn!(%call, error = %e, "callback's call command not carried out"),
        }
    }

    /// A call changed state: a callback following it follows.
    pub(super) fn follow_call(&mut self, call: &CallSummary) {
        let progress = match call.state {
            CallState::Ended => CallProgress::Ended { outcome: outcome(call.reason), sip_code: call.sip_code },
            state if state.is_answered() => CallProgress::Connected,
            _ => return,
        };
        let outputs = self.callbacks.on_call(&call.call, progress, self.now);
        self.queue_callbacks(outputs);
    }

    /// The peer of `referrer` REFERred us to `to` (policy let it): place the
    /// call, and tell the referrer if it cannot even start.
    pub(super) fn follow_referral(&mut self, referrer: &CallId, account: Option<String>, to: &str) {
        match self.place_call(to, account, Some(referrer)) {
            Ok(placed) => {
                tracing::info!(%referrer, call = %placed, %to, "calling the target of the peer's REFER");
            }
            Err(e) => {
                tracing::warn!(%referrer, %to, error = %e, "cannot call the target of the peer's REFER");
                let outputs = self.phone.notify_referrer(referrer, 503, self.now.at);
                self.queue_calls(outputs);
            }
        }
    }

    /// The open records a previous run left: callbacks brought back with
    /// nothing running, calls closed as interrupted.
    pub(super) fn restore(&mut self, records: Vec<Record>) {
        let mut callbacks = Vec::new();
        let (calls, records): (Vec<Record>, Vec<Record>) =
            records.into_iter().partition(|r| r.kind == RecordKind::Call);
        for call in calls {
            self.close_interrupted(call);
        }
        for record in records {
            match serde_json::from_value::<Callback>(Value::Object(record.body)) {
                Ok(callback) => callbacks.push(callback),
                // Kept in the store as it is; only not brought back.
                Err(e) => {
                    tracing::error!(record = %record.id, error = %e, "stored callback unreadable; left in history")
                }
            }
        }
        if !callbacks.is_empty() {
            tracing::warn!(count = callbacks.len(), "open callbacks restored to preview with countdowns stopped");
        }
        let outputs = self.callbacks.restore(callbacks, self.now);
        self.queue_callbacks(outputs);
    }
}

/// How a call's end reads as an unanswered attempt.
fn outcome(reason: Option<EndReason>) -> AttemptOutcome {
    match reason {
        Some(EndReason::Busy) => AttemptOutcome::Busy,
        Some(EndReason::Timeout | EndReason::Unanswered | EndReason::CallerCancelled) => AttemptOutcome::NoAnswer,
        Some(EndReason::Cancelled | EndReason::Rejected) => AttemptOutcome::CancelledByAgent,
        _ => AttemptOutcome::Failed,
    }
}

/// The history record of a callback. Keyed by id and creation time, so a
/// contact center re-offering an old id never overwrites the earlier one.
fn record(callback: &Callback) -> Record {
    let Value::Object(body) = serde_json::to_value(callback).expect("plain struct") else {
        unreachable!("a struct serializes to an object")
    };
    Record {
        kind: RecordKind::Callback,
        id: format!("{}@{}", callback.callback, callback.created_at.as_millisecond()),
        open: callback.state.is_open(),
        created_at: callback.created_at,
        body,
    }
}

fn invalid(error: impl std::fmt::Display) -> DeskError {
    DeskError::InvalidParams(error.to_string())
}
