//! Control requests that span calls: blind and consult transfer, Leave &
//! transfer, cancelling a consult, and the conference. The phone decides;
//! this resolves targets and opens the consult call's media.

use serde_json::Value;
use tokio::time::Instant;

use super::dispatch::{parse, phone_error, reply};
use super::Daemon;
use crate::call::{Call, CallId, Command};
use crate::control::api::{
    method, Empty, MergeParams, MergeResult, TransferBlindParams, TransferConsultCallsParams, TransferConsultParams,
    TransferConsultResult,
};
use crate::control::rpc::RpcError;

impl Daemon {
    /// The transfer and conference methods; `None` for any other.
    pub(super) fn transfer_request(&mut self, method: &str, params: Value) -> Option<Result<Value, RpcError>> {
        let now = Instant::now().into_std();
        let outputs = match method {
            method::CALL_TRANSFER_BLIND => parse::<TransferBlindParams>(params).and_then(|p| {
                let to = self.target_for(&p.call, &p.to)?;
                self.phone.command(&p.call, Command::TransferBlind(to), now).map_err(phone_error)
            }),
            method::CALL_TRANSFER_CONSULT => {
                return Some(parse::<TransferConsultParams>(params).and_then(|p| self.consult(p)).and_then(reply))
            }
            method::CALL_TRANSFER_COMPLETE => parse::<TransferConsultCallsParams>(params)
                .and_then(|p| self.phone.complete_transfer(&p.call, &p.consult, now).map_err(phone_error)),
            method::CALL_TRANSFER_CANCEL => parse::<TransferConsultCallsParams>(params)
                .and_then(|p| self.phone.cancel_consult(&p.call, &p.consult, now).map_err(phone_error)),
            method::CALL_MERGE => {
                let merged = parse::<MergeParams>(params)
                    .and_then(|p| self.phone.merge(&p.calls, now).map_err(phone_error))
                    .map(|outputs| self.apply(outputs))
                    .map(|_| MergeResult { conference: self.phone.conference() });
                return Some(merged.and_then(reply));
            }
            _ => return None,
        };
        Some(outputs.map(|outputs| self.apply(outputs)).and_then(|_| reply(Empty {})))
    }

    /// Hold the customer and dial the colleague.
    fn consult(&mut self, params: TransferConsultParams) -> Result<TransferConsultResult, RpcError> {
        let account = self.phone.get(&params.call).and_then(|c| c.account.clone());
        let to = self.target_for(&params.call, &params.to)?;
        let (id, local) = self.open_outbound(account.as_deref())?;
        let now = Instant::now().into_std();
        let (call, effects) = Call::dial(id.clone(), to, account, local, now);
        match self.phone.consult(&params.call, call, effects, now) {
            Ok(outputs) => {
                self.apply(outputs);
                Ok(TransferConsultResult { consult: id })
            }
            Err(e) => {
                self.media.stop(&id);
                Err(phone_error(e))
            }
        }
    }

    /// A transfer target as the agent typed it, at the call's account's domain.
    fn target_for(&self, call: &str, to: &str) -> Result<String, RpcError> {
        let account = self.phone.get(call).and_then(|c| c.account.clone());
        self.sip.dial_target(to, account.as_deref()).map_err(RpcError::invalid_params)
    }

    /// The peer of `referrer` REFERred us to `to` (policy let it): place the
    /// call, and tell the referrer if it cannot even start.
    pub(super) fn follow_referral(&mut self, referrer: &CallId, account: Option<String>, to: &str) {
        match self.place_call(to, account) {
            Ok(placed) => {
                self.phone.referred(&placed, referrer);
                tracing::info!(%referrer, call = %placed, %to, "calling the target of the peer's REFER");
            }
            Err(e) => {
                tracing::warn!(%referrer, %to, error = %e.message, "cannot call the target of the peer's REFER");
                let now = Instant::now().into_std();
                let outputs = self.phone.notify_referrer(referrer, 503, now);
                self.apply(outputs);
            }
        }
    }
}
