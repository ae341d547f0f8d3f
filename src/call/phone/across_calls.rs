//! The phone's moves that span more than one call: a consult call beside
//! its customer (consult, Leave & transfer, cancel), the local conference
//! (merge), a call that replaced another, and a call we placed because a
//! peer REFERred us. Each call keeps its own side of a link
//! ([`Links`](crate::call::Links)); these moves keep both sides true, and
//! when a call ends they tell the calls tied to it (a finished attended
//! transfer ends the consult too, a consult that never got through gives
//! the customer back to the agent).

use std::time::Instant;

use super::{Output, Phone, PhoneError};
use crate::call::{Call, CallError, CallId, CallState, Command, Effect, EndReason, ReferTarget, SipAction};

impl Phone {
    /// Consult: hold `customer` (unless it is held already) and place
    /// `consult` (built by [`Call::dial`]), linked to it.
    pub fn consult(
        &mut self,
        customer: &str,
        consult: Call,
        effects: Vec<Effect>,
        now: Instant,
    ) -> Result<Vec<Output>, PhoneError> {
        let call = self.live(customer)?;
        if !call.is_established() || call.transferring() || call.links.consult.is_some() {
            return Err(refusal(call, "consult for"));
        }
        let mut outputs = Vec::new();
        if !call.hold_wanted() {
            outputs.extend(self.command(customer, Command::Hold, now)?);
        }
        let consult_id = consult.id.clone();
        outputs.extend(self.insert((consult, effects), now)?);
        self.link(customer, |c| c.links.consult = Some(consult_id.clone()));
        self.link(&consult_id, |c| c.links.consult_for = Some(customer.to_string()));
        outputs.extend(self.restate(customer, now));
        outputs.extend(self.restate(&consult_id, now));
        Ok(outputs)
    }

    /// Leave & transfer: the peer of `call` is REFERred to the peer of
    /// `consult`, replacing our call with it when both said they support
    /// Replaces (the customer must carry the header from the Refer-To URI
    /// into its INVITE, which baresip 1.0 does not; the colleague must
    /// honour it); otherwise the consult ends first and a plain REFER to
    /// the colleague follows, which every REFER-capable UA can follow.
    /// Both calls end once the transferee reports success.
    pub fn complete_transfer(&mut self, call: &str, consult: &str, now: Instant) -> Result<Vec<Output>, PhoneError> {
        let (transferee, target) = (self.live(call)?, self.live(consult)?);
        if call == consult || !target.is_established() || target.transferring() {
            return Err(refusal(target, "transfer to"));
        }
        if !transferee.is_established() || transferee.transferring() {
            return Err(refusal(transferee, "transfer"));
        }
        let uri = target.remote.clone();
        let mut outputs = Vec::new();
        let refer = if transferee.supports_replaces && target.supports_replaces {
            // Linked again if a merge had made them a conference: the
            // consult ends with the transfer.
            self.link(call, |c| c.links.consult = Some(consult.to_string()));
            self.link(consult, |c| {
                c.links.consult_for = Some(call.to_string());
                c.links.handing_over = true;
            });
            ReferTarget::Replacing { uri, consult: consult.to_string() }
        } else {
            // The customer cannot take the consult's place: we leave it
            // first, so the colleague is free when the customer calls.
            self.link(call, |c| c.links.consult = None);
            self.link(consult, |c| c.links.consult_for = None);
            outputs.extend(self.end_call(consult, EndReason::Transferred, now));
            ReferTarget::Uri(uri)
        };
        let effects = self.calls.get_mut(call).expect("checked above").refer(refer, Some(consult.to_string()), now)?;
        outputs.extend(self.finish(call, effects, now));
        Ok(outputs)
    }

    /// Cancel a consult: hang it up and take the customer off hold.
    pub fn cancel_consult(&mut self, call: &str, consult: &str, now: Instant) -> Result<Vec<Output>, PhoneError> {
        let customer = self.live(call)?;
        if customer.links.consult.as_deref() != Some(consult) || customer.transferring() {
            return Err(refusal(customer, "cancel the consult of"));
        }
        self.link(call, |c| c.links.consult = None);
        self.link(consult, |c| c.links.consult_for = None);
        let mut outputs = self.command(consult, Command::Hangup, now)?;
        outputs.extend(self.resume_if_held(call, now));
        outputs.extend(self.restate(call, now));
        Ok(outputs)
    }

    /// Merge: every call joins the local conference (those we hold are
    /// taken off hold); a consult merged with its customer is no longer a
    /// consult but a three-way call.
    pub fn merge(&mut self, calls: &[CallId], now: Instant) -> Result<Vec<Output>, PhoneError> {
        let mut members: Vec<CallId> = calls.to_vec();
        members.extend(self.calls.values().filter(|c| c.links.conference).map(|c| c.id.clone()));
        members.sort();
        members.dedup();
        if members.len() < 2 {
            return Err(PhoneError::Merge("give at least two calls, or calls to add to the conference".into()));
        }
        for id in &members {
            let call = self.live(id)?;
            if !call.is_established() || call.transferring() {
                return Err(refusal(call, "merge"));
            }
        }
        let mut outputs = Vec::new();
        for id in &members {
            let joins = !self.calls[id].links.conference;
            self.link(id, |c| {
                c.links.conference = true;
                let in_merge = |other: &Option<CallId>| other.as_ref().is_some_and(|o| members.contains(o));
                if in_merge(&c.links.consult) {
                    c.links.consult = None;
                }
                if in_merge(&c.links.consult_for) {
                    c.links.consult_for = None;
                }
            });
            outputs.extend(self.resume_if_held(id, now));
            if joins {
                outputs.extend(self.finish(id, vec![Effect::Conference(true)], now));
            }
            outputs.extend(self.restate(id, now));
        }
        Ok(outputs)
    }

