//! The headline figures of a call's media, as the UI and history see them
//! (`call.quality`, the summary of `call.stats`, a call's history record).

use serde::Serialize;

use super::stream::MediaStats;

/// `call.quality`, and the summary part of `call.stats`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct QualityEvent {
    pub call: String,
    /// Interarrival jitter of what we receive (RFC 3550), in ms.
    pub jitter_ms: f64,
    /// Loss in percent: the worst of what we see, what the peer reports,
    /// and the share of the last interval with no audio from the peer at
    /// all (an outage shows while it lasts).
    pub loss_percent: f64,
    /// Round trip from RTCP, once the peer has reported on our stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// E-model MOS estimate, 1 (bad) to 4.5 (best).
    pub mos: f64,
    /// The jitter buffer's current target delay.
    pub jitter_buffer_ms: u32,
}

impl QualityEvent {
    pub fn new(call: String, stats: &MediaStats) -> Self {
        QualityEvent {
            call,
            jitter_ms: stats.rtcp.jitter_ms,
            loss_percent: (stats.rtcp.fraction_lost.max(stats.rtcp.remote_fraction_lost) * 100.0)
                .max(stats.missing_percent),
            rtt_ms: stats.rtcp.rtt_ms,
            mos: stats.mos,
            jitter_buffer_ms: stats.jitter_buffer.target_delay_ms,
        }
    }
}
