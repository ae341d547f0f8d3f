//! The phone: every call the daemon carries, addressed by id. It routes
//! commands and signals to the right call and keeps a call only while it
//! lives; there is no "current call".

mod across_calls;

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use super::{Call, CallError, CallId, CallState, Command, Direction, Effect, EndReason, Inbound, Signal};
use crate::media::codec::Codec;
use crate::sdp::LocalMedia;

/// What `call.list` and `call.state` say about one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CallSummary {
    pub call: CallId,
    pub state: CallState,
    pub direction: Direction,
    pub remote: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The caller's `answer-after` hint, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_after_ms: Option<u64>,
    /// We hold the peer; `remote_held`: the peer holds us. Both may be true.
    pub held: bool,
    pub remote_held: bool,
    /// The agent's microphone is silenced on this call.
    pub muted: bool,
    /// The codec agreed, once media flows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec: Option<Codec>,
    /// RTP is SRTP-protected.
    pub secure: bool,
    /// The latest transfer: trying, or failed with why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<super::TransferReport>,
    /// Consult, conference, replaces and referred-by links to other calls.
    #[serde(flatten)]
    pub links: super::Links,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<EndReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_code: Option<u16>,
}

/// Misuse of the phone by a command.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    /// No live call has this id (it never existed or has ended).
    #[error("no such call: {0}")]
    UnknownCall(CallId),
    /// A call with this id already exists.
    #[error("call id already in use: {0}")]
    DuplicateCall(CallId),
    /// `call.merge` was given too few calls.
    #[error("cannot merge: {0}")]
    Merge(String),
    #[error(transparent)]
    Call(#[from] CallError),
}

/// An effect, with the call it belongs to and that call as it now stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub call: CallSummary,
    pub effect: Effect,
}

#[derive(Default)]
pub struct Phone {
    pub(super) calls: HashMap<CallId, Call>,
    /// Answering a call holds the other answered ones (`calls.hold_on_answer`).
    hold_on_answer: bool,
}

impl Phone {
    pub fn new(hold_on_answer: bool) -> Self {
        Phone { calls: HashMap::new(), hold_on_answer }
    }

    /// `calls.hold_on_answer` as reloaded: for the answers from now on.
    pub fn set_hold_on_answer(&mut self, hold_on_answer: bool) {
        self.hold_on_answer = hold_on_answer;
    }

    /// Place a call. `id` and `session_id` are drawn by the shell.
    pub fn dial(
        &mut self,
        id: CallId,
        to: String,
        account: Option<String>,
        local: LocalMedia,
        now: Instant,
    ) -> Result<Vec<Output>, PhoneError> {
        self.insert(Call::dial(id, to, account, local, now), now)
    }

    /// An INVITE arrived for a new call. One that replaces an answered
    /// call of ours (RFC 3891) is answered at once, and the old one ends.
    pub fn incoming(
        &mut self,
        id: CallId,
        inbound: Inbound,
        local: LocalMedia,
        now: Instant,
    ) -> Result<Vec<Output>, PhoneError> {
        let replaceable = self.replaceable(&inbound).map(str::to_string);
        let mut outputs = self.insert(Call::incoming(id.clone(), inbound, local, now), now)?;
        let ringing = self.calls.get(&id).is_some_and(|c| c.state == CallState::Incoming);
        if let (Some(old), true) = (replaceable, ringing) {
            outputs.extend(self.command(&id, Command::Answer, now)?);
            outputs.extend(self.replace(&id, &old, now));
        }
        Ok(outputs)
    }

