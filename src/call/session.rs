//! A call's side of SDP offer/answer: our description (its version moves
//! only when its content does, RFC 3264 §8), who holds whom, and what the
//! last exchange agreed.

use std::convert::Infallible;

use crate::media::params::{MediaDirection, StreamParams};
use crate::sdp::{self, LocalMedia, RemoteMedia, SdpError};

#[derive(Debug, Clone)]
pub(super) struct MediaSession {
    local: LocalMedia,
    versions: Versions,
    /// The direction of our outstanding offer, until its answer comes.
    offered: MediaDirection,
    /// An inbound call's offer, kept until the agent answers.
    pub remote_offer: Option<RemoteMedia>,
    pub agreed: Option<StreamParams>,
    /// We hold the peer in our latest offer (or answer), sent or agreed.
    pub local_hold: bool,
    /// We hold the peer as the last completed exchange agreed: what is
    /// true on the wire, and what `call.state` says.
    pub hold_agreed: bool,
    /// The peer put us on hold (its last offer said it will not send).
    pub remote_hold: bool,
}

impl MediaSession {
    pub fn new(local: LocalMedia) -> Self {
        MediaSession {
            local,
            versions: Versions::default(),
            offered: MediaDirection::SendRecv,
            remote_offer: None,
            agreed: None,
            local_hold: false,
            hold_agreed: false,
            remote_hold: false,
        }
    }

    /// What we ask for: while we hold we only send (hold music), while the
    /// peer holds us we only receive, and neither when both hold.
    fn wanted(&self) -> MediaDirection {
        wanted(self.local_hold, self.remote_hold)
    }

    /// Our offer as things stand (initial, hold, resume or refresh).
    pub fn offer(&mut self) -> String {
        self.offered = self.wanted();
        let Ok((body, ())) =
            self.versions.build(|version| Ok::<_, Infallible>((sdp::offer(&self.local, version, self.offered), ())));
        body
    }

    /// Answer the peer's offer; on success it becomes the agreement.
    pub fn answer(&mut self, remote: &RemoteMedia) -> Result<(String, StreamParams), SdpError> {
        let remote_hold = remote.holds();
        let want = wanted(self.local_hold, remote_hold);
        let (body, negotiated) = self.versions.build(|version| sdp::answer(remote, &self.local, version, want))?;
        self.remote_hold = remote_hold;
        self.hold_agreed = self.local_hold;
        self.agreed = Some(negotiated.clone());
        Ok((body, negotiated))
    }

    /// The peer's answer to our last offer; on success it becomes the agreement.
    pub fn on_answer(&mut self, remote: &RemoteMedia) -> Result<StreamParams, SdpError> {
        let negotiated = sdp::on_answer(remote, &self.local, self.offered)?;
        self.hold_agreed = self.local_hold;
        self.agreed = Some(negotiated.clone());
        Ok(negotiated)
    }
}

fn wanted(local_hold: bool, remote_hold: bool) -> MediaDirection {
    MediaDirection::from_flags(!remote_hold, !local_hold)
}

/// Our SDP's `o=` version and the body last sent with it.
#[derive(Debug, Clone, Default)]
struct Versions {
    version: u64,
    last_sent: Option<String>,
}

impl Versions {
    /// Build with the current version; move to the next only if the body
    /// changed. A build that fails leaves the version where it was.
    fn build<T, E>(&mut self, mut build: impl FnMut(u64) -> Result<(String, T), E>) -> Result<(String, T), E> {
        let current = build(self.version)?;
        if self.last_sent.as_deref() == Some(current.0.as_str()) {
            return Ok(current);
        }
        self.version += 1;
        let next = build(self.version)?;
        self.last_sent = Some(next.0.clone());
        Ok(next)
    }
}
