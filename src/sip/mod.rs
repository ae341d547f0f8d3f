//! SIP: the adapter over rsipstack (transport, transactions, INVITE
//! dialogs) and SDP offer/answer as pure code.

mod agent;
pub mod sdp;

pub use agent::{SipAgent, SipConfig, SipError, SipEvent};
