//! Control requests: one `match` over the typed [`Request`]. What the desk
//! decides becomes a desk command; what only the shell knows (status,
//! sound cards, registrations, stored history, media counters) is
//! answered here. Errors carry the stable codes of `control::rpc::code`.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{clock, Daemon};
use crate::audio::device;
use crate::call::phone::{CallSummary, PhoneError};
use crate::call::{CallError, Command as CallCommand};
use crate::callback::{CallbackError, Command as CallbackCommand, CustomerNumber, Offer, Wrapup};
use crate::control::api::{
    AccountListResult, AudioDevicesResult, CallInfo, CallListResult, CallStatsResult, CallbackListResult,
    CallbackResult, DialResult, Empty, HistoryParams, HistoryResult, MergeResult, QualityEvent, RecordStartResult,
    Request, StatusResult, TransferConsultResult,
};
use crate::control::rpc::{code, RpcError};
use crate::desk::{Booking, Command, DeskError, Input, RecordAction, Reply};
use crate::media::level::MAX_GAIN;
use crate::sip::registrar::RegCommand;
use crate::store::HistoryQuery;

/// `history.list` answers at most this many entries.
const HISTORY_MAX: usize = 1000;
const HISTORY_DEFAULT: usize = 100;

type Answer = Result<Value, RpcError>;

impl Daemon {
    pub(super) fn dispatch(&mut self, request: Request, reply_to: oneshot::Sender<Answer>) {
        let call = |call: String, command: CallCommand| Command::Call { call, command };
        let callback = |callback: String, command: CallbackCommand| Command::Callback { callback, command };
        let command = match request {
            Request::DaemonStatus(_) => return answer(reply_to, reply(self.status())),
            Request::DaemonReload(_) => return self.reload(reply_to),
            Request::EventsSubscribe(_) => {
                let error = RpcError::new(code::INTERNAL_ERROR, "events.subscribe is answered by the control server");
                return answer(reply_to, Err(error));
            }
            Request::CallList(_) => return self.call_list(reply_to),
            Request::CallStats(p) => return self.call_stats(&p.call, reply_to),
            Request::AudioDevices(_) => {
                // ALSA answers from its configuration: quick enough for the loop.
                let devices = AudioDevicesResult { devices: device::list_devices(), in_use: self.audio.status.clone() };
                return answer(reply_to, reply(devices));
            }
            Request::AudioSelect(p) => return answer(reply_to, self.select_audio(p).and_then(|_| reply(Empty {}))),
            Request::AudioVolume(p) => {
                let in_range = |gain: Option<f32>| gain.is_none_or(|g| (0.0..=MAX_GAIN).contains(&g));
                if !in_range(p.input) || !in_range(p.output) {
                    let error = RpcError::invalid_params(format!("gains go from 0.0 to {MAX_GAIN}"));
                    return answer(reply_to, Err(error));
                }
                return answer(reply_to, reply(self.media.set_gains(p.input, p.output)));
            }
            Request::AccountList(_) => {
                return answer(reply_to, reply(AccountListResult { accounts: self.account_list() }))
            }
            Request::AccountRegister(p) => {
                let done = self.accounts.command(&p.account, RegCommand::Register);
                return answer(reply_to, done.and_then(|_| reply(Empty {})));
            }
            Request::AccountUnregister(p) => {
                let done = self.accounts.command(&p.account, RegCommand::Unregister);
                return answer(reply_to, done.and_then(|_| reply(Empty {})));
            }
            Request::CallbackList(_) => {
                return answer(reply_to, reply(CallbackListResult { callbacks: self.desk.callbacks() }))
            }
            Request::HistoryList(p) => return self.history(p, reply_to),
            Request::DebugStall(p) => return answer(reply_to, self.stall(p.ms).and_then(|_| reply(Empty {}))),
            request @ (Request::BridgePair(_)
            | Request::BridgeList(_)
            | Request::BridgeRevoke(_)
            | Request::BridgeAuth(_)) => return answer(reply_to, self.bridge_request(request)),
            Request::CallDial(p) => Command::Dial { to: p.to, account: p.account },
            Request::CallAnswer(p) => call(p.call, CallCommand::Answer),
            Request::CallReject(p) => call(p.call, CallCommand::Reject(p.reason)),
            Request::CallHangup(p) => call(p.call, CallCommand::Hangup),
            Request::CallHold(p) => call(p.call, CallCommand::Hold),
            Request::CallResume(p) => call(p.call, CallCommand::Resume),
            Request::CallMute(p) => call(p.call, CallCommand::Mute),
            Request::CallUnmute(p) => call(p.call, CallCommand::Unmute),
            Request::CallDtmf(p) => call(p.call, CallCommand::Dtmf(p.digits)),
            Request::CallTransferBlind(p) => Command::TransferBlind { call: p.call, to: p.to },
            Request::CallTransferConsult(p) => Command::Consult { call: p.call, to: p.to },
            Request::CallTransferComplete(p) => Command::CompleteTransfer { call: p.call, consult: p.consult },
            Request::CallTransferCancel(p) => Command::CancelConsult { call: p.call, consult: p.consult },
            Request::CallMerge(p) => Command::Merge { calls: p.calls },
            Request::CallRecordStart(p) => Command::Record { call: p.call, action: RecordAction::Start },
            Request::CallRecordStop(p) => Command::Record { call: p.call, action: RecordAction::Stop },
            Request::CallRecordPause(p) => Command::Record { call: p.call, action: RecordAction::Pause },
            Request::CallRecordResume(p) => Command::Record { call: p.call, action: RecordAction::Resume },
            Request::AgentSetState(p) => Command::SetAgentState(p.state),
            Request::CallbackOffer(offer) => Command::Offer { offer, id: new_callback_id() },
            Request::CallbackSchedule(p) => {
                let first = p.number.map(|number| CustomerNumber { label: String::new(), number });
                let offer = Offer {
                    customer: p.customer,
                    queue: p.queue,
                    reason: p.reason,
                    numbers: first.into_iter().chain(p.numbers.unwrap_or_default()).collect(),
                    dial_mode: p.dial_mode,
                    countdown_ms: p.countdown_ms,
                    account: p.account,
                    ..Offer::default()
                };
                let (at, tz, notes, instructions, from_call) = (p.at, p.tz, p.notes, p.instructions, p.from_call);
                let booking = Booking { offer, at, tz, notes, instructions, from_call, id: new_callback_id() };
                Command::Schedule(Box::new(booking))
            }
            Request::CallbackReschedule(p) => Command::Reschedule {
                callback: p.callback,
                at: p.at,
                tz: p.tz,
                notes: p.notes,
                instructions: p.instructions,
                number: p.number,
            },
            Request::CallbackAccept(p) => callback(p.callback, CallbackCommand::Accept),
            Request::CallbackReject(p) => callback(p.callback, CallbackCommand::Reject),
            Request::CallbackCall(p) => callback(p.callback, CallbackCommand::Call),
            Request::CallbackRetry(p) => callback(p.callback, CallbackCommand::Retry),
            Request::CallbackCountdownCancel(p) => callback(p.callback, CallbackCommand::CancelCountdown),
            Request::CallbackClose(p) => callback(p.callback, CallbackCommand::Close),
            Request::CallbackTransferCancel(p) => callback(p.callback, CallbackCommand::CancelTransfer),
            Request::CallbackTransferAccept(p) => callback(p.callback, CallbackCommand::TransferAccepted),
            Request::CallbackCancel(p) => callback(p.callback, CallbackCommand::Cancel),
            Request::CallbackSelectNumber(p) => callback(p.callback, CallbackCommand::SelectNumber(p.number)),
            Request::CallFlag(p) => Command::Flag { call: p.call, flag: p.flag, on: p.on.unwrap_or(true) },
            Request::CallbackUpdate(p) => callback(p.callback.clone(), CallbackCommand::Update(p.edit())),
            Request::CallbackWrapup(p) => {
                let wrapup =
                    Wrapup { reason: p.reason, notes: p.notes, disposition: p.disposition, auto_closed: false };
                callback(p.callback, CallbackCommand::Wrapup(wrapup))
            }
            Request::CallbackTransfer(p) => match p.target() {
                Ok(target) => callback(p.callback, CallbackCommand::Transfer(target)),
                Err(e) => return answer(reply_to, Err(RpcError::invalid_params(e))),
            },
        };
        let now = clock();
        let decided = self.desk.handle(Input::Command(command), now);
        self.carry_out(now);
        answer(reply_to, decided.map_err(desk_error).and_then(result_of))
    }

