//! What the run loop tells systemd past readiness (which `softphoned`'s
//! main sends): the watchdog ping and the one-line `STATUS=` that
//! `systemctl status` shows. Both are sent from the run loop itself, so a
//! loop that stalls stops pinging and systemd (`WatchdogSec=`) restarts
//! the daemon. Outside systemd (no `NOTIFY_SOCKET`) every send does nothing.
//!
//! Also the test hook that stalls the loop on purpose (`debug.stall`),
//! refused unless the daemon was started with `SOFTPHONED_TEST_HOOKS=1`.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::time::{Interval, MissedTickBehavior};

use super::Daemon;
use crate::account::registration::RegState;

/// The environment variable that enables the test hooks.
const TEST_HOOKS_ENV: &str = "SOFTPHONED_TEST_HOOKS";
/// The longest stall `debug.stall` will do: enough to miss any watchdog
/// a test sets, short enough that a mistaken call does not look like a hang.
pub(super) const MAX_STALL_MS: u64 = 10_000;

/// The daemon's health as `STATUS=` says it; sent again only when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Health {
    calls: usize,
    registered: usize,
    /// Accounts with a registrar (the others never register).
    registering: usize,
}

impl Health {
    fn text(self) -> String {
        let plural = if self.calls == 1 { "" } else { "s" };
        format!("{} call{plural}; {}/{} accounts registered", self.calls, self.registered, self.registering)
    }
}

pub(super) struct Systemd {
    /// Ticks at half of `WATCHDOG_USEC` when systemd asked for pings.
    watchdog: Option<Interval>,
    sent: Option<Health>,
    /// Whether `debug.stall` may stall the loop.
    pub(super) test_hooks: bool,
}

impl Systemd {
    /// Must be called inside the runtime (the watchdog's interval is tokio's).
    pub(super) fn new() -> Systemd {
        let mut usec = 0;
        // The variables stay set: removing them from a running multi-threaded process is not sound.
        let watchdog = sd_notify::watchdog_enabled(false, &mut usec).then(|| {
            // Half the timeout, as sd_watchdog_enabled(3) advises: one late ping is not a restart.
            let period = Duration::from_micros(usec / 2).max(Duration::from_millis(1));
            tracing::info!(period_ms = period.as_millis() as u64, "systemd watchdog enabled");
            let mut interval = tokio::time::interval(period);
            // After a stall, one ping and the old cadence, not a burst that hides it.
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        let test_hooks = std::env::var_os(TEST_HOOKS_ENV).is_some_and(|v| v == "1");
        if test_hooks {
            tracing::warn!("{TEST_HOOKS_ENV}=1: test hooks enabled (debug.stall can block the daemon)");
        }
        Systemd { watchdog, sent: None, test_hooks }
    }

    /// The next watchdog tick; never, when systemd asked for none.
    pub(super) async fn watchdog_due(&mut self) {
        match &mut self.watchdog {
            Some(interval) => {
                interval.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    pub(super) fn ping(&self) {
        send(&[NotifyState::Watchdog]);
    }
}

impl Daemon {
    /// Send `STATUS=` if the calls or registrations changed since it was last sent.
    pub(super) fn report_health(&mut self) {
        let health = Health {
            calls: self.desk.call_count(),
            registered: self.accounts.count(|state| state == RegState::Registered),
            registering: self.accounts.len(),
        };
        if self.systemd.sent != Some(health) {
            self.systemd.sent = Some(health);
            send(&[NotifyState::Status(&health.text())]);
        }
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

#[cfg(test)]
mod tests {
    use super::Health;

    #[test]
    fn status_names_calls_and_registrations() {
        assert_eq!(Health { calls: 2, registered: 1, registering: 1 }.text(), "2 calls; 1/1 accounts registered");
        assert_eq!(Health { calls: 1, registered: 0, registering: 2 }.text(), "1 call; 0/2 accounts registered");
    }
}
