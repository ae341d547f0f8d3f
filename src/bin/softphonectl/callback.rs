//! `softphonectl callback ...` and `softphonectl history`: each subcommand's
//! arguments serialize as its method's params, so the command line and the
//! contract cannot drift apart field by field; and the one-line summaries
//! of a callback and of a history entry.

use clap::{Args, Subcommand};
use serde::{Serialize, Serializer};
use serde_json::{json, Value};
use softphoned::callback::CustomerNumber;
use softphoned::control::api::method;

#[derive(Subcommand)]
pub enum CallbackCmd {
    /// Offer a callback to the agent; prints its id.
    Offer(OfferArgs),
    /// Take an offered callback into preview.
    Accept(Id),
    /// Turn an offered callback down.
    Reject(Id),
    /// Dial the selected number now.
    Call(Id),
    /// Dial again after an attempt that did not reach the customer.
    Retry(Id),
    /// Close a callback in preview without a connected call.
    Close(Id),
    /// Stop the running auto-dial or wrap-up countdown.
    CancelCountdown(Id),
    /// Take back a transfer nobody has accepted yet.
    TransferCancel(Id),
    /// The queue or agent took the transfer: the callback closes as transferred.
    TransferAccepted(Id),
    /// Drop a scheduled callback.
    Cancel(Id),
    /// Choose the number to dial (a number of the callback, or its label).
    Select(SelectArgs),
    /// Edit the context card (reason for the call, notes) before or during the callback.
    Update(UpdateArgs),
    /// Submit the wrap-up after the call; closes the callback.
    Wrapup(WrapupArgs),
    /// Hand a callback in preview to a queue or to an agent.
    Transfer(TransferArgs),
    /// Book a callback for later; prints its id.
    Schedule(ScheduleArgs),
    /// Move a callback to another time.
    Reschedule(RescheduleArgs),
    /// Open callbacks (scheduled ones too), one per line.
    List,
}

impl CallbackCmd {
    /// The method this subcommand calls, and its params.
    pub fn request(self) -> (&'static str, Value) {
        use CallbackCmd as C;
        match self {
            C::Offer(args) => (method::CALLBACK_OFFER, params(args)),
            C::Accept(id) => (method::CALLBACK_ACCEPT, params(id)),
            C::Reject(id) => (method::CALLBACK_REJECT, params(id)),
            C::Call(id) => (method::CALLBACK_CALL, params(id)),
            C::Retry(id) => (method::CALLBACK_RETRY, params(id)),
            C::Close(id) => (method::CALLBACK_CLOSE, params(id)),
            C::CancelCountdown(id) => (method::CALLBACK_COUNTDOWN_CANCEL, params(id)),
            C::TransferCancel(id) => (method::CALLBACK_TRANSFER_CANCEL, params(id)),
            C::TransferAccepted(id) => (method::CALLBACK_TRANSFER_ACCEPT, params(id)),
            C::Cancel(id) => (method::CALLBACK_CANCEL, params(id)),
            C::Select(args) => (method::CALLBACK_SELECT_NUMBER, params(args)),
            C::Update(args) => (method::CALLBACK_UPDATE, params(args)),
            C::Wrapup(args) => (method::CALLBACK_WRAPUP, params(args)),
            C::Transfer(args) => (method::CALLBACK_TRANSFER, params(args)),
            C::Schedule(args) => (method::CALLBACK_SCHEDULE, params(args)),
            C::Reschedule(args) => (method::CALLBACK_RESCHEDULE, params(args)),
            C::List => (method::CALLBACK_LIST, json!({})),
        }
    }
}

fn params(args: impl Serialize) -> Value {
    serde_json::to_value(args).expect("arguments are plain structs")
}

#[derive(Args, Serialize)]
pub struct Id {
    /// The callback's id.
    #[serde(rename = "callback")]
    id: String,
}

#[derive(Args, Serialize)]
pub struct OfferArgs {
    /// The customer's name.
    #[arg(long)]
    customer: String,
    /// The queue it came from.
    #[arg(long)]
    queue: String,
    /// A number to call the customer on, as LABEL=NUMBER or NUMBER; repeat
    /// for more. The first is selected.
    #[arg(long = "number", value_name = "[LABEL=]NUMBER", required = true, value_parser = customer_number)]
    numbers: Vec<CustomerNumber>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// As soon as possible (default), or at a time the customer chose.
    #[arg(long = "type", value_parser = ["asap", "scheduled"])]
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    dial: DialArgs,
    /// Close wrap-up by itself after this long (default: the daemon's [callback] config).
    #[arg(long)]
    wrapup_ms: Option<u64>,
    /// The account to dial from (default: the first configured).
    #[arg(long)]
    account: Option<String>,
    /// Customer-first: the inbound call this callback arrives as.
    #[arg(long)]
    call: Option<String>,
    /// Keep this id (the contact center's) instead of drawing one.
    #[arg(long)]
    id: Option<String>,
    /// Free-form context shown to the agent, as JSON.
    #[arg(long, value_parser = json_value)]
    context: Option<Value>,
}