    /// `debug.stall`: block this thread, and so the run loop, as a hang would
    /// (the watchdog test proves systemd hears no ping meanwhile).
    fn stall(&self, ms: u64) -> Result<(), RpcError> {
        if !self.systemd.test_hooks {
            return Err(RpcError::new(
                code::UNAVAILABLE,
                "debug.stall is a test hook: start with SOFTPHONED_TEST_HOOKS=1",
            ));
        }
        if ms > super::systemd::MAX_STALL_MS {
            return Err(RpcError::invalid_params(format!("ms goes up to {}", super::systemd::MAX_STALL_MS)));
        }
        tracing::warn!(ms, "debug.stall: blocking the run loop");
        std::thread::sleep(std::time::Duration::from_millis(ms));
        Ok(())
    }

    fn status(&self) -> StatusResult {
        StatusResult {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_ms: (Instant::from_std(clock().at) - self.started).as_millis() as u64,
            sip_listen: self.sip.listens().iter().map(super::listen_text).collect(),
            public_address: self.sip.public_address(),
            calls: self.desk.call_count(),
            agent_state: self.desk.agent_state(),
            accounts: self.account_list(),
            audio: self.audio.status.clone(),
            recording_dir: self.config.recording.dir.display().to_string(),
        }
    }

    /// `call.list`: the desk's calls, with figures the media thread adds
    /// between two ticks.
    fn call_list(&self, reply_to: oneshot::Sender<Answer>) {
        let calls: Vec<CallInfo> = self.desk.calls().into_iter().map(|summary| self.call_info(summary)).collect();
        self.with_media_stats(calls, reply_to, |calls| reply(CallListResult { calls }));
    }

