//! The OpenRPC document for exactly what the daemon implements, built from
//! the types of `control::api` so the contract in `proto/` cannot drift.

use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Value};

use super::api::*;
use crate::call::phone::CallSummary;

struct Entry {
    name: &'static str,
    summary: &'static str,
    params: fn(&mut SchemaGenerator) -> Value,
    result: Option<fn(&mut SchemaGenerator) -> Value>,
}

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

fn methods() -> Vec<Entry> {
    let mut all = call_methods();
    all.extend(transfer_methods());
    all.extend(callback_methods());
    all
}

fn transfer_methods() -> Vec<Entry> {
    use method::*;
    vec![
        method::<TransferBlindParams, Empty>(
            CALL_TRANSFER_BLIND,
            "Blind transfer: REFER the peer to `to`; call.state shows transferring, then ended (transferred) or, on failure, the call back with transfer.status failed and its sip_code.",
        ),
        method::<TransferConsultParams, TransferConsultResult>(
            CALL_TRANSFER_CONSULT,
            "Consult: hold the customer's call and dial the colleague; the result names the consult call, and call.state links both (consult / consult_for).",
        ),
        method::<TransferConsultCallsParams, Empty>(
            CALL_TRANSFER_COMPLETE,
            "Leave & transfer: REFER the customer to the colleague with Replaces naming the consult dialog (or, when the customer does not support Replaces, end the consult and REFER plainly); both calls end transferred once the customer reports success. Also hands a two-party conference over.",
        ),
        method::<TransferConsultCallsParams, Empty>(
            CALL_TRANSFER_CANCEL,
            "Cancel a consult: hang up the colleague's call and take the customer off hold.",
        ),
        method::<CallParams, RecordStartResult>(
            CALL_RECORD_START,
            "Record an answered call: a stereo WAV (left the agent, right the remote party) under recording.dir; refused when recording.mode (or the account's) is never.",
        ),
        method::<CallParams, Empty>(CALL_RECORD_STOP, "Stop recording: the file is closed and saved (recording.saved)."),
        method::<CallParams, Empty>(
            CALL_RECORD_PAUSE,
            "Pause: silence is written meanwhile (timing stays true) and the span is listed in the sidecar.",
        ),
        method::<CallParams, Empty>(CALL_RECORD_RESUME, "Resume a paused recording."),
        method::<MergeParams, MergeResult>(
            CALL_MERGE,
            "Join answered calls (and the conference so far) into the local conference: each party hears everyone but itself, the agent hears all; held calls are resumed.",
        ),
    ]
}

/// A method entry whose params are `P` and result `R`.
fn method<P: JsonSchema, R: JsonSchema>(name: &'static str, summary: &'static str) -> Entry {
    Entry { name, summary, params: schema::<P>, result: Some(schema::<R>) }
}

fn callback_methods() -> Vec<Entry> {
    use crate::callback::Offer;
    use method::*;
    vec![
        method::<Offer, CallbackResult>(CALLBACK_OFFER, "Offer a callback to the agent (agent-first), or show its context for an existing inbound call (`call`, customer-first)."),
        method::<CallbackParams, Empty>(CALLBACK_ACCEPT, "Accept an offered callback: preview; the dial countdown starts in automatic mode; a customer-first call is answered."),
        method::<CallbackParams, Empty>(CALLBACK_REJECT, "Turn an offered callback down (closed: rejected); a customer-first call goes back to the queue (486)."),
        method::<SelectNumberParams, Empty>(CALLBACK_SELECT_NUMBER, "Choose which of the customer's numbers Call number and Retry dial."),
        method::<CallbackParams, Empty>(CALLBACK_CALL, "Call number: dial the selected number now (stops the countdown)."),
        method::<CallbackParams, Empty>(CALLBACK_RETRY, "Dial again after an unanswered, busy or failed attempt (or from wrap-up)."),
        method::<CallbackParams, Empty>(CALLBACK_COUNTDOWN_CANCEL, "Stop the running countdown (dial or wrap-up): the agent continues by hand."),
        method::<CallbackParams, Empty>(CALLBACK_CLOSE, "Close callback from preview, before or after unanswered attempts (closed: closed_by_agent)."),
        method::<WrapupParams, Empty>(CALLBACK_WRAPUP, "Submit the wrap-up (reason, notes, disposition) and close (closed: completed)."),
        method::<TransferParams, Empty>(CALLBACK_TRANSFER, "Before dialing, hand the callback to a queue or an agent (transferring)."),
        method::<CallbackParams, Empty>(CALLBACK_TRANSFER_CANCEL, "Cancel a transfer not yet accepted: back to preview, no countdown."),
        method::<CallbackParams, Empty>(CALLBACK_TRANSFER_ACCEPT, "The contact center reports the transfer taken over (closed: transferred)."),
        method::<NoParams, CallbackListResult>(CALLBACK_LIST, "Open callbacks (scheduled ones too) with attempts, countdown settings and context."),
        method::<ScheduleParams, CallbackResult>(CALLBACK_SCHEDULE, "Book a callback at the customer's date and time; offered callback.schedule_lead_ms before it is due."),
        method::<RescheduleParams, Empty>(CALLBACK_RESCHEDULE, "Move a scheduled (or offered, or previewed) callback to another time."),
        method::<CallbackParams, Empty>(CALLBACK_CANCEL, "Cancel a scheduled callback (closed: cancelled)."),
        method::<HistoryParams, HistoryResult>(HISTORY_LIST, "Stored callbacks (with attempts, preview duration, wrap-up, outcome) and calls, newest first."),
    ]
}

