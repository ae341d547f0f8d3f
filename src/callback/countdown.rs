//! A callback's deadlines: the auto-dial and wrap-up countdowns (reported
//! when they start, every second, and when they stop), the no-answer
//! timeout of a ringing attempt, and the moment a scheduled callback falls
//! due. All are instants compared with the `now` the shell passes in.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;

use super::{Effect, Now};

/// How often a running countdown is reported.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// A scheduled callback's wake-up is re-checked against the wall clock at
/// least this often, so a clock step (NTP, suspend) delays it by no more.
const WALL_RECHECK: Duration = Duration::from_secs(30);

/// What a countdown counts down to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountdownKind {
    /// Dial the selected number.
    Dial,
    /// Close the wrap-up.
    Wrapup,
}

/// Why a countdown stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountdownStop {
    /// It reached zero and did what it counts down to.
    Elapsed,
    /// The agent dialled sooner.
    Dialed,
    /// The agent stopped it (`callback.countdown.cancel`).
    Cancelled,
    /// The agent submitted the wrap-up.
    Submitted,
    /// The callback was handed to another queue or agent.
    Transferred,
    /// The callback was closed or moved to a later time.
    Closed,
}

/// One `callback.countdown` report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct CountdownReport {
    pub kind: CountdownKind,
    pub remaining_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<CountdownStop>,
    /// How long after its zero the countdown was seen to elapse (the
    /// shell woke late): for the metrics, not the control protocol.
    #[serde(skip)]
    #[schemars(skip)]
    pub late: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Running {
    kind: CountdownKind,
    ends_at: Instant,
    next_report_at: Instant,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Timers {
    countdown: Option<Running>,
    no_answer_at: Option<Instant>,
    /// When to look at the wall clock for a scheduled callback.
    schedule_check_at: Option<Instant>,
}

impl Timers {
    pub(super) fn start(&mut self, kind: CountdownKind, length: Duration, now: Instant, effects: &mut Vec<Effect>) {
        let ends_at = now + length;
        self.countdown = Some(Running { kind, ends_at, next_report_at: now + REPORT_EVERY.min(length) });
        effects.push(Effect::Countdown(CountdownReport {
            kind,
            remaining_ms: millis(length),
            stopped: None,
            late: None,
        }));
    }

    /// Stop the running countdown, if any; says whether one ran.
    pub(super) fn stop(&mut self, why: CountdownStop, effects: &mut Vec<Effect>) -> bool {
        self.stop_late(why, None, effects)
    }

    fn stop_late(&mut self, why: CountdownStop, late: Option<Duration>, effects: &mut Vec<Effect>) -> bool {
        match self.countdown.take() {
            Some(running) => {
                effects.push(Effect::Countdown(CountdownReport {
                    kind: running.kind,
                    remaining_ms: 0,
                    stopped: Some(why),
                    late,
                }));
                true
            }
            None => false,
        }
    }

    pub(super) fn running(&self) -> Option<CountdownKind> {
        self.countdown.map(|r| r.kind)
    }

    /// Report the running countdown if a report is due; the kind if it reached zero (it is then stopped).
    pub(super) fn poll_countdown(&mut self, now: Instant, effects: &mut Vec<Effect>) -> Option<CountdownKind> {
        let running = self.countdown.as_mut()?;
        if now >= running.ends_at {
            let (kind, late) = (running.kind, now - running.ends_at);
            self.stop_late(CountdownStop::Elapsed, Some(late), effects);
            return Some(kind);
        }
        if now >= running.next_report_at {
            let remaining = running.ends_at - now;
            running.next_report_at = now + REPORT_EVERY.min(remaining);
            let report =
                CountdownReport { kind: running.kind, remaining_ms: millis(remaining), stopped: None, late: None };
            effects.push(Effect::Countdown(report));
        }
        None
    }

    pub(super) fn ring(&mut self, timeout: Duration, now: Instant) {
        self.no_answer_at = Some(now + timeout);
    }

    pub(super) fn stop_ring(&mut self) {
        self.no_answer_at = None;
    }

    /// Whether the ringing attempt has rung too long (reported once).
    pub(super) fn rang_out(&mut self, now: Instant) -> bool {
        let due = self.no_answer_at.is_some_and(|at| at <= now);
        if due {
            self.no_answer_at = None;
        }
        due
    }

    /// Wake up at `wall_due` (a wall-clock time), or sooner to look again.
    pub(super) fn wake_at_wall(&mut self, wall_due: jiff::Timestamp, now: Now) {
        let until = wall_due.duration_since(now.wall);
        let until = Duration::try_from(until).unwrap_or(Duration::ZERO);
        self.schedule_check_at = Some(now.at + until.min(WALL_RECHECK));
    }

    pub(super) fn stop_schedule(&mut self) {
        self.schedule_check_at = None;
    }

    pub(super) fn schedule_check_due(&self, now: Instant) -> bool {
        self.schedule_check_at.is_some_and(|at| at <= now)
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let countdown = self.countdown.map(|r| r.next_report_at.min(r.ends_at));
        [countdown, self.no_answer_at, self.schedule_check_at].into_iter().flatten().min()
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}
