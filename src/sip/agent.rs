//! The SIP adapter over rsipstack: it owns the transaction endpoint and the
//! INVITE dialogs, turns their events into [`SipEvent`]s for the run loop
//! and carries the call core's [`SipAction`]s back out. Nothing above the
//! `sip` module knows rsipstack.

// rsipstack's own error type is large; it is only ever logged here.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsipstack::dialog::dialog::DialogStateReceiver;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, Response, StatusCode, Uri};
use rsipstack::transaction::endpoint::{EndpointInnerRef, EndpointOption};
use rsipstack::transport::{SipAddr, SipConnection, TransportLayer};
use rsipstack::EndpointBuilder;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::account::Account;
use super::in_dialog::PendingOffer;
use super::transport::{self, TlsSettings};
use super::{headers, inbound};
use crate::account::registration::Report;
use crate::call::session_timer::{self, Role, SessionTimer};
use crate::call::{CallId, Inbound, Signal, SipAction};
use crate::config::{AccountConfig, Listen, Transport};

/// What the SIP side tells the run loop.
#[derive(Debug)]
pub enum SipEvent {
    /// A new INVITE, not yet admitted: the run loop decides (and answers).
    Incoming { call: CallId, source: SocketAddr, inbound: Inbound },
    /// Something happened to a call we know.
    Signal { call: CallId, signal: Signal },
    /// An account's registration changed.
    Registration { account: String, report: Report },
}

/// Local failures of the SIP adapter.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// A listening point could not be opened.
    #[error("cannot listen on {}:{}: {message}", listen.transport.as_str(), listen.addr)]
    Bind { listen: Listen, message: String },
    /// A TLS file could not be used.
    #[error("{key}: {message}")]
    Tls { key: &'static str, message: String },
    /// The target is not a SIP URI we can route to.
    #[error("invalid SIP URI {uri:?}: {message}")]
    BadUri { uri: String, message: String },
    /// No account has this id.
    #[error("no such account: {0}")]
    UnknownAccount(String),
}

pub struct SipConfig {
    pub listens: Vec<Listen>,
    pub user: String,
    pub t1: Duration,
    pub tls: TlsSettings,
    pub accounts: Vec<AccountConfig>,
    /// RFC 4028 interval we ask for (0 = off) and the least we accept.
    pub session_expires_s: u32,
    pub min_se_s: u32,
    /// Hosts a peer's REFER may send us to; none: every REFER is refused.
    pub refer_allowed_hosts: Vec<String>,
}

/// Handle to the running SIP side; cheap to clone.
#[derive(Clone)]
pub struct SipAgent {
    pub(super) inner: Arc<Inner>,
}

