//! The shell around the callback machine: `callback.*` and `history.list`
//! requests, carrying out what the machine decides (dial, hang up, answer,
//! publish, store), and feeding it the state of the calls it placed.

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::dispatch::{parse, reply};
use super::Daemon;
use crate::call::phone::CallSummary;
use crate::call::{CallState, Command as CallCommand, EndReason, RejectReason};
use crate::callback::{
    parse_at, AttemptOutcome, CallProgress, Callback, CallbackError, Command, CustomerNumber, Effect, Now, Offer,
    Output, Wrapup,
};
use crate::control::api::{
    event, method, CallbackCountdownEvent, CallbackListResult, CallbackParams, CallbackResult, Empty, HistoryParams,
    HistoryResult, RescheduleParams, ScheduleParams, SelectNumberParams, TransferParams, WrapupParams,
};
use crate::control::rpc::{code, RpcError};
use crate::store::{HistoryQuery, Record, RecordKind};

/// `history.list` answers at most this many entries.
const HISTORY_MAX: usize = 1000;
const HISTORY_DEFAULT: usize = 100;

impl Daemon {
    /// Both clocks, read once.
    pub(super) fn now(&self) -> Now {
        Now { at: Instant::now().into_std(), wall: Timestamp::now() }
    }

    /// Answer a `callback.*` request; `None` when `name` is not one.
    pub(super) fn callback_request(&mut self, name: &str, params: Value) -> Option<Result<Value, RpcError>> {
        let now = self.now();
        let simple = |command: Command| move |p: CallbackParams| (p.callback, command);
        let request: Result<(String, Command), RpcError> = match name {
            method::CALLBACK_OFFER => return Some(parse::<Offer>(params).and_then(|offer| self.offer(offer, now))),
            method::CALLBACK_SCHEDULE => return Some(parse(params).and_then(|p| self.schedule(p, now))),
            method::CALLBACK_LIST => {
                return Some(reply(CallbackListResult { callbacks: self.callbacks.list() }));
            }
            method::CALLBACK_ACCEPT => parse(params).map(simple(Command::Accept)),
            method::CALLBACK_REJECT => parse(params).map(simple(Command::Reject)),
            method::CALLBACK_CALL => parse(params).map(simple(Command::Call)),
            method::CALLBACK_RETRY => parse(params).map(simple(Command::Retry)),
            method::CALLBACK_COUNTDOWN_CANCEL => parse(params).map(simple(Command::CancelCountdown)),
            method::CALLBACK_CLOSE => parse(params).map(simple(Command::Close)),
            method::CALLBACK_TRANSFER_CANCEL => parse(params).map(simple(Command::CancelTransfer)),
            method::CALLBACK_TRANSFER_ACCEPT => parse(params).map(simple(Command::TransferAccepted)),
            method::CALLBACK_CANCEL => parse(params).map(simple(Command::Cancel)),
            method::CALLBACK_SELECT_NUMBER => {
                parse::<SelectNumberParams>(params).map(|p| (p.callback, Command::SelectNumber(p.number)))
            }
            method::CALLBACK_WRAPUP => parse::<WrapupParams>(params).map(|p| {
                let wrapup =
                    Wrapup { reason: p.reason, notes: p.notes, disposition: p.disposition, auto_closed: false };
                (p.callback, Command::Wrapup(wrapup))
            }),
            method::CALLBACK_TRANSFER => parse::<TransferParams>(params).and_then(|p| {
                let target = p.target().map_err(RpcError::invalid_params)?;
                Ok((p.callback, Command::Transfer(target)))
            }),
            method::CALLBACK_RESCHEDULE => {
                parse::<RescheduleParams>(params).and_then(|p| self.reschedule_command(p, now))
            }
            _ => return None,
        };
        Some(request.and_then(|(id, command)| {
            let outputs = self.callbacks.command(&id, command, now).map_err(callback_error)?;
            self.apply_callbacks(outputs);
            reply(Empty {})
        }))
    }

    fn offer(&mut self, offer: Offer, now: Now) -> Result<Value, RpcError> {
        // Customer-first: the context card belongs to a call that exists.
        let linked = match &offer.call {
            Some(call) => Some(
                self.phone
                    .get(call)
                    .map(crate::call::phone::summary)
                    .ok_or_else(|| RpcError::new(code::UNKNOWN_CALL, format!("no such call: {call}")))?,
            ),
            None => None,
        };
        let outputs = self.callbacks.offer(offer, new_callback_id(), now).map_err(callback_error)?;
        let id = outputs.first().map(|o| o.callback.callback.clone()).unwrap_or_default();
        self.apply_callbacks(outputs);
        if let Some(call) = linked {
            // Offered for a call already answered: the callback catches up.
            self.follow_call(&call);
        }
        reply(CallbackResult { callback: id })
    }

    fn schedule(&mut self, p: ScheduleParams, now: Now) -> Result<Value, RpcError> {
        let schedule = parse_at(&p.at, p.tz.as_deref(), p.notes, now.wall).map_err(RpcError::invalid_params)?;
        let offer = Offer {
            customer: p.customer,
            queue: p.queue,
            reason: p.reason,
            numbers: vec![CustomerNumber { label: String::new(), number: p.number }],
            dial_mode: p.dial_mode,
            countdown_ms: p.countdown_ms,
            account: p.account,
            ..Offer::default()
        };
        let outputs = self.callbacks.schedule(offer, schedule, new_callback_id(), now).map_err(callback_error)?;
        let id = outputs.first().map(|o| o.callback.callback.clone()).unwrap_or_default();
        self.apply_callbacks(outputs);
        reply(CallbackResult { callback: id })
    }