    fn call_stats(&self, call: &str, reply_to: oneshot::Sender<Answer>) {
        let Some(summary) = self.desk.call(call) else {
            return answer(reply_to, Err(desk_error(PhoneError::UnknownCall(call.into()).into())));
        };
        self.with_media_stats(vec![self.call_info(summary)], reply_to, |mut calls| {
            let call = calls.pop().expect("one call asked, one answered");
            let quality = call.media.as_ref().map(|stats| QualityEvent::new(call.summary.call.clone(), stats));
            reply(CallStatsResult { call, quality })
        });
    }

    /// Fill in the calls' media figures, then answer with `make`.
    fn with_media_stats(
        &self,
        mut calls: Vec<CallInfo>,
        reply_to: oneshot::Sender<Answer>,
        make: impl FnOnce(Vec<CallInfo>) -> Answer + Send + 'static,
    ) {
        let (tx, rx) = oneshot::channel();
        self.media.stats(calls.iter().map(|c| c.summary.call.clone()).collect(), tx);
        tokio::spawn(async move {
            // A media thread gone leaves the figures out, not the answer.
            let stats = rx.await.unwrap_or_default();
            for (call, stats) in calls.iter_mut().zip(stats) {
                call.media = stats;
            }
            answer(reply_to, make(calls));
        });
    }

    fn call_info(&self, summary: CallSummary) -> CallInfo {
        let recording = self.desk.call_recording(&summary.call);
        let flags = self.desk.call_flags(&summary.call);
        CallInfo { summary, media: None, recording, flags }
    }

    /// `history.list`, answered by the store's thread (after every write
    /// queued before it), so the run loop never waits on the disk.
    fn history(&self, params: HistoryParams, reply_to: oneshot::Sender<Answer>) {
        let since = params.since.map(|s| s.parse::<Timestamp>()).transpose();
        let since = match since {
            Ok(since) => since,
            Err(e) => return answer(reply_to, Err(RpcError::invalid_params(format!("since: {e}")))),
        };
        let limit = params.limit.unwrap_or(HISTORY_DEFAULT).min(HISTORY_MAX);
        let (tx, rx) = oneshot::channel();
        let query = HistoryQuery { since, limit, kind: params.kind, customer: params.customer, number: params.number };
        self.store.history(query, tx);
        tokio::spawn(async move {
            let result = match rx.await {
                Ok(Ok(entries)) => reply(HistoryResult { entries }),
                Ok(Err(e)) => Err(RpcError::new(code::UNAVAILABLE, format!("history store: {e}"))),
                Err(_) => Err(RpcError::new(code::UNAVAILABLE, "history store has stopped")),
            };
            answer(reply_to, result);
        });
    }
}

pub(super) fn answer(reply_to: oneshot::Sender<Answer>, result: Answer) {
    // A client that went away does not need its answer.
    let _ = reply_to.send(result);
}

pub(super) fn reply<T: Serialize>(result: T) -> Answer {
    serde_json::to_value(result).map_err(|e| RpcError::new(code::INTERNAL_ERROR, e.to_string()))
}

/// The desk's reply as the method's result.
fn result_of(decided: Reply) -> Answer {
    match decided {
        Reply::Done => reply(Empty {}),
        Reply::Call(call) => reply(DialResult { call }),
        Reply::Consult(consult) => reply(TransferConsultResult { consult }),
        Reply::Conference(conference) => reply(MergeResult { conference }),
        Reply::Callback(callback) => reply(CallbackResult { callback }),
        Reply::Recording(path) => reply(RecordStartResult { path }),
    }
}

fn desk_error(error: DeskError) -> RpcError {
    let code = match &error {
        DeskError::Phone(PhoneError::UnknownCall(_)) => code::UNKNOWN_CALL,
        DeskError::Phone(PhoneError::DuplicateCall(_)) => code::INTERNAL_ERROR,
        DeskError::Phone(PhoneError::Merge(_)) | DeskError::InvalidParams(_) => code::INVALID_PARAMS,
        DeskError::Phone(PhoneError::Call(CallError::InvalidState { .. })) | DeskError::InvalidState(_) => {
            code::INVALID_STATE
        }
        DeskError::Callback(CallbackError::Unknown(_)) => code::UNKNOWN_CALLBACK,
        DeskError::Callback(CallbackError::InvalidState { .. } | CallbackError::Closed { .. }) => code::INVALID_STATE,
        DeskError::Callback(CallbackError::Duplicate(_) | CallbackError::Invalid(_)) => code::INVALID_PARAMS,
        DeskError::CallsMax { .. } | DeskError::NoLine => code::UNAVAILABLE,
    };
    RpcError::new(code, error.to_string())
}

fn new_callback_id() -> String {
    format!("cb-{:016x}", rand::random::<u64>())
}
