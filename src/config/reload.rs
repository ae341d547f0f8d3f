//! What a reloaded configuration changes, decided before anything is
//! touched: which accounts come, go or change (and whether a change needs
//! a new registration), and which keys only a restart can change. Those
//! keep their running values, so the configuration in force is always one
//! the daemon actually runs with; everything else applies from now on: to
//! new calls, new callbacks' timers, new registrations. Live calls keep
//! what they started with.

use super::{AccountConfig, Config};

/// A new configuration measured against the running one.
#[derive(Debug)]
pub struct ReloadPlan {
    /// The configuration in force after the reload: the new one, except
    /// the keys in `restart_required`, which keep their running values.
    pub config: Config,
    /// Account ids, in the new file's order.
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Accounts whose settings changed ...
    pub changed: Vec<String>,
    /// ... and, of those, the ones whose registration changed (registrar,
    /// credentials, transport, lifetime ...): they unregister and register again.
    pub reregister: Vec<String>,
    /// Keys whose new value waits for a restart, e.g. `sip.listen`.
    pub restart_required: Vec<&'static str>,
}

impl ReloadPlan {
    /// Compare `new` (already parsed and checked) with `running`.
    pub fn new(running: &Config, mut new: Config) -> ReloadPlan {
        let mut restart_required = Vec::new();
        // Sections bound at start: sockets, devices, files, threads. Each
        // is named once, whichever of its keys changed.
        macro_rules! bound_at_start {
            ($($section:ident).+ => $key:literal) => {
                if running.$($section).+ != new.$($section).+ {
                    restart_required.push($key);
                    new.$($section).+ = running.$($section).+.clone();
                }
            };
        }
        bound_at_start!(sip => "sip");
        bound_at_start!(control => "control");
        bound_at_start!(audio => "audio");
        bound_at_start!(store => "store");
        bound_at_start!(bridge => "bridge");
        bound_at_start!(nat => "nat");
        bound_at_start!(dns => "dns");
        bound_at_start!(log => "log");
        // The metrics endpoint's socket.
        bound_at_start!(metrics => "metrics");
        // The SIP side checks every REFER against the hosts it started with.
        bound_at_start!(transfer => "transfer");
        // The media thread's pool, its denoiser and the hold music are made once.
        bound_at_start!(media.threads => "media.threads");
        bound_at_start!(media.spread_above_ms => "media.spread_above_ms");
        bound_at_start!(media.noise_suppression => "media.noise_suppression");
        bound_at_start!(media.hold_music => "media.hold_music");
        // The agent's state at start; from then on the agent sets it.
        bound_at_start!(agent.initial_state => "agent.initial_state");

        let (mut added, mut changed, mut reregister) = (Vec::new(), Vec::new(), Vec::new());
        for account in &new.accounts {
            match running.accounts.iter().find(|a| a.id == account.id) {
                None => added.push(account.id.clone()),
                Some(old) if old != account => {
                    changed.push(account.id.clone());
                    if !old.registers_as(account) {
                        reregister.push(account.id.clone());
                    }
                }
                Some(_) => {}
            }
        }
        let removed = running
            .accounts
            .iter()
            .filter(|old| !new.accounts.iter().any(|a| a.id == old.id))
            .map(|old| old.id.clone())
            .collect();
        ReloadPlan { config: new, added, removed, changed, reregister, restart_required }
    }

    /// Nothing changes but what waits for a restart.
    pub fn changes_nothing_live(&self, running: &Config) -> bool {
        self.config == *running
    }
}

impl AccountConfig {
    /// Whether `other` registers exactly as this does: it differs at most
    /// in what only its calls use (answering, codecs, SRTP, recording).
    pub fn registers_as(&self, other: &AccountConfig) -> bool {
        let registration_only = |a: &AccountConfig| AccountConfig {
            auto_answer_after_ms: None,
            answer_after_hint: false,
            codecs: None,
            srtp: None,
            recording: None,
            ..a.clone()
        };
        registration_only(self) == registration_only(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [sip]
        listen = ["udp:127.0.0.1:5060"]
        [media]
        codecs = ["pcmu"]
        [[accounts]]
        id = "kept"
        aor = "sip:kept@pbx.example.com"
        registrar = "sip:pbx.example.com"
        password = "one"
        [[accounts]]
        id = "gone"
        aor = "sip:gone@pbx.example.com"
        registrar = "sip:pbx.example.com"
    "#;

    fn plan(new: &str) -> (Config, ReloadPlan) {
        let running = Config::parse(BASE).unwrap();
        let plan = ReloadPlan::new(&running, Config::parse(new).unwrap());
        (running, plan)
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let (running, plan) = plan(BASE);
        assert!(plan.changes_nothing_live(&running));
        assert!(plan.added.is_empty() && plan.removed.is_empty() && plan.changed.is_empty());
        assert!(plan.restart_required.is_empty());
    }

    #[test]
    fn accounts_come_go_and_change() {
        let new = BASE
            .replace("id = \"gone\"\n        aor = \"sip:gone@", "id = \"new\"\n        aor = \"sip:new@")
            .replace("password = \"one\"", "password = \"two\"");
        let (_, plan) = plan(&new);
        assert_eq!(plan.added, ["new"]);
        assert_eq!(plan.removed, ["gone"]);
        assert_eq!(plan.changed, ["kept"]);
        assert_eq!(plan.reregister, ["kept"], "a new password is a new registration");
    }

    #[test]
    fn what_only_calls_use_changes_without_registering_again() {
        let new = BASE.replace("password = \"one\"", "password = \"one\"\n        codecs = [\"pcma\"]");
        let (_, plan) = plan(&new);
        assert_eq!(plan.changed, ["kept"]);
        assert!(plan.reregister.is_empty());
        assert_eq!(plan.config.accounts[0].codecs.as_deref(), Some(&["pcma".to_string()][..]));
    }

    #[test]
    fn keys_bound_at_start_keep_their_running_values() {
        let new = BASE
            .replace("udp:127.0.0.1:5060", "udp:127.0.0.1:5070")
            .replace("codecs = [\"pcmu\"]", "codecs = [\"pcma\"]\n        threads = 3\n        jitter_max_ms = 120");
        let (running, plan) = plan(&new);
        assert_eq!(plan.restart_required, ["sip", "media.threads"]);
        assert_eq!(plan.config.sip, running.sip, "the running listening points stay in force");
        assert_eq!(plan.config.media.threads, running.media.threads);
        assert_eq!(plan.config.media.codecs, ["pcma"], "codecs apply to new calls");
        assert_eq!(plan.config.media.jitter_max_ms, 120);
        assert!(!plan.changes_nothing_live(&running));
    }
}
