//! The SIP adapter over rsipstack: it owns the UDP transport, the
//! transaction endpoint and the INVITE dialogs, turns their events into
//! [`SipEvent`]s for the run loop and carries the call core's
//! [`SipAction`]s back out. Nothing above this file knows rsipstack.

// rsipstack's own error type is large; it is only ever logged here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Method, Response, StatusCode, Uri};
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::TransportLayer;
use rsipstack::EndpointBuilder;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::call::{CallId, Signal, SipAction};

/// What the SIP side tells the run loop.
#[derive(Debug)]
pub enum SipEvent {
    /// A new INVITE: the call is already ringing-capable but not yet announced.
    Incoming { call: CallId, from: String, display_name: Option<String>, offer: Vec<u8> },
    /// Something happened to a call we know.
    Signal { call: CallId, signal: Signal },
}

/// Local failures of the SIP adapter.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// The listening socket could not be opened.
    #[error("cannot listen on udp:{addr}: {message}")]
    Bind { addr: SocketAddr, message: String },
    /// The target is not a SIP URI we can route to.
    #[error("invalid SIP URI {uri:?}: {message}")]
    BadUri { uri: String, message: String },
}

pub struct SipConfig {
    pub listen: SocketAddr,
    pub user: String,
    pub t1: Duration,
}

/// Handle to the running SIP side; cheap to clone.
#[derive(Clone)]
pub struct SipAgent {
    inner: Arc<Inner>,
}

struct Inner {
    dialog_layer: Arc<DialogLayer>,
    dialogs: Mutex<HashMap<CallId, InviteDialog>>,
    events: mpsc::UnboundedSender<SipEvent>,
    local: SocketAddr,
    user: String,
    id_prefix: u32,
    next_id: AtomicU64,
}

impl SipAgent {
    /// Bind the UDP listening point and start serving; events go to `events`.
    pub async fn start(
        config: SipConfig,
        events: mpsc::UnboundedSender<SipEvent>,
        shutdown: CancellationToken,
    ) -> Result<SipAgent, SipError> {
        let bind_err = |e: rsipstack::Error| SipError::Bind { addr: config.listen, message: e.to_string() };
        let transport = TransportLayer::new(shutdown.child_token());
        let udp = UdpConnection::create_connection(config.listen, None, Some(shutdown.child_token()))
            .await
            .map_err(bind_err)?;
        let local = udp.get_addr().get_socketaddr().map_err(bind_err)?;
        transport.add_transport(udp.into());
        let option = EndpointOption {
            t1: config.t1,
            t1x64: config.t1 * 64,
            // rsipstack's default Call-ID suffix names its vendor; ours names the host.
            callid_suffix: Some(local.ip().to_string()),
            ..Default::default()
        };
        let endpoint = EndpointBuilder::new()
            .with_user_agent(concat!("softphoned/", env!("CARGO_PKG_VERSION")))
            .with_transport_layer(transport)
            .with_cancel_token(shutdown.child_token())
            .with_option(option)
            .build();
        let incoming = endpoint.incoming_transactions().map_err(bind_err)?;
        let inner = Arc::new(Inner {
            dialog_layer: Arc::new(DialogLayer::new(endpoint.inner.clone())),
            dialogs: Mutex::new(HashMap::new()),
            events,
            local,
            user: config.user,
            id_prefix: rand::random::<u32>() & 0xffff,
            next_id: AtomicU64::new(1),
        });
        tokio::spawn(async move { endpoint.serve().await });
        let agent = SipAgent { inner };
        let receiver = agent.clone();
        tokio::spawn(async move { receiver.receive_requests(incoming).await });
        Ok(agent)
    }

