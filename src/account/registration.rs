//! One account's registration as a pure state machine: when to REGISTER,
//! refresh, keep the binding alive, back off after failures and unregister.
//! The shell performs the [`Action`]s it asks for and feeds back each
//! [`Outcome`]; time is always an argument.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::dns::Target;

/// The states of `registration.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegState {
    Unregistered,
    Registering,
    Registered,
    Failed,
}

/// What the shell must send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// REGISTER asking for this lifetime.
    Register { expires_s: u32 },
    /// REGISTER with Expires: 0.
    Unregister,
    /// Poke the registrar: CRLF on a stream, OPTIONS on UDP.
    KeepAlive,
}

/// What came of an action, or what the transport noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx to REGISTER, with the lifetime the registrar granted us.
    Registered {
        granted_s: u32,
    },
    /// A final non-2xx to REGISTER (after any digest retry).
    Rejected {
        code: u16,
        reason: String,
    },
    /// No answer, or the transport failed.
    Unreachable {
        reason: String,
    },
    /// The keep-alive went unanswered.
    KeepAliveFailed {
        reason: String,
    },
    KeepAliveOk,
    /// The answer (any, or none) to an [`Action::Unregister`].
    Unregistered,
    /// The TCP/TLS connection our binding lives on is gone.
    ConnectionLost,
    /// The registrar stopped answering and the shell has moved on to the
    /// next one DNS located: register there at once, no backoff.
    FailedOver {
        reason: String,
    },
    /// The keep-alive was answered, but the registrar saw it come from
    /// another address than the binding's: the NAT mapped us anew, and
    /// the binding points at a mapping that is gone (RFC 5626 §4.4.2).
    FlowChanged {
        reason: String,
    },
}

/// A change worth a `registration.state` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub state: RegState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The lifetime granted, when registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_s: Option<u32>,
    /// When failed: how long until the next attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// Where REGISTERs go while registering or registered: the address DNS
    /// located (or the configured IP), its transport and host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// How the binding's flow is kept and checked, while registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<Flow>,
}

/// The flow a binding lives on (RFC 5626): how it is kept alive and its
/// answer checked, and where the registrar sees us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Flow {
    /// `stun` (UDP, the registrar supports outbound: a STUN Binding whose
    /// mapping is compared), `options` (UDP: an OPTIONS whose Via is), or
    /// `crlf+options` (TCP/TLS: a CRLF ping, and an OPTIONS on the
    /// connection that must be answered within 10 s).
    pub keepalive: String,
    /// The registrar answered `Require: outbound`: it keys the binding by
    /// this flow (RFC 5626).
    pub outbound: bool,
    /// Where the registrar sees us (its Via's `received`/`rport`): the
    /// NAT's mapping, when behind one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<String>,
}

/// The accounts to register again when STUN reports our public mapping
/// (`changed`: it differs from the one known before): every one that holds
/// or seeks a binding, since its Contact names the old address and calls
/// would go there; an unregistered one (stopped by the agent, or never
/// started) stays so.
pub fn renew_on_new_mapping<'a, K>(
    reports: impl IntoIterator<Item = (&'a K, &'a Report)>,
    changed: bool,
) -> Vec<&'a K> {
    if !changed {
        return Vec::new();
    }
    reports.into_iter().filter(|(_, report)| report.state != RegState::Unregistered).map(|(key, _)| key).collect()
}

impl Report {
    /// Where every account starts.
    pub fn unregistered() -> Report {
        Report {
            state: RegState::Unregistered,
            sip_code: None,
            reason: None,
            expires_s: None,
            retry_in_ms: None,
            target: None,
            flow: None,
        }
    }
}

/// One step the machine asks of the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Send(Action),
    Report(Report),
}

/// The first retry waits this long, doubling per failure up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub struct Registration {
    expires_s: u32,
    keepalive: Option<Duration>,
    state: RegState,
    /// The agent (or the config) wants the account registered.
    wanted: bool,
    /// A REGISTER or keep-alive is out; nothing else is sent meanwhile.
    in_flight: bool,
    failures: u32,
    granted_s: Option<u32>,
    register_at: Option<Instant>,
    keepalive_at: Option<Instant>,
}

impl Registration {
    pub fn new(expires_s: u32, keepalive: Option<Duration>) -> Self {
        Registration {
            expires_s,
            keepalive: keepalive.filter(|k| !k.is_zero()),
            state: RegState::Unregistered,
            wanted: false,
            in_flight: false,
            failures: 0,
            granted_s: None,
            register_at: None,
            keepalive_at: None,
        }
    }

    pub fn state(&self) -> RegState {
        self.state
    }

    /// Register now (and keep registered).
    pub fn start(&mut self, now: Instant) -> Vec<Step> {
        self.wanted = true;
        self.failures = 0;
        self.register_at = Some(now);
        self.poll(now)
    }

    /// Remove the binding and stay unregistered.
    pub fn stop(&mut self, _now: Instant) -> Vec<Step> {
        self.wanted = false;
        self.register_at = None;
        self.keepalive_at = None;
        if self.in_flight {
            // The answer to what is out decides; then we unregister.
            return Vec::new();
        }
        self.unregister_or_settle()
    }

