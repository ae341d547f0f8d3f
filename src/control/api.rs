//! The control protocol's vocabulary: every method's params and result, every
//! notification's params, and the OpenRPC document built from them. `proto/`
//! is this document checked in; a test keeps the two identical.

use schemars::{JsonSchema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::account::registration::Report;
use crate::audio::BackendInfo;
use crate::call::phone::CallSummary;
use crate::call::{CallId, Countdown, RejectReason};
use crate::config::{AgentState, Transport};
use crate::media::stream::StreamStats;
use crate::media::Codec;

/// Event topics a client may subscribe to (PROTOCOL.md); the default is all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    Call,
    Callback,
    Registration,
    Recording,
    Audio,
    Agent,
}

impl Topic {
    pub const ALL: [Topic; 6] =
        [Topic::Call, Topic::Callback, Topic::Registration, Topic::Recording, Topic::Audio, Topic::Agent];

    /// The topic of a notification, by its method's prefix.
    pub fn of(method: &str) -> Option<Topic> {
        let prefix = method.split('.').next()?;
        Topic::ALL.into_iter().find(|t| serde_json::to_value(t).ok().as_ref().and_then(Value::as_str) == Some(prefix))
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct Empty {}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeParams {
    /// The topics wanted; all when absent.
    pub topics: Option<Vec<Topic>>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SubscribeResult {
    pub topics: Vec<Topic>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusResult {
    pub version: String,
    pub uptime_ms: u64,
    /// SIP listening points, as `udp:HOST:PORT`, `tcp:...`, `tls:...`.
    pub sip_listen: Vec<String>,
    /// Number of live calls.
    pub calls: usize,
    pub agent_state: AgentState,
    pub accounts: Vec<AccountInfo>,
    pub audio: AudioStatus,
    pub recording_dir: String,
}

/// The audio backends in use. `tone`, `wav` and `null` are not a sound card,
/// and the daemon says so here rather than pretend.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AudioStatus {
    pub source: BackendInfo,
    pub sink: BackendInfo,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DialParams {
    /// A SIP URI (`sip:bob@127.0.0.1:5070`), or a number or user dialled
    /// at the account's domain.
    pub to: String,
    /// The account to call from; the first configured one when absent.
    pub account: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountParams {
    pub account: String,
}

/// An account as ops see it: never its password.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AccountInfo {
    pub account: String,
    pub aor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registrar: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound_proxy: Option<String>,
    pub transport: Transport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_answer_after_ms: Option<u64>,
    /// The registration as last reported.
    pub registration: Report,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AccountListResult {
    pub accounts: Vec<AccountInfo>,
}

/// `registration.state`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RegistrationEvent {
    pub account: String,
    #[serde(flatten)]
    pub report: Report,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentStateParams {
    /// `ready` takes calls; `not_ready` refuses them without ringing.
    pub state: AgentState,
}

/// What a countdown counts down to.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountdownKind {
    AutoAnswer,
}

/// `call.countdown`: when it starts, every second, and when it stops (with why).
#[derive(Debug, Serialize, JsonSchema)]
pub struct CallCountdownEvent {
    pub call: CallId,
    pub kind: CountdownKind,
    #[serde(flatten)]
    pub countdown: Countdown,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DialResult {
    pub call: CallId,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallParams {
    pub call: CallId,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectParams {
    pub call: CallId,
    /// `busy` (486, the default) or `decline` (603).
    #[serde(default)]
    pub reason: RejectReason,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CallListResult {
    pub calls: Vec<CallInfo>,
}

/// A live call as `call.list` shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CallInfo {
    #[serde(flatten)]
    pub summary: CallSummary,
    /// The negotiated codec, once media flows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec: Option<Codec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<StreamStats>,
}

/// Sent when a subscriber fell so far behind that events were dropped for
/// it; the client should re-read state with `call.list`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OverflowEvent {
    pub missed: u64,
}

/// Method names, shared by the dispatcher and the document.
pub mod method {
    pub const DAEMON_STATUS: &str = "daemon.status";
    pub const EVENTS_SUBSCRIBE: &str = "events.subscribe";
    pub const CALL_DIAL: &str = "call.dial";
    pub const CALL_ANSWER: &str = "call.answer";
    pub const CALL_REJECT: &str = "call.reject";
    pub const CALL_HANGUP: &str = "call.hangup";
    pub const CALL_LIST: &str = "call.list";
    pub const ACCOUNT_LIST: &str = "account.list";
    pub const ACCOUNT_REGISTER: &str = "account.register";
    pub const ACCOUNT_UNREGISTER: &str = "account.unregister";
    pub const AGENT_SET_STATE: &str = "agent.set_state";
}

/// Notification names.
pub mod event {
    pub const CALL_STATE: &str = "call.state";
    pub const CALL_COUNTDOWN: &str = "call.countdown";
    pub const REGISTRATION_STATE: &str = "registration.state";
    pub const AGENT_STATE: &str = "agent.state";
    pub const EVENTS_OVERFLOW: &str = "events.overflow";
}

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
            summary: "Live calls with state, direction, remote party and media counters.",
            params: schema::<NoParams>,
            result: Some(schema::<CallListResult>),
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
            "description": "JSON-RPC 2.0 over a Unix socket, one object per line. Errors: -32700 parse error, -32600 invalid request (also: line over 64 KiB), -32601 unknown method, -32602 invalid params, -32000 unknown call, -32001 command not valid in the call's state, -32002 daemon could not carry it out."
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
