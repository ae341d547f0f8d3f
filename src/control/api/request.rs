//! Every control method, declared once: its name, its [`Request`] variant,
//! its params and result types, its summary and, where the schema alone
//! cannot show a call that works, an example. The one table below generates
//! the typed request enum the dispatcher matches on, the method-name
//! constants, and the method entries of the OpenRPC document in `proto/`.

use schemars::{JsonSchema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::*;
use crate::callback::Offer;
use crate::control::rpc::{code, RpcError};

/// One method as the OpenRPC document describes it.
pub struct MethodSpec {
    pub name: &'static str,
    pub summary: &'static str,
    /// The params object's schema (a `$ref` into the generator's definitions).
    pub params: fn(&mut SchemaGenerator) -> Value,
    pub result: fn(&mut SchemaGenerator) -> Value,
    /// A call that works, as `(params, result)`, where the schema alone
    /// cannot show one: a format (a SIP URI, keys, a date), a rule across
    /// params (exactly one of `queue` or `agent`), an id from the config.
    pub example: Option<fn() -> (Value, Value)>,
}

/// The schema of `T`, as a reference into the generator's definitions.
pub(crate) fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

macro_rules! methods {
    ($(
        $constant:ident $name:literal => $variant:ident($params:ty) -> $result:ty,
        $summary:literal
        $(, example $example:tt => $example_result:tt)?;
    )*) => {
        /// A control request, parsed: one variant per method, holding its
        /// params. Serialized, it is `{"method": ..., "params": {...}}`.
        #[derive(Debug, Serialize, Deserialize)]
        #[serde(tag = "method", content = "params")]
        pub enum Request {
            $(
                #[doc = $summary]
                #[serde(rename = $name)]
                $variant($params),
            )*
        }

        /// Method names, for code that spells one out.
        pub mod method {
            $(pub const $constant: &str = $name;)*
        }

        impl Request {
            /// Every method, in the order the OpenRPC document lists them.
            pub const METHODS: &[MethodSpec] = &[$(
                MethodSpec {
                    name: $name,
                    summary: $summary,
                    params: schema::<$params>,
                    result: schema::<$result>,
                    example: methods!(@example $($example => $example_result)?),
                },
            )*];

            /// The request `method` names, with its by-name `params` (an
            /// object; `{}` when the client sent none). An unknown method is
            /// -32601, params that do not fit its type -32602.
            pub fn parse(method: &str, params: Value) -> Result<Request, RpcError> {
                let parsed = match method {
                    $($name => serde_json::from_value(params).map(Request::$variant),)*
                    other => {
                        let message = format!("unknown method {other:?}; see proto/openrpc.json");
                        return Err(RpcError::new(code::METHOD_NOT_FOUND, message));
                    }
                };
                parsed.map_err(RpcError::invalid_params)
            }

            /// The method's name, as on the wire.
            pub fn method(&self) -> &'static str {
                match self {
                    $(Request::$variant(_) => $name,)*
                }
            }
        }
    };
    (@example) => { None };
    (@example $example:tt => $result:tt) => { Some(|| (json!($example), json!($result))) };
}