    /// The answered call of ours an INVITE's Replaces names: only such a
    /// call is replaced (one still ringing is not).
    pub fn replaceable<'a>(&self, inbound: &'a Inbound) -> Option<&'a str> {
        inbound.replaces.as_deref().filter(|old| self.calls.get(*old).is_some_and(Call::is_established))
    }

    /// Carry out every call's deadlines that have fallen due.
    pub fn poll(&mut self, now: Instant) -> Vec<Output> {
        let due: Vec<CallId> = self
            .calls
            .values()
            .filter(|c| c.next_deadline().is_some_and(|at| at <= now))
            .map(|c| c.id.clone())
            .collect();
        let mut outputs = Vec::new();
        for id in due {
            let effects = self.calls.get_mut(&id).map(|c| c.poll(now)).unwrap_or_default();
            outputs.extend(self.finish(&id, effects, now));
        }
        outputs
    }

    /// The earliest deadline of any call.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.calls.values().filter_map(Call::next_deadline).min()
    }

    pub fn command(&mut self, id: &str, command: Command, now: Instant) -> Result<Vec<Output>, PhoneError> {
        let call = self.calls.get_mut(id).ok_or_else(|| PhoneError::UnknownCall(id.to_string()))?;
        let effects = call.command(command, now)?;
        Ok(self.finish(id, effects, now))
    }

    /// A signal for a call that has already ended (or never was ours) is dropped.
    pub fn signal(&mut self, id: &str, signal: Signal, now: Instant) -> Vec<Output> {
        match self.calls.get_mut(id) {
            Some(call) => {
                let effects = call.signal(signal, now);
                self.finish(id, effects, now)
            }
            None => Vec::new(),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Call> {
        self.calls.get(id)
    }

    /// Live calls, oldest first.
    pub fn list(&self) -> Vec<CallSummary> {
        let mut calls: Vec<&Call> = self.calls.values().collect();
        calls.sort_by_key(|c| c.started_at);
        calls.into_iter().map(summary).collect()
    }

    /// The calls in the local conference, by id.
    pub fn conference(&self) -> Vec<CallId> {
        let mut members: Vec<CallId> =
            self.calls.values().filter(|c| c.links.conference).map(|c| c.id.clone()).collect();
        members.sort();
        members
    }

    /// Tell the peer that REFERred `referrer` how our call to its target goes.
    pub fn notify_referrer(&mut self, referrer: &str, code: u16, now: Instant) -> Vec<Output> {
        self.finish(referrer, vec![Effect::Sip(super::SipAction::NotifyRefer { code })], now)
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    pub fn insert(&mut self, (call, effects): (Call, Vec<Effect>), now: Instant) -> Result<Vec<Output>, PhoneError> {
        if self.calls.contains_key(&call.id) {
            return Err(PhoneError::DuplicateCall(call.id));
        }
        let id = call.id.clone();
        self.calls.insert(id.clone(), call);
        Ok(self.finish(&id, effects, now))
    }

    /// Tag effects with their call; a peer that REFERred us to this call
    /// hears how it goes; once the call has ended it is forgotten and the
    /// calls tied to it are told.
    pub(super) fn finish(&mut self, id: &str, effects: Vec<Effect>, now: Instant) -> Vec<Output> {
        let Some(call) = self.calls.get_mut(id) else { return Vec::new() };
        let report = if effects.contains(&Effect::StateChanged) { call.next_referral_report() } else { None };
        let referrer = call.links.referred_by.clone();
        // A call taking another's place (Replaces) changes nothing for the rest.
        let answered = effects.iter().any(|e| matches!(e, Effect::Sip(super::SipAction::Accept { .. })));
        let hold_others = self.hold_on_answer && answered && call.links.replaces.is_none();
        let summary = summary(call);
        let mut outputs: Vec<Output> =
            effects.into_iter().map(|effect| Output { call: summary.clone(), effect }).collect();
        if let (Some(code), Some(referrer)) = (report, referrer) {
            outputs.extend(self.notify_referrer(&referrer, code, now));
        }
        if hold_others {
            outputs.extend(self.hold_others(id, now));
        }
        if summary.state == CallState::Ended {
            if let Some(ended) = self.calls.remove(id) {
                outputs.extend(self.unlink(&ended, now));
            }
        }
        outputs
    }
}

/// How `call.state` and `call.list` describe `call`.
pub fn summary(call: &Call) -> CallSummary {
    CallSummary {
        call: call.id.clone(),
        state: call.state,
        direction: call.direction,
        remote: call.remote.clone(),
        display_name: call.display_name.clone(),
        account: call.account.clone(),
        answer_after_ms: call.answer_after_hint.map(|d| d.as_millis() as u64),
        held: call.held_on_wire(),
        remote_held: call.remote_hold(),
        muted: call.muted,
        codec: call.negotiated().map(|n| n.codec),
        secure: call.negotiated().is_some_and(|n| n.srtp.is_some()),
        transfer: call.transfer.clone(),
        links: call.links.clone(),
        reason: call.reason,
        sip_code: call.sip_code,
    }
}
