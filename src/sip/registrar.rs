//! The shell around each account's pure [`Registration`] machine: one task
//! per account that sends the REGISTERs (digest handled by rsipstack),
//! keep-alives and the final unregister the machine asks for, watches the
//! TCP/TLS connection the binding lives on, and reports every change as a
//! [`SipEvent::Registration`]. REGISTERs go to the registrar's (or proxy's)
//! located targets one at a time: when the one in use stops answering, the
//! next takes over at once; the name is located again when all have failed
//! or its records' TTL has run out, at the next fresh REGISTER.

#![allow(clippy::result_large_err)]

use std::time::Duration;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::registration::Registration as RegisterClient;
use rsipstack::sip::headers::CallId;
use rsipstack::sip::message::HeadersExt;
use rsipstack::sip::{Host, Method, Response, StatusCodeKind, Uri};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::make_tag;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::connection::KEEPALIVE_REQUEST;
use rsipstack::transport::stream::StreamConnection;
use rsipstack::transport::{SipAddr, SipConnection};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::handle::{SipAgent, SipEvent};
use super::headers;
use super::resolver::{self, Resolver};
use crate::account::registration::{Action, Flow, Outcome, RegState, Registration, Step};
use crate::dns::{Targets, Transport};
use crate::nat::stun::Outcome as StunOutcome;
use rsipstack::sip::uri::{OtherParam, OtherParamValue};
use rsipstack::sip::{Header, Param};

/// What the run loop asks of an account's registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegCommand {
    Register,
    Unregister,
}

/// The running registration task of one account.
pub struct RegistrationTask {
    pub commands: mpsc::UnboundedSender<RegCommand>,
    pub task: JoinHandle<()>,
}

/// Start the task of `account` (which must have a registrar). It waits for
/// a [`RegCommand`]; dropping the sender unregisters and ends it. With a
/// `previous` task (the account's former settings, unregistering after a
/// reload), it first waits for that one to end, so that the old binding's
/// removal never follows the new one's REGISTER.
pub fn spawn(agent: &SipAgent, account: &str, previous: Option<JoinHandle<()>>) -> RegistrationTask {
    let (commands, receiver) = mpsc::unbounded_channel();
    let agent = agent.clone();
    let account = account.to_string();
    let task = tokio::spawn(async move {
        if let Some(mut previous) = previous {
            if tokio::time::timeout(PREVIOUS_UNREGISTER, &mut previous).await.is_err() {
                tracing::warn!(%account, "the former registration did not end in time: stopped");
                previous.abort();
            }
        }
        run(agent, account, receiver).await
    });
    RegistrationTask { commands, task }
}

/// How long a replaced registration may take to unregister before the new
/// one starts anyway: a registrar that does not answer does not hold up
/// the account's new settings for Timer F's 32 s.
const PREVIOUS_UNREGISTER: Duration = Duration::from_secs(5);

struct Registrar {
    agent: SipAgent,
    account: String,
    /// Our user part in From and Contact.
    user: String,
    server: Uri,
    /// Routes REGISTERs and keep-alives (the proxy's URI, else `server`),
    /// located by `resolver` over `transport` into `targets`.
    next_hop: Uri,
    resolver: Resolver,
    transport: Transport,
    targets: Option<Targets>,
    client: RegisterClient,
    /// The stream our binding lives on (TCP/TLS): cancelled when it dies.
    connection: Option<SipConnection>,
    options_seq: u32,
    /// The registrar answered `Require: outbound` (RFC 5626): UDP flows are
    /// kept with STUN, whose mapping is checked against `flow_mapping`.
    outbound: bool,
    flow_mapping: Option<std::net::SocketAddr>,
}

/// RFC 5626 §4.4.1: a keep-alive unanswered this long means the flow failed.
const PONG_WAIT: Duration = Duration::from_secs(10);