/// One call's dialog, the SDP we last sent in it (an offerless re-INVITE
/// gets it again), and whether the dialog is confirmed (2xx and ACK).
#[derive(Clone)]
pub(super) struct Leg {
    pub(super) dialog: InviteDialog,
    pub(super) local_sdp: Option<Vec<u8>>,
    pub(super) confirmed: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Leg {
    fn new(dialog: InviteDialog, local_sdp: Option<Vec<u8>>) -> Leg {
        Leg { dialog, local_sdp, confirmed: Arc::new(tokio::sync::watch::Sender::new(false)) }
    }

    /// Wait until the dialog is confirmed: a request of ours in a dialog
    /// whose 2xx is not yet ACKed is refused by the stack (and by RFC 3261
    /// §14.1 the peer may not be ready for it), e.g. a hold right after answering.
    pub(super) async fn until_confirmed(&self) -> bool {
        let mut confirmed = self.confirmed.subscribe();
        let waited = tokio::time::timeout(ACK_WAIT, confirmed.wait_for(|c| *c)).await;
        matches!(waited, Ok(Ok(_)))
    }
}

/// How long an in-dialog request waits for the dialog's ACK (64 × T1).
const ACK_WAIT: Duration = Duration::from_secs(32);

pub(super) struct Inner {
    pub(super) endpoint: EndpointInnerRef,
    pub(super) dialog_layer: Arc<DialogLayer>,
    pub(super) legs: Mutex<HashMap<CallId, Leg>>,
    /// The peer's re-offers waiting for the call core's answer.
    pub(super) pending_offers: Mutex<HashMap<CallId, PendingOffer>>,
    /// Per call that REFERred us: its NOTIFYs, sent one after the other.
    pub(super) referrer_reports: Mutex<HashMap<CallId, mpsc::UnboundedSender<u16>>>,
    /// Calls hung up before their INVITE left (it waits on a TCP connect).
    abandoned: Mutex<HashSet<CallId>>,
    pub(super) events: mpsc::UnboundedSender<SipEvent>,
    pub(super) listens: Vec<Listen>,
    user: String,
    pub(super) accounts: HashMap<String, Account>,
    pub(super) session_expires_s: u32,
    min_se_s: u32,
    pub(super) refer_allowed_hosts: Vec<String>,
    id_prefix: u32,
    next_id: AtomicU64,
}

impl SipAgent {
    /// Open the listening points and start serving; events go to `events`.
    pub async fn start(
        config: SipConfig,
        events: mpsc::UnboundedSender<SipEvent>,
        shutdown: CancellationToken,
    ) -> Result<SipAgent, SipError> {
        let transport_layer = TransportLayer::new(shutdown.child_token());
        let listens = transport::listen(&transport_layer, &config.listens, &config.tls, &shutdown).await?;
        let first = listens[0];
        let option = EndpointOption {
            t1: config.t1,
            t1x64: config.t1 * 64,
            // rsipstack's default Call-ID suffix names its vendor; ours names the host.
            callid_suffix: Some(first.addr.ip().to_string()),
            ..Default::default()
        };
        let endpoint = EndpointBuilder::new()
            .with_user_agent(concat!("softphoned/", env!("CARGO_PKG_VERSION")))
            .with_transport_layer(transport_layer)
            .with_cancel_token(shutdown.child_token())
            .with_option(option)
            .with_inspector(Box::new(super::algorithm_names::AlgorithmNames))
            .build();
        let bind_err = |e: rsipstack::Error| SipError::Bind { listen: first, message: e.to_string() };
        let incoming = endpoint.incoming_transactions().map_err(bind_err)?;
        let mut accounts = HashMap::new();
        for config in config.accounts {
            accounts.insert(config.id.clone(), Account::resolve(config).await?);
        }
        let inner = Arc::new(Inner {
            endpoint: endpoint.inner.clone(),
            dialog_layer: Arc::new(DialogLayer::new(endpoint.inner.clone())),
            legs: Mutex::new(HashMap::new()),
            pending_offers: Mutex::new(HashMap::new()),
            referrer_reports: Mutex::new(HashMap::new()),
            abandoned: Mutex::new(HashSet::new()),
            events,
            listens,
            user: config.user,
            accounts,
            session_expires_s: config.session_expires_s,
            min_se_s: config.min_se_s,
            refer_allowed_hosts: config.refer_allowed_hosts,
            id_prefix: rand::random::<u32>() & 0xffff,
            next_id: AtomicU64::new(1),
        });
        tokio::spawn(async move { endpoint.serve().await });
        let agent = SipAgent { inner };
        let receiver = agent.clone();
        tokio::spawn(async move { inbound::receive_requests(receiver, incoming).await });
        Ok(agent)
    }

    /// The listening points, with real ports where 0 was asked for.
    pub fn listens(&self) -> &[Listen] {
        &self.inner.listens
    }

    /// The accounts, in no particular order.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.inner.accounts.values()
    }

    pub fn account(&self, id: &str) -> Result<&Account, SipError> {
        self.inner.accounts.get(id).ok_or_else(|| SipError::UnknownAccount(id.into()))
    }

