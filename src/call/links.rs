//! What ties a call to others, as the call itself keeps it: its consult
//! or customer, the conference, the call it replaced, the call whose peer
//! REFERred us to it. The moves that keep both sides of a link true are the
//! phone's (`phone/across_calls.rs`).

use serde::Serialize;

use super::CallId;

/// A call's links to other calls, as `call.state` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Links {
    /// On a customer's call: the consult call placed for its transfer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consult: Option<CallId>,
    /// On a consult call: the customer's call it consults for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consult_for: Option<CallId>,
    /// The call is in the local conference.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conference: bool,
    /// The call of ours this one replaced (an INVITE with Replaces).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<CallId>,
    /// The call whose peer REFERred us to place this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referred_by: Option<CallId>,
    /// A consult call being handed to its customer: the colleague's BYE
    /// that follows means the transfer worked.
    #[serde(skip)]
    pub(super) handing_over: bool,
    /// The last status told to the peer that REFERred us to this call.
    #[serde(skip)]
    pub(super) reported: Option<u16>,
}