async fn run(agent: SipAgent, account: String, mut commands: mpsc::UnboundedReceiver<RegCommand>) {
    let Ok(config) = agent.account(&account) else { return };
    let (Some(server), Some(next_hop)) = (config.registrar.clone(), config.next_hop.clone()) else { return };
    let keepalive = Duration::from_secs(config.config.keepalive_s);
    let mut machine = Registration::new(config.config.expires_s, Some(keepalive));
    // rsipstack names the AOR's user in To and From only through the
    // credential: an account without a password still needs it there.
    let credential = config.credential().unwrap_or_else(|| Credential {
        username: config.user().to_string(),
        password: String::new(),
        realm: None,
        auth_username: None,
    });
    let client = RegisterClient::new(agent.inner.endpoint.clone(), Some(credential));
    let user = config.user().to_string();
    let mut registrar = Registrar {
        agent: agent.clone(),
        account,
        user,
        server,
        next_hop,
        resolver: config.resolver.clone(),
        transport: config.config.transport,
        targets: config.located.clone(),
        client,
        connection: None,
        options_seq: 0,
        outbound: false,
        flow_mapping: None,
    };
    let mut open = true;
    while open || machine.next_deadline().is_some() {
        let deadline = machine.next_deadline().map(Instant::from_std);
        let lost = registrar.connection.as_ref().and_then(SipConnection::cancel_token).unwrap_or_default();
        let steps = tokio::select! {
            command = commands.recv(), if open => {
                let now = std::time::Instant::now();
                match command {
                    Some(RegCommand::Register) => machine.start(now),
                    Some(RegCommand::Unregister) => machine.stop(now),
                    None => {
                        open = false;
                        machine.stop(now)
                    }
                }
            }
            _ = crate::timing::sleep_until(deadline) => machine.poll(std::time::Instant::now()),
            _ = lost.cancelled(), if registrar.connection.is_some() => {
                tracing::info!(account = %registrar.account, "connection to the registrar lost");
                registrar.connection = None;
                machine.on_outcome(Outcome::ConnectionLost, std::time::Instant::now())
            }
        };
        registrar.carry_out(&mut machine, steps).await;
        if !open && machine.next_deadline().is_none() {
            break;
        }
    }
}

impl Registrar {
    /// Do what the machine asks, feeding each outcome back, until it rests.
    async fn carry_out(&mut self, machine: &mut Registration, mut steps: Vec<Step>) {
        while !steps.is_empty() {
            let mut next = Vec::new();
            for step in steps {
                match step {
                    Step::Report(mut report) => {
                        if report.state != RegState::Unregistered {
                            report.target = self.targets.as_ref().and_then(Targets::current).cloned();
                        }
                        if report.state == RegState::Registered {
                            report.flow = Some(self.flow());
                        }
                        tracing::info!(account = %self.account, state = ?report.state, sip_code = ?report.sip_code,
                            reason = report.reason.as_deref().unwrap_or(""),
                            target = %report.target.as_ref().map(ToString::to_string).unwrap_or_default(), "registration");
                        let event = SipEvent::Registration { account: self.account.clone(), report };
                        let _ = self.agent.inner.events.send(event);
                    }
                    Step::Send(action) => {
                        let outcome = self.perform(action).await;
                        let outcome = self.fail_over(outcome);
                        next.extend(machine.on_outcome(outcome, std::time::Instant::now()));
                    }
                }
            }
            steps = next;
        }
    }

    async fn perform(&mut self, action: Action) -> Outcome {
        match action {
            Action::Register { expires_s } => self.register(expires_s).await,
            Action::Unregister => {
                let sent = match self.current_target() {
                    Ok(target) => self.send_register(&target, 0).await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(reason) => Err(reason),
                };
                if let Err(e) = sent {
                    tracing::info!(account = %self.account, error = %e, "unregister got no answer");
                }
                Outcome::Unregistered
            }
            Action::KeepAlive => self.keep_alive().await,
        }
    }

    /// The target in use stopped answering: move to the next one, which
    /// the machine registers with at once. With none left, the failure
    /// stands (the machine backs off) and the name is located afresh.
    fn fail_over(&mut self, outcome: Outcome) -> Outcome {
        let (Outcome::Unreachable { reason } | Outcome::KeepAliveFailed { reason }) = &outcome else { return outcome };
        let Some(targets) = &mut self.targets else { return outcome };
        let Some(failed) = targets.current().map(ToString::to_string) else { return outcome };
        match targets.fail_over() {
            Some(next) => {
                let reason = format!("{failed}: {reason}; failing over to {next}");
                tracing::warn!(account = %self.account, %reason, "registrar failover");
                self.connection = None;
                Outcome::FailedOver { reason }
            }
            None => outcome,
        }
    }

    /// The target for a fresh REGISTER, locating the next hop first when
    /// the last list is used up or expired.
    async fn fresh_target(&mut self) -> Result<SipAddr, String> {
        if self.targets.as_ref().is_none_or(|t| t.is_stale(std::time::Instant::now())) {
            let mut located = self.resolver.locate(&self.next_hop, self.transport).await.map_err(|e| e.to_string())?;
            self.agent.trust(&self.account, located.all().iter().map(|t| t.address));
            located.stay_on(self.targets.as_ref().and_then(Targets::current));
            self.targets = Some(located);
        }
        self.current_target()
    }

