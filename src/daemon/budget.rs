//! How the open files limit is shared out, so that no one kind of
//! connection can take every descriptor: whatever strangers open to the
//! SIP port, calls (two sockets each, a recording file) and the control
//! socket keep working.

use crate::config::Config;
use crate::control::server::MAX_CLIENTS;
use crate::sip::gate::Limits;

/// Descriptors never handed to connections: calls' sockets and recording
/// files, the store, the audio devices, logs.
const RESERVE: usize = 256;

/// What each listener may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub sip: Limits,
    pub control_clients: usize,
}

impl Budget {
    /// Share `open_files` (the soft limit, once raised) out: control
    /// clients at most a quarter of it, SIP TCP connections what is left
    /// after them and the reserve, within what the config asks.
    pub fn split(open_files: u64, config: &Config) -> Budget {
        let open_files = usize::try_from(open_files).unwrap_or(usize::MAX);
        let control_clients = MAX_CLIENTS.min(open_files / 4).max(1);
        let room = open_files.saturating_sub(RESERVE + control_clients).max(1);
        let sip = Limits {
            requests_per_second: config.sip.rate_limit_per_source,
            connections: config.sip.tcp_connections_max.min(room),
            connections_per_source: config.sip.tcp_connections_per_source,
        };
        Budget { sip, control_clients }
    }
}

/// The soft open files limit now in force (`main` raised it to the hard one).
pub fn open_files_limit() -> u64 {
    rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_limit_keeps_a_reserve_for_calls_and_control() {
        let config = Config::default();
        let budget = Budget::split(1024, &config);
        assert_eq!(budget.control_clients, 256);
        assert_eq!(budget.sip.connections, 512);
        assert!(budget.sip.connections + budget.control_clients + RESERVE <= 1024);
        // With room to spare, the config's own numbers hold.
        let roomy = Budget::split(65_536, &config);
        assert_eq!((roomy.sip.connections, roomy.control_clients), (1024, MAX_CLIENTS));
        assert_eq!(roomy.sip.requests_per_second, 20);
        // Even an absurdly low limit leaves every listener a seat.
        let tiny = Budget::split(16, &config);
        assert!(tiny.sip.connections >= 1 && tiny.control_clients >= 1);
    }
}
