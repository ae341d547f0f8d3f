//! Media figures from each call's quality reports (the desk's
//! `call.quality` events) and its last figures when its media stops: RTP
//! and RTCP traffic as counters, and each quality report's jitter, loss,
//! MOS and jitter-buffer delay as histograms (one observation per call per
//! quality interval).
//!
//! A report carries the call's running totals; the counters grow by the
//! difference from the call's previous report, which is why the last
//! totals of each live call are kept here (and forgotten when its media
//! stops).

use std::collections::HashMap;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::{register, Counters};
use crate::call::CallId;
use crate::media::stream::MediaStats;

/// A call's running totals at its last report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    rtp_sent: u64,
    rtp_received: u64,
    payload_sent: u64,
    payload_received: u64,
    rtcp_sent: u64,
    rtcp_received: u64,
    lost: u64,
    discarded: u64,
    underruns: u64,
}

impl Totals {
    fn of(stats: &MediaStats) -> Totals {
        Totals {
            rtp_sent: stats.packets_sent,
            rtp_received: stats.packets_received,
            payload_sent: stats.rtcp.octets_sent,
            payload_received: stats.payload_bytes_received,
            rtcp_sent: stats.rtcp.reports_sent,
            rtcp_received: stats.rtcp.reports_received,
            // Negative when the peer duplicated more than was lost: no loss.
            lost: stats.rtcp.packets_lost.max(0) as u64,
            discarded: stats.packets_discarded,
            underruns: stats.playout_underruns,
        }
    }
}

pub(super) struct MediaMetrics {
    rtp_packets: Counters<1>,
    rtp_payload_bytes: Counters<1>,
    rtcp_packets: Counters<1>,
    rtp_lost: Counter,
    rtp_discarded: Counter,
    playout_underruns: Counter,
    jitter: Histogram,
    loss: Histogram,
    mos: Histogram,
    buffer_delay: Histogram,
    calls: HashMap<CallId, Totals>,
}

impl MediaMetrics {
    pub(super) fn new(r: &mut Registry) -> MediaMetrics {
        let histogram = |r: &mut Registry, name: &str, help: &str, buckets: Vec<f64>| {
            let histogram = Histogram::new(buckets);
            r.register(name, help, histogram.clone());
            histogram
        };
        let seconds = || exponential_buckets(0.0025, 2.0, 8).collect::<Vec<_>>();
        MediaMetrics {
            rtp_packets: register(r, "rtp_packets", "RTP packets, sent and received"),
            rtp_payload_bytes: register(
                r,
                "rtp_payload_bytes",
                "RTP audio payload bytes, sent and received (headers excluded)",
            ),
            rtcp_packets: register(r, "rtcp_packets", "RTCP (compound) packets, sent and received"),
            rtp_lost: register(r, "rtp_lost_packets", "Peers' RTP packets lost on the way (RTCP's count)"),
            rtp_discarded: register(
                r,
                "rtp_discarded_packets",
                "Datagrams on RTP ports that were not the call's RTP or failed SRTP authentication",
            ),
            playout_underruns: register(r, "playout_underruns", "Frames played as concealment or silence"),
            jitter: histogram(
                r,
                "rtp_jitter_seconds",
                "Interarrival jitter of the peers' RTP, per quality report",
                seconds(),
            ),
            loss: histogram(
                r,
                "rtp_loss_ratio",
                "Share of the peers' packets lost in an RTCP interval, per quality report",
                vec![0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
            ),
            mos: histogram(
                r,
                "mos",
                "E-model MOS estimate (1 to 4.5) of each call, per quality report",
                vec![1.5, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.4],
            ),
            buffer_delay: histogram(
                r,
                "jitter_buffer_delay_seconds",
                "How long played packets waited in the jitter buffer, per quality report",
                seconds(),
            ),
            calls: HashMap::new(),
        }
    }

    pub(super) fn quality(&mut self, call: &CallId, stats: &MediaStats) {
        self.jitter.observe(stats.rtcp.jitter_ms / 1000.0);
        self.loss.observe(stats.rtcp.fraction_lost);
        self.mos.observe(stats.mos);
        self.buffer_delay.observe(f64::from(stats.jitter_buffer.current_delay_ms) / 1000.0);
        self.count(call, stats);
    }

    /// The call's media stopped: its last figures, if it had any.
    pub(super) fn stopped(&mut self, call: &CallId, stats: Option<&MediaStats>) {
        if let Some(stats) = stats {
            self.count(call, stats);
        }
        self.calls.remove(call);
    }

    /// Grow the counters by what `call` did since its last report.
    fn count(&mut self, call: &CallId, stats: &MediaStats) {
        let now = Totals::of(stats);
        let before = self.calls.insert(call.clone(), now).unwrap_or_default();
        let grown = |now: u64, before: u64| now.saturating_sub(before);
        let direction = |d: &str| [("direction", d.to_string())];
        self.rtp_packets.get_or_create(&direction("sent")).inc_by(grown(now.rtp_sent, before.rtp_sent));
        self.rtp_packets.get_or_create(&direction("received")).inc_by(grown(now.rtp_received, before.rtp_received));
        self.rtp_payload_bytes.get_or_create(&direction("sent")).inc_by(grown(now.payload_sent, before.payload_sent));
        let received = grown(now.payload_received, before.payload_received);
        self.rtp_payload_bytes.get_or_create(&direction("received")).inc_by(received);
        self.rtcp_packets.get_or_create(&direction("sent")).inc_by(grown(now.rtcp_sent, before.rtcp_sent));
        self.rtcp_packets.get_or_create(&direction("received")).inc_by(grown(now.rtcp_received, before.rtcp_received));
        self.rtp_lost.inc_by(grown(now.lost, before.lost));
        self.rtp_discarded.inc_by(grown(now.discarded, before.discarded));
        self.playout_underruns.inc_by(grown(now.underruns, before.underruns));
    }
}