    /// The target in use, for keep-alives: they never move it. Over TLS
    /// to the registrar itself it is named by its host, pinned to the
    /// address in use, so that its certificate is checked against the name.
    fn current_target(&self) -> Result<SipAddr, String> {
        let current = self.targets.as_ref().and_then(Targets::current);
        self.resolver.pin(&self.next_hop, self.transport, current);
        let current = current.ok_or("no registrar located")?;
        let by_name = matches!(self.next_hop.host_with_port.host, Host::Domain(_));
        if self.transport == Transport::Tls && by_name && self.next_hop == self.server {
            let addr = self.next_hop.host_with_port.clone();
            return Ok(SipAddr { r#type: Some(resolver::to_rsip(Transport::Tls)), addr });
        }
        Ok(resolver::sip_addr(current))
    }

    async fn register(&mut self, expires_s: u32) -> Outcome {
        let target = match self.fresh_target().await {
            Ok(target) => target,
            Err(reason) => {
                self.targets = None;
                return Outcome::Unreachable { reason };
            }
        };
        match self.send_register(&target, expires_s).await {
            Ok(response) if response.status_code.kind() == StatusCodeKind::Successful => {
                self.outbound = headers::values(&response.headers, "Require", None)
                    .iter()
                    .flat_map(|v| v.split(','))
                    .any(|option| option.trim().eq_ignore_ascii_case("outbound"));
                // Where the registrar saw the REGISTER come from: the first
                // STUN keep-alive must find the same.
                self.flow_mapping = self.client.public_address.as_ref().and_then(|h| h.to_string().parse().ok());
                Outcome::Registered { granted_s: self.client.expires() }
            }
            Ok(response) => {
                let code = response.status_code.code();
                Outcome::Rejected { code, reason: rejection_reason(code, response.status_code.text()) }
            }
            Err(e) => Outcome::Unreachable { reason: format!("registrar unreachable: {e}") },
        }
    }

    async fn send_register(&mut self, target: &SipAddr, expires_s: u32) -> rsipstack::Result<Response> {
        let (local, connection) = self.agent.local_end(target).await?;
        if connection.is_some() {
            self.connection = connection;
        }
        let uri = self.agent.contact(&self.user, &local);
        // Keep the address the registrar saw us at (rport/received), if any.
        let host_with_port = self.client.public_address.clone().unwrap_or(uri.host_with_port.clone());
        let uri = Uri { host_with_port, ..uri };
        // RFC 5626 §4.2: this device's instance and its one flow, so a
        // registrar that supports outbound replaces our binding rather
        // than adding another when we register from a new mapping.
        let mut params = vec![Param::Other(OtherParam::new("reg-id"), Some(OtherParamValue::new("1")))];
        if let Some(instance) = &self.agent.inner.instance {
            let value = OtherParamValue::new(format!("\"<{instance}>\""));
            params.insert(0, Param::Other(OtherParam::new("+sip.instance"), Some(value)));
        }
        self.client.contact = Some(rsipstack::sip::typed::Contact { display_name: None, uri, params });
        self.client.extra_headers = vec![Header::Other("Supported".into(), "outbound, path".into())];
        // Sent to the located address; the Request-URI keeps the registrar's
        // name. A target named by its host is routed by its pin instead.
        self.client.outbound_proxy = target.get_socketaddr().ok();
        self.client.register(self.server.clone(), Some(expires_s)).await
    }

    /// Keep the flow alive and check that it still is (RFC 5626 §4.4):
    /// over UDP to a registrar that supports outbound, a STUN Binding whose
    /// mapping must not change; over UDP otherwise, an OPTIONS whose Via
    /// says the same; on a stream, a CRLF ping (rsipstack swallows the
    /// pong, so it cannot be checked), then an OPTIONS on the connection.
    /// No answer within 10 s is a failed flow.
    async fn keep_alive(&mut self) -> Outcome {
        let failed = |reason: String| Outcome::KeepAliveFailed { reason };
        let sent = match &self.connection {
            Some(SipConnection::Tcp(c)) => Some(c.send_raw(KEEPALIVE_REQUEST).await),
            Some(SipConnection::Tls(c)) => Some(c.send_raw(KEEPALIVE_REQUEST).await),
            _ => None,
        };
        if let Some(Err(e)) = sent {
            return failed(format!("keep-alive could not be sent: {e}"));
        }
        if sent.is_none() && self.outbound {
            if let Some(outcome) = self.stun_keep_alive().await {
                return outcome;
            }
        }
        match tokio::time::timeout(PONG_WAIT, self.options()).await {
            Ok(Ok(Some(response))) => self.check_mapping(&response),
            Ok(Ok(None)) => failed("registrar did not answer the keep-alive OPTIONS".into()),
            Ok(Err(e)) => failed(format!("keep-alive OPTIONS failed: {e}")),
            Err(_) => failed(format!("registrar did not answer the keep-alive OPTIONS within {PONG_WAIT:?}")),
        }
    }

    /// A STUN Binding to the registrar on the SIP socket (RFC 5626 §4.4.2).
    /// `None`: the registrar does not speak STUN there; OPTIONS will do.
    async fn stun_keep_alive(&mut self) -> Option<Outcome> {
        let target = self.current_target().ok()?.get_socketaddr().ok()?;
        match self.agent.inner.reach.stun_binding(target, PONG_WAIT).await {
            StunOutcome::Mapped(mapped) => Some(match self.flow_mapping.replace(mapped) {
                Some(before) if before != mapped => {
                    let reason = format!("the NAT maps us at {mapped} now, not {before}: re-registering from there");
                    tracing::warn!(account = %self.account, %reason, "flow changed");
                    self.client.public_address = Some(mapped.into());
                    Outcome::FlowChanged { reason }
                }
                _ => Outcome::KeepAliveOk,
            }),
            StunOutcome::TimedOut => Some(Outcome::KeepAliveFailed {
                reason: format!("no answer to the STUN keep-alive within {PONG_WAIT:?}"),
            }),
            StunOutcome::Refused(why) => {
                tracing::info!(account = %self.account, why, "registrar refused STUN keep-alives: OPTIONS instead");
                self.outbound = false;
                None
            }
        }
    }

    /// What `registration.state` says of the flow.
    fn flow(&self) -> Flow {
        let keepalive = match (&self.connection, self.outbound) {
            (Some(_), _) => "crlf+options",
            (None, true) => "stun",
            (None, false) => "options",
        };
        let seen_at =
            self.flow_mapping.map(|m| m.to_string()).or(self.client.public_address.as_ref().map(ToString::to_string));
        Flow { keepalive: keepalive.into(), outbound: self.outbound, seen_at }
    }

    /// The address the registrar saw the keep-alive come from (its Via's
    /// `received` and `rport`) against the one our binding was made from:
    /// a NAT that forgot us maps the next packet elsewhere, and calls for
    /// the old binding go nowhere until we register from the new one.
    fn check_mapping(&mut self, response: &Response) -> Outcome {
        let seen = response.via_header().ok().and_then(|via| SipConnection::parse_target_from_via(via).ok());
        let (Some((_, seen)), Some(bound)) = (seen, self.client.public_address.clone()) else {
            return Outcome::KeepAliveOk;
        };
        if seen == bound {
            return Outcome::KeepAliveOk;
        }
        let reason = format!("the NAT maps us at {seen} now, not {bound}: re-registering from there");
        tracing::warn!(account = %self.account, %reason, "flow changed");
        self.client.public_address = Some(seen);
        Outcome::FlowChanged { reason }
    }

    /// A keep-alive OPTIONS; its final answer (`None`: none came).
    async fn options(&mut self) -> rsipstack::Result<Option<Response>> {
        let target = self.current_target().map_err(rsipstack::Error::DnsResolutionError)?;
        let endpoint = &self.agent.inner.endpoint;
        let (local, _) = self.agent.local_end(&target).await?;
        let via = endpoint.get_via(Some(local.clone()), None)?;
        let me = self.agent.contact(&self.user, &local);
        let from = rsipstack::sip::typed::From { display_name: None, uri: me, params: vec![] }.with_tag(make_tag());
        let to = rsipstack::sip::typed::To { display_name: None, uri: self.server.clone(), params: vec![] };
        self.options_seq += 1;
        let call_id: Option<CallId> = None;
        let request =
            endpoint.make_request(Method::Options, self.server.clone(), via, from, to, self.options_seq, call_id);
        let key = TransactionKey::from_request(&request, TransactionRole::Client)?;
        let mut tx = Transaction::new_client(key, request, endpoint.clone(), None);
        tx.destination = Some(target);
        tx.send().await?;
        while let Some(message) = tx.receive().await {
            if let rsipstack::sip::SipMessage::Response(response) = message {
                // rsipstack hands a timed-out transaction a 408 of its own.
                if response.status_code.kind() != StatusCodeKind::Provisional {
                    return Ok((response.status_code.code() != 408).then_some(response));
                }
            }
        }
        Ok(None)
    }
}

/// What a refused REGISTER means, in words an ops engineer can act on.
fn rejection_reason(code: u16, phrase: &str) -> String {
    let hint = match code {
        401 | 407 => "credentials refused: check the account's username, password and realm",
        403 => "forbidden: the registrar refused this account (wrong password, or not allowed to register)",
        404 => "the registrar does not know this user",
        423 => "the registrar wants a longer expires_s",
        _ => "",
    };
    if hint.is_empty() {
        format!("registrar answered {code} {phrase}")
    } else {
        format!("{code} {phrase}: {hint}")
    }
}
