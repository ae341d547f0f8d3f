//! The callback interaction as a pure state machine: a customer's request
//! to be called back, from the offer to the agent through preview, the
//! auto-dial countdown, the dial attempts and their outcomes, to wrap-up
//! and close. Agent commands, the state of the calls it placed, and the
//! time go in; dials, hangups, `callback.state` and `callback.countdown`
//! come out. Every countdown is a deadline here, never a sleeping task, so
//! it fires exactly once and at its time whatever the UI does.
//!
//! [`Callbacks`] holds them all by id (there is no "current callback");
//! [`Callback`] is one, and is also the record that history stores.

mod countdown;
mod machine;
mod schedule;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call::CallId;
use countdown::Timers;
pub use countdown::{CountdownKind, CountdownReport, CountdownStop};
pub use schedule::{parse_at, ScheduleError};

/// A callback's id: given by the contact center, or drawn by the daemon.
pub type CallbackId = String;

/// The states of `callback.state` (PROTOCOL.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallbackState {
    /// Made for later: offered when it falls due.
    Scheduled,
    /// Shown to the agent, who accepts or rejects it.
    Offered,
    /// Accepted: the agent reads the context, picks a number, dials (or the countdown does).
    Preview,
    /// A call to the customer is being placed.
    Dialing,
    /// The customer answered.
    InCall,
    /// The call is over; the agent writes reason, notes and disposition.
    Wrapup,
    /// Handed to another queue or agent, until they accept it.
    Transferring,
    Closed,
}

impl CallbackState {
    pub fn is_open(self) -> bool {
        self != CallbackState::Closed
    }

    /// The protocol's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackState::Scheduled => "scheduled",
            CallbackState::Offered => "offered",
            CallbackState::Preview => "preview",
            CallbackState::Dialing => "dialing",
            CallbackState::InCall => "in_call",
            CallbackState::Wrapup => "wrapup",
            CallbackState::Transferring => "transferring",
            CallbackState::Closed => "closed",
        }
    }
}

/// Why a callback closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Wrap-up submitted (or closed by its countdown) after a connected call.
    Completed,
    /// The agent turned the offer down.
    Rejected,
    /// Another queue or agent took it over.
    Transferred,
    /// The agent closed it without a connected call (e.g. after no answer).
    ClosedByAgent,
    /// A scheduled callback was cancelled before it fell due.
    Cancelled,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Completed => "completed",
            CloseReason::Rejected => "rejected",
            CloseReason::Transferred => "transferred",
            CloseReason::ClosedByAgent => "closed_by_agent",
            CloseReason::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallbackType {
    /// As soon as possible.
    #[default]
    Asap,
    /// At a time the customer chose.
    Scheduled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DialMode {
    /// The agent presses Call number.
    #[default]
    Manual,
    /// A countdown starts on accept and dials at zero.
    Automatic,
}

/// One of the customer's numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerNumber {
    /// What the agent sees: "mobile", "home", ...
    #[serde(default)]
    pub label: String,
    /// A number (dialled at the account's domain) or a SIP URI.
    pub number: String,
}

/// What the contact center (or the agent's schedule) offers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// Kept if given (the contact center's id); drawn by the daemon if not.
    pub id: Option<CallbackId>,
    /// The customer's name.
    pub customer: Option<String>,
    pub queue: Option<String>,
    /// `asap` when absent.
    #[serde(rename = "type")]
    pub kind: Option<CallbackType>,
    pub reason: Option<String>,
    /// At least one; the first is selected.
    pub numbers: Vec<CustomerNumber>,
    /// `manual` when absent.
    pub dial_mode: Option<DialMode>,
    /// Length of the automatic dial countdown, from accept; required with
    /// `automatic` (0 dials the moment the agent accepts).
    pub countdown_ms: Option<u64>,
    /// The wrap-up auto-close countdown; none: the agent closes wrap-up.
    pub wrapup_ms: Option<u64>,
    /// Free-form context shown to the agent.
    pub context: Option<Value>,
    /// The account to dial from; the first configured one when absent.
    pub account: Option<String>,
    /// Customer-first: the inbound call this callback arrived as.
    pub call: Option<CallId>,
}

