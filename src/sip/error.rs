//! The SIP adapter's local failures: what [`SipError`] means, in one place
//! every part of the adapter (listening points, accounts, targets) can use.

use crate::config::Listen;

/// Local failures of the SIP adapter.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// A listening point could not be opened.
    #[error("cannot listen on {}:{}: {message}", listen.transport.as_str(), listen.addr)]
    Bind { listen: Listen, message: String },
    /// A TLS file could not be used.
    #[error("{key}: {message}")]
    Tls { key: &'static str, message: String },
    /// The target is not a SIP URI we can route to.
    #[error("invalid SIP URI {uri:?}: {message}")]
    BadUri { uri: String, message: String },
    /// The DNS resolver could not be set up (an unreadable /etc/resolv.conf).
    #[error("DNS resolver: {0}")]
    Dns(String),
    /// No account has this id.
    #[error("no such account: {0}")]
    UnknownAccount(String),
}
