//! Replay protection that only ever sees authentic packets.
//!
//! `rtc-srtp`'s own detector is consulted before authentication and its
//! window starts at the first sequence number it is shown, so one forged or
//! stray packet ahead of the genuine first would make every genuine packet
//! until then look replayed. We decrypt with its detector off and check here,
//! after the tag verified.

use rtc_shared::replay_detector::{ReplayDetector, WrappedSlidingWindowDetector};

/// Packets behind the newest one that still count as late, not replayed
/// (RFC 3711 §3.3.2's minimum, enough for a jitter buffer's reordering).
const WINDOW: usize = 64;
/// SSRCs remembered at once: a call has one, a few more cover a peer that
/// switches (transfer, media server) while late packets of the old one arrive.
const MAX_SOURCES: usize = 4;

pub(super) struct ReplayGuard {
    max_index: u64,
    sources: Vec<(u32, WrappedSlidingWindowDetector)>,
}

impl ReplayGuard {
    /// `max_index` is where the protected counter wraps: 0xffff for SRTP
    /// sequence numbers, 2^31 − 1 for SRTCP indices.
    pub fn new(max_index: u64) -> Self {
        ReplayGuard { max_index, sources: Vec::with_capacity(MAX_SOURCES) }
    }

    /// Record an authentic packet; false if it was seen before or is older than the window.
    pub fn accept(&mut self, ssrc: u32, index: u64) -> bool {
        let slot = match self.sources.iter().position(|(known, _)| *known == ssrc) {
            Some(slot) => slot,
            None => {
                if self.sources.len() == MAX_SOURCES {
                    // The longest-known source is the likeliest to be over.
                    self.sources.remove(0);
                }
                self.sources.push((ssrc, WrappedSlidingWindowDetector::new(WINDOW, self.max_index)));
                self.sources.len() - 1
            }
        };
        let detector = &mut self.sources[slot].1;
        if !detector.check(index) {
            return false;
        }
        detector.accept();
        true
    }
}
