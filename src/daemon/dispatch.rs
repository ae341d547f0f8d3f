//! Control requests, answered by the run loop: each method's params are
//! checked against its type in `control::api`, then turned into phone
//! commands. Errors carry the stable codes of `control::rpc::code`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use super::Daemon;
use crate::audio::device;
use crate::call::phone::PhoneError;
use crate::call::{CallError, CallId, Command};
use crate::control::api::{
    method, AccountListResult, AccountParams, AgentStateParams, AudioDevicesResult, AudioSelectParams, CallInfo,
    CallListResult, CallParams, CallStatsResult, DialParams, DialResult, DtmfParams, Empty, NoParams, QualityEvent,
    RejectParams, StatusResult,
};
use crate::control::rpc::{code, Request, RpcError};
use crate::media::dtmf;
use crate::sdp::LocalMedia;
use crate::sip::registrar::RegCommand;

impl Daemon {
    pub(super) fn dispatch(&mut self, request: Request) -> Result<Value, RpcError> {
        let params = request.params;
        match request.method.as_str() {
            method::DAEMON_STATUS => parse::<NoParams>(params).and_then(|_| reply(self.status())),
            method::CALL_DIAL => parse::<DialParams>(params).and_then(|p| self.dial(p)).and_then(reply),
            method::CALL_ANSWER => parse::<CallParams>(params).and_then(|p| self.command(&p.call, Command::Answer)),
            method::CALL_REJECT => {
                parse::<RejectParams>(params).and_then(|p| self.command(&p.call, Command::Reject(p.reason)))
            }
            method::CALL_HANGUP => parse::<CallParams>(params).and_then(|p| self.command(&p.call, Command::Hangup)),
            method::CALL_LIST => parse::<NoParams>(params).and_then(|_| reply(self.call_list())),
            method::CALL_HOLD => parse::<CallParams>(params).and_then(|p| self.command(&p.call, Command::Hold)),
            method::CALL_RESUME => parse::<CallParams>(params).and_then(|p| self.command(&p.call, Command::Resume)),
            method::CALL_MUTE => parse::<CallParams>(params).and_then(|p| self.command(&p.call, Command::Mute)),
            method::CALL_UNMUTE => parse::<CallParams>(params).and_then(|p| self.command(&p.call, Command::Unmute)),
            method::CALL_DTMF => parse::<DtmfParams>(params).and_then(|p| {
                let digits = dtmf::normalize_digits(&p.digits).map_err(RpcError::invalid_params)?;
                self.command(&p.call, Command::Dtmf(digits))
            }),
            method::CALL_STATS => parse::<CallParams>(params).and_then(|p| self.call_stats(&p.call)).and_then(reply),
            method::AUDIO_DEVICES => parse::<NoParams>(params).and_then(|_| {
                // ALSA answers from its configuration: quick enough for the loop.
                reply(AudioDevicesResult { devices: device::list_devices(), in_use: self.audio_status.clone() })
            }),
            method::AUDIO_SELECT => {
                parse::<AudioSelectParams>(params).and_then(|p| self.select_audio(p)).and_then(|_| reply(Empty {}))
            }
            method::ACCOUNT_LIST => {
                parse::<NoParams>(params).and_then(|_| reply(AccountListResult { accounts: self.account_list() }))
            }
            method::ACCOUNT_REGISTER => parse::<AccountParams>(params)
                .and_then(|p| self.accounts.command(&p.account, RegCommand::Register))
                .and_then(|_| reply(Empty {})),
            method::ACCOUNT_UNREGISTER => parse::<AccountParams>(params)
                .and_then(|p| self.accounts.command(&p.account, RegCommand::Unregister))
                .and_then(|_| reply(Empty {})),
            method::AGENT_SET_STATE => parse::<AgentStateParams>(params).and_then(|p| {
                self.set_agent_state(p.state);
                reply(Empty {})
            }),
            other => self
                .transfer_request(other, params.clone())
                .or_else(|| self.record_request(other, params.clone()))
                .or_else(|| self.callback_request(other, params))
                .unwrap_or_else(|| {
                    let message = format!("unknown method {other:?}; see proto/openrpc.json");
                    Err(RpcError::new(code::METHOD_NOT_FOUND, message))
                }),
        }
    }

