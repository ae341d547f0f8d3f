//! Callback figures from the desk's `callback.state` and
//! `callback.countdown` events: open callbacks by state, entries into each
//! state, how they closed, how each attempt went, the preview, talk and
//! wrap-up times, and how late the countdowns fired.
//!
//! A callback's event repeats on any change (notes, a number picked), so
//! its last state and what was already counted of its attempts are kept
//! until it closes: a repeat is no new transition, an attempt's outcome is
//! counted once. A closed callback is forgotten: an event about it
//! after that changes nothing.

use std::collections::HashMap;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::{name, register, Counters, Labels};
use crate::callback::{Callback, CallbackId, CallbackState, CountdownReport};

/// What was counted of a callback so far.
#[derive(Debug, Clone, Copy)]
struct Seen {
    state: CallbackState,
    /// Attempts ended and counted (their outcome and talk time).
    ended: usize,
    preview: bool,
}

type Histograms = Family<Labels<1>, Histogram, fn() -> Histogram>;

pub(super) struct CallbackMetrics {
    open: Family<Labels<1>, Gauge>,
    entered: Counters<1>,
    closed: Counters<1>,
    attempts: Counters<1>,
    /// preview, talk, wrapup
    phases: Histograms,
    lateness: Histograms,
    seen: HashMap<CallbackId, Seen>,
}

/// Phases last seconds to tens of minutes.
fn phase_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 12))
}

/// A countdown is meant to fire within a millisecond of zero.
fn lateness_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 12))
}

impl CallbackMetrics {
    pub(super) fn new(r: &mut Registry) -> CallbackMetrics {
        let phases = Histograms::new_with_constructor(phase_histogram);
        r.register(
            "callback_phase_seconds",
            "How long callbacks spent in preview (accept to first dial), talk (an attempt's answer to hangup) and wrap-up",
            phases.clone(),
        );
        let lateness = Histograms::new_with_constructor(lateness_histogram);
        r.register(
            "countdown_lateness_seconds",
            "How long after zero the dial and wrap-up countdowns fired",
            lateness.clone(),
        );
        CallbackMetrics {
            open: register(r, "callbacks", "Open callbacks, by state"),
            entered: register(r, "callback_transitions", "Callbacks entering a state"),
            closed: register(r, "callbacks_closed", "Callbacks closed, by outcome"),
            attempts: register(r, "callback_attempts", "Callback dial attempts ended, by outcome"),
            phases,
            lateness,
            seen: HashMap::new(),
        }
    }

    pub(super) fn state(&mut self, callback: &Callback) {
        let state = |s: CallbackState| [("state", s.as_str().to_string())];
        let before = self.seen.get(&callback.callback).copied();
        if before.is_none() && !callback.state.is_open() {
            // Closed and counted already: a late repeat of its last event.
            return;
        }
        let mut seen = before.unwrap_or(Seen { state: callback.state, ended: 0, preview: false });
        if before.is_none_or(|b| b.state != callback.state) {
            if let Some(before) = before {
                self.open.get_or_create(&state(before.state)).dec();
            }
            self.entered.get_or_create(&state(callback.state)).inc();
            if callback.state.is_open() {
                self.open.get_or_create(&state(callback.state)).inc();
            }
        }
        if let (Some(preview_ms), false) = (callback.preview_ms, seen.preview) {
            seen.preview = true;
            self.phase("preview", preview_ms);
        }
        // An answered attempt has its outcome at the answer; its talk time at the end.
        for attempt in callback.attempts.iter().skip(seen.ended).take_while(|a| a.ended_at.is_some()) {
            seen.ended += 1;
            self.attempts.get_or_create(&[("outcome", name(attempt.outcome))]).inc();
            if let Some(talk_ms) = attempt.talk_ms {
                self.phase("talk", talk_ms);
            }
        }
        if let Some(closed) = callback.closed {
            self.closed.get_or_create(&[("outcome", closed.as_str().to_string())]).inc();
            // Wrap-up runs from the last attempt's end to the close.
            let ended = callback.attempts.last().and_then(|a| a.ended_at);
            let was_wrapup = before.is_some_and(|b| b.state == CallbackState::Wrapup);
            if let (true, Some(ended), Some(closed_at)) = (was_wrapup, ended, callback.closed_at) {
                let wrapup = closed_at.duration_since(ended).as_millis().max(0) as u64;
                self.phase("wrapup", wrapup);
            }
            self.seen.remove(&callback.callback);
        } else {
            seen.state = callback.state;
            self.seen.insert(callback.callback.clone(), seen);
        }
    }

    pub(super) fn countdown(&mut self, report: &CountdownReport) {
        if let Some(late) = report.late {
            self.lateness.get_or_create(&[("kind", name(report.kind))]).observe(late.as_secs_f64());
        }
    }

    fn phase(&self, phase: &str, ms: u64) {
        self.phases.get_or_create(&[("phase", phase.to_string())]).observe(ms as f64 / 1000.0);
    }
}
