//! The SIP adapter's front door: starting it (listening points, endpoint,
//! accounts, the task that receives requests) and carrying the call core's
//! [`SipAction`]s out, placing our INVITEs itself and handing in-dialog
//! work to `in_dialog` and `refer`. Their events reach the run loop as
//! [`SipEvent`]s. Nothing above the `sip` module knows rsipstack.

// rsipstack's own error type is large; it is only ever logged here.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::sip::{Header, Response, StatusCode};
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transport::{SipAddr, TransportLayer};
use rsipstack::EndpointBuilder;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::account::Account;
use super::discovery::StunSettings;
use super::error::SipError;
use super::front::stream;
use super::gate::{Gate, Limits};
use super::handle::{Inner, Leg, SipAgent, SipEvent};
use super::headers::{self, timer_headers};
use super::reach::Reach;
use super::resolver::Resolver;
use super::target::parse_target;
use super::transport::{self, TlsSettings};
use super::trusted::TrustedPeers;
use super::{inbound, replaces};
use crate::call::admission::AllowedPeer;
use crate::call::session_timer::{self, Role};
use crate::call::{CallId, Signal, SipAction};
use crate::config::{AccountConfig, Listen};

pub struct SipConfig {
    pub listens: Vec<Listen>,
    /// `sip.public_address`: advertised to every peer (see `reach`).
    pub public_address: Option<std::net::IpAddr>,
    pub user: String,
    pub t1: Duration,
    pub tls: TlsSettings,
    pub accounts: Vec<AccountConfig>,
    /// RFC 4028 interval we ask for (0 = off) and the least we accept.
    pub session_expires_s: u32,
    pub min_se_s: u32,
    /// Hosts a peer's REFER may send us to; none: every REFER is refused.
    pub refer_allowed_hosts: Vec<String>,
    /// `sip.allow_from`: trusted like the accounts' registrars and proxies.
    pub allow_from: Vec<AllowedPeer>,
    /// What an untrusted source may send and hold (see `gate`).
    pub limits: Limits,
    /// `nat.stun_server`, when set.
    pub stun: Option<StunSettings>,
    /// This device's RFC 5626 instance id (`urn:uuid:...`), kept across restarts.
    pub instance: Option<String>,
    /// `[dns] servers`; none: the system's resolvers.
    pub dns_servers: Vec<std::net::SocketAddr>,
}

