//! SIP: the adapter over rsipstack (transports, transactions, INVITE
//! dialogs, registration) and the pure header reading it leans on. It turns
//! SIP into the call core's signals and the call's actions into SIP; SDP
//! (`crate::sdp`) and session timers (`crate::call::session_timer`) are
//! decided below it.

mod account;
mod agent;
mod algorithm_names;
mod discovery;
mod error;
mod front;
pub mod gate;
mod handle;
pub mod headers;
mod in_dialog;
mod inbound;
mod reach;
pub mod refer;
pub mod registrar;
pub mod replaces;
mod resolver;
mod route;
mod target;
mod tls_unverified;
pub mod traffic;
mod transport;
mod trusted;
pub mod validate;

pub use account::Account;
pub use agent::SipConfig;
pub use discovery::StunSettings;
pub use error::SipError;
pub use handle::{SipAgent, SipEvent};
pub use target::parse_target;
pub use transport::TlsSettings;
