//! What one call's media stream is started with: codec, payload numbers,
//! direction, keys and the peer's address, as plain values. Offer/answer
//! (`crate::sdp`, a floor up) produces them; media defines them so that it
//! never needs to know SDP.

use std::net::SocketAddr;

use super::codec::{Codec, OpusParams};
use super::srtp::SdesCrypto;

/// Which way audio flows: what we send, what we receive, both or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaDirection {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl MediaDirection {
    pub fn from_flags(send: bool, receive: bool) -> Self {
        match (send, receive) {
            (true, true) => MediaDirection::SendRecv,
            (true, false) => MediaDirection::SendOnly,
            (false, true) => MediaDirection::RecvOnly,
            (false, false) => MediaDirection::Inactive,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::RecvOnly)
    }

    /// What flows when we want `self` and the other end wants `theirs`:
    /// we send only what it receives, and receive only what it sends.
    pub fn agreed_with(self, theirs: MediaDirection) -> Self {
        MediaDirection::from_flags(self.sends() && theirs.receives(), self.receives() && theirs.sends())
    }
}

/// The telephone-event payload types, per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayloads {
    pub send: u8,
    pub receive: u8,
}

/// The SDES keys of an SRTP stream: ours protect what we send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    pub local: SdesCrypto,
    pub remote: SdesCrypto,
}

/// How one call's RTP flows, as both ends agreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamParams {
    pub remote: SocketAddr,
    pub codec: Codec,
    /// The payload type in RTP we send (the peer's number for `codec`).
    pub send_pt: u8,
    /// The payload type the peer sends us (our number for `codec`).
    pub receive_pt: u8,
    /// RFC 4733 events at the codec's clock rate, when both sides have them.
    pub telephone_event: Option<EventPayloads>,
    /// What we do: send, receive, both or neither.
    pub direction: MediaDirection,
    pub srtp: Option<SrtpKeys>,
    /// How to encode Opus for this peer.
    pub opus: OpusParams,
}
