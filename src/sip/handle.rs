//! The handle to the running SIP adapter ([`SipAgent`], cheap to clone)
//! and the IO state behind it: the endpoint, each call's dialog (its leg),
//! the transactions of the peer's re-offers until the call answers them,
//! the referrers' report queues. What a dialog has agreed (offers, session
//! timers) is the call core's. Also the small steps every part of the
//! adapter takes on a call's leg (find it, remember the SDP we sent,
//! forget it, signal the run loop, our Contact, the local end of a
//! request). The files that act on dialogs (`agent`, `in_dialog`,
//! `inbound`, `refer`, `registrar`) build on it; it imports none of them.

// rsipstack's own error type is large; it is only ever logged here.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use crate::call::admission::AllowedPeer;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rsipstack::dialog::dialog::TransactionHandle;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::Uri;
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transport::{SipAddr, SipConnection};
use tokio::sync::mpsc;

use super::account::Account;
use super::error::SipError;
use super::gate::Gate;
use super::reach::Reach;
use super::resolver::Resolver;
use super::trusted::TrustedPeers;
use super::{headers, transport};
use crate::account::registration::Report;
use crate::call::session_timer::{self, SessionTimer};
use crate::call::{CallId, Inbound, Signal};
use crate::config::{Listen, Transport};

/// What the SIP side tells the run loop.
#[derive(Debug)]
pub enum SipEvent {
    /// A new INVITE, not yet admitted: the run loop decides (and answers).
    Incoming { call: CallId, source: SocketAddr, inbound: Inbound },
    /// Something happened to a call we know.
    Signal { call: CallId, signal: Signal },
    /// An account's registration changed.
    Registration { account: String, report: Report },
    /// Who may call us changed: a registrar or proxy was located at a new
    /// address (see [`SipAgent::trust`]); `peers` is the whole list now.
    Trusted { peers: Vec<AllowedPeer> },
    /// STUN told the SIP socket's public mapping; `changed`: it differs
    /// from the one known before (the NAT rebound us: re-register).
    PublicAddress { mapping: SocketAddr, changed: bool },
}

/// Handle to the running SIP side; cheap to clone.
#[derive(Clone)]
pub struct SipAgent {
    pub(super) inner: Arc<Inner>,
}