    /// The address SIP listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// A fresh call id, unique within this run and unlikely to repeat across runs.
    pub fn new_call_id(&self) -> CallId {
        format!("{:04x}-{}", self.inner.id_prefix, self.inner.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Check a dial target before a call is created for it.
    pub fn parse_target(to: &str) -> Result<Uri, SipError> {
        let bad = |message: &str| SipError::BadUri { uri: to.into(), message: message.into() };
        // rsip's parser accepts almost any text as a URI; insist on the scheme.
        if !(to.starts_with("sip:") || to.starts_with("sips:")) {
            return Err(bad("expected a sip: or sips: URI such as sip:bob@127.0.0.1:5070"));
        }
        let uri = Uri::try_from(to).map_err(|e| SipError::BadUri { uri: to.into(), message: e.to_string() })?;
        if uri.host_with_port.host.to_string().is_empty() {
            return Err(bad("the URI has no host"));
        }
        rsipstack::transport::SipAddr::try_from(&uri)
            .map_err(|e| SipError::BadUri { uri: to.into(), message: e.to_string() })?;
        Ok(uri)
    }

    /// Carry out what the call core decided. Never blocks the caller:
    /// anything that waits on the network runs in its own task, returned
    /// for ending a dialog so that shutdown can wait for its BYE or CANCEL.
    pub fn execute(&self, call: &CallId, action: SipAction) -> Option<JoinHandle<()>> {
        match action {
            SipAction::Invite { to, offer } => self.invite(call.clone(), to, offer),
            SipAction::Ringing => self.with_dialog(call, |d| d.ringing(None, None).map(|_| ())),
            SipAction::Accept { answer } => {
                let headers = vec![Header::ContentType("application/sdp".into())];
                self.with_dialog(call, |d| d.accept(Some(headers), Some(answer.into_bytes())));
            }
            SipAction::Reject { code } => {
                self.with_dialog(call, |d| d.reject(Some(StatusCode::from(code)), None));
                self.forget(call);
            }
            SipAction::Cancel | SipAction::Bye => {
                let dialog = self.forget(call)?;
                let call = call.clone();
                return Some(tokio::spawn(async move {
                    let result =
                        if matches!(action, SipAction::Cancel) { dialog.cancel().await } else { dialog.bye().await };
                    if let Err(e) = result {
                        tracing::warn!(%call, error = %e, "ending the dialog failed");
                    }
                }));
            }
        }
        None
    }

    fn with_dialog(&self, call: &CallId, act: impl FnOnce(&InviteDialog) -> rsipstack::Result<()>) {
        let dialog = self.inner.dialogs.lock().expect("dialog map").get(call).cloned();
        match dialog.map(|d| act(&d)) {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::warn!(%call, error = %e, "SIP action failed"),
            None => tracing::debug!(%call, "SIP action for a call without dialog"),
        }
    }

    fn forget(&self, call: &CallId) -> Option<InviteDialog> {
        let dialog = self.inner.dialogs.lock().expect("dialog map").remove(call)?;
        self.inner.dialog_layer.remove_dialog(&dialog.id());
        Some(dialog)
    }

    fn emit(&self, call: &CallId, signal: Signal) {
        let _ = self.inner.events.send(SipEvent::Signal { call: call.clone(), signal });
    }

    fn contact(&self) -> Uri {
        let text = format!("sip:{}@{}", self.inner.user, self.inner.local);
        Uri::try_from(text.as_str()).expect("user and socket address form a valid URI")
    }

    fn invite(&self, call: CallId, to: String, offer: String) {
        let callee = match Self::parse_target(&to) {
            Ok(uri) => uri,
            Err(e) => {
                tracing::warn!(%call, error = %e, "cannot dial");
                return self.emit(&call, Signal::Failed { code: 416 });
            }
        };
        let option = InviteOption {
            caller: self.contact(),
            callee,
            contact: self.contact(),
            content_type: Some("application/sdp".into()),
            offer: Some(offer.into_bytes()),
            ..Default::default()
        };
        let (state_tx, state_rx) = self.inner.dialog_layer.new_dialog_state_channel();
        let (dialog, outcome) = match self.inner.dialog_layer.do_invite_async(option, state_tx) {
            Ok(started) => started,
            Err(e) => {
                tracing::warn!(%call, error = %e, "INVITE could not be sent");
                return self.emit(&call, Signal::Failed { code: 503 });
            }
        };
        self.inner.dialogs.lock().expect("dialog map").insert(call.clone(), dialog);
        self.follow_dialog(call.clone(), state_rx);
        let agent = self.clone();
        tokio::spawn(async move {
            let signal = match outcome.await {
                Ok(Ok((_, Some(response)))) => final_response_signal(&response),
                Ok(Ok((_, None))) => Signal::Failed { code: 408 },
                Ok(Err(e)) => {
                    tracing::info!(%call, error = %e, "INVITE transaction failed");
                    Signal::Failed { code: 408 }
                }
                Err(e) => {
                    tracing::warn!(%call, error = %e, "INVITE task died");
                    Signal::Failed { code: 500 }
                }
            };
            if matches!(signal, Signal::Failed { .. }) {
                agent.forget(&call);
            }
            agent.emit(&call, signal);
        });
    }

    /// Turn one dialog's state changes into signals for its call.
    fn follow_dialog(&self, call: CallId, mut states: DialogStateReceiver) {
        let agent = self.clone();
        tokio::spawn(async move {
            while let Some(state) = states.recv().await {
                match state {
                    DialogState::Early(_, response) => {
                        let sdp = (!response.body.is_empty()).then(|| response.body.clone());
                        agent.emit(&call, Signal::Progress { code: response.status_code.code(), sdp });
                    }
                    DialogState::Terminated(id, reason) => {
                        agent.inner.dialog_layer.remove_dialog(&id);
                        agent.inner.dialogs.lock().expect("dialog map").remove(&call);
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

    async fn receive_requests(self, mut incoming: rsipstack::transaction::TransactionReceiver) {
        while let Some(mut tx) = incoming.recv().await {
            let method = tx.original.method;
            let has_to_tag = tx.original.to_header().ok().and_then(|to| to.tag().ok().flatten()).is_some();
            if method == Method::Invite && !has_to_tag {
                self.new_incoming_call(tx);
                continue;
            }
            if let Some(rsipstack::dialog::dialog::Dialog::Invite(mut dialog)) =
                self.inner.dialog_layer.match_dialog(&tx)
            {
                tokio::spawn(async move {
                    if let Err(e) = dialog.handle(&mut tx).await {
                        tracing::debug!(error = %e, "in-dialog request failed");
                    }
                });
                continue;
            }
            let status = match method {
                Method::Ack => continue,
                Method::Options => StatusCode::OK,
                Method::Bye | Method::Cancel | Method::Invite => StatusCode::CallTransactionDoesNotExist,
                _ => StatusCode::MethodNotAllowed,
            };
            tokio::spawn(async move { tx.reply(status).await.ok() });
        }
    }

    fn new_incoming_call(&self, mut tx: Transaction) {
        let (from, display_name) = match tx.original.from_header().and_then(|f| f.typed()) {
            Ok(from) => (from.uri.to_string(), from.display_name),
            Err(e) => {
                tracing::info!(error = %e, "INVITE with unreadable From refused");
                tokio::spawn(async move { tx.reply(StatusCode::BadRequest).await.ok() });
                return;
            }
        };
        let (state_tx, state_rx) = self.inner.dialog_layer.new_dialog_state_channel();
        let mut dialog =
            match self.inner.dialog_layer.get_or_create_server_invite(&tx, state_tx, None, Some(self.contact())) {
                Ok(dialog) => dialog,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create dialog for INVITE");
                    tokio::spawn(async move { tx.reply(StatusCode::ServerInternalError).await.ok() });
                    return;
                }
            };
        let call = self.new_call_id();
        let offer = tx.original.body.clone();
        self.inner.dialogs.lock().expect("dialog map").insert(call.clone(), dialog.clone());
        self.follow_dialog(call.clone(), state_rx);
        let _ = self.inner.events.send(SipEvent::Incoming { call, from, display_name, offer });
        // The INVITE server transaction lives as long as this task: it sends
        // 100 Trying, our 180/200/4xx, and absorbs the ACK or a CANCEL.
        tokio::spawn(async move {
            if let Err(e) = dialog.handle(&mut tx).await {
                tracing::debug!(error = %e, "INVITE transaction ended with error");
            }
        });
    }
}

fn final_response_signal(response: &Response) -> Signal {
    let code = response.status_code.code();
    if (200..300).contains(&code) {
        Signal::Answered { sdp: response.body.clone() }
    } else {
        Signal::Failed { code }
    }
}
