//! The desk's calls: the agent's commands, admitting inbound calls
//! (`calls.max`, the allow-list, the agent's ready state), placing calls
//! on pre-opened lines, and carrying out what the phone decides.

use std::net::SocketAddr;

use super::vocabulary::{Command, DeskError, Event, Line, MediaCommand, MediaReport, Output, Reply};
use super::Desk;
use crate::call::admission::Admission;
use crate::call::admission::AgentState;
use crate::call::phone::{self, PhoneError};
use crate::call::{Call, CallId, Effect, Inbound, SipAction};
use crate::media::dtmf::{self, DtmfVia};

impl Desk {
    pub(super) fn command(&mut self, command: Command) -> Result<Reply, DeskError> {
        let now = self.now.at;
        let outputs = match command {
            Command::Dial { to, account } => return self.place_call(&to, account, None).map(Reply::Call),
            Command::Call { call, command: crate::call::Command::Dtmf(digits) } => {
                let digits = dtmf::normalize_digits(&digits).map_err(|e| DeskError::InvalidParams(e.to_string()))?;
                self.phone.command(&call, crate::call::Command::Dtmf(digits), now)?
            }
            Command::Call { call, command } => self.phone.command(&call, command, now)?,
            Command::TransferBlind { call, to } => {
                let to = self.target_for(&call, &to)?;
                self.phone.command(&call, crate::call::Command::TransferBlind(to), now)?
            }
            Command::Consult { call, to } => return self.consult(&call, &to).map(Reply::Consult),
            Command::CompleteTransfer { call, consult } => self.phone.complete_transfer(&call, &consult, now)?,
            Command::CancelConsult { call, consult } => self.phone.cancel_consult(&call, &consult, now)?,
            Command::Merge { calls } => {
                let outputs = self.phone.merge(&calls, now)?;
                self.queue_calls(outputs);
                return Ok(Reply::Conference(self.phone.conference()));
            }
            Command::Record { call, action } => return self.record(&call, action),
            Command::Flag { call, flag, on } => return self.flag_call(&call, flag, on),
            Command::SetAgentState(state) => {
                if self.agent_state != state {
                    self.agent_state = state;
                    tracing::info!(?state, "agent state");
                    self.emit(Output::Event(Event::AgentState(state)));
                }
                return Ok(Reply::Done);
            }
            Command::Offer { offer, id } => return self.offer(offer, id),
            Command::Schedule(booking) => return self.schedule(*booking),
            Command::Reschedule { callback, at, tz, notes, instructions, number } => {
                return self.reschedule(callback, &at, tz, notes, instructions, number)
            }
            Command::Callback { callback, command } => {
                let outputs = self.callbacks.command(&callback, command, self.now)?;
                self.queue_callbacks(outputs);
                return Ok(Reply::Done);
            }
        };
        self.queue_calls(outputs);
        Ok(Reply::Done)
    }

    /// An INVITE for a new call: ring the agent, or refuse it here.
    pub(super) fn incoming(&mut self, call: CallId, source: SocketAddr, inbound: Inbound) {
        let refuse = |desk: &mut Desk, code: u16| {
            desk.emit(Output::Sip { call: call.clone(), action: SipAction::Reject { code } })
        };
        // An INVITE taking the place of an answered call of ours (RFC 3891:
        // an attended transfer to the agent) is no new call: it counts
        // neither against calls.max nor against the agent's not being ready.
        let replacing = self.phone.replaceable(&inbound).is_some();
        if !replacing && self.at_calls_max() {
            tracing::warn!(%call, %source, max = self.config.calls_max, "inbound call refused: calls.max reached");
            return refuse(self, 486);
        }
        let agent = if replacing { AgentState::Ready } else { self.agent_state };
        let inbound = match self.config.inbound.admit(source, inbound, agent) {
            Admission::Admit(inbound) => *inbound,
            Admission::Refuse { code, why } => {
                tracing::warn!(%call, %source, code, why, "inbound call refused");
                return refuse(self, code);
            }
        };
        let Some(line) = self.lines.pop_front() else {
            tracing::error!(%call, "no RTP port for incoming call");
            return refuse(self, 503);
        };
        tracing::info!(%call, from = %inbound.from, %source, account = inbound.account.as_deref().unwrap_or(""),
            auto_answer_ms = ?inbound.auto_answer_after.map(|d| d.as_millis()), "incoming call");
        let local = self.config.local_media(inbound.account.as_deref(), &line);
        match self.phone.incoming(call.clone(), inbound, local, self.now.at) {
            Ok(outputs) => {
                self.emit(Output::Media(MediaCommand::Open { call, rtp: line.rtp }));
                self.queue_calls(outputs);
            }
            Err(e) => {
                tracing::error!(error = %e, "incoming call refused");
                self.emit(Output::Media(MediaCommand::Release { rtp: line.rtp }));
            }
        }
    }