    /// A fresh call id, unique within this run and unlikely to repeat across runs.
    pub fn new_call_id(&self) -> CallId {
        format!("{:04x}-{}", self.inner.id_prefix, self.inner.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Turn what the agent typed into a URI: a SIP URI as is, a number (or
    /// user) at the account's domain.
    pub fn dial_target(&self, to: &str, account: Option<&str>) -> Result<String, SipError> {
        let text = match account.map(|id| self.account(id)).transpose()? {
            Some(account) if !to.contains(':') => format!("sip:{to}@{}", account.domain()),
            _ => to.to_string(),
        };
        parse_target(&text)?;
        Ok(text)
    }

    /// Carry out what the call core decided. Never blocks the caller:
    /// anything that waits on the network runs in its own task, returned
    /// for ending a dialog so that shutdown can wait for its BYE or CANCEL.
    pub fn execute(&self, call: &CallId, action: SipAction) -> Option<JoinHandle<()>> {
        match action {
            SipAction::Invite { to, offer, account } => self.invite(call.clone(), to, offer, account),
            SipAction::Ringing => self.with_leg(call, |leg| leg.dialog.ringing(None, None).map(|_| ())),
            SipAction::Accept { answer, session_timer } => {
                let mut headers = vec![
                    Header::ContentType("application/sdp".into()),
                    Header::Other("Supported".into(), "replaces".into()),
                ];
                headers.extend(timer_headers(session_timer, Role::Uas));
                self.set_local_sdp(call, answer.as_bytes());
                self.with_leg(call, |leg| leg.dialog.accept(Some(headers), Some(answer.into_bytes())));
            }
            SipAction::Reject { code } => {
                self.with_leg(call, |leg| leg.dialog.reject(Some(StatusCode::from(code)), None));
                self.forget(call);
            }
            SipAction::Cancel | SipAction::Bye => {
                let Some(leg) = self.forget(call) else {
                    self.inner.abandoned.lock().expect("abandoned set").insert(call.clone());
                    return None;
                };
                let call = call.clone();
                return Some(tokio::spawn(async move {
                    let dialog = leg.dialog;
                    let result =
                        if matches!(action, SipAction::Cancel) { dialog.cancel().await } else { dialog.bye().await };
                    if let Err(e) = result {
                        tracing::warn!(%call, error = %e, "ending the dialog failed");
                    }
                }));
            }
            SipAction::Reinvite { offer, session_timer } => self.reinvite(call.clone(), offer, session_timer),
            SipAction::AnswerOffer { answer } => self.answer_offer(call, answer),
            SipAction::Info { digits } => self.send_info(call.clone(), digits),
            SipAction::Refer { target } => self.refer(call.clone(), target),
            SipAction::NotifyRefer { code } => self.notify_referrer(call.clone(), code),
        }
        None
    }

    pub(super) fn with_leg(&self, call: &CallId, act: impl FnOnce(&Leg) -> rsipstack::Result<()>) {
        let leg = self.inner.legs.lock().expect("leg map").get(call).cloned();
        match leg.map(|l| act(&l)) {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::warn!(%call, error = %e, "SIP action failed"),
            None => tracing::debug!(%call, "SIP action for a call without dialog"),
        }
    }

    pub(super) fn set_local_sdp(&self, call: &CallId, sdp: &[u8]) {
        if let Some(leg) = self.inner.legs.lock().expect("leg map").get_mut(call) {
            leg.local_sdp = Some(sdp.to_vec());
        }
    }

    fn forget(&self, call: &CallId) -> Option<Leg> {
        let leg = self.inner.legs.lock().expect("leg map").remove(call)?;
        self.inner.dialog_layer.remove_dialog(&leg.dialog.id());
        Some(leg)
    }

    pub(super) fn emit(&self, call: &CallId, signal: Signal) {
        let _ = self.inner.events.send(SipEvent::Signal { call: call.clone(), signal });
    }

    /// Our Contact for a message leaving on `local` (UDP, or a stream's
    /// own end, which is where a registrar or proxy reaches us back).
    pub(super) fn contact(&self, user: &str, local: &SipAddr) -> Uri {
        let transport = match local.r#type {
            Some(rsipstack::sip::Transport::Tcp) => ";transport=tcp",
            Some(rsipstack::sip::Transport::Tls) => ";transport=tls",
            _ => "",
        };
        let text = format!("sip:{user}@{}{transport}", local.addr);
        Uri::try_from(text.as_str()).expect("user and socket address form a valid URI")
    }

    /// The local end a request to `target` leaves from, and for TCP and
    /// TLS the connection, opened (or reused) now so the Contact can name it.
    pub(super) async fn local_end(&self, target: &SipAddr) -> rsipstack::Result<(SipAddr, Option<SipConnection>)> {
        if matches!(target.r#type, Some(rsipstack::sip::Transport::Tcp | rsipstack::sip::Transport::Tls)) {
            let (connection, _) = self.inner.endpoint.transport_layer.lookup(target, None).await?;
            return Ok((connection.get_addr().clone(), Some(connection)));
        }
        let udp = transport::contact_for(&self.inner.listens, Transport::Udp).unwrap_or(self.inner.listens[0].addr);
        Ok((SipAddr { r#type: Some(rsipstack::sip::Transport::Udp), addr: udp.into() }, None))
    }

    fn invite(&self, call: CallId, to: String, offer: String, account: Option<String>) {
        let agent = self.clone();
        tokio::spawn(async move {
            let signal = match agent.send_invite(&call, &to, offer, account.as_deref()).await {
                Ok(outcome) => match outcome.await {
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
                },
                Err(code) => Signal::Failed { code },
            };
            if matches!(signal, Signal::Failed { .. }) {
                agent.forget(&call);
            }
            agent.emit(&call, signal);
        });
    }

    /// Build and send the INVITE; the handle resolves with its final response.
    async fn send_invite(
        &self,
        call: &CallId,
        to: &str,
        offer: String,
        account: Option<&str>,
    ) -> Result<JoinHandle<rsipstack::Result<(rsipstack::dialog::DialogId, Option<Response>)>>, u16> {
        // Headers the target URI carries (Replaces, from a REFER) go into the INVITE.
        let (to, uri_headers) = super::replaces::split_uri_headers(to);
        let callee = parse_target(to).map_err(|e| {
            tracing::warn!(%call, error = %e, "cannot dial");
            416u16
        })?;
        let account = account.and_then(|id| self.inner.accounts.get(id));
        let destination = account.and_then(|a| a.destination_for(&callee));
        let target = destination.clone().or_else(|| SipAddr::try_from(&callee).ok()).ok_or(416u16)?;
        let (local, _) = self.local_end(&target).await.map_err(|e| {
            tracing::warn!(%call, error = %e, "no connection for the INVITE");
            503u16
        })?;
        let contact = self.contact(account.map_or(self.inner.user.as_str(), Account::user), &local);
        let mut headers: Vec<Header> =
            uri_headers.into_iter().map(|(name, value)| Header::Other(name.into(), value)).collect();
        if self.inner.session_expires_s > 0 {
            headers.push(Header::Other("Supported".into(), "replaces, timer".into()));
            headers.push(Header::Other("Session-Expires".into(), self.inner.session_expires_s.to_string()));
            headers.push(Header::Other("Min-SE".into(), self.inner.min_se_s.to_string()));
        } else {
            headers.push(Header::Other("Supported".into(), "replaces".into()));
        }
        let option = InviteOption {
            caller: account.map(|a| a.aor.clone()).unwrap_or_else(|| contact.clone()),
            caller_display_name: account.and_then(|a| a.config.display_name.clone()),
            callee,
            contact,
            destination,
            credential: account.and_then(Account::credential),
            content_type: Some("application/sdp".into()),
            offer: Some(offer.clone().into_bytes()),
            headers: Some(headers),
            ..Default::default()
        };
        let (state_tx, state_rx) = self.inner.dialog_layer.new_dialog_state_channel();
        let (dialog, outcome) = self.inner.dialog_layer.do_invite_async(option, state_tx).map_err(|e| {
            tracing::warn!(%call, error = %e, "INVITE could not be sent");
            503u16
        })?;
        let leg = Leg::new(dialog, Some(offer.into_bytes()));
        self.inner.legs.lock().expect("leg map").insert(call.clone(), leg.clone());
        self.follow_dialog(call.clone(), state_rx);
        if self.inner.abandoned.lock().expect("abandoned set").remove(call) {
            // The agent hung up while we were connecting: take it back now.
            self.forget(call);
            let _ = leg.dialog.cancel().await;
        }
        Ok(outcome)
    }

    /// Keep a new dialog (inbound) under its call id.
    pub(super) fn adopt(&self, call: &CallId, dialog: InviteDialog, states: DialogStateReceiver) {
        self.inner.legs.lock().expect("leg map").insert(call.clone(), Leg::new(dialog, None));
        self.follow_dialog(call.clone(), states);
    }

    pub(super) fn dialog_layer(&self) -> &DialogLayer {
        &self.inner.dialog_layer
    }

    /// The session timer to announce when answering an INVITE with `headers`.
    pub(super) fn session_timer_for(&self, headers: &rsipstack::sip::Headers) -> Option<SessionTimer> {
        let offered = headers::session_expires(headers);
        session_timer::for_answer(offered, headers::supports(headers, "timer"), self.inner.session_expires_s)
    }
}

/// Check a dial target before a call is created for it. Headers the URI
/// carries (`?Replaces=...`) are not part of the address checked.
pub fn parse_target(to: &str) -> Result<Uri, SipError> {
    let to = super::replaces::split_uri_headers(to).0;
    let bad = |message: &str| SipError::BadUri { uri: to.into(), message: message.into() };
    // rsip's parser accepts almost any text as a URI; insist on the scheme.
    if !(to.starts_with("sip:") || to.starts_with("sips:")) {
        return Err(bad("expected a sip: or sips: URI such as sip:bob@127.0.0.1:5070, or a number with an account"));
    }
    let uri = Uri::try_from(to).map_err(|e| SipError::BadUri { uri: to.into(), message: e.to_string() })?;
    if uri.host_with_port.host.to_string().is_empty() {
        return Err(bad("the URI has no host"));
    }
    SipAddr::try_from(&uri).map_err(|e| SipError::BadUri { uri: to.into(), message: e.to_string() })?;
    Ok(uri)
}

/// Session-Expires (and Require: timer) for a message we send as `role`.
pub(super) fn timer_headers(timer: Option<SessionTimer>, role: Role) -> Vec<Header> {
    let Some(timer) = timer else { return Vec::new() };
    let mut headers = vec![Header::Other("Session-Expires".into(), timer.header_value(role))];
    if role == Role::Uas {
        headers.push(Header::Other("Require".into(), "timer".into()));
    } else {
        headers.push(Header::Other("Supported".into(), "timer".into()));
    }
    headers
}

fn final_response_signal(response: &Response) -> Signal {
    let code = response.status_code.code();
    if (200..300).contains(&code) {
        let session_timer = session_timer::from_answer(headers::session_expires(&response.headers));
        let supports_replaces = headers::supports(&response.headers, "replaces");
        Signal::Answered { sdp: response.body.clone(), session_timer, supports_replaces }
    } else {
        Signal::Failed { code }
    }
}