/// One call's dialog, the SDP we last sent in it (an offerless re-INVITE
/// gets it again), the media address that SDP gives this peer (see
/// `reach`), and whether the dialog is confirmed (2xx and ACK).
#[derive(Clone)]
pub(super) struct Leg {
    pub(super) dialog: InviteDialog,
    pub(super) local_sdp: Option<Vec<u8>>,
    pub(super) media_address: Option<IpAddr>,
    pub(super) confirmed: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Leg {
    pub(super) fn new(dialog: InviteDialog, local_sdp: Option<Vec<u8>>, media_address: Option<IpAddr>) -> Leg {
        Leg { dialog, local_sdp, media_address, confirmed: Arc::new(tokio::sync::watch::Sender::new(false)) }
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
    /// The transactions of the peer's re-offers, until the call core
    /// answers (what to answer, and with which session timer, it decides).
    pub(super) offers_to_answer: Mutex<HashMap<CallId, TransactionHandle>>,
    /// Per call that REFERred us: its NOTIFYs, sent one after the other.
    pub(super) referrer_reports: Mutex<HashMap<CallId, mpsc::UnboundedSender<u16>>>,
    /// Calls hung up before their INVITE left (it waits on a TCP connect).
    pub(super) abandoned: Mutex<HashSet<CallId>>,
    pub(super) events: mpsc::UnboundedSender<SipEvent>,
    pub(super) listens: Vec<Listen>,
    pub(super) user: String,
    /// By id; a reload adds, replaces and removes them while calls go on.
    pub(super) accounts: RwLock<HashMap<String, Arc<Account>>>,
    /// Locates the accounts' registrars and proxies, also those a reload adds.
    pub(super) resolver: Resolver,
    /// `sip.allow_from` and every address the accounts' registrars and
    /// proxies were located at, at start or later (see [`SipAgent::trust`]).
    pub(super) trusted: Mutex<TrustedPeers>,
    /// What each source may send; it trusts the same peers.
    pub(super) gate: Arc<Mutex<Gate>>,
    /// Requests and responses in and out (see `traffic`).
    pub(super) traffic: Arc<super::traffic::Tally>,
    pub(super) session_expires_s: u32,
    pub(super) min_se_s: u32,
    pub(super) refer_allowed_hosts: Vec<String>,
    pub(super) reach: Reach,
    /// RFC 5626 `+sip.instance`, when the daemon has one.
    pub(super) instance: Option<String>,
    pub(super) id_prefix: u32,
    pub(super) next_id: AtomicU64,
}

impl SipAgent {
    /// The listening points, with real ports where 0 was asked for.
    pub fn listens(&self) -> &[Listen] {
        &self.inner.listens
    }

    /// Who may send us INVITEs and is never rate-limited: `sip.allow_from`
    /// and the accounts' registrars and proxies.
    pub fn trusted(&self) -> Vec<AllowedPeer> {
        self.inner.trusted.lock().expect("trusted peers").peers()
    }

    /// The SIP counted so far: requests and responses, and what was refused
    /// before rsipstack saw it.
    pub fn traffic(&self) -> super::traffic::SipCounts {
        let mut counts = self.inner.traffic.counts();
        let gate = self.inner.gate.lock().expect("SIP gate");
        counts.refused = gate.refusals().map(|(why, count)| (why.as_str(), count)).collect();
        counts
    }

    /// `account`'s registrar or proxy was located (again) at `addresses`:
    /// calls and requests from there are trusted from now on, as those
    /// located at start are, so a failover target a later lookup found can
    /// call us.
    pub(super) fn trust(&self, account: &str, addresses: impl IntoIterator<Item = SocketAddr>) {
        self.change_trust(|trusted| trusted.add(account, addresses));
    }

    /// Change who is trusted; the gate follows at once, and a change is
    /// logged and announced as [`SipEvent::Trusted`] (for the desk's admission).
    fn change_trust(&self, change: impl FnOnce(&mut TrustedPeers)) {
        let mut trusted = self.inner.trusted.lock().expect("trusted peers");
        let before = trusted.peers();
        change(&mut trusted);
        let after = trusted.peers();
        if after == before {
            return;
        }
        for peer in after.iter().filter(|p| !before.contains(p)) {
            tracing::info!(?peer, "trusted from now on: a registrar or proxy was located there");
        }
        for peer in before.iter().filter(|p| !after.contains(p)) {
            tracing::info!(?peer, "no longer trusted: no account's registrar or proxy is there any more");
        }
        self.inner.gate.lock().expect("gate").set_trusted(after.clone());
        let _ = self.inner.events.send(SipEvent::Trusted { peers: after });
    }

    /// The accounts, in no particular order.
    pub fn accounts(&self) -> impl Iterator<Item = Arc<Account>> {
        let accounts: Vec<_> = self.inner.accounts.read().expect("accounts").values().cloned().collect();
        accounts.into_iter()
    }

    pub fn account(&self, id: &str) -> Result<Arc<Account>, SipError> {
        let accounts = self.inner.accounts.read().expect("accounts");
        accounts.get(id).cloned().ok_or_else(|| SipError::UnknownAccount(id.into()))
    }

    /// Parse and locate an account (RFC 3263), to be added with [`Self::put_account`].
    pub async fn resolve_account(&self, config: crate::config::AccountConfig) -> Result<Account, SipError> {
        Account::resolve(config, self.inner.resolver.clone()).await
    }

    /// Add an account, or replace the one with its id: calls placed from
    /// now on use it, and its registrar and proxy are trusted from now on.
    /// Dialogs already up keep going as they are.
    pub fn put_account(&self, account: Account) {
        let trusted = account.trusted.clone();
        let id = account.config.id.clone();
        self.inner.accounts.write().expect("accounts").insert(id.clone(), Arc::new(account));
        self.change_trust(|peers| peers.replace(&id, trusted));
    }

    /// Remove an account: no new call uses it; its calls go on. The
    /// addresses it located are no longer trusted, unless another account
    /// or `sip.allow_from` names them.
    pub fn remove_account(&self, id: &str) {
        self.inner.accounts.write().expect("accounts").remove(id);
        self.change_trust(|peers| peers.remove(id));
    }

    /// A fresh call id, unique within this run and unlikely to repeat across runs.
    pub fn new_call_id(&self) -> CallId {
        format!("{:04x}-{}", self.inner.id_prefix, self.inner.next_id.fetch_add(1, Ordering::Relaxed))
    }

    pub(super) fn with_leg(&self, call: &CallId, act: impl FnOnce(&Leg) -> rsipstack::Result<()>) {
        let leg = self.inner.legs.lock().expect("leg map").get(call).cloned();
        match leg.map(|l| act(&l)) {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::warn!(%call, error = %e, "SIP action failed"),
            None => tracing::debug!(%call, "SIP action for a call without dialog"),
        }
    }

    /// The SDP the call core wrote, with the media address this leg's peer
    /// reaches us at; remembered as the SDP we last sent.
    pub(super) fn advertise_sdp(&self, call: &CallId, sdp: String) -> Vec<u8> {
        let mut legs = self.inner.legs.lock().expect("leg map");
        let Some(leg) = legs.get_mut(call) else { return sdp.into_bytes() };
        let body = leg.media_address.map_or(sdp.clone(), |ip| crate::sdp::with_address(&sdp, ip)).into_bytes();
        leg.local_sdp = Some(body.clone());
        body
    }

    pub(super) fn forget(&self, call: &CallId) -> Option<Leg> {
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
        let udp = self.inner.reach.advertised_sip(udp, self.inner.reach.peer_ip(target).await);
        Ok((SipAddr { r#type: Some(rsipstack::sip::Transport::Udp), addr: udp.into() }, None))
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