/// How a dial attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Answered,
    Busy,
    /// Rang out, or the no-answer timeout ended it.
    NoAnswer,
    /// Any other failure; `sip_code` says which when there was one.
    Failed,
    /// The agent hung up before the customer answered.
    CancelledByAgent,
    /// The daemon stopped during the attempt.
    Interrupted,
}

/// One dial (or, customer-first, the inbound call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Attempt {
    /// 1, 2, ...
    pub attempt: u32,
    pub number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<CallId>,
    #[schemars(with = "String")]
    pub started_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub answered_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub ended_at: Option<Timestamp>,
    /// Absent while the attempt is under way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AttemptOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_code: Option<u16>,
    /// Why a dial could not even start, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Answer to hangup, once the call ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub talk_ms: Option<u64>,
}

/// What the agent wrote after the call.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Wrapup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
    /// The wrap-up countdown closed it, not the agent.
    #[serde(default)]
    pub auto_closed: bool,
}

/// Where a callback is being handed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferTarget {
    Queue(String),
    Agent(String),
}

/// When a scheduled callback is due, as the agent gave it and in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Schedule {
    /// The due time, UTC.
    #[schemars(with = "String")]
    pub due_at: Timestamp,
    /// The customer's time zone (IANA name), when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// The due time in the customer's own clock, for the agent.
    pub local: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// For the agent who will call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// One callback: what `callback.state`/`callback.list` show and history keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Callback {
    pub callback: CallbackId,
    pub state: CallbackState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<CloseReason>,
    pub customer: String,
    pub queue: String,
    #[serde(rename = "type")]
    pub kind: CallbackType,
    pub reason: String,
    pub numbers: Vec<CustomerNumber>,
    /// The number Call number dials.
    pub selected: String,
    pub dial_mode: DialMode,
    pub countdown_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrapup_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// The agent's notes on the context card (`callback.update`), before
    /// and during the callback; the wrap-up's notes are apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The call of the attempt under way (or the customer-first inbound call).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<CallId>,
    /// The number of the latest attempt (0 before the first dial).
    pub attempt: u32,
    pub attempts: Vec<Attempt>,
    /// When it was offered or scheduled; never changes.
    #[schemars(with = "String")]
    pub created_at: Timestamp,
    /// When it was (last) put before the agent.
    #[schemars(with = "String")]
    pub offered_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub accepted_at: Option<Timestamp>,
    /// Accept to first dial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub closed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrapup: Option<Wrapup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferTarget>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Brought back after a daemon restart, its countdown stopped; cleared
    /// by the agent's next step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restored: bool,
    /// Deadlines: not part of the record.
    #[serde(skip)]
    #[schemars(skip)]
    timers: Timers,
    /// We ended the attempt's call ourselves because nobody answered.
    #[serde(skip)]
    #[schemars(skip)]
    no_answer_hangup: bool,
}

/// The lengths that are policy, not part of an offer (`[callback]` config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackPolicy {
    /// An unanswered attempt is ended after this long.
    pub no_answer_timeout: Duration,
    /// The wrap-up countdown when the offer names none; `None`: no auto-close.
    pub wrapup: Option<Duration>,
    /// A scheduled callback is offered this long before it is due.
    pub schedule_lead: Duration,
}

impl Default for CallbackPolicy {
    fn default() -> Self {
        CallbackPolicy {
            no_answer_timeout: Duration::from_secs(30),
            wrapup: None,
            schedule_lead: Duration::from_secs(60),
        }
    }
}

/// The present, in both clocks: `at` for deadlines, `wall` for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    pub wall: Timestamp,
}

/// What the agent (or the contact center) asks of a callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Accept,
    Reject,
    SelectNumber(String),
    /// Call number: dial the selected number now.
    Call,
    Retry,
    CancelCountdown,
    Close,
    Wrapup(Wrapup),
    Transfer(TransferTarget),
    CancelTransfer,
    /// The queue or agent took the transfer.
    TransferAccepted,
    /// Move it; with a number, dial that one from now on (kept as an
    /// `alternate` when the callback did not list it).
    Reschedule(Schedule, Option<String>),
    /// Drop a scheduled callback.
    Cancel,
    /// Edit the context card: what is given replaces what was.
    Update(CardEdit),
}

