//! The daemon's figures for Prometheus. [`Metrics`] is handed what passes
//! through the run loop — the desk's outputs, the registration reports,
//! the media thread's last figures of each call, the recorder's reports —
//! and turns them into counters, gauges and histograms
//! of one `prometheus-client` registry; what other tasks count as they go
//! (SIP messages, connected clients) is read when scraped (see `pulled`).
//! It reads no clock and holds no socket: the shell serves
//! [`Exposition::encode`] over HTTP.
//!
//! Every label comes from a small closed set — directions, end reasons,
//! states, outcomes, methods, status classes — never a call id, an account
//! or a number, so the series stay few however many calls go by. What is
//! kept per call or callback (to turn their running totals into counter
//! increments, and to know a state change from a repeat) is dropped when
//! the call or callback ends.

mod callbacks;
mod media;
mod pulled;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::account::registration::RegState;
use crate::call::{CallId, CallState, SipAction};
use crate::desk::{Event, MediaReport, Output, RecorderReport};

pub use pulled::Pulled;

/// The labels of one series: (name, value) pairs from closed sets.
type Labels<const N: usize> = [(&'static str, String); N];
type Counters<const N: usize> = Family<Labels<N>, Counter>;

/// The text format's media type, for the HTTP answer.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// What a scrape encodes; shared with the HTTP task.
#[derive(Clone)]
pub struct Exposition(Arc<Registry>);

impl Exposition {
    /// Every metric, in Prometheus's text format (0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.0).expect("writing to a String does not fail");
        text
    }
}

/// The aggregation; see the module's documentation.
pub struct Metrics {
    calls: Counters<2>,
    live_calls: Gauge,
    /// Calls that have announced a state and not yet ended.
    live: HashSet<CallId>,
    inbound_refused: Counters<1>,
    registrations: Family<Labels<1>, Gauge>,
    registration_changes: Counters<1>,
    recordings: Counters<1>,
    recording_bytes: Counter,
    recorder_frames_dropped: Counter,
    media: media::MediaMetrics,
    callbacks: callbacks::CallbackMetrics,
}

const REG_STATES: [RegState; 4] =
    [RegState::Unregistered, RegState::Registering, RegState::Registered, RegState::Failed];

impl Metrics {
    /// Register every metric; `pulled` says where the figures read at each
    /// scrape come from. The exposition is what the HTTP task encodes.
    pub fn new(pulled: Pulled) -> (Metrics, Exposition) {
        let mut registry = Registry::with_prefix("softphoned");
        let r = &mut registry;
        let metrics = Metrics {
            calls: register(r, "calls", "Calls ended, by direction and why they ended"),
            live_calls: register(r, "live_calls", "Calls up now, ringing, connected or held"),
            live: HashSet::new(),
            inbound_refused: register(
                r,
                "inbound_calls_refused",
                "INVITEs refused before they rang, by status: 403 untrusted peer, 480/486 not ready or calls.max, 488 no common codec, 503 no RTP port",
            ),
            registrations: register(r, "registrations", "Accounts with a registrar, by their registration's state"),
            registration_changes: register(
                r,
                "registration_changes",
                "Registrations entering a state (registered, failed...)",
            ),
            recordings: register(r, "recordings", "Recordings ended, saved or failed"),
            recording_bytes: register(r, "recording_bytes", "Bytes of the recordings saved"),
            recorder_frames_dropped: register(
                r,
                "recorder_frames_dropped",
                "Audio frames the recorder dropped because its disk writes fell behind",
            ),
            media: media::MediaMetrics::new(r),
            callbacks: callbacks::CallbackMetrics::new(r),
        };
        for state in REG_STATES {
            metrics.registrations.get_or_create(&[("state", name(state))]).set(0);
        }
        registry.register_collector(Box::new(pulled));
        (metrics, Exposition(Arc::new(registry)))
    }

    /// One output of the desk, as the shell carries it out.
    pub fn output(&mut self, output: &Output) {
        match output {
            Output::Event(Event::CallState(summary)) => {
                if summary.state == CallState::Ended {
                    if self.live.remove(&summary.call) {
                        let reason = summary.reason.map_or_else(|| "unknown".into(), name);
                        self.calls.get_or_create(&[("direction", name(summary.direction)), ("reason", reason)]).inc();
                    }
                } else {
                    self.live.insert(summary.call.clone());
                }
                self.live_calls.set(self.live.len() as i64);
            }
            // A refusal answers an INVITE that never became a call: an
            // agent's reject comes while its call is live.
            Output::Sip { call, action: SipAction::Reject { code } } if !self.live.contains(call) => {
                self.inbound_refused.get_or_create(&[("code", code.to_string())]).inc();
            }
            Output::Event(Event::CallQuality { call, stats }) => self.media.quality(call, stats),
            Output::Event(Event::CallbackState(callback)) => self.callbacks.state(callback),
            Output::Event(Event::CallbackCountdown { countdown, .. }) => self.callbacks.countdown(countdown),
            _ => {}
        }
    }

    /// An account's registration reported `now`, having been `before`;
    /// `accounts` tells how many accounts are in a state since (the shell
    /// keeps each account's last report, and knows which accounts a reload
    /// removed).
    pub fn registration(&mut self, before: Option<RegState>, now: RegState, accounts: impl Fn(RegState) -> usize) {
        if before != Some(now) {
            self.registration_changes.get_or_create(&[("state", name(now))]).inc();
        }
        for state in REG_STATES {
            self.registrations.get_or_create(&[("state", name(state))]).set(accounts(state) as i64);
        }
    }

    /// A report of the media thread: its last figures when a call's media
    /// stops (its quality reports come as the desk's `call.quality`).
    pub fn media(&mut self, report: &MediaReport) {
        if let MediaReport::Stopped { call, stats } = report {
            self.media.stopped(call, stats.as_deref());
        }
    }

    /// The recorder's word on a recording.
    pub fn recorder(&mut self, report: &RecorderReport) {
        match report {
            RecorderReport::Saved { bytes, frames_dropped_total, .. } => {
                self.recordings.get_or_create(&[("outcome", "saved".into())]).inc();
                self.recording_bytes.inc_by(*bytes);
                // A running total of the recorder's: the counter follows it.
                let seen = self.recorder_frames_dropped.get();
                self.recorder_frames_dropped.inc_by(frames_dropped_total.saturating_sub(seen));
            }
            RecorderReport::Failed { .. } => {
                self.recordings.get_or_create(&[("outcome", "failed".into())]).inc();
            }
        }
    }
}

/// Register `metric` under `name` (the registry adds the prefix, and
/// `_total` to counters).
fn register<M: prometheus_client::registry::Metric + Clone + Default>(
    registry: &mut Registry,
    name: &str,
    help: &str,
) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

/// A value's protocol name (its serde name: `remote_hangup`, `inbound`),
/// so label values read as the control protocol's events do.
fn name(value: impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "unknown".into(),
    }
}
