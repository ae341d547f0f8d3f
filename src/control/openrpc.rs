//! The OpenRPC document for exactly what the daemon implements, built from
//! the types of `control::api` so the contract in `proto/` cannot drift:
//! the methods from the one table of [`Request::METHODS`], the
//! notifications (which OpenRPC has no place for) listed here.

use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use super::api::*;
use crate::call::phone::CallSummary;

/// A notification the daemon sends to subscribers.
struct Notification {
    name: &'static str,
    summary: &'static str,
    params: fn(&mut SchemaGenerator) -> Value,
}

fn notifications() -> Vec<Notification> {
    vec![
        Notification {
            name: event::CALL_STATE,
            summary: "A call changed state; the last one is `ended` with `reason` and, when SIP gave one, `sip_code`.",
            params: schema::<CallSummary>,
        },
        Notification {
            name: event::CALL_COUNTDOWN,
            summary: "An inbound call's auto-answer countdown: at start, each second, and at its stop with why.",
            params: schema::<CallCountdownEvent>,
        },
        Notification {
            name: event::CALL_DTMF,
            summary: "The peer pressed a key (RFC 4733 event or SIP INFO).",
            params: schema::<DtmfEvent>,
        },
        Notification {
            name: event::CALL_QUALITY,
            summary: "Periodic per-call quality: jitter, loss, RTT, MOS estimate (every media.quality_interval_ms).",
            params: schema::<QualityEvent>,
        },
        Notification {
            name: event::AUDIO_DEVICE,
            summary: "The audio backends changed (selected, select_failed, lost, reconnected) and what is used now.",
            params: schema::<AudioDeviceEvent>,
        },
        Notification {
            name: event::REGISTRATION_STATE,
            summary:
                "An account's registration changed: registering, registered, failed (sip_code, reason), unregistered.",
            params: schema::<RegistrationEvent>,
        },
        Notification {
            name: event::AGENT_STATE,
            summary: "The agent became ready or not ready.",
            params: schema::<AgentStateParams>,
        },
        Notification {
            name: event::CALLBACK_STATE,
            summary: "A callback changed: its whole record (state, attempt, call, attempts, closed reason, restored).",
            params: schema::<crate::callback::Callback>,
        },
        Notification {
            name: event::CALLBACK_COUNTDOWN,
            summary: "A callback's dial or wrap-up countdown: at start, each second, and at its stop with why.",
            params: schema::<CallbackCountdownEvent>,
        },
        Notification {
            name: event::CALL_FLAGS,
            summary: "A call's flags changed (call.flag): all of them now, so every tab shows the same marks.",
            params: schema::<CallFlagsEvent>,
        },
        Notification {
            name: event::RECORDING_STATE,
            summary: "A recording started, paused, resumed or stopped (recording.saved follows a stop).",
            params: schema::<RecordingStateEvent>,
        },
        Notification {
            name: event::RECORDING_SAVED,
            summary: "A recording is closed, synced and has its JSON sidecar (metadata, pauses, sha256).",
            params: schema::<RecordingSavedEvent>,
        },
        Notification {
            name: event::RECORDING_FAILED,
            summary: "A recording stopped (full disk, write error); what was written stays valid; the call goes on.",
            params: schema::<RecordingFailedEvent>,
        },
        Notification {
            name: event::EVENTS_OVERFLOW,
            summary: "This subscriber missed events; re-read state.",
            params: schema::<OverflowEvent>,
        },
    ]
}

/// The OpenRPC 1.2.6 document for exactly what is implemented. Notifications
/// from the daemon are listed under `x-notifications` (OpenRPC has no place
/// for server-to-client messages) with the same shape as methods.
pub fn openrpc_document() -> Value {
    let settings = schemars::generate::SchemaSettings::draft07().with(|s| {
        s.definitions_path = "#/components/schemas/".into();
    });
    let mut generator = settings.into_generator();
    let methods: Vec<Value> = Request::METHODS
        .iter()
        .map(|spec| {
            let mut doc = describe(&mut generator, spec.name, spec.summary, spec.params);
            doc["result"] = json!({"name": "result", "schema": (spec.result)(&mut generator)});
            if let Some(example) = spec.example {
                doc["examples"] = json!([example_pairing(example())]);
            }
            doc
        })
        .collect();
    let notifications: Vec<Value> =
        notifications().iter().map(|n| describe(&mut generator, n.name, n.summary, n.params)).collect();
    let schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
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

/// A method or notification: its name, summary and by-name params.
fn describe(
    generator: &mut SchemaGenerator,
    name: &str,
    summary: &str,
    params: fn(&mut SchemaGenerator) -> Value,
) -> Value {
    let params_schema = params(generator);
    json!({
        "name": name,
        "summary": summary,
        "paramStructure": "by-name",
        "params": by_name_params(&params_schema, generator),
    })
}

/// An OpenRPC example pairing: by-name params one by one, and the result.
fn example_pairing((params, result): (Value, Value)) -> Value {
    let params: Vec<Value> =
        params.as_object().into_iter().flatten().map(|(name, value)| json!({"name": name, "value": value})).collect();
    json!({"name": "example", "params": params, "result": {"name": "result", "value": result}})
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