/// How a callback is dialled once accepted.
#[derive(Args, Serialize)]
struct DialArgs {
    /// Dial by itself when the countdown, started on accept, reaches zero.
    #[arg(long, requires = "countdown_ms")]
    #[serde(rename = "dial_mode", serialize_with = "dial_mode")]
    automatic: bool,
    /// Length of the automatic dial countdown.
    #[arg(long, requires = "automatic")]
    #[serde(skip_serializing_if = "Option::is_none")]
    countdown_ms: Option<u64>,
}

fn dial_mode<S: Serializer>(automatic: &bool, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(if *automatic { "automatic" } else { "manual" })
}

#[derive(Args, Serialize)]
pub struct SelectArgs {
    #[command(flatten)]
    #[serde(flatten)]
    id: Id,
    /// One of the callback's numbers, or its label.
    number: String,
}

#[derive(Args, Serialize)]
pub struct UpdateArgs {
    #[command(flatten)]
    #[serde(flatten)]
    id: Id,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<String>,
}

#[derive(Args, Serialize)]
pub struct WrapupArgs {
    #[command(flatten)]
    #[serde(flatten)]
    id: Id,
    #[arg(long)]
    reason: Option<String>,
    #[arg(long)]
    notes: Option<String>,
    #[arg(long)]
    disposition: Option<String>,
}

#[derive(Args, Serialize)]
pub struct TransferArgs {
    #[command(flatten)]
    #[serde(flatten)]
    id: Id,
    #[command(flatten)]
    #[serde(flatten)]
    target: TransferTarget,
}

/// Exactly one of the two.
#[derive(Args, Serialize)]
#[group(required = true, multiple = false)]
struct TransferTarget {
    /// Hand it to this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Hand it to this agent.
    #[arg(long)]
    agent: Option<String>,
}

#[derive(Args, Serialize)]
pub struct ScheduleArgs {
    /// The customer's number (or a SIP URI).
    number: String,
    /// When: RFC 3339 with an offset (2026-11-23T09:30:00-05:00), or the
    /// customer's local 2026-11-23T09:30 with --tz.
    at: String,
    /// The customer's IANA time zone, e.g. America/New_York.
    #[arg(long)]
    tz: Option<String>,
    #[arg(long)]
    customer: Option<String>,
    #[arg(long)]
    reason: Option<String>,
    #[arg(long)]
    notes: Option<String>,
    #[arg(long)]
    queue: Option<String>,
    /// The account to dial from (default: the first configured).
    #[arg(long)]
    account: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    dial: DialArgs,
}

#[derive(Args, Serialize)]
pub struct RescheduleArgs {
    #[command(flatten)]
    #[serde(flatten)]
    id: Id,
    /// As in `callback schedule`.
    at: String,
    /// The customer's time zone (default: the one given before).
    #[arg(long)]
    tz: Option<String>,
    /// New notes (default: the earlier ones stay).
    #[arg(long)]
    notes: Option<String>,
}

/// `softphonectl history`: ended and open callbacks and calls, newest first.
#[derive(Args, Serialize)]
pub struct HistoryArgs {
    /// Only what began at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// At most this many entries (the daemon's default is 100).
    #[arg(long)]
    limit: Option<usize>,
    /// Only `call` or only `callback` records.
    #[arg(long)]
    kind: Option<String>,
    /// Only this customer's callbacks and their calls.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    customer: Option<String>,
    /// Only callbacks listing this number and calls to or from it.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<String>,
}

impl HistoryArgs {
    pub fn request(self) -> (&'static str, Value) {
        (method::HISTORY_LIST, params(self))
    }
}

/// `LABEL=NUMBER` or `NUMBER`. Only a plain word counts as a label, so the
/// `=` of a SIP URI parameter (`sip:ada@example.com;transport=tcp`) stays
/// part of the number.
fn customer_number(arg: &str) -> Result<CustomerNumber, String> {
    let is_label = |word: &str| !word.is_empty() && word.chars().all(|c| c.is_alphanumeric() || "-_ ".contains(c));
    let (label, number) = match arg.split_once('=') {
        Some((label, number)) if is_label(label) => (label, number),
        _ => ("", arg),
    };
    if number.trim().is_empty() {
        return Err("the number is empty".into());
    }
    Ok(CustomerNumber { label: label.into(), number: number.into() })
}

fn json_value(arg: &str) -> Result<Value, String> {
    serde_json::from_str(arg).map_err(|e| format!("not JSON: {e}"))
}

/// `ID STATE CUSTOMER SELECTED-NUMBER ATTEMPTS LAST-OUTCOME [restored]`, tab-separated.
pub fn callback_line(callback: &Value) -> String {
    let attempts = attempts(callback);
    let mut line =
        [&callback["callback"], &callback["state"], &callback["customer"], &callback["selected"]].map(text).join("\t");
    let last = attempts.last().map_or("-", outcome);
    line.push_str(&format!("\t{}\t{last}", attempts.len()));
    if callback["restored"].as_bool() == Some(true) {
        line.push_str("\trestored");
    }
    line
}