methods! {
    DAEMON_STATUS "daemon.status" => DaemonStatus(NoParams) -> StatusResult,
        "Version, uptime, listening points, call count and the audio backends in use.";
    DAEMON_RELOAD "daemon.reload" => DaemonReload(NoParams) -> ReloadResult,
        "Unix socket only (SIGHUP does the same): read the config file again. Accounts added, removed or changed register, unregister or register anew; media, recording, callback and answering settings apply to new calls; live calls and recordings go on untouched. Keys bound at start (listening points, sockets, devices, the store...) keep their running values and are named in restart_required. A config that does not load is refused (-32602, naming the key) and the running one stays in force.",
        example {} => {"accounts_added": ["second"], "accounts_removed": [], "accounts_changed": ["main"], "restart_required": ["sip"]};
    EVENTS_SUBSCRIBE "events.subscribe" => EventsSubscribe(SubscribeParams) -> SubscribeResult,
        "Receive notifications on this connection, for the given topics (default all).";
    CALL_DIAL "call.dial" => CallDial(DialParams) -> DialResult,
        "Place a call to a SIP URI.",
        example {"to": "sip:bob@127.0.0.1:9"} => {"call": "7f3a-1"};
    CALL_ANSWER "call.answer" => CallAnswer(CallParams) -> Empty,
        "Answer an incoming call (200 OK with our SDP answer).";
    CALL_REJECT "call.reject" => CallReject(RejectParams) -> Empty,
        "Refuse an incoming call: busy (486) or decline (603).";
    CALL_HANGUP "call.hangup" => CallHangup(CallParams) -> Empty,
        "End a call: CANCEL before answer, BYE after; an incoming call is declined.";
    CALL_LIST "call.list" => CallList(NoParams) -> CallListResult,
        "Live calls with state, direction, remote party, hold/mute and media counters.";
    CALL_HOLD "call.hold" => CallHold(CallParams) -> Empty,
        "Hold the peer: re-INVITE sendonly (inactive when the peer holds us too); hold music if configured.";
    CALL_RESUME "call.resume" => CallResume(CallParams) -> Empty,
        "Take the peer off hold: re-INVITE sendrecv (recvonly while the peer holds us).";
    CALL_MUTE "call.mute" => CallMute(CallParams) -> Empty,
        "Silence the agent's microphone on this call; RTP keeps flowing.";
    CALL_UNMUTE "call.unmute" => CallUnmute(CallParams) -> Empty,
        "Give the call the agent's microphone again.";
    CALL_DTMF "call.dtmf" => CallDtmf(DtmfParams) -> Empty,
        "Send keys: RFC 4733 events when negotiated, else SIP INFO (application/dtmf-relay).",
        example {"call": "7f3a-1", "digits": "12#"} => {};
    CALL_FLAG "call.flag" => CallFlag(FlagParams) -> Empty,
        "Mark a live call for its history record (e.g. escalate, as the flag icon of the vendors' desktops); on: false takes it off. The record's flags list them.",
        example {"call": "7f3a-1", "flag": "escalate"} => {};
    CALL_STATS "call.stats" => CallStats(CallParams) -> CallStatsResult,
        "RTP/RTCP figures of a call: packets, loss, jitter, RTT, jitter buffer, MOS estimate.";
    AUDIO_DEVICES "audio.devices" => AudioDevices(NoParams) -> AudioDevicesResult,
        "Sound devices the system offers (inputs, outputs) and the backends in use.";
    AUDIO_SELECT "audio.select" => AudioSelect(AudioSelectParams) -> Empty,
        "Switch input and/or output device, also mid-call; the outcome comes as audio.device.",
        example {"input": "USB Headset"} => {};
    AUDIO_VOLUME "audio.volume" => AudioVolume(AudioVolumeParams) -> Gains,
        "The agent's microphone and speaker gain (0.0-2.0, 1.0 as is), also mid-call; answers both as now set. audio.level events carry the levels for a meter.",
        example {"output": 1.5} => {"input": 1.0, "output": 1.5};
    ACCOUNT_LIST "account.list" => AccountList(NoParams) -> AccountListResult,
        "The configured accounts and their registration state (never a password).";
    ACCOUNT_REGISTER "account.register" => AccountRegister(AccountParams) -> Empty,
        "Register the account now and keep it registered.",
        example {"account": "main"} => {};
    ACCOUNT_UNREGISTER "account.unregister" => AccountUnregister(AccountParams) -> Empty,
        "Remove the account's binding (Expires: 0) and stay unregistered.",
        example {"account": "main"} => {};
    AGENT_SET_STATE "agent.set_state" => AgentSetState(AgentStateParams) -> Empty,
        "Ready takes calls; not ready refuses them (486 or 480) without ringing.";
    CALL_TRANSFER_BLIND "call.transfer.blind" => CallTransferBlind(TransferBlindParams) -> Empty,
        "Blind transfer: REFER the peer to `to`; call.state shows transferring, then ended (transferred) or, on failure, the call back with transfer.status failed and its sip_code.",
        example {"call": "7f3a-1", "to": "sip:carol@127.0.0.1:9"} => {};
    CALL_TRANSFER_CONSULT "call.transfer.consult" => CallTransferConsult(TransferConsultParams) -> TransferConsultResult,
        "Consult: hold the customer's call and dial the colleague; the result names the consult call, and call.state links both (consult / consult_for).",
        example {"call": "7f3a-1", "to": "sip:carol@127.0.0.1:9"} => {"consult": "7f3a-2"};
    CALL_TRANSFER_COMPLETE "call.transfer.complete" => CallTransferComplete(TransferConsultCallsParams) -> Empty,
        "Leave & transfer: REFER the customer to the colleague with Replaces naming the consult dialog (or, when the customer does not support Replaces, end the consult and REFER plainly); both calls end transferred once the customer reports success. Also hands a two-party conference over.";
    CALL_TRANSFER_CANCEL "call.transfer.cancel" => CallTransferCancel(TransferConsultCallsParams) -> Empty,
        "Cancel a consult: hang up the colleague's call and take the customer off hold.";
    CALL_RECORD_START "call.record.start" => CallRecordStart(CallParams) -> RecordStartResult,
        "Record an answered call: a stereo WAV (left the agent, right the remote party) under recording.dir; refused when recording.mode (or the account's) is never.";
    CALL_RECORD_STOP "call.record.stop" => CallRecordStop(CallParams) -> Empty,
        "Stop recording: the file is closed and saved (recording.saved).";
    CALL_RECORD_PAUSE "call.record.pause" => CallRecordPause(CallParams) -> Empty,
        "Pause: silence is written meanwhile (timing stays true) and the span is listed in the sidecar.";
    CALL_RECORD_RESUME "call.record.resume" => CallRecordResume(CallParams) -> Empty,
        "Resume a paused recording.";
    CALL_MERGE "call.merge" => CallMerge(MergeParams) -> MergeResult,
        "Join answered calls (and the conference so far) into the local conference: each party hears everyone but itself, the agent hears all; held calls are resumed.",
        example {"calls": ["7f3a-1", "7f3a-2"]}
            => {"conference": ["7f3a-1", "7f3a-2"]};
    CALLBACK_OFFER "callback.offer" => CallbackOffer(Offer) -> CallbackResult,
        "Offer a callback to the agent (agent-first), or show its context for an existing inbound call (`call`, customer-first).",
        example {
            "customer": "Ada Lovelace",
            "queue": "billing",
            "reason": "Question about an invoice",
            "numbers": [{"label": "mobile", "number": "+15551230000"}],
            "dial_mode": "automatic",
            "countdown_ms": 10000
        } => {"callback": "cb-51c0e2d93a7b4f18"};
    CALLBACK_ACCEPT "callback.accept" => CallbackAccept(CallbackParams) -> Empty,
        "Accept an offered callback: preview; the dial countdown starts in automatic mode; a customer-first call is answered.";
    CALLBACK_REJECT "callback.reject" => CallbackReject(CallbackParams) -> Empty,
        "Turn an offered callback down (closed: rejected); a customer-first call goes back to the queue (486).";
    CALLBACK_SELECT_NUMBER "callback.select_number" => CallbackSelectNumber(SelectNumberParams) -> Empty,
        "Choose which of the customer's numbers Call number and Retry dial.";
    CALLBACK_CALL "callback.call" => CallbackCall(CallbackParams) -> Empty,
        "Call number: dial the selected number now (stops the countdown).";
    CALLBACK_RETRY "callback.retry" => CallbackRetry(CallbackParams) -> Empty,
        "Dial again after an unanswered, busy or failed attempt (or from wrap-up).";
    CALLBACK_COUNTDOWN_CANCEL "callback.countdown.cancel" => CallbackCountdownCancel(CallbackParams) -> Empty,
        "Stop the running countdown (dial or wrap-up): the agent continues by hand.";
    CALLBACK_CLOSE "callback.close" => CallbackClose(CallbackParams) -> Empty,
        "Close callback from preview, before or after unanswered attempts (closed: closed_by_agent).";
    CALLBACK_UPDATE "callback.update" => CallbackUpdate(UpdateParams) -> Empty,
        "Edit the context card (reason for the call, notes, context) before and during the callback, wrap-up included; what is given replaces what was.",
        example {"callback": "cb-51c0e2d93a7b4f18", "reason": "Invoice 4411 charged twice", "notes": "Prefers email follow-up"} => {};
    CALLBACK_WRAPUP "callback.wrapup" => CallbackWrapup(WrapupParams) -> Empty,
        "Submit the wrap-up (reason, notes, disposition) and close (closed: completed).";
    CALLBACK_TRANSFER "callback.transfer" => CallbackTransfer(TransferParams) -> Empty,
        "Before dialing, hand the callback to a queue or an agent (transferring).",
        example {"callback": "cb-51c0e2d93a7b4f18", "queue": "billing-tier2"} => {};
    CALLBACK_TRANSFER_CANCEL "callback.transfer.cancel" => CallbackTransferCancel(CallbackParams) -> Empty,
        "Cancel a transfer not yet accepted: back to preview, no countdown.";
    CALLBACK_TRANSFER_ACCEPT "callback.transfer.accept" => CallbackTransferAccept(CallbackParams) -> Empty,
        "The contact center reports the transfer taken over (closed: transferred).";
    CALLBACK_LIST "callback.list" => CallbackList(NoParams) -> CallbackListResult,
        "Open callbacks (scheduled ones too) with attempts, countdown settings and context.";
    CALLBACK_SCHEDULE "callback.schedule" => CallbackSchedule(ScheduleParams) -> CallbackResult,
        "Book a callback at the customer's date and time; offered callback.schedule_lead_ms before it is due.",
        example {"number": "+15551230000", "at": "2036-11-23T09:30:00-05:00", "customer": "Ada Lovelace"}
            => {"callback": "cb-51c0e2d93a7b4f18"};
    CALLBACK_RESCHEDULE "callback.reschedule" => CallbackReschedule(RescheduleParams) -> Empty,
        "Move a scheduled (or offered, or previewed) callback to another time.",
        example {"callback": "cb-51c0e2d93a7b4f18", "at": "2036-11-24T14:00", "tz": "America/New_York"} => {};
    CALLBACK_CANCEL "callback.cancel" => CallbackCancel(CallbackParams) -> Empty,
        "Cancel a scheduled callback (closed: cancelled).";
    HISTORY_LIST "history.list" => HistoryList(HistoryParams) -> HistoryResult,
        "Stored callbacks (with attempts, preview duration, wrap-up, outcome) and calls, newest first.";
    BRIDGE_PAIR "bridge.pair" => BridgePair(BridgePairParams) -> BridgePairResult,
        "Unix socket only: pair a web workspace's origin with the browser bridge; the token is shown this once (only its hash is kept).",
        example {"origin": "http://127.0.0.1:8080"}
            => {"id": "b1c2d3e4f5a6", "origin": "http://127.0.0.1:8080", "token": "q5cV2y0LnqE1m7m3kF8WmQ5P1pC7yZ2rTt0uJvX9aBc"};
    BRIDGE_LIST "bridge.list" => BridgeList(NoParams) -> BridgeListResult,
        "Unix socket only: the paired origins (never a token).";
    BRIDGE_REVOKE "bridge.revoke" => BridgeRevoke(BridgeRevokeParams) -> Empty,
        "Unix socket only: forget a pairing; pages using it are closed (1008).";
    BRIDGE_AUTH "bridge.auth" => BridgeAuth(BridgeAuthParams) -> BridgeAuthResult,
        "Bridge only, and its first frame: the token paired with the page's origin. Nothing else is answered before it.";
    DEBUG_STALL "debug.stall" => DebugStall(StallParams) -> Empty,
        "Test hook, Unix socket only: block the daemon's run loop for ms milliseconds (at most 10000), as a hung loop would; refused unless the daemon was started with SOFTPHONED_TEST_HOOKS=1.",
        example {"ms": 1000} => {};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_the_method_and_checks_its_params() {
        let dial = Request::parse(method::CALL_DIAL, json!({"to": "sip:bob@127.0.0.1"})).unwrap();
        assert!(matches!(&dial, Request::CallDial(DialParams { to, account: None }) if to == "sip:bob@127.0.0.1"));
        assert_eq!(dial.method(), "call.dial");

        let unknown = Request::parse("call.fly", json!({})).unwrap_err();
        assert_eq!(unknown.code, code::METHOD_NOT_FOUND);
        assert_eq!(unknown.message, r#"unknown method "call.fly"; see proto/openrpc.json"#);

        let missing = Request::parse(method::CALL_DIAL, json!({})).unwrap_err();
        assert_eq!(
            (missing.code, missing.message.as_str()),
            (code::INVALID_PARAMS, "invalid params: missing field `to`")
        );
        let extra = Request::parse(method::CALL_LIST, json!({"extra": 1})).unwrap_err();
        assert_eq!(extra.code, code::INVALID_PARAMS);
        assert!(Request::parse(method::CALL_LIST, json!({})).is_ok());
    }

    #[test]
    fn names_are_unique_and_every_example_parses_to_its_method() {
        let mut names: Vec<&str> = Request::METHODS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Request::METHODS.len());
        for spec in Request::METHODS {
            if let Some(example) = spec.example {
                let request = Request::parse(spec.name, example().0).unwrap();
                assert_eq!(request.method(), spec.name);
            }
        }
    }

    #[test]
    fn a_request_serializes_as_method_and_params_and_reads_back() {
        let request = Request::parse(method::CALL_HANGUP, json!({"call": "c1"})).unwrap();
        let wire = serde_json::to_value(&request).unwrap();
        assert_eq!(wire, json!({"method": "call.hangup", "params": {"call": "c1"}}));
        let back: Request = serde_json::from_value(wire).unwrap();
        assert!(matches!(back, Request::CallHangup(CallParams { call }) if call == "c1"));
    }
}
