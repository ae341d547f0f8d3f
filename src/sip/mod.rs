//! SIP: the adapter over rsipstack (transports, transactions, INVITE
//! dialogs, registration) and the pure header reading it leans on. It turns
//! SIP into the call core's signals and the call's actions into SIP; SDP
//! (`crate::sdp`) and session timers (`crate::call::session_timer`) are
//! decided below it.

mod account;
mod agent;
mod algorithm_names;
mod headers;
mod in_dialog;
mod inbound;
mod refer;
pub mod registrar;
mod replaces;
mod tls_unverified;
mod transport;

pub use account::Account;
pub use agent::{parse_target, SipAgent, SipConfig, SipError, SipEvent};
pub use transport::TlsSettings;
