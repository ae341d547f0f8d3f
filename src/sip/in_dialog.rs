//! What happens inside an established dialog: its state changes become
//! signals for the call (BYE, CANCEL, provisional answers), the peer's
//! re-INVITE/UPDATE offers wait here for the call core's answer, INFO keys
//! are read, and our re-INVITEs and INFOs go out.

// rsipstack's own error type is large; it is only ever logged here.
#![allow(clippy::result_large_err)]

use std::net::IpAddr;
use std::time::Duration;

use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason, TransactionHandle};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, Request, StatusCode};

use super::handle::{Leg, SipAgent};
use super::headers::{self, timer_headers};
use crate::call::session_timer::{self, Role, SessionTimer};
use crate::call::{CallId, Signal};
use crate::media::dtmf;

/// The tone length an INFO key announces.
const INFO_TONE: Duration = Duration::from_millis(160);

impl SipAgent {
    /// Keep a new dialog (inbound) under its call id.
    pub(super) fn adopt(&self, call: &CallId, dialog: InviteDialog, states: DialogStateReceiver, peer: IpAddr) {
        let leg = Leg::new(dialog, None, self.inner.reach.media_address_toward(Some(peer)));
        self.inner.legs.lock().expect("leg map").insert(call.clone(), leg);
        self.follow_dialog(call.clone(), states);
    }

    /// Turn one dialog's state changes into signals for its call.
    pub(super) fn follow_dialog(&self, call: CallId, mut states: DialogStateReceiver) {
        let agent = self.clone();
        tokio::spawn(async move {
            while let Some(state) = states.recv().await {
                match state {
                    DialogState::Confirmed(..) => {
                        if let Some(leg) = agent.inner.legs.lock().expect("leg map").get(&call) {
                            leg.confirmed.send_replace(true);
                        }
                    }
                    DialogState::Early(_, response) => {
                        let sdp = (!response.body.is_empty()).then(|| response.body.clone());
                        agent.emit(&call, Signal::Progress { code: response.status_code.code(), sdp });
                    }
                    DialogState::Updated(_, request, handle) => agent.on_update(&call, request, handle).await,
                    DialogState::Info(_, request, handle) => agent.on_info(&call, request, handle).await,
                    DialogState::Notify(_, request, handle) => agent.on_notify(&call, request, handle).await,
                    DialogState::Refer(_, request, handle) => agent.on_refer(&call, request, handle).await,
                    DialogState::Terminated(id, reason) => {
                        agent.inner.dialog_layer.remove_dialog(&id);
                        agent.inner.legs.lock().expect("leg map").remove(&call);
                        agent.inner.offers_to_answer.lock().expect("offer map").remove(&call);
                        match reason {
                            TerminatedReason::UacBye | TerminatedReason::UasBye => agent.emit(&call, Signal::RemoteBye),
                            TerminatedReason::UacCancel => agent.emit(&call, Signal::RemoteCancel),
                            _ => {}
                        }
                        return;
                    }
                    _ => {}
                }
            }
        });
    }

    /// A re-INVITE or UPDATE from the peer. With an offer, the call core
    /// decides the answer (hold, new address, codec) and the session timer
    /// it carries; without one it is a session refresh answered here with
    /// the SDP we last sent, the timer echoed with us as the answering
    /// side, and the call told which timer now runs.
    async fn on_update(&self, call: &CallId, request: Request, handle: TransactionHandle) {
        let session_timer = headers::session_expires(&request.headers)
            .and_then(|se| session_timer::for_answer(Some(se), true, self.inner.session_expires_s));
        if !request.body.is_empty() {
            self.inner.offers_to_answer.lock().expect("offer map").insert(call.clone(), handle);
            self.emit(call, Signal::RemoteOffer { sdp: request.body, session_timer });
            return;
        }
        let mut headers = timer_headers(session_timer, Role::Uas);
        // An offerless re-INVITE gets our SDP as the offer; an UPDATE without one gets none.
        let body = (request.method == rsipstack::sip::Method::Invite)
            .then(|| self.inner.legs.lock().expect("leg map").get(call).and_then(|l| l.local_sdp.clone()))
            .flatten();
        if body.is_some() {
            headers.push(Header::ContentType("application/sdp".into()));
        }
        if let Err(e) = handle.respond(StatusCode::OK, Some(headers), body).await {
            tracing::warn!(%call, error = %e, "could not answer the peer's refresh");
            return;
        }
        tracing::info!(%call, method = %request.method, "peer refreshed the session");
        self.emit(call, Signal::PeerRefreshed { session_timer });
    }