fn call_methods() -> Vec<Entry> {
    use method::*;
    vec![
        Entry {
            name: DAEMON_STATUS,
            summary: "Version, uptime, listening points, call count and the audio backends in use.",
            params: schema::<NoParams>,
            result: Some(schema::<StatusResult>),
        },
        Entry {
            name: EVENTS_SUBSCRIBE,
            summary: "Receive notifications on this connection, for the given topics (default all).",
            params: schema::<SubscribeParams>,
            result: Some(schema::<SubscribeResult>),
        },
        Entry {
            name: CALL_DIAL,
            summary: "Place a call to a SIP URI.",
            params: schema::<DialParams>,
            result: Some(schema::<DialResult>),
        },
        Entry {
            name: CALL_ANSWER,
            summary: "Answer an incoming call (200 OK with our SDP answer).",
            params: schema::<CallParams>,
            result: Some(schema::<Empty>),
        },
        Entry {
            name: CALL_REJECT,
            summary: "Refuse an incoming call: busy (486) or decline (603).",
            params: schema::<RejectParams>,
            result: Some(schema::<Empty>),
        },
        Entry {
            name: CALL_HANGUP,
            summary: "End a call: CANCEL before answer, BYE after; an incoming call is declined.",
            params: schema::<CallParams>,
            result: Some(schema::<Empty>),
        },
        Entry {
            name: CALL_LIST,
            summary: "Live calls with state, direction, remote party, hold/mute and media counters.",
            params: schema::<NoParams>,
            result: Some(schema::<CallListResult>),
        },
        Entry {
            name: CALL_HOLD,
            summary:
                "Hold the peer: re-INVITE sendonly (inactive when the peer holds us too); hold music if configured.",
            params: schema::<CallParams>,
            result: Some(schema::<Empty>),
        },
        Entry {
            name: CALL_RESUME,
            summary: "Take the peer off hold: re-INVITE sendrecv (recvonly while the peer holds us).",
            params: schema::<CallParams>,
            result: Some(schema::<Empty>),
        },
        Entry {
            name: CALL_MUTE,
            summary: "Silence the agent's microphone on this call; RTP keeps flowing.",
            params: schema::<CallParams>,
            result: Some(schema::<Empty>),
        },
        Entry {
            name: CALL_UNMUTE,
            summary: "Give the call the agent's microphone again.",
            params: schema::<CallParams>,
            result: Some(schema::<Empty>),
        },
        Entry {
            name: CALL_DTMF,
            summary: "Send keys: RFC 4733 events when negotiated, else SIP INFO (application/dtmf-relay).",
            params: schema::<DtmfParams>,
            result: Some(schema::<Empty>),
        },
        Entry {
            name: CALL_STATS,
            summary: "RTP/RTCP figures of a call: packets, loss, jitter, RTT, jitter buffer, MOS estimate.",
            params: schema::<CallParams>,
            result: Some(schema::<CallStatsResult>),
        },
        Entry {
            name: AUDIO_DEVICES,
            summary: "Sound devices the system offers (inputs, outputs) and the backends in use.",
            params: schema::<NoParams>,
            result: Some(schema::<AudioDevicesResult>),
        },
        Entry {
            name: AUDIO_SELECT,
            summary: "Switch input and/or output device, also mid-call; the outcome comes as audio.device.",
            params: schema::<AudioSelectParams>,
            result: Some(schema::<Empty>),
        },
        Entry {
            name: ACCOUNT_LIST,
            summary: "The configured accounts and their registration state (never a password).",
            params: schema::<NoParams>,
            result: Some(schema::<AccountListResult>),
        },
        Entry {
            name: ACCOUNT_REGISTER,
            summary: "Register the account now and keep it registered.",
            params: schema::<AccountParams>,
            result: Some(schema::<Empty>),
        },
        Entry {
            name: ACCOUNT_UNREGISTER,
            summary: "Remove the account's binding (Expires: 0) and stay unregistered.",
            params: schema::<AccountParams>,
            result: Some(schema::<Empty>),
        },
        Entry {
            name: AGENT_SET_STATE,
            summary: "Ready takes calls; not ready refuses them (486 or 480) without ringing.",
            params: schema::<AgentStateParams>,
            result: Some(schema::<Empty>),
        },
    ]
}