    fn reschedule_command(&self, p: RescheduleParams, now: Now) -> Result<(String, Command), RpcError> {
        let earlier = self.callbacks.get(&p.callback).and_then(|c| c.schedule.clone());
        let tz = p.tz.or_else(|| earlier.as_ref().and_then(|s| s.tz.clone()));
        let notes = p.notes.or_else(|| earlier.and_then(|s| s.notes));
        let schedule = parse_at(&p.at, tz.as_deref(), notes, now.wall).map_err(RpcError::invalid_params)?;
        Ok((p.callback, Command::Reschedule(schedule)))
    }

    /// `history.list`, answered by the store's thread (after every write
    /// queued before it), so the run loop never waits on the disk.
    pub(super) fn history(&self, params: Value, reply_to: oneshot::Sender<Result<Value, RpcError>>) {
        let query = parse::<HistoryParams>(params).and_then(|p| {
            let since = p.since.map(|s| s.parse::<Timestamp>()).transpose();
            let since = since.map_err(|e| RpcError::invalid_params(format!("since: {e}")))?;
            Ok(HistoryQuery { since, limit: p.limit.unwrap_or(HISTORY_DEFAULT).min(HISTORY_MAX), kind: p.kind })
        });
        let query = match query {
            Ok(query) => query,
            Err(e) => {
                let _ = reply_to.send(Err(e));
                return;
            }
        };
        let (tx, rx) = oneshot::channel();
        self.store.history(query, tx);
        tokio::spawn(async move {
            let result = match rx.await {
                Ok(Ok(entries)) => reply(HistoryResult { entries }),
                Ok(Err(e)) => Err(RpcError::new(code::UNAVAILABLE, format!("history store: {e}"))),
                Err(_) => Err(RpcError::new(code::UNAVAILABLE, "history store has stopped")),
            };
            let _ = reply_to.send(result);
        });
    }

    /// Carry out what the callback machine decided, in order.
    pub(super) fn apply_callbacks(&mut self, outputs: Vec<Output>) {
        for Output { callback, effect } in outputs {
            let id = &callback.callback;
            match effect {
                Effect::StateChanged => {
                    tracing::info!(callback = %id, state = callback.state.as_str(), attempt = callback.attempt,
                        call = callback.call.as_deref().unwrap_or(""), closed = ?callback.closed, "callback state");
                    self.store.save(record(&callback));
                    self.publish(event::CALLBACK_STATE, &serde_json::to_value(&callback).expect("plain struct"));
                }
                Effect::Countdown(countdown) => {
                    let event = CallbackCountdownEvent { callback: id.clone(), countdown };
                    self.publish(event::CALLBACK_COUNTDOWN, &serde_json::to_value(event).expect("plain struct"));
                }
                Effect::Dial { number, account } => {
                    let placed = self.place_call(&number, account).map_err(|e| e.message);
                    if let Err(error) = &placed {
                        tracing::warn!(callback = %id, %number, %error, "callback dial failed");
                    }
                    let outputs = self.callbacks.dialed(id, placed, self.now());
                    self.apply_callbacks(outputs);
                }
                Effect::Hangup(call) => {
                    tracing::info!(callback = %id, %call, "no answer in callback.no_answer_timeout_ms: hanging up");
                    self.call_command(&call, CallCommand::Hangup);
                }
                Effect::AnswerCall(call) => self.call_command(&call, CallCommand::Answer),
                Effect::RejectCall(call) => self.call_command(&call, CallCommand::Reject(RejectReason::Busy)),
            }
        }
        // Every change to the callbacks passes through here (a poll that only
        // moved a wake-up included), so this is where the alarm follows them.
        self.alarm.set(self.callbacks.next_deadline());
    }

    /// A command the callback machine gives a call; the call may be gone already.
    fn call_command(&mut self, call: &str, command: CallCommand) {
        match self.phone.command(call, command, Instant::now().into_std()) {
            Ok(outputs) => {
                self.apply(outputs);
            }
            Err(e) => tracing::warn!(%call, error = %e, "callback's call command not carried out"),
        }
    }

    /// A call changed state: a callback following it follows.
    pub(super) fn follow_call(&mut self, call: &CallSummary) {
        let progress = match call.state {
            CallState::Connected | CallState::Held | CallState::RemoteHeld | CallState::Transferring => {
                CallProgress::Connected
            }
            CallState::Ended => CallProgress::Ended { outcome: outcome(call.reason), sip_code: call.sip_code },
            CallState::Dialing | CallState::Ringing | CallState::EarlyMedia | CallState::Incoming => return,
        };
        let outputs = self.callbacks.on_call(&call.call, progress, self.now());
        self.apply_callbacks(outputs);
    }

    /// The open callbacks a previous run left, brought back with nothing running.
    pub(super) fn restore_callbacks(&mut self, records: Vec<Record>) {
        let mut callbacks = Vec::new();
        for record in records.into_iter().filter(|r| r.kind == RecordKind::Callback) {
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
        let outputs = self.callbacks.restore(callbacks, self.now());
        self.apply_callbacks(outputs);
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

fn new_callback_id() -> String {
    format!("cb-{:016x}", rand::random::<u64>())
}

fn callback_error(error: CallbackError) -> RpcError {
    let code = match &error {
        CallbackError::Unknown(_) => code::UNKNOWN_CALLBACK,
        CallbackError::InvalidState { .. } | CallbackError::Closed { .. } => code::INVALID_STATE,
        CallbackError::Duplicate(_) | CallbackError::Invalid(_) => code::INVALID_PARAMS,
    };
    RpcError::new(code, error.to_string())
}