    /// The call core's answer to the peer's re-offer, with the session
    /// timer it chose.
    pub(super) fn answer_offer(&self, call: &CallId, answer: Result<String, u16>, session_timer: Option<SessionTimer>) {
        let Some(handle) = self.inner.offers_to_answer.lock().expect("offer map").remove(call) else {
            tracing::debug!(%call, "no re-offer waits for an answer");
            return;
        };
        let mut headers = timer_headers(session_timer, Role::Uas);
        let (status, body) = match answer {
            Ok(sdp) => {
                let body = self.advertise_sdp(call, sdp);
                headers.push(Header::ContentType("application/sdp".into()));
                (StatusCode::OK, Some(body))
            }
            Err(code) => (StatusCode::from(code), None),
        };
        let call = call.clone();
        tokio::spawn(async move {
            if let Err(e) = handle.respond(status, Some(headers), body).await {
                tracing::warn!(%call, error = %e, "could not answer the peer's re-offer");
            }
        });
    }

    /// INFO from the peer: keys by application/dtmf-relay or application/dtmf
    /// become `call.dtmf`; anything else is acknowledged and ignored.
    async fn on_info(&self, call: &CallId, request: Request, handle: TransactionHandle) {
        let content_type =
            headers::values(&request.headers, "Content-Type", Some("c")).into_iter().next().unwrap_or_default();
        let body = String::from_utf8_lossy(&request.body);
        let digit = dtmf::parse_info(&content_type, &body);
        if let Err(e) = handle.respond(StatusCode::OK, None, None).await {
            tracing::warn!(%call, error = %e, "could not answer INFO");
        }
        match digit {
            Some(info) => self.emit(call, Signal::DtmfInfo { digit: info.digit }),
            None => tracing::debug!(%call, %content_type, "INFO without a key ignored"),
        }
    }

    /// Our re-INVITE (hold, resume or session refresh).
    pub(super) fn reinvite(&self, call: CallId, offer: String, timer: Option<SessionTimer>) {
        let Some(leg) = self.inner.legs.lock().expect("leg map").get(&call).cloned() else { return };
        let offer = self.advertise_sdp(&call, offer);
        let agent = self.clone();
        tokio::spawn(async move {
            if !leg.until_confirmed().await {
                tracing::info!(%call, "no ACK for the dialog: re-INVITE not sent");
                agent.emit(&call, Signal::ReinviteAnswered { code: 408, sdp: None });
                return;
            }
            let mut headers = vec![Header::ContentType("application/sdp".into())];
            headers.extend(timer_headers(timer, Role::Uac));
            // A 491 goes to the call core, which retries after RFC 3261's
            // wait with what the agent wants by then, not this offer again.
            let signal = match leg.dialog.reinvite(Some(headers), Some(offer)).await {
                Ok(Some(response)) => Signal::ReinviteAnswered {
                    code: response.status_code.code(),
                    sdp: (!response.body.is_empty()).then_some(response.body),
                },
                Ok(None) => Signal::ReinviteAnswered { code: 481, sdp: None },
                Err(e) => {
                    tracing::info!(%call, error = %e, "re-INVITE failed");
                    Signal::ReinviteAnswered { code: 408, sdp: None }
                }
            };
            agent.emit(&call, signal);
        });
    }

    /// Keys by SIP INFO, one request per key, each after the last is answered.
    pub(super) fn send_info(&self, call: CallId, digits: String) {
        let Some(leg) = self.inner.legs.lock().expect("leg map").get(&call).cloned() else { return };
        tokio::spawn(async move {
            for digit in digits.chars() {
                let Ok((content_type, body)) = dtmf::info_body(digit, INFO_TONE.as_millis() as u32) else {
                    tracing::warn!(%call, %digit, "not a key; the rest are not sent");
                    return;
                };
                let headers = vec![Header::ContentType(content_type.into())];
                match leg.dialog.info(Some(headers), Some(body.into_bytes())).await {
                    Ok(Some(response)) if response.status_code.kind() == rsipstack::sip::StatusCodeKind::Successful => {
                    }
                    Ok(response) => {
                        let code = response.map(|r| r.status_code.code());
                        tracing::warn!(%call, %digit, ?code, "INFO key refused; the rest are not sent");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%call, %digit, error = %e, "INFO key failed; the rest are not sent");
                        return;
                    }
                }
            }
        });
    }
}
