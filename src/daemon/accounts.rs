//! The shell's side of accounts: one registration task per account with a
//! registrar and the last report of each; and the desk's settings, built
//! from the config and the accounts as the SIP side resolved them.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::timeout;

use super::Daemon;
use crate::account::registration::{renew_on_new_mapping, RegState, Report};
use crate::call::admission::{AnswerPolicy, InboundPolicy};
use crate::config::{Config, ReloadPlan, SrtpPolicy};
use crate::control::api::{self, AccountInfo};
use crate::control::rpc::{code, RpcError};
use crate::control::server::Notification;
use crate::desk::{DeskConfig, DialPlan, RecordingPolicy};
use crate::media::codec::OpusParams;
use crate::sdp::MediaPolicy;
use crate::sip::registrar::{self, RegCommand, RegistrationTask};
use crate::sip::SipAgent;

/// How long shutdown waits for the unregisters.
const UNREGISTER_GRACE: Duration = Duration::from_secs(3);

pub(super) struct Accounts {
    tasks: HashMap<String, RegistrationTask>,
    reports: HashMap<String, Report>,
}

impl Accounts {
    /// Start a registration task for every account with a registrar, and
    /// ask each to register.
    pub(super) fn start(sip: &SipAgent) -> Accounts {
        let mut accounts = Accounts { tasks: HashMap::new(), reports: HashMap::new() };
        for account in sip.accounts() {
            accounts.register(sip, &account.config.id, None);
        }
        accounts
    }

    /// A reload's accounts, once the SIP side has them: removed ones
    /// unregister (their task ends after its Expires: 0), added ones
    /// register, and a changed registration unregisters the old binding
    /// before the new one registers.
    pub(super) fn apply(&mut self, sip: &SipAgent, plan: &ReloadPlan) {
        for id in &plan.removed {
            // Dropping the task's sender is what unregisters it.
            self.tasks.remove(id);
            self.reports.remove(id);
        }
        for id in &plan.reregister {
            let previous = self.tasks.remove(id).map(|RegistrationTask { task, .. }| task);
            self.reports.remove(id);
            self.register(sip, id, previous);
        }
        for id in &plan.added {
            self.register(sip, id, None);
        }
    }

    /// Start the registration of `id`, if it has a registrar, after `previous` ends.
    fn register(&mut self, sip: &SipAgent, id: &str, previous: Option<tokio::task::JoinHandle<()>>) {
        if sip.account(id).is_ok_and(|account| account.registrar.is_some()) {
            let task = registrar::spawn(sip, id, previous);
            let _ = task.commands.send(RegCommand::Register);
            self.tasks.insert(id.to_string(), task);
        }
    }

    pub(super) fn command(&self, account: &str, command: RegCommand) -> Result<(), RpcError> {
        let task = self.tasks.get(account).ok_or_else(|| {
            RpcError::new(code::INVALID_PARAMS, format!("account {account:?} does not exist or has no registrar"))
        })?;
        task.commands
            .send(command)
            .map_err(|_| RpcError::new(code::UNAVAILABLE, format!("account {account:?} is shutting down")))
    }

    /// How many accounts register (those with a registrar).
    pub(super) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// How many of them last reported a state `wanted` accepts.
    pub(super) fn count(&self, wanted: impl Fn(RegState) -> bool) -> usize {
        self.tasks.keys().filter(|id| self.reports.get(*id).is_some_and(|r| wanted(r.state))).count()
    }

    /// Unregister everything (each task sends Expires: 0) and wait, briefly.
    pub(super) async fn shutdown(&mut self) {
        let tasks: Vec<_> = self.tasks.drain().map(|(_, t)| t.task).collect();
        let all = async {
            for task in tasks {
                let _ = task.await;
            }
        };
        if timeout(UNREGISTER_GRACE, all).await.is_err() {
            tracing::warn!("some accounts did not confirm their unregister before shutdown");
        }
    }
}

impl Daemon {
    pub(super) fn account_list(&self) -> Vec<AccountInfo> {
        let mut list: Vec<AccountInfo> = self
            .sip
            .accounts()
            .map(|account| {
                let config = &account.config;
                AccountInfo {
                    account: config.id.clone(),
                    aor: config.aor.clone(),
                    registrar: config.registrar.clone(),
                    outbound_proxy: config.outbound_proxy.clone(),
                    transport: config.transport,
                    display_name: config.display_name.clone(),
                    auto_answer_after_ms: config.auto_answer_after_ms,
                    registration: self.accounts.reports.get(&config.id).cloned().unwrap_or_else(Report::unregistered),
                }
            })
            .collect();
        list.sort_by(|a, b| a.account.cmp(&b.account));
        list
    }

