//! The phone: every call the daemon carries, addressed by id. It routes
//! commands and signals to the right call and keeps a call only while it
//! lives; there is no "current call".

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use super::{Call, CallError, CallId, CallState, Command, Direction, Effect, EndReason, Inbound, Signal};
use crate::media::codec::Codec;
use crate::sip::sdp::LocalMedia;

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
    calls: HashMap<CallId, Call>,
}

impl Phone {
    pub fn new() -> Self {
        Self::default()
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
        self.insert(Call::dial(id, to, account, local, now))
    }

    /// An INVITE arrived for a new call.
    pub fn incoming(
        &mut self,
        id: CallId,
        inbound: Inbound,
        local: LocalMedia,
        now: Instant,
    ) -> Result<Vec<Output>, PhoneError> {
        self.insert(Call::incoming(id, inbound, local, now))
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
            outputs.extend(self.finish(&id, effects));
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
        Ok(self.finish(id, effects))
    }

    /// A signal for a call that has already ended (or never was ours) is dropped.
    pub fn signal(&mut self, id: &str, signal: Signal, now: Instant) -> Vec<Output> {
        match self.calls.get_mut(id) {
            Some(call) => {
                let effects = call.signal(signal, now);
                self.finish(id, effects)
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

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    fn insert(&mut self, (call, effects): (Call, Vec<Effect>)) -> Result<Vec<Output>, PhoneError> {
        if self.calls.contains_key(&call.id) {
            return Err(PhoneError::DuplicateCall(call.id));
        }
        let id = call.id.clone();
        self.calls.insert(id.clone(), call);
        Ok(self.finish(&id, effects))
    }

    /// Tag effects with their call, and forget the call once it has ended.
    fn finish(&mut self, id: &str, effects: Vec<Effect>) -> Vec<Output> {
        let Some(call) = self.calls.get(id) else { return Vec::new() };
        let summary = summary(call);
        if call.state == CallState::Ended {
            self.calls.remove(id);
        }
        effects.into_iter().map(|effect| Output { call: summary.clone(), effect }).collect()
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
        held: call.local_hold(),
        remote_held: call.remote_hold(),
        muted: call.muted,
        codec: call.negotiated().map(|n| n.codec),
        secure: call.negotiated().is_some_and(|n| n.srtp.is_some()),
        transfer: call.transfer.clone(),
        reason: call.reason,
        sip_code: call.sip_code,
    }
}
