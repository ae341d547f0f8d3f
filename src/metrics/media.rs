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

/// One way's running totals of a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Way {
    rtp: u64,
    /// RTP payload bytes.
    payload: u64,
    rtcp: u64,
    rtcp_bytes: u64,
}

/// A call's running totals at its last report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    sent: Way,
    received: Way,
    lost: u64,
    discarded: u64,
    underruns: u64,
}

impl Totals {
    fn of(stats: &MediaStats) -> Totals {
        let rtcp = &stats.rtcp;
        Totals {
            sent: Way {
                rtp: stats.packets_sent,
                payload: rtcp.octets_sent,
                rtcp: rtcp.reports_sent,
                rtcp_bytes: rtcp.report_bytes_sent,
            },
            received: Way {
                rtp: stats.packets_received,
                payload: stats.payload_bytes_received,
                rtcp: rtcp.reports_received,
                rtcp_bytes: rtcp.report_bytes_received,
            },
            // Negative when the peer duplicated more than was lost: no loss.
            lost: rtcp.packets_lost.max(0) as u64,
            discarded: stats.packets_discarded,
            underruns: stats.playout_underruns,
        }
    }
}

pub(super) struct MediaMetrics {
    rtp_packets: Counters<1>,
    rtp_payload_bytes: Counters<1>,
    rtcp_packets: Counters<1>,
    rtcp_bytes: Counters<1>,
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
            rtcp_bytes: register(r, "rtcp_bytes", "RTCP bytes, sent and received (SRTCP's protection excluded)"),
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
        for (way, now, before) in [("sent", now.sent, before.sent), ("received", now.received, before.received)] {
            let labels = [("direction", way.to_string())];
            self.rtp_packets.get_or_create(&labels).inc_by(now.rtp.saturating_sub(before.rtp));
            self.rtp_payload_bytes.get_or_create(&labels).inc_by(now.payload.saturating_sub(before.payload));
            self.rtcp_packets.get_or_create(&labels).inc_by(now.rtcp.saturating_sub(before.rtcp));
            self.rtcp_bytes.get_or_create(&labels).inc_by(now.rtcp_bytes.saturating_sub(before.rtcp_bytes));
        }
        self.rtp_lost.inc_by(now.lost.saturating_sub(before.lost));
        self.rtp_discarded.inc_by(now.discarded.saturating_sub(before.discarded));
        self.playout_underruns.inc_by(now.underruns.saturating_sub(before.underruns));
    }
}