impl SipAgent {
    /// Open the listening points and start serving; events go to `events`.
    pub async fn start(
        config: SipConfig,
        events: mpsc::UnboundedSender<SipEvent>,
        shutdown: CancellationToken,
    ) -> Result<SipAgent, SipError> {
        let resolver = Resolver::new(&config.dns_servers)?;
        let mut accounts = HashMap::new();
        for config in config.accounts {
            accounts.insert(config.id.clone(), Account::resolve(config, resolver.clone()).await?);
        }
        let mut trusted = TrustedPeers::new(config.allow_from);
        for (id, account) in &accounts {
            trusted.add(id, account.trusted.iter().copied());
        }
        let gate = Arc::new(Mutex::new(Gate::new(config.limits, trusted.peers())));
        let transport_layer =
            TransportLayer::new_with_domain_resolver(shutdown.child_token(), resolver.for_rsipstack());
        let opened =
            transport::listen(&transport_layer, &config.listens, config.public_address, &config.tls, &gate, &shutdown)
                .await?;
        let (listens, stream_fronts) = (opened.listens, opened.fronts);
        let first = listens[0];
        // The RTP sockets are bound where the first listening point is.
        let reach = Reach::new(config.public_address, first.addr.ip(), opened.udp, resolver.clone());
        let option = EndpointOption {
            t1: config.t1,
            t1x64: config.t1 * 64,
            // rsipstack's default Call-ID suffix names its vendor; ours names the host.
            callid_suffix: Some(match first.addr.ip() {
                ip if ip.is_unspecified() => "softphoned".into(),
                ip => ip.to_string(),
            }),
            ..Default::default()
        };
        let traffic = Arc::new(super::traffic::Tally::default());
        let endpoint = EndpointBuilder::new()
            .with_user_agent(concat!("softphoned/", env!("CARGO_PKG_VERSION")))
            .with_transport_layer(transport_layer)
            .with_cancel_token(shutdown.child_token())
            .with_option(option)
            .with_inspector(Box::new(super::traffic::Traffic { tally: traffic.clone() }))
            .build();
        let bind_err = |e: rsipstack::Error| SipError::Bind { listen: first, message: e.to_string() };
        let incoming = endpoint.incoming_transactions().map_err(bind_err)?;
        let inner = Arc::new(Inner {
            endpoint: endpoint.inner.clone(),
            dialog_layer: Arc::new(DialogLayer::new(endpoint.inner.clone())),
            legs: Mutex::new(HashMap::new()),
            offers_to_answer: Mutex::new(HashMap::new()),
            referrer_reports: Mutex::new(HashMap::new()),
            abandoned: Mutex::new(HashSet::new()),
            events,
            listens,
            user: config.user,
            accounts: RwLock::new(accounts.into_iter().map(|(id, a)| (id, Arc::new(a))).collect()),
            resolver,
            trusted: Mutex::new(trusted),
            gate: gate.clone(),
            traffic,
            session_expires_s: config.session_expires_s,
            min_se_s: config.min_se_s,
            refer_allowed_hosts: config.refer_allowed_hosts,
            reach,
            instance: config.instance,
            id_prefix: rand::random::<u32>() & 0xffff,
            next_id: AtomicU64::new(1),
        });
        for front in stream_fronts {
            let (endpoint, gate, shutdown) = (endpoint.inner.clone(), gate.clone(), shutdown.child_token());
            tokio::spawn(async move {
                stream::serve(front.listener, front.local, front.tls, endpoint, gate, shutdown).await
            });
        }
        tokio::spawn(async move { endpoint.serve().await });
        let agent = SipAgent { inner };
        if let Some(stun) = config.stun {
            agent.start_discovery(stun, shutdown.child_token()).await;
        }
        let receiver = agent.clone();
        tokio::spawn(async move { inbound::receive_requests(receiver, incoming).await });
        Ok(agent)
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
                let answer = self.advertise_sdp(call, answer);
                self.with_leg(call, |leg| leg.dialog.accept(Some(headers), Some(answer)));
            }
            SipAction::Reject { code } => {
                self.with_leg(call, |leg| leg.dialog.reject(Some(StatusCode::from(code)), None));
                self.forget(call);
            }
            SipAction::Cancel | SipAction::Bye => {
                let leg = self.inner.legs.lock().expect("leg map").get(call).cloned();
                let Some(leg) = leg else {
                    self.inner.abandoned.lock().expect("abandoned set").insert(call.clone());
                    return None;
                };
                let (agent, call) = (self.clone(), call.clone());
                return Some(tokio::spawn(async move {
                    // RFC 3261 §15: a callee sends no BYE before the ACK of its
                    // 2xx (or the transaction's timeout): a BYE right after
                    // answering could overtake the 200 itself. The dialog stays
                    // known meanwhile, so that the ACK finds it.
                    if matches!(action, SipAction::Bye) && !leg.until_confirmed().await {
                        tracing::info!(%call, "no ACK for the dialog: BYE sent anyway");
                    }
                    agent.forget(&call);
                    let dialog = leg.dialog;
                    let result =
                        if matches!(action, SipAction::Cancel) { dialog.cancel().await } else { dialog.bye().await };
                    if let Err(e) = result {
                        tracing::warn!(%call, error = %e, "ending the dialog failed");
                    }
                }));
            }
            SipAction::Reinvite { offer, session_timer } => self.reinvite(call.clone(), offer, session_timer),
            SipAction::AnswerOffer { answer, session_timer } => self.answer_offer(call, answer, session_timer),
            SipAction::Info { digits } => self.send_info(call.clone(), digits),
            SipAction::Refer { target } => self.refer(call.clone(), target),
            SipAction::NotifyRefer { code } => self.notify_referrer(call.clone(), code),
        }
        None
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
        let (to, uri_headers) = replaces::split_uri_headers(to);
        let callee = parse_target(to).map_err(|e| {
            tracing::warn!(%call, error = %e, "cannot dial");
            416u16
        })?;
        let account = account.and_then(|id| self.account(id).ok());
        let account = account.as_deref();
        let destination = account.and_then(|a| a.destination_for(&callee));
        let target = destination.clone().or_else(|| SipAddr::try_from(&callee).ok()).ok_or(416u16)?;
        let (local, _) = self.local_end(&target).await.map_err(|e| {
            tracing::warn!(%call, error = %e, "no connection for the INVITE");
            503u16
        })?;
        let contact = self.contact(account.map_or(self.inner.user.as_str(), Account::user), &local);
        let media_address = self.inner.reach.media_address_toward(self.inner.reach.peer_ip(&target).await);
        let offer = match media_address {
            Some(ip) => crate::sdp::with_address(&offer, ip),
            None => offer,
        }
        .into_bytes();
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
            offer: Some(offer.clone()),
            headers: Some(headers),
            ..Default::default()
        };
        let (state_tx, state_rx) = self.inner.dialog_layer.new_dialog_state_channel();
        let (dialog, outcome) = self.inner.dialog_layer.do_invite_async(option, state_tx).map_err(|e| {
            tracing::warn!(%call, error = %e, "INVITE could not be sent");
            503u16
        })?;
        let leg = Leg::new(dialog, Some(offer), media_address);
        self.inner.legs.lock().expect("leg map").insert(call.clone(), leg.clone());
        self.follow_dialog(call.clone(), state_rx);
        if self.inner.abandoned.lock().expect("abandoned set").remove(call) {
            // The agent hung up while we were connecting: take it back now.
            self.forget(call);
            let _ = leg.dialog.cancel().await;
        }
        Ok(outcome)
    }
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
