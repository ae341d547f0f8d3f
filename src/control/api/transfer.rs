//! The control API of transfers and the conference: blind and consult
//! transfer, Leave & transfer, cancelling a consult, and merging calls.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::call::CallId;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBlindParams {
    pub call: CallId,
    /// Where the peer is sent: a SIP URI, or a number at the call's account's domain.
    pub to: String,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferConsultParams {
    /// The customer's call: it is put on hold.
    pub call: CallId,
    /// The colleague: a SIP URI, or a number at the call's account's domain.
    pub to: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TransferConsultResult {
    /// The new call to the colleague; `call.state` links the two calls
    /// (`consult` on the customer's, `consult_for` on this one).
    pub consult: CallId,
}

/// `call.transfer.complete` and `call.transfer.cancel`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferConsultCallsParams {
    /// The customer's call.
    pub call: CallId,
    /// The call to the colleague.
    pub consult: CallId,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeParams {
    /// Answered calls to join into the local conference (with those already in it).
    pub calls: Vec<CallId>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MergeResult {
    /// Every call now in the conference.
    pub conference: Vec<CallId>,
}