    /// The earliest moment [`poll`](Self::poll) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.in_flight {
            return None;
        }
        [self.register_at, self.keepalive_at].into_iter().flatten().min()
    }

    /// Whatever is due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Step> {
        if self.in_flight || !self.wanted {
            return Vec::new();
        }
        if self.register_at.is_some_and(|at| at <= now) {
            self.register_at = None;
            self.keepalive_at = None;
            self.in_flight = true;
            let mut steps = Vec::new();
            if !matches!(self.state, RegState::Registered | RegState::Registering) {
                self.state = RegState::Registering;
                steps.push(Step::Report(self.report(None, None, None)));
            }
            steps.push(Step::Send(Action::Register { expires_s: self.expires_s }));
            return steps;
        }
        if self.keepalive_at.is_some_and(|at| at <= now) {
            self.keepalive_at = None;
            self.in_flight = true;
            return vec![Step::Send(Action::KeepAlive)];
        }
        Vec::new()
    }

    /// Feed back what happened.
    pub fn on_outcome(&mut self, outcome: Outcome, now: Instant) -> Vec<Step> {
        if outcome == Outcome::ConnectionLost && self.in_flight {
            // What is out will fail or succeed on a new connection; it decides.
            return Vec::new();
        }
        self.in_flight = false;
        let mut steps = Vec::new();
        match outcome {
            Outcome::Registered { granted_s } if self.wanted => {
                self.failures = 0;
                let granted_s = if granted_s == 0 { self.expires_s } else { granted_s };
                self.register_at = Some(now + refresh_after(granted_s));
                self.keepalive_at = self.keepalive.map(|k| now + k);
                let changed = self.state != RegState::Registered || self.granted_s != Some(granted_s);
                self.state = RegState::Registered;
                self.granted_s = Some(granted_s);
                if changed {
                    steps.push(Step::Report(self.report(None, None, None)));
                }
            }
            Outcome::Rejected { code, reason } if self.wanted => self.fail(Some(code), reason, now, &mut steps),
            Outcome::Unreachable { reason } | Outcome::KeepAliveFailed { reason } if self.wanted => {
                self.fail(None, reason, now, &mut steps)
            }
            Outcome::KeepAliveOk if self.wanted => {
                self.keepalive_at = self.keepalive.map(|k| now + k);
            }
            Outcome::ConnectionLost if self.wanted && self.state == RegState::Registered => {
                // The binding pointed at a connection that no longer exists.
                self.register_at = Some(now);
                self.state = RegState::Registering;
                steps.push(Step::Report(self.report(None, Some("connection to the registrar lost".into()), None)));
            }
            Outcome::FailedOver { reason } | Outcome::FlowChanged { reason } if self.wanted => {
                self.register_at = Some(now);
                self.keepalive_at = None;
                self.state = RegState::Registering;
                self.granted_s = None;
                steps.push(Step::Report(self.report(None, Some(reason), None)));
            }
            Outcome::Registered { .. } if !self.wanted => {
                // A REGISTER raced the stop: take the binding away again.
                self.state = RegState::Registered;
                return self.unregister_or_settle();
            }
            _ if !self.wanted => return self.settle_unregistered(),
            _ => {}
        }
        steps.extend(self.poll(now));
        steps
    }

    fn fail(&mut self, sip_code: Option<u16>, reason: String, now: Instant, steps: &mut Vec<Step>) {
        let wait = backoff(self.failures);
        self.failures += 1;
        self.register_at = Some(now + wait);
        self.keepalive_at = None;
        self.state = RegState::Failed;
        self.granted_s = None;
        steps.push(Step::Report(self.report(sip_code, Some(reason), Some(wait))));
    }

    fn unregister_or_settle(&mut self) -> Vec<Step> {
        if self.state == RegState::Registered {
            self.in_flight = true;
            self.state = RegState::Unregistered;
            self.granted_s = None;
            return vec![Step::Send(Action::Unregister), Step::Report(self.report(None, None, None))];
        }
        self.settle_unregistered()
    }

    fn settle_unregistered(&mut self) -> Vec<Step> {
        if self.state == RegState::Unregistered {
            return Vec::new();
        }
        self.state = RegState::Unregistered;
        self.granted_s = None;
        vec![Step::Report(self.report(None, None, None))]
    }

    fn report(&self, sip_code: Option<u16>, reason: Option<String>, retry_in: Option<Duration>) -> Report {
        Report {
            state: self.state,
            sip_code,
            reason,
            expires_s: self.granted_s.filter(|_| self.state == RegState::Registered),
            retry_in_ms: retry_in.map(|d| d.as_millis() as u64),
            target: None,
            flow: None,
        }
    }
}

/// Refresh well before the binding lapses: at 3/4 of its life, but never
/// closer than 5 s to the end nor sooner than 1 s.
pub fn refresh_after(granted_s: u32) -> Duration {
    let granted = u64::from(granted_s) * 1000;
    Duration::from_millis((granted * 3 / 4).min(granted.saturating_sub(5_000)).max(1_000))
}

/// The wait before retry number `failures` (0-based).
pub fn backoff(failures: u32) -> Duration {
    MIN_BACKOFF.saturating_mul(1 << failures.min(16)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests;
