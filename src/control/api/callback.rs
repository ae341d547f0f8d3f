//! The callback and history part of the control protocol: params and
//! results of `callback.*` and `history.list`, and the `callback.*`
//! notifications. The callback itself is [`crate::callback::Callback`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call::CallId;
use crate::callback::{Callback, CallbackId, CardEdit, CountdownReport, CustomerNumber, DialMode, TransferTarget};

#[derive(Debug, Serialize, JsonSchema)]
pub struct CallbackResult {
    pub callback: CallbackId,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackParams {
    pub callback: CallbackId,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectNumberParams {
    pub callback: CallbackId,
    /// One of the callback's numbers (or its label).
    pub number: String,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateParams {
    pub callback: CallbackId,
    /// The reason for the call, as the agent now understands it.
    pub reason: Option<String>,
    pub notes: Option<String>,
    /// Replaces the free-form context.
    pub context: Option<Value>,
}

impl UpdateParams {
    pub fn edit(self) -> CardEdit {
        CardEdit { reason: self.reason, notes: self.notes, context: self.context }
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WrapupParams {
    pub callback: CallbackId,
    pub reason: Option<String>,
    pub notes: Option<String>,
    pub disposition: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferParams {
    pub callback: CallbackId,
    /// Hand it to this queue...
    pub queue: Option<String>,
    /// ...or to this agent (exactly one of the two).
    pub agent: Option<String>,
}

impl TransferParams {
    pub fn target(&self) -> Result<TransferTarget, &'static str> {
        match (&self.queue, &self.agent) {
            (Some(queue), None) => Ok(TransferTarget::Queue(queue.clone())),
            (None, Some(agent)) => Ok(TransferTarget::Agent(agent.clone())),
            _ => Err("give exactly one of queue or agent"),
        }
    }
}

/// `callback.schedule`: the agent books a call back for later.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleParams {
    /// The customer's number (or a SIP URI): the one dialled. Optional
    /// when `numbers` or `from_call` give one.
    pub number: Option<String>,
    /// More numbers, with labels (an alternate, the office...), after `number`.
    pub numbers: Option<Vec<CustomerNumber>>,
    /// For the agent who will call: what to do, what was promised.
    pub instructions: Option<String>,
    /// Scheduled from this live call: its callback's customer, queue,
    /// reason and numbers (or else the call's own party) fill what is not given.
    pub from_call: Option<CallId>,
    /// RFC 3339 with the customer's offset (`2026-11-23T09:30:00-05:00`),
    /// or a local date-time (`2026-11-23T09:30`) with `tz`.
    pub at: String,
    /// The customer's IANA time zone, e.g. `America/New_York`.
    pub tz: Option<String>,
    pub customer: Option<String>,
    pub reason: Option<String>,
    pub notes: Option<String>,
    pub queue: Option<String>,
    pub account: Option<String>,
    /// How it is dialled once offered and accepted; manual by default.
    pub dial_mode: Option<DialMode>,
    pub countdown_ms: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleParams {
    pub callback: CallbackId,
    /// As in `callback.schedule`.
    pub at: String,
    /// The customer's time zone; the one given before when absent.
    pub tz: Option<String>,
    /// New notes; the earlier ones stay when absent.
    pub notes: Option<String>,
    /// New instructions for the agent who will call; the earlier ones stay when absent.
    pub instructions: Option<String>,
    /// Dial this number from now on (added to the callback's numbers if new).
    pub number: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CallbackListResult {
    /// Open callbacks (scheduled ones too), oldest offer first.
    pub callbacks: Vec<Callback>,
}

/// `callback.countdown`: at start, at least once a second, and at its stop with why.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CallbackCountdownEvent {
    pub callback: CallbackId,
    #[serde(flatten)]
    pub countdown: CountdownReport,
}

#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Only what began at or after this RFC 3339 time.
    pub since: Option<String>,
    /// At most this many entries (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Only `call` or only `callback` records; both by default.
    pub kind: Option<crate::store::RecordKind>,
    /// A contact's interactions: callbacks for this customer (name, any
    /// case) and the calls their attempts made.
    pub customer: Option<String>,
    /// A contact's interactions: callbacks listing this number, calls to or from it.
    pub number: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HistoryResult {
    /// Newest first; each has `kind` (`callback` or `call`) and that record's fields.
    pub entries: Vec<Value>,
}