/// `KIND ID CLOSE-OR-END-REASON CREATED_AT [N attempts: o1, o2] [preview N ms]`
/// (a callback), `KIND ID REASON CREATED_AT DIRECTION REMOTE [SIP-CODE]` (a
/// call), tab-separated.
pub fn history_line(entry: &Value) -> String {
    let kind = text(&entry["kind"]);
    // A callback's record also names the call of its attempt: the id is the field named by its kind.
    let id = text(entry.get(kind).unwrap_or(&Value::Null));
    let state = text(entry.get("closed").or(entry.get("reason")).unwrap_or(&entry["state"]));
    let mut fields = vec![kind.to_string(), id.to_string(), state.to_string(), text(&entry["created_at"]).to_string()];
    if entry["attempts"].is_array() {
        fields.push(attempts_summary(attempts(entry)));
    }
    if let Some(preview) = entry["preview_ms"].as_u64() {
        fields.push(format!("preview {preview} ms"));
    }
    if kind == "call" {
        fields.extend([text(&entry["direction"]).to_string(), text(&entry["remote"]).to_string()]);
        fields.extend(entry["sip_code"].as_u64().map(|code| code.to_string()));
    }
    fields.join("\t")
}

/// `0 attempts`, `1 attempt: busy`, `2 attempts: busy, answered`.
fn attempts_summary(attempts: &[Value]) -> String {
    let outcomes: Vec<&str> = attempts.iter().map(outcome).collect();
    match outcomes.len() {
        0 => "0 attempts".into(),
        1 => format!("1 attempt: {}", outcomes[0]),
        n => format!("{n} attempts: {}", outcomes.join(", ")),
    }
}

fn attempts(record: &Value) -> &[Value] {
    record["attempts"].as_array().map_or(&[], Vec::as_slice)
}

/// An attempt has no outcome while it is under way.
fn outcome(attempt: &Value) -> &str {
    attempt["outcome"].as_str().unwrap_or("in_progress")
}

/// A string field, `-` when absent or empty so the columns stay in place.
fn text(value: &Value) -> &str {
    value.as_str().filter(|s| !s.is_empty()).unwrap_or("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_takes_a_label_only_from_a_plain_word_before_the_equals_sign() {
        let parsed = |arg| customer_number(arg).map(|n| (n.label, n.number));
        assert_eq!(parsed("mobile=5550001"), Ok(("mobile".into(), "5550001".into())));
        assert_eq!(parsed("5550001"), Ok(("".into(), "5550001".into())));
        assert_eq!(
            parsed("sip:ada@example.com;transport=tcp"),
            Ok(("".into(), "sip:ada@example.com;transport=tcp".into()))
        );
        assert_eq!(
            parsed("work=sip:ada@example.com;transport=tcp"),
            Ok(("work".into(), "sip:ada@example.com;transport=tcp".into()))
        );
        assert!(parsed("mobile=").is_err());
        assert!(parsed("").is_err());
    }

    #[test]
    fn a_callback_line_shows_its_attempts_and_last_outcome() {
        let fresh =
            json!({ "callback": "cb-1", "state": "offered", "customer": "", "selected": "555", "attempts": [] });
        assert_eq!(callback_line(&fresh), "cb-1\toffered\t-\t555\t0\t-");
        let retried = json!({
            "callback": "cb-2", "state": "dialing", "customer": "Ada", "selected": "556", "restored": true,
            "attempts": [{ "outcome": "busy" }, { "number": "556" }],
        });
        assert_eq!(callback_line(&retried), "cb-2\tdialing\tAda\t556\t2\tin_progress\trestored");
    }

    #[test]
    fn a_history_line_names_the_record_by_its_kind_and_summarizes_attempts() {
        let callback = json!({
            "kind": "callback", "callback": "cb-1", "call": "c-9", "state": "closed", "closed": "completed",
            "created_at": "2026-01-01T10:00:00Z", "preview_ms": 1500,
            "attempts": [{ "outcome": "busy" }, { "outcome": "answered" }],
        });
        assert_eq!(
            history_line(&callback),
            "callback\tcb-1\tcompleted\t2026-01-01T10:00:00Z\t2 attempts: busy, answered\tpreview 1500 ms"
        );
        let one = json!({ "kind": "callback", "callback": "cb-2", "state": "wrapup", "attempts": [{ "outcome": "answered" }] });
        assert_eq!(history_line(&one), "callback\tcb-2\twrapup\t-\t1 attempt: answered");
        let call = json!({
            "kind": "call", "call": "c-1", "state": "ended", "reason": "busy", "sip_code": 486,
            "created_at": "2026-01-01T09:00:00Z", "direction": "outbound", "remote": "sip:bob@127.0.0.1",
        });
        assert_eq!(history_line(&call), "call\tc-1\tbusy\t2026-01-01T09:00:00Z\toutbound\tsip:bob@127.0.0.1\t486");
    }
}