/// `callback.update`: the context card's editable parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardEdit {
    pub reason: Option<String>,
    pub notes: Option<String>,
    pub context: Option<Value>,
}

impl Command {
    /// The method's last word, for error messages.
    fn name(&self) -> &'static str {
        match self {
            Command::Accept => "accept",
            Command::Reject => "reject",
            Command::SelectNumber(_) => "select_number",
            Command::Call => "call",
            Command::Retry => "retry",
            Command::CancelCountdown => "countdown.cancel",
            Command::Close => "close",
            Command::Wrapup(_) => "wrapup",
            Command::Transfer(_) => "transfer",
            Command::CancelTransfer => "transfer.cancel",
            Command::TransferAccepted => "transfer.accept",
            Command::Reschedule(..) => "reschedule",
            Command::Cancel => "cancel",
            Command::Update(_) => "update",
        }
    }
}

/// How a call the callback follows stands now (from `call.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallProgress {
    /// Answered (connected, or held either way).
    Connected,
    /// Over; `outcome` is how it reads if it never connected.
    Ended { outcome: AttemptOutcome, sip_code: Option<u16> },
}

/// Something the shell must do because a callback moved.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Publish `callback.state` and store the record.
    StateChanged,
    /// Publish `callback.countdown`.
    Countdown(CountdownReport),
    /// Place a call to `number`; report the outcome with [`Callbacks::dialed`].
    Dial {
        number: String,
        account: Option<String>,
    },
    /// End this call (the attempt rang too long).
    Hangup(CallId),
    /// Customer-first: the agent accepted (answer) or rejected the ringing call.
    AnswerCall(CallId),
    RejectCall(CallId),
}

/// An effect, with its callback as it now stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub callback: Callback,
    pub effect: Effect,
}

/// Misuse of a callback by a command.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallbackError {
    #[error("no such open callback: {0}")]
    Unknown(CallbackId),
    /// It was closed during this run (commands on it are refused by name).
    #[error("callback {id} is closed ({})", reason.as_str())]
    Closed { id: CallbackId, reason: CloseReason },
    #[error("a callback with id {0} already exists")]
    Duplicate(CallbackId),
    /// The command does not apply in the callback's state.
    #[error("cannot {command} a callback that is {}{hint}", state.as_str())]
    InvalidState { command: &'static str, state: CallbackState, hint: &'static str },
    /// The offer or command carries something unusable.
    #[error("{0}")]
    Invalid(String),
}

/// How many closed callbacks are remembered, to refuse commands on them by name.
const CLOSED_REMEMBERED: usize = 256;

/// Every open callback, by id.
#[derive(Default)]
pub struct Callbacks {
    open: HashMap<CallbackId, Callback>,
    /// The latest closed ones, oldest first.
    closed: VecDeque<(CallbackId, CloseReason)>,
    policy: CallbackPolicy,
}

impl Callbacks {
    pub fn new(policy: CallbackPolicy) -> Self {
        Callbacks { open: HashMap::new(), closed: VecDeque::new(), policy }
    }

    /// The policy for timers armed from now on (a reload); those running keep their deadlines.
    pub fn set_policy(&mut self, policy: CallbackPolicy) {
        self.policy = policy;
    }

    /// A new callback. `id` is used when the offer names none.
    pub fn offer(&mut self, offer: Offer, id: CallbackId, now: Now) -> Result<Vec<Output>, CallbackError> {
        let callback = Callback::offered(offer, id, now)?;
        self.insert(callback, now)
    }

    /// A callback the agent schedules for later.
    pub fn schedule(
        &mut self,
        offer: Offer,
        schedule: Schedule,
        id: CallbackId,
        now: Now,
    ) -> Result<Vec<Output>, CallbackError> {
        let callback = Callback::scheduled(offer, schedule, id, now)?;
        self.insert(callback, now)
    }