    /// Place a call (for `call.dial`, a callback's attempt, or a peer's
    /// REFER: then `referred_by` names the call whose peer asked, so that
    /// even its first `call.state` shows the link).
    pub(super) fn place_call(
        &mut self,
        to: &str,
        account: Option<String>,
        referred_by: Option<&str>,
    ) -> Result<CallId, DeskError> {
        // Without a choice, the first account (by config order) places the call.
        let account = account.or_else(|| self.config.dial_plan.default_account.clone());
        let to = self.config.dial_plan.target(to, account.as_deref()).map_err(DeskError::InvalidParams)?;
        let line = self.take_line()?;
        let local = self.config.local_media(account.as_deref(), &line);
        let (mut call, effects) = Call::dial(line.call.clone(), to, account, local, self.now.at);
        call.links.referred_by = referred_by.map(str::to_string);
        match self.phone.insert((call, effects), self.now.at) {
            Ok(outputs) => Ok(self.opened(line, outputs)),
            Err(e) => {
                self.lines.push_front(line);
                Err(e.into())
            }
        }
    }

    /// Consult: hold the customer and dial the colleague.
    fn consult(&mut self, customer: &str, to: &str) -> Result<CallId, DeskError> {
        let account = self.phone.get(customer).and_then(|c| c.account.clone());
        let to = self.target_for(customer, to)?;
        let line = self.take_line()?;
        let local = self.config.local_media(account.as_deref(), &line);
        let (call, effects) = Call::dial(line.call.clone(), to, account, local, self.now.at);
        match self.phone.consult(customer, call, effects, self.now.at) {
            Ok(outputs) => Ok(self.opened(line, outputs)),
            Err(e) => {
                self.lines.push_front(line);
                Err(e.into())
            }
        }
    }

    /// A transfer target as the agent typed it, at the call's account's domain.
    fn target_for(&self, call: &str, to: &str) -> Result<String, DeskError> {
        let call = self.phone.get(call).ok_or_else(|| PhoneError::UnknownCall(call.into()))?;
        self.config.dial_plan.target(to, call.account.as_deref()).map_err(DeskError::InvalidParams)
    }

    fn at_calls_max(&self) -> bool {
        self.phone.len() >= self.config.calls_max
    }

    /// A line for a new outbound call, within `calls.max`.
    fn take_line(&mut self) -> Result<Line, DeskError> {
        if self.at_calls_max() {
            return Err(DeskError::CallsMax { max: self.config.calls_max });
        }
        self.lines.pop_front().ok_or(DeskError::NoLine)
    }

    /// The call placed on `line` exists: its media ports are given to it
    /// before anything else it decided is carried out.
    fn opened(&mut self, line: Line, outputs: Vec<phone::Output>) -> CallId {
        self.emit(Output::Media(MediaCommand::Open { call: line.call.clone(), rtp: line.rtp }));
        self.queue_calls(outputs);
        line.call
    }

    /// Carry out one effect the phone decided.
    pub(super) fn call_effect(&mut self, phone::Output { call, effect }: phone::Output) {
        let id = call.call.clone();
        match effect {
            Effect::Sip(action) => self.emit(Output::Sip { call: id, action }),
            Effect::StartMedia(negotiated) => self.emit(Output::Media(MediaCommand::Start { call: id, negotiated })),
            Effect::StopMedia => self.emit(Output::Media(MediaCommand::Stop { call: id })),
            Effect::Mute(muted) => self.emit(Output::Media(MediaCommand::Mute { call: id, muted })),
            Effect::SendDtmf(digits) => self.emit(Output::Media(MediaCommand::Dtmf { call: id, digits })),
            Effect::DtmfReceived(digit) => self.key_received(id, digit, DtmfVia::Info),
            Effect::Conference(joined) => self.emit(Output::Media(MediaCommand::Conference { call: id, joined })),
            Effect::Countdown(countdown) => self.emit(Output::Event(Event::CallCountdown { call: id, countdown })),
            Effect::Dial(to) => self.follow_referral(&id, call.account.clone(), &to),
            Effect::StateChanged => {
                tracing::info!(call = %id, state = ?call.state, reason = ?call.reason, sip_code = call.sip_code, "call state");
                self.emit(Output::Event(Event::CallState(Box::new(call.clone()))));
                self.follow_recording(&call);
                self.log_call(&call);
                self.follow_call(&call);
            }
        }
    }

    pub(super) fn media_report(&mut self, report: MediaReport) {
        match report {
            MediaReport::Dtmf { call, digit } => self.key_received(call, digit, DtmfVia::Rtp),
            MediaReport::Timeout { call } => {
                tracing::warn!(%call, "no RTP for media.media_timeout_ms: ending the call");
                let outputs = self.phone.signal(&call, crate::call::Signal::MediaTimeout, self.now.at);
                self.queue_calls(outputs);
            }
            MediaReport::Quality { call, stats } => self.emit(Output::Event(Event::CallQuality { call, stats })),
            MediaReport::Stopped { call, stats } => self.media_stopped(&call, stats),
        }
    }

    fn key_received(&mut self, call: CallId, digit: char, via: DtmfVia) {
        tracing::info!(%call, %digit, ?via, "key received");
        self.emit(Output::Event(Event::CallDtmf { call, digit, via }));
    }
}