fn notifications() -> Vec<Entry> {
    vec![
        Entry {
            name: event::CALL_STATE,
            summary: "A call changed state; the last one is `ended` with `reason` and, when SIP gave one, `sip_code`.",
            params: schema::<CallSummary>,
            result: None,
        },
        Entry {
            name: event::CALL_COUNTDOWN,
            summary: "An inbound call's auto-answer countdown: at start, each second, and at its stop with why.",
            params: schema::<CallCountdownEvent>,
            result: None,
        },
        Entry {
            name: event::CALL_DTMF,
            summary: "The peer pressed a key (RFC 4733 event or SIP INFO).",
            params: schema::<DtmfEvent>,
            result: None,
        },
        Entry {
            name: event::CALL_QUALITY,
            summary: "Periodic per-call quality: jitter, loss, RTT, MOS estimate (every media.quality_interval_ms).",
            params: schema::<QualityEvent>,
            result: None,
        },
        Entry {
            name: event::AUDIO_DEVICE,
            summary: "The audio backends changed (selected, select_failed, lost, reconnected) and what is used now.",
            params: schema::<AudioDeviceEvent>,
            result: None,
        },
        Entry {
            name: event::REGISTRATION_STATE,
            summary:
                "An account's registration changed: registering, registered, failed (sip_code, reason), unregistered.",
            params: schema::<RegistrationEvent>,
            result: None,
        },
        Entry {
            name: event::AGENT_STATE,
            summary: "The agent became ready or not ready.",
            params: schema::<AgentStateParams>,
            result: None,
        },
        Entry {
            name: event::CALLBACK_STATE,
            summary: "A callback changed: its whole record (state, attempt, call, attempts, closed reason, restored).",
            params: schema::<crate::callback::Callback>,
            result: None,
        },
        Entry {
            name: event::CALLBACK_COUNTDOWN,
            summary: "A callback's dial or wrap-up countdown: at start, each second, and at its stop with why.",
            params: schema::<CallbackCountdownEvent>,
            result: None,
        },
        Entry {
            name: event::RECORDING_SAVED,
            summary: "A recording is closed, synced and has its JSON sidecar (metadata, pauses, sha256).",
            params: schema::<RecordingSavedEvent>,
            result: None,
        },
        Entry {
            name: event::RECORDING_FAILED,
            summary: "A recording stopped (full disk, write error); what was written stays valid; the call goes on.",
            params: schema::<RecordingFailedEvent>,
            result: None,
        },
        Entry {
            name: event::EVENTS_OVERFLOW,
            summary: "This subscriber missed events; re-read state.",
            params: schema::<OverflowEvent>,
            result: None,
        },
    ]
}

/// Method names the daemon answers.
pub fn method_names() -> Vec<&'static str> {
    methods().iter().map(|m| m.name).collect()
}

/// The OpenRPC 1.2.6 document for exactly what is implemented. Notifications
/// from the daemon are listed under `x-notifications` (OpenRPC has no place
/// for server-to-client messages) with the same shape as methods.
pub fn openrpc_document() -> Value {
    let settings = schemars::generate::SchemaSettings::draft07().with(|s| {
        s.definitions_path = "#/components/schemas/".into();
    });
    let mut generator = settings.into_generator();
    let mut describe = |entry: &Entry| {
        let params_schema = (entry.params)(&mut generator);
        let mut doc = json!({
            "name": entry.name,
            "summary": entry.summary,
            "paramStructure": "by-name",
            "params": by_name_params(&params_schema, &generator),
        });
        if let Some(result) = entry.result {
            doc["result"] = json!({"name": "result", "schema": result(&mut generator)});
        }
        doc
    };
    let methods: Vec<Value> = methods().iter().map(&mut describe).collect();
    let notifications: Vec<Value> = notifications().iter().map(&mut describe).collect();
    let schemas: serde_json::Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    json!({
        "openrpc": "1.2.6",
        "info": {
            "title": "softphoned control protocol",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "JSON-RPC 2.0 over a Unix socket, one object per line. Errors: -32700 parse error, -32600 invalid request (also: line over 64 KiB), -32601 unknown method, -32602 invalid params, -32000 unknown call, -32001 command not valid in the call's or callback's state (the message names the state), -32002 daemon could not carry it out, -32003 unknown callback. A new subscriber first receives a call.state for every live call and a callback.state for every open callback."
        },
        "methods": methods,
        "x-notifications": notifications,
        "components": {"schemas": schemas},
    })
}

/// OpenRPC lists by-name params one by one: split the params object's schema.
fn by_name_params(schema: &Value, generator: &SchemaGenerator) -> Vec<Value> {
    let resolved = match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap_or_default();
            generator.definitions().get(name).cloned().unwrap_or(Value::Null)
        }
        None => schema.clone(),
    };
    let required: Vec<&str> = resolved
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = resolved.get("properties").and_then(Value::as_object) else { return Vec::new() };
    properties
        .iter()
        .map(|(name, schema)| json!({"name": name, "required": required.contains(&name.as_str()), "schema": schema}))
        .collect()
}