    /// Hold every answered call but `except` that we do not hold yet (a
    /// second call is being answered). The conference is held as a whole.
    pub fn hold_others(&mut self, except: &str, now: Instant) -> Vec<Output> {
        let others: Vec<CallId> = self
            .calls
            .values()
            .filter(|c| c.id != except && c.is_established() && !c.hold_wanted() && !c.transferring())
            .map(|c| c.id.clone())
            .collect();
        let mut outputs = Vec::new();
        for id in others {
            match self.command(&id, Command::Hold, now) {
                Ok(more) => outputs.extend(more),
                Err(e) => tracing::info!(call = %id, error = %e, "not held for the answered call"),
            }
        }
        outputs
    }

    /// A call has ended: the calls tied to it learn of it.
    pub(super) fn unlink(&mut self, ended: &Call, now: Instant) -> Vec<Output> {
        let mut outputs = Vec::new();
        let transferred = ended.reason == Some(EndReason::Transferred);
        if let Some(consult) = ended.links.consult.as_deref().filter(|c| self.calls.contains_key(*c)) {
            self.link(consult, |c| c.links.consult_for = None);
            let handed_over = self.calls[consult].links.handing_over;
            if transferred && handed_over {
                // The customer now talks to the colleague: the consult is done.
                outputs.extend(self.end_call(consult, EndReason::Transferred, now));
            } else {
                outputs.extend(self.restate(consult, now));
            }
        }
        if let Some(customer) = ended.links.consult_for.as_deref().filter(|c| self.calls.contains_key(*c)) {
            self.link(customer, |c| c.links.consult = None);
            if ended.connected_at.is_none() {
                // The colleague never answered: back to the customer.
                outputs.extend(self.resume_if_held(customer, now));
            }
            outputs.extend(self.restate(customer, now));
        }
        if ended.links.conference {
            let members: Vec<CallId> =
                self.calls.values().filter(|c| c.links.conference).map(|c| c.id.clone()).collect();
            if let [last] = members.as_slice() {
                self.link(last, |c| c.links.conference = false);
                outputs.extend(self.finish(last, vec![Effect::Conference(false), Effect::StateChanged], now));
            }
        }
        outputs
    }

    /// An INVITE with Replaces was answered: the call it names ends, and
    /// the new call takes its place in the conference.
    pub(super) fn replace(&mut self, replacing: &str, replaced: &str, now: Instant) -> Vec<Output> {
        let Some(old) = self.calls.get(replaced) else { return Vec::new() };
        let conference = old.links.conference;
        let mut outputs = Vec::new();
        if conference {
            self.link(replacing, |c| c.links.conference = true);
            outputs.extend(self.finish(replacing, vec![Effect::Conference(true), Effect::StateChanged], now));
        }
        outputs.extend(self.end_call(replaced, EndReason::Replaced, now));
        outputs
    }

    fn live(&self, id: &str) -> Result<&Call, PhoneError> {
        self.calls.get(id).ok_or_else(|| PhoneError::UnknownCall(id.to_string()))
    }

    fn link(&mut self, id: &str, change: impl FnOnce(&mut Call)) {
        if let Some(call) = self.calls.get_mut(id) {
            change(call);
        }
    }

    /// Publish the call as it now stands (its links changed).
    fn restate(&mut self, id: &str, now: Instant) -> Vec<Output> {
        self.finish(id, vec![Effect::StateChanged], now)
    }

    fn resume_if_held(&mut self, id: &str, now: Instant) -> Vec<Output> {
        if !self.calls.get(id).is_some_and(|c| c.hold_wanted() && c.is_established()) {
            return Vec::new();
        }
        self.command(id, Command::Resume, now).unwrap_or_else(|e| {
            tracing::info!(call = %id, error = %e, "could not resume");
            Vec::new()
        })
    }

    /// End a call of ours (BYE, or CANCEL while it rings) for `reason`.
    fn end_call(&mut self, id: &str, reason: EndReason, now: Instant) -> Vec<Output> {
        let Some(call) = self.calls.get_mut(id) else { return Vec::new() };
        let ending = if call.is_established() {
            SipAction::Bye
        } else if call.state == CallState::Incoming {
            SipAction::Reject { code: 487 }
        } else {
            SipAction::Cancel
        };
        let mut effects = vec![Effect::Sip(ending)];
        call.end(reason, None, now, &mut effects);
        self.finish(id, effects, now)
    }
}

fn refusal(call: &Call, command: &'static str) -> PhoneError {
    PhoneError::Call(CallError::InvalidState { command, state: call.state, direction: call.direction })
}
