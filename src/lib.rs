//! softphoned: a SIP/RTP softphone daemon for contact-center agents.
//!
//! The run loop ([`daemon`]) is the only place that does IO and reads the
//! clock. It feeds pure state machines and carries out what they decide:
//!
//! - [`account`]: registration of the agent's accounts (pure).
//! - [`dns`]: locating SIP servers (RFC 3263) and failing over (pure).
//! - [`call`]: one call's state machine and the phone holding all calls.
//! - [`sip`]: the adapter over rsipstack.
//! - [`sdp`]: SDP offer/answer (pure), ending in media's stream parameters.
//! - [`media`]: codecs, RTP/RTCP/SRTP, the per-call media stream (pure).
//! - [`audio`]: where the agent's audio comes from and goes to.
//! - [`control`]: the JSON-RPC control socket and its protocol types.
//! - [`config`]: the TOML configuration.
//! - [`metrics`]: the Prometheus figures, from what the run loop passes on.
//! - [`cli_docs`]: man pages and shell completions from the binaries' clap definitions.
//!
//! Dependencies point one way, down the floors of `DESIGN.md`: `media`
//! knows no SDP, `sdp` builds on `media`, `call` on `sdp`, the `sip`
//! adapter on `call`, and `daemon` drives all. `tests/layers.rs` checks it.

pub mod account;
pub mod audio;
pub mod call;
pub mod callback;
pub mod cli_docs;
pub mod config;
pub mod control;
pub mod daemon;
pub mod desk;
pub mod dns;
pub mod history;
pub mod media;
pub mod media_io;
pub mod metrics;
pub mod nat;
pub mod recorder;
pub mod recording;
pub mod sdp;
pub mod sip;
pub mod store;
pub mod timing;
