//! Reloading the configuration (SIGHUP, `daemon.reload`). The file is read
//! and checked, measured against the running config ([`ReloadPlan`]) and
//! the accounts it adds or changes located (DNS), all off the run loop, so
//! countdowns keep their time meanwhile. The run loop then applies the
//! plan in one turn: the SIP side's accounts, their registrations, the
//! media thread's settings for new calls, the desk's. A config that does
//! not load changes nothing; the running one stays in force.

use tokio::sync::oneshot;

use super::dispatch::{answer, reply};
use super::Daemon;
use crate::config::{Config, ReloadPlan};
use crate::control::api::ReloadResult;
use crate::control::rpc::{code, RpcError};
use crate::sip::{Account, SipAgent};

type Answer = Result<serde_json::Value, RpcError>;

/// A reload read and located, ready for the run loop to apply.
pub(super) struct Prepared {
    plan: ReloadPlan,
    /// The added and changed accounts, located.
    accounts: Vec<Account>,
}

/// A prepared reload (or why there is none) and whom to answer.
pub(super) type Reloaded = (Result<Prepared, String>, oneshot::Sender<Answer>);

impl Daemon {
    /// Start a reload; it comes back to the run loop as [`Reloaded`].
    pub(super) fn reload(&mut self, reply_to: oneshot::Sender<Answer>) {
        if self.reloading {
            let message = "a reload is already under way";
            return answer(reply_to, Err(RpcError::new(code::UNAVAILABLE, message)));
        }
        let Some(path) = self.config.source.clone() else {
            let message = "softphoned was started without a config file (--config): there is nothing to read again";
            return answer(reply_to, Err(RpcError::new(code::INVALID_STATE, message)));
        };
        self.reloading = true;
        tracing::info!(config = %path.display(), "reloading the config");
        let (running, sip, done) = (self.config.clone(), self.sip.clone(), self.reloads.clone());
        tokio::spawn(async move {
            let prepared = prepare(path, running, sip).await;
            let _ = done.send((prepared, reply_to));
        });
    }

    /// Apply a prepared reload, or say why there is none.
    pub(super) fn on_reloaded(&mut self, (prepared, reply_to): Reloaded) {
        self.reloading = false;
        let outcome = match prepared {
            Ok(prepared) => reply(self.apply(prepared)),
            Err(message) => {
                tracing::error!(error = %message, "reload refused: the running config stays in force");
                Err(RpcError::new(code::INVALID_PARAMS, message))
            }
        };
        answer(reply_to, outcome);
    }

    fn apply(&mut self, Prepared { plan, accounts }: Prepared) -> ReloadResult {
        // The SIP side first: the desk's settings are built from its accounts.
        for id in &plan.removed {
            self.sip.remove_account(id);
        }
        for account in accounts {
            self.sip.put_account(account);
        }
        self.accounts.apply(&self.sip, &plan);
        self.media.reconfigure(&plan.config.media);
        let result = ReloadResult {
            accounts_added: plan.added,
            accounts_removed: plan.removed,
            accounts_changed: plan.changed,
            restart_required: plan.restart_required.iter().map(|key| key.to_string()).collect(),
        };
        self.config = plan.config;
        let desk = super::accounts::desk_config(&self.config, &self.sip);
        self.desk.reconfigure(desk);
        tracing::info!(
            added = ?result.accounts_added,
            removed = ?result.accounts_removed,
            changed = ?result.accounts_changed,
            "config reloaded"
        );
        if !result.restart_required.is_empty() {
            tracing::warn!(keys = ?result.restart_required, "changed, but applied only at the next start");
        }
        result
    }
}

/// Read, check and measure the file; locate the accounts it adds or changes.
async fn prepare(path: std::path::PathBuf, running: Config, sip: SipAgent) -> Result<Prepared, String> {
    let dir = running.recording.dir.clone();
    // At start an unusable folder is only logged (calls go on without
    // recordings); here the running one still works, so a new one that
    // does not is refused.
    let loaded = tokio::task::spawn_blocking(move || {
        let mut new = Config::load(Some(&path)).map_err(|e| e.to_string())?;
        super::absolute_recording_dir(&mut new);
        if new.recording.dir != dir {
            super::usable_dir(&new.recording.dir)
                .map_err(|e| format!("invalid value for recording.dir: {}: {e}", new.recording.dir.display()))?;
        }
        Ok::<_, String>(new)
    });
    let new = loaded.await.map_err(|e| format!("the config could not be read: {e}"))??;
    let plan = ReloadPlan::new(&running, new);
    let mut accounts = Vec::new();
    for id in plan.added.iter().chain(&plan.changed) {
        let config = plan.config.accounts.iter().find(|a| &a.id == id).expect("planned from these accounts");
        let located = sip.resolve_account(config.clone()).await;
        accounts.push(located.map_err(|e| format!("invalid value for accounts (account {id}): {e}"))?);
    }
    Ok(Prepared { plan, accounts })
}
