//! Handing an answered call on: REFER (RFC 3515) to a URI (blind) or to
//! the colleague of a consult call, replacing that call (attended, RFC
//! 3891), then the transferee's progress reports (NOTIFY with a sipfrag);
//! success ends our call as `transferred`, failure or silence leaves it
//! with the agent and says why, so a failed transfer never loses the
//! customer. Being transferred (the peer REFERs us) is followed here too.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Call, CallError, CallId, CallState, Effect, EndReason, SipAction};

/// How long a transferee may take to report the outcome of its call to the
/// target before we take the transfer as failed: longer than an INVITE
/// transaction (64 × T1) plus some ringing.
pub const TRANSFER_REPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a REFER sends the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferTarget {
    /// Call this URI (blind transfer, or attended without Replaces).
    Uri(String),
    /// Call the peer of our call `consult` (at `uri`), replacing our dialog
    /// with it: the SIP side adds Replaces from that dialog.
    Replacing { uri: String, consult: CallId },
}

impl ReferTarget {
    fn uri(&self) -> &str {
        match self {
            ReferTarget::Uri(uri) | ReferTarget::Replacing { uri, .. } => uri,
        }
    }
}

/// How the latest transfer of a call stands, as `call.state` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TransferReport {
    /// The target, as the REFER names it.
    pub to: String,
    /// The consult call whose colleague is the target (attended transfer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consult: Option<CallId>,
    /// The REFER asked the peer to replace the consult call (Replaces).
    pub replaces: bool,
    pub status: TransferStatus,
    /// The REFER's refusal, or the final status the transferee reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_code: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// REFER sent; the transferee is calling the target.
    Trying,
    /// Refused or not completed: the call is ours again.
    Failed,
}

impl Call {
    pub(super) fn transferring(&self) -> bool {
        self.transfer.as_ref().is_some_and(|t| t.status == TransferStatus::Trying)
    }

    /// REFER the peer to `target`; `consult` names the consult call when
    /// the target is its colleague.
    pub(super) fn refer(
        &mut self,
        target: ReferTarget,
        consult: Option<CallId>,
        now: Instant,
    ) -> Result<Vec<Effect>, CallError> {
        if self.transferring() || !self.is_established() {
            return Err(CallError::InvalidState { command: "transfer", state: self.state, direction: self.direction });
        }
        self.transfer = Some(TransferReport {
            to: target.uri().to_string(),
            consult,
            replaces: matches!(target, ReferTarget::Replacing { .. }),
            status: TransferStatus::Trying,
            sip_code: None,
        });
        self.state = CallState::Transferring;
        self.timers.transfer_due = Some(now + TRANSFER_REPORT_TIMEOUT);
        let mut effects = Vec::new();
        // Behind a re-INVITE in flight (the customer's hold, when the agent
        // is quick): the REFER follows its answer.
        self.send_in_dialog(SipAction::Refer { target }, &mut effects);
        effects.push(Effect::StateChanged);
        Ok(effects)
    }

    /// A final status for the transfer: the REFER refused, or the
    /// transferee's final report on its call to the target.
    pub(super) fn transfer_finished(&mut self, code: u16, now: Instant, effects: &mut Vec<Effect>) {
        if !self.transferring() {
            return;
        }
        self.timers.transfer_due = None;
        if let Some(report) = self.transfer.as_mut() {
            report.sip_code = Some(code);
            if code >= 300 {
                report.status = TransferStatus::Failed;
            }
        }
        if code < 300 {
            // The transferee is talking to the target: our part is done.
            effects.push(Effect::Sip(SipAction::Bye));
            self.end(EndReason::Transferred, Some(code), now, effects);
        } else {
            tracing::info!(call = %self.id, code, "transfer failed: the call stays with the agent");
            self.state = self.established_state();
            effects.push(Effect::StateChanged);
        }
    }
}

impl Call {
    /// The transferee never told us how its call to the target went.
    pub(super) fn poll_transfer(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        if self.timers.transfer_due.is_some_and(|at| at <= now) {
            tracing::info!(call = %self.id, "the transferee never reported: transfer taken as failed");
            self.transfer_finished(408, now, effects);
        }
    }

    /// How our call to the target of a peer's REFER goes, for that peer:
    /// the NOTIFY sipfrag status to send now, if any. Each status is told
    /// once, and nothing after a final one (it ends the subscription).
    pub(super) fn next_referral_report(&mut self) -> Option<u16> {
        self.links.referred_by.as_ref()?;
        if self.links.reported.is_some_and(|code| code >= 200) {
            return None;
        }
        let code = match self.state {
            CallState::Ringing | CallState::EarlyMedia => 180,
            _ if self.is_established() => 200,
            CallState::Ended => self.sip_code.filter(|c| *c >= 300).unwrap_or(487),
            _ => return None,
        };
        if self.links.reported == Some(code) {
            return None;
        }
        self.links.reported = Some(code);
        Some(code)
    }
}