    fn status(&self) -> StatusResult {
        StatusResult {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            sip_listen: self.sip.listens().iter().map(super::listen_text).collect(),
            calls: self.phone.len(),
            agent_state: self.accounts.agent_state,
            accounts: self.account_list(),
            audio: self.audio_status.clone(),
            recording_dir: self.config.recording.dir.display().to_string(),
        }
    }

    fn dial(&mut self, params: DialParams) -> Result<DialResult, RpcError> {
        self.place_call(&params.to, params.account).map(|call| DialResult { call })
    }

    /// Place a call (for `call.dial`, a callback's attempt, or a peer's REFER).
    pub(super) fn place_call(&mut self, to: &str, account: Option<String>) -> Result<CallId, RpcError> {
        // Without a choice, the first account (by config order) places the call.
        let account = account.or_else(|| self.config.accounts.first().map(|a| a.id.clone()));
        let to = self.sip.dial_target(to, account.as_deref()).map_err(RpcError::invalid_params)?;
        let (call, local) = self.open_outbound(account.as_deref())?;
        let now = Instant::now().into_std();
        match self.phone.dial(call.clone(), to, account, local, now) {
            Ok(outputs) => {
                self.apply(outputs);
                Ok(call)
            }
            Err(e) => {
                self.media.stop(&call);
                Err(phone_error(e))
            }
        }
    }

    /// A new outbound call's id and media, within `calls.max`.
    pub(super) fn open_outbound(&mut self, account: Option<&str>) -> Result<(CallId, LocalMedia), RpcError> {
        let max = self.config.calls.max;
        if self.phone.len() >= max {
            let message = format!("the agent already has {max} calls (calls.max); hang one up first");
            return Err(RpcError::new(code::UNAVAILABLE, message));
        }
        let call = self.sip.new_call_id();
        let local = self
            .media
            .open(&call)
            .map_err(|e| RpcError::new(code::UNAVAILABLE, format!("no RTP port available: {e}")))?;
        Ok((call.clone(), self.local_media(account, local)))
    }

    fn command(&mut self, call: &str, command: Command) -> Result<Value, RpcError> {
        let outputs = self.phone.command(call, command, Instant::now().into_std()).map_err(phone_error)?;
        self.apply(outputs);
        reply(Empty {})
    }

    fn call_list(&self) -> CallListResult {
        let calls = self
            .phone
            .list()
            .into_iter()
            .map(|summary| CallInfo { media: self.media.stats(&summary.call), summary })
            .collect();
        CallListResult { calls }
    }

    fn call_stats(&self, call: &str) -> Result<CallStatsResult, RpcError> {
        let summary = self.phone.get(call).map(crate::call::phone::summary);
        let summary = summary.ok_or_else(|| phone_error(PhoneError::UnknownCall(call.into())))?;
        let media = self.media.stats(&summary.call);
        let quality = media.as_ref().map(|stats| QualityEvent::new(summary.call.clone(), stats));
        Ok(CallStatsResult { call: CallInfo { media, summary }, quality })
    }
}

pub(super) fn parse<T: DeserializeOwned>(params: Value) -> Result<T, RpcError> {
    serde_json::from_value(params).map_err(RpcError::invalid_params)
}

pub(super) fn reply<T: Serialize>(result: T) -> Result<Value, RpcError> {
    serde_json::to_value(result).map_err(|e| RpcError::new(code::INTERNAL_ERROR, e.to_string()))
}

pub(super) fn phone_error(error: PhoneError) -> RpcError {
    let code = match &error {
        PhoneError::UnknownCall(_) => code::UNKNOWN_CALL,
        PhoneError::DuplicateCall(_) => code::INTERNAL_ERROR,
        PhoneError::Merge(_) => code::INVALID_PARAMS,
        PhoneError::Call(CallError::InvalidState { .. }) => code::INVALID_STATE,
    };
    RpcError::new(code, error.to_string())
}
