//! Whether an inbound INVITE may ring the agent, and how it is answered:
//! the allow-list (SIP scanners are a daily fact), the agent's ready
//! state, and the auto-answer policy of the account it arrived for.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Inbound;

/// One entry of `sip.allow_from`: an address, with or without a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedPeer {
    Host(IpAddr),
    Socket(SocketAddr),
}

impl AllowedPeer {
    pub fn parse(text: &str) -> Option<AllowedPeer> {
        text.parse().map(AllowedPeer::Socket).or_else(|_| text.parse().map(AllowedPeer::Host)).ok()
    }

    pub fn matches(&self, source: SocketAddr) -> bool {
        match self {
            AllowedPeer::Host(ip) => *ip == source.ip(),
            AllowedPeer::Socket(addr) => *addr == source,
        }
    }
}

/// Whether the agent takes calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    #[default]
    Ready,
    NotReady,
}

/// How calls for one account (or for none) are answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnswerPolicy {
    /// Always auto-answer after this long.
    pub auto_answer_after: Option<Duration>,
    /// Follow the caller's `answer-after` hint.
    pub honour_hint: bool,
}

#[derive(Debug, Clone, Default)]
pub struct InboundPolicy {
    /// Only `allowed` sources may call (an account registers, or an
    /// allow-list is configured); otherwise anyone may.
    pub restricted: bool,
    pub allowed: Vec<AllowedPeer>,
    pub not_ready_code: u16,
    pub ring_timeout: Option<(Duration, u16)>,
    pub default_answer: AnswerPolicy,
    pub accounts: HashMap<String, AnswerPolicy>,
}

/// The verdict on one INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Ring the agent, with the countdown and timeout filled in.
    Admit(Box<Inbound>),
    /// Answer `code` and never ring the agent.
    Refuse { code: u16, why: &'static str },
}

impl InboundPolicy {
    pub fn admit(&self, source: SocketAddr, mut inbound: Inbound, agent: AgentState) -> Admission {
        if self.restricted && !self.allowed.iter().any(|peer| peer.matches(source)) {
            return Admission::Refuse {
                code: 403,
                why: "source is neither a registrar, a proxy nor in sip.allow_from",
            };
        }
        if agent == AgentState::NotReady {
            return Admission::Refuse { code: self.not_ready_code, why: "agent is not ready" };
        }
        let policy =
            inbound.account.as_ref().and_then(|a| self.accounts.get(a)).copied().unwrap_or(self.default_answer);
        inbound.auto_answer_after = match inbound.answer_after_hint {
            Some(hint) if policy.honour_hint => Some(hint),
            _ => policy.auto_answer_after,
        };
        inbound.ring_timeout = self.ring_timeout;
        Admission::Admit(Box::new(inbound))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> InboundPolicy {
        InboundPolicy {
            restricted: true,
            allowed: vec![AllowedPeer::Socket("127.0.0.1:5060".parse().unwrap())],
            not_ready_code: 480,
            ring_timeout: Some((Duration::from_secs(30), 480)),
            default_answer: AnswerPolicy::default(),
            accounts: HashMap::from([(
                "cc".to_string(),
                AnswerPolicy { auto_answer_after: Some(Duration::from_secs(9)), honour_hint: true },
            )]),
        }
    }

    fn call(account: Option<&str>, hint: Option<u64>) -> Inbound {
        Inbound {
            account: account.map(str::to_string),
            answer_after_hint: hint.map(Duration::from_secs),
            ..Inbound::default()
        }
    }

    fn admitted(verdict: Admission) -> Inbound {
        match verdict {
            Admission::Admit(inbound) => *inbound,
            refused => panic!("expected the call to ring, got {refused:?}"),
        }
    }

    #[test]
    fn strangers_get_403_and_a_port_counts() {
        let p = policy();
        let registrar = "127.0.0.1:5060".parse().unwrap();
        let scanner = "127.0.0.1:5099".parse().unwrap();
        assert!(matches!(p.admit(scanner, call(None, None), AgentState::Ready), Admission::Refuse { code: 403, .. }));
        admitted(p.admit(registrar, call(None, None), AgentState::Ready));
        let open = InboundPolicy { restricted: false, ..policy() };
        admitted(open.admit(scanner, call(None, None), AgentState::Ready));
    }

    #[test]
    fn not_ready_refuses_with_the_configured_code() {
        let p = InboundPolicy { not_ready_code: 486, ..policy() };
        let registrar = "127.0.0.1:5060".parse().unwrap();
        assert_eq!(
            p.admit(registrar, call(None, None), AgentState::NotReady),
            Admission::Refuse { code: 486, why: "agent is not ready" }
        );
    }

    #[test]
    fn auto_answer_follows_the_account_and_the_hint_when_allowed() {
        let p = policy();
        let from = "127.0.0.1:5060".parse().unwrap();
        let plain = admitted(p.admit(from, call(None, Some(2)), AgentState::Ready));
        assert_eq!(plain.auto_answer_after, None, "hints are ignored unless the policy honours them");
        assert_eq!(plain.ring_timeout, Some((Duration::from_secs(30), 480)));
        let account = admitted(p.admit(from, call(Some("cc"), None), AgentState::Ready));
        assert_eq!(account.auto_answer_after, Some(Duration::from_secs(9)));
        let hinted = admitted(p.admit(from, call(Some("cc"), Some(2)), AgentState::Ready));
        assert_eq!(hinted.auto_answer_after, Some(Duration::from_secs(2)));
    }
}