    pub fn command(&mut self, id: &str, command: Command, now: Now) -> Result<Vec<Output>, CallbackError> {
        let Some(callback) = self.open.get_mut(id) else {
            return Err(match self.closed.iter().rev().find(|(closed, _)| closed == id) {
                Some((_, reason)) => CallbackError::Closed { id: id.into(), reason: *reason },
                None => CallbackError::Unknown(id.into()),
            });
        };
        let effects = callback.command(command, &self.policy, now)?;
        Ok(self.finish(id, effects))
    }

    /// The shell placed the call an [`Effect::Dial`] asked for, or could not.
    pub fn dialed(&mut self, id: &str, call: Result<CallId, String>, now: Now) -> Vec<Output> {
        let Some(callback) = self.open.get_mut(id) else { return Vec::new() };
        let effects = callback.dialed(call, &self.policy, now);
        self.finish(id, effects)
    }

    /// A call moved: the callback following it (if any) follows.
    pub fn on_call(&mut self, call: &str, progress: CallProgress, now: Now) -> Vec<Output> {
        let Some(id) = self.open.values().find(|c| c.call.as_deref() == Some(call)).map(|c| c.callback.clone()) else {
            return Vec::new();
        };
        let effects = self.open.get_mut(&id).map(|c| c.on_call(progress, &self.policy, now)).unwrap_or_default();
        self.finish(&id, effects)
    }

    /// Carry out every deadline that has fallen due.
    pub fn poll(&mut self, now: Now) -> Vec<Output> {
        let due: Vec<CallbackId> = self
            .open
            .values()
            .filter(|c| c.timers.next_deadline().is_some_and(|at| at <= now.at))
            .map(|c| c.callback.clone())
            .collect();
        let mut outputs = Vec::new();
        for id in due {
            let effects = self.open.get_mut(&id).map(|c| c.poll(&self.policy, now)).unwrap_or_default();
            outputs.extend(self.finish(&id, effects));
        }
        outputs
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.open.values().filter_map(|c| c.timers.next_deadline()).min()
    }

    /// Bring back the open callbacks a previous run stored. Nothing dials by
    /// itself: countdowns stay stopped, attempts cut short are `interrupted`.
    pub fn restore(&mut self, records: Vec<Callback>, now: Now) -> Vec<Output> {
        let mut outputs = Vec::new();
        for mut callback in records.into_iter().filter(|c| c.state.is_open()) {
            let effects = callback.restore(&self.policy, now);
            let id = callback.callback.clone();
            self.open.insert(id.clone(), callback);
            outputs.extend(self.finish(&id, effects));
        }
        outputs
    }

    /// Open callbacks, oldest offer first.
    pub fn list(&self) -> Vec<Callback> {
        let mut all: Vec<Callback> = self.open.values().cloned().collect();
        all.sort_by(|a, b| a.offered_at.cmp(&b.offered_at).then_with(|| a.callback.cmp(&b.callback)));
        all
    }

    pub fn get(&self, id: &str) -> Option<&Callback> {
        self.open.get(id)
    }

    fn insert(&mut self, mut callback: Callback, now: Now) -> Result<Vec<Output>, CallbackError> {
        if self.open.contains_key(&callback.callback) {
            return Err(CallbackError::Duplicate(callback.callback));
        }
        if let Some(call) = &callback.call {
            if self.open.values().any(|c| c.call.as_ref() == Some(call)) {
                return Err(CallbackError::Invalid(format!("call {call} already belongs to another callback")));
            }
        }
        let effects = callback.arm(&self.policy, now);
        let id = callback.callback.clone();
        self.open.insert(id.clone(), callback);
        Ok(self.finish(&id, effects))
    }

    /// Tag effects with their callback, and forget it once it has closed.
    fn finish(&mut self, id: &str, effects: Vec<crate::callback::Effect>) -> Vec<Output> {
        let Some(callback) = self.open.get(id) else { return Vec::new() };
        let snapshot = callback.clone();
        if let Some(reason) = callback.closed {
            self.open.remove(id);
            if self.closed.len() == CLOSED_REMEMBERED {
                self.closed.pop_front();
            }
            self.closed.push_back((id.to_string(), reason));
        }
        effects.into_iter().map(|effect| Output { callback: snapshot.clone(), effect }).collect()
    }
}