    /// An account's registration changed: published, and kept for `account.list`.
    pub(super) fn on_registration(&mut self, account: String, report: Report) {
        let before = self.accounts.reports.get(&account).map(|r| r.state);
        let event = api::RegistrationEvent { account: account.clone(), report: report.clone() };
        let params = serde_json::to_value(event).expect("plain struct");
        self.publish(Notification::new(api::event::REGISTRATION_STATE, &params));
        // A removed account's last word (its unregister) is published, not kept.
        let state = report.state;
        if self.sip.account(&account).is_ok() {
            self.accounts.reports.insert(account, report);
        }
        if let Some(metrics) = &mut self.metrics {
            metrics.registration(before, state, |wanted| self.accounts.count(|s| s == wanted));
        }
    }

    /// STUN found the NAT maps us elsewhere now: every binding the agent
    /// wants points at a dead mapping, so re-register them at once.
    pub(super) fn on_public_address_change(&mut self, changed: bool) {
        for account in renew_on_new_mapping(&self.accounts.reports, changed) {
            let _ = self.accounts.command(account, RegCommand::Register);
        }
    }
}

/// The desk's settings: plain values from the config and the accounts.
pub(super) fn desk_config(config: &Config, sip: &SipAgent) -> DeskConfig {
    let media = &config.media;
    let media_policy = |codecs: &Vec<String>, srtp: SrtpPolicy| {
        let codecs = crate::config::parse_codecs("media.codecs", codecs).expect("checked when the config was loaded");
        let mut opus = OpusParams::offer();
        opus.use_inband_fec = media.opus_fec;
        MediaPolicy { codecs, srtp, opus }
    };
    let accounts = &config.accounts;
    let default_local = format!("sip:{}@{}", config.sip.user, sip.listens()[0].addr);
    DeskConfig {
        calls_max: config.calls.max,
        hold_on_answer: config.calls.hold_on_answer,
        callback: config.callback.policy(),
        inbound: inbound_policy(config, sip),
        agent_state: config.agent.initial_state,
        dial_plan: DialPlan {
            default_account: accounts.first().map(|a| a.id.clone()),
            domains: sip.accounts().map(|a| (a.config.id.clone(), a.domain())).collect(),
            check_uri: |uri| crate::sip::parse_target(uri).map(drop).map_err(|e| e.to_string()),
        },
        default_media: media_policy(&media.codecs, media.srtp),
        account_media: accounts
            .iter()
            .map(|a| {
                let policy = media_policy(a.codecs.as_ref().unwrap_or(&media.codecs), a.srtp.unwrap_or(media.srtp));
                (a.id.clone(), policy)
            })
            .collect(),
        recording: RecordingPolicy {
            mode: config.recording.mode,
            account_modes: accounts.iter().filter_map(|a| Some((a.id.clone(), a.recording?))).collect(),
            dir: config.recording.dir.clone(),
            format: config.recording.format,
            encrypted: !config.recording.encrypt_to.is_empty(),
            local_aors: accounts.iter().map(|a| (a.id.clone(), a.aor.clone())).collect(),
            default_local,
        },
    }
}

/// Who may call, and how calls are answered, from the config and the
/// accounts' resolved registrars and proxies.
fn inbound_policy(config: &Config, sip: &SipAgent) -> InboundPolicy {
    let allowed = sip.trusted();
    let millis = |ms: Option<u64>| ms.map(Duration::from_millis);
    let agent = &config.agent;
    InboundPolicy {
        restricted: !config.sip.allow_from.is_empty() || sip.accounts().any(|a| a.registrar.is_some()),
        allowed,
        not_ready_code: agent.not_ready_code,
        ring_timeout: (agent.ring_timeout_ms > 0)
            .then(|| (Duration::from_millis(agent.ring_timeout_ms), agent.ring_timeout_code)),
        default_answer: AnswerPolicy {
            auto_answer_after: millis(agent.auto_answer_after_ms),
            honour_hint: agent.answer_after_hint,
        },
        accounts: sip
            .accounts()
            .map(|a| {
                let policy = AnswerPolicy {
                    auto_answer_after: millis(a.config.auto_answer_after_ms),
                    honour_hint: a.config.answer_after_hint,
                };
                (a.config.id.clone(), policy)
            })
            .collect(),
    }
}
