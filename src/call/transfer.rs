//! Handing an answered call on: a blind transfer sends REFER (RFC 3515)
//! and follows the transferee's progress reports (NOTIFY with a sipfrag);
//! success ends our call as `transferred`, failure leaves it connected
//! and says why, so a failed transfer never loses the customer.

use std::time::Instant;

use serde::Serialize;

use super::{Call, CallError, CallState, Effect, EndReason, SipAction};

/// How the latest transfer of a call stands, as `call.state` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TransferReport {
    /// The target, as the REFER names it.
    pub to: String,
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

    pub(super) fn transfer_blind(&mut self, to: String) -> Result<Vec<Effect>, CallError> {
        if self.transferring() {
            return Err(CallError::InvalidState { command: "transfer", state: self.state, direction: self.direction });
        }
        self.transfer = Some(TransferReport { to: to.clone(), status: TransferStatus::Trying, sip_code: None });
        self.state = CallState::Transferring;
        Ok(vec![Effect::Sip(SipAction::Refer { refer_to: to }), Effect::StateChanged])
    }

    /// A final status for the transfer: the REFER refused, or the
    /// transferee's final report on its call to the target.
    pub(super) fn transfer_finished(&mut self, code: u16, now: Instant, effects: &mut Vec<Effect>) {
        if !self.transferring() {
            return;
        }
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
