//! Accounts: the agent's identities at registrars. The registration of
//! each is a pure state machine ([`registration`]); `sip::registrar` runs it.

pub mod registration;
