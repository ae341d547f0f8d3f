//! SIP: the adapter over rsipstack (transports, transactions, INVITE
//! dialogs, registration) and the pure parts it leans on: SDP offer/answer,
//! session timers, header reading.

mod account;
mod agent;
mod algorithm_names;
mod headers;
mod in_dialog;
mod inbound;
mod refer;
pub mod registrar;
mod replaces;
pub mod session_timer;
mod tls_unverified;
mod transport;

pub use account::Account;
pub use agent::{parse_target, SipAgent, SipConfig, SipError, SipEvent};
pub use transport::TlsSettings;
