//! A call's deadlines: the auto-answer countdown and ring timeout of an
//! inbound call, and the RFC 4028 session timer of a connected one. Each is
//! an instant inside the machine; the shell calls [`Call::poll`] with the
//! time and carries out what falls due. Nothing sleeps.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::session_timer::{Refresher, SessionTimer};
use super::{Call, CallState, Effect, EndReason, Inbound, SipAction};

/// How often a running countdown is reported.
const COUNTDOWN_REPORT: Duration = Duration::from_secs(1);

/// Why a countdown stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountdownStop {
    /// It reached zero and did what it counts down to.
    Elapsed,
    /// The agent answered sooner.
    Answered,
    /// The agent rejected the call.
    Rejected,
    /// The caller hung up.
    CallerCancelled,
    /// Nobody answered before the ring timeout.
    Unanswered,
}

/// One `call.countdown` report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Countdown {
    pub remaining_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<CountdownStop>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Timers {
    auto_answer_at: Option<Instant>,
    next_report_at: Option<Instant>,
    ring_timeout: Option<(Instant, u16)>,
    /// The session timer we will announce when answering.
    offered_session: Option<SessionTimer>,
    session: Option<SessionTimer>,
    session_due: Option<Instant>,
    /// A REFER of ours waits for the transferee's final report until then.
    pub(super) transfer_due: Option<Instant>,
}

impl Timers {
    /// An inbound call starts ringing: arm its countdown and timeout.
    pub(super) fn ringing(inbound: &Inbound, now: Instant, effects: &mut Vec<Effect>) -> Timers {
        let mut timers = Timers {
            ring_timeout: inbound.ring_timeout.map(|(after, code)| (now + after, code)),
            offered_session: inbound.session_timer,
            ..Timers::default()
        };
        if let Some(after) = inbound.auto_answer_after {
            timers.auto_answer_at = Some(now + after);
            timers.next_report_at = Some(now + COUNTDOWN_REPORT.min(after));
            effects.push(Effect::Countdown(Countdown { remaining_ms: millis(after), stopped: None }));
        }
        timers
    }

    pub(super) fn stop_countdown(&mut self, why: CountdownStop, effects: &mut Vec<Effect>) {
        self.ring_timeout = None;
        self.next_report_at = None;
        if self.auto_answer_at.take().is_some() {
            effects.push(Effect::Countdown(Countdown { remaining_ms: 0, stopped: Some(why) }));
        }
    }

    pub(super) fn answer_session_timer(&self) -> Option<SessionTimer> {
        self.offered_session
    }

    pub(super) fn connected(&mut self, session: Option<SessionTimer>, now: Instant) {
        *self = Timers { session, ..Timers::default() };
        self.session_refreshed(now);
    }

    /// The peer refreshed the session, announcing `timer` in our answer
    /// (RFC 4028 §9: the latest 2xx sets interval and refresher); without
    /// one the running timer stays. The interval starts again.
    pub(super) fn session_renewed(&mut self, timer: Option<SessionTimer>, now: Instant) {
        if timer.is_some() {
            self.session = timer;
        }
        self.session_refreshed(now);
    }

    /// A refresh went through (ours or the peer's): the interval starts again.
    pub(super) fn session_refreshed(&mut self, now: Instant) {
        self.session_due = self.session.map(|timer| {
            now + match timer.refresher {
                Refresher::Us => timer.refresh_after(),
                Refresher::Peer => timer.expire_after(),
            }
        });
    }

    /// The session timer running, if any.
    pub(super) fn session(&self) -> Option<SessionTimer> {
        self.session
    }

    /// The answer to our refresh (a glare is `offers.rs`'s); true when the session is lost.
    pub(super) fn refresh_answered(&mut self, code: u16, now: Instant) -> bool {
        match code {
            200..=299 => self.session_refreshed(now),
            _ => return self.session.is_some(),
        }
        false
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.auto_answer_at,
            self.next_report_at,
            self.ring_timeout.map(|(at, _)| at),
            self.session_due,
            self.transfer_due,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl Call {
    /// The earliest instant at which [`poll`](Self::poll) has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.timers.next_deadline(), self.offers.next_deadline()].into_iter().flatten().min()
    }

    /// Carry out whatever has fallen due by `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        match self.state {
            CallState::Incoming => self.poll_ringing(now, &mut effects),
            _ if self.is_established() => {
                self.poll_transfer(now, &mut effects);
                if self.state != CallState::Ended {
                    self.poll_glare(now, &mut effects);
                    self.poll_session(now, &mut effects);
                }
            }
            _ => {}
        }
        effects
    }

    fn poll_ringing(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let timers = &mut self.timers;
        if timers.auto_answer_at.is_some_and(|at| at <= now) {
            timers.stop_countdown(CountdownStop::Elapsed, effects);
            self.answer(now, effects);
        } else if let Some((_, code)) = timers.ring_timeout.filter(|(at, _)| *at <= now) {
            timers.stop_countdown(CountdownStop::Unanswered, effects);
            effects.push(Effect::Sip(SipAction::Reject { code }));
            self.end(EndReason::Unanswered, Some(code), now, effects);
        } else if let (Some(report_at), Some(answer_at)) = (timers.next_report_at, timers.auto_answer_at) {
            if report_at <= now {
                timers.next_report_at = Some((report_at + COUNTDOWN_REPORT).min(answer_at));
                // As of the tick it belongs to: whole seconds for "Accept (00:09)".
                let remaining_ms = millis(answer_at.saturating_duration_since(report_at));
                effects.push(Effect::Countdown(Countdown { remaining_ms, stopped: None }));
            }
        }
    }

    fn poll_session(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let Some(timer) = self.timers.session.filter(|_| self.timers.session_due.is_some_and(|at| at <= now)) else {
            return;
        };
        // Until the refresh is answered there is no deadline: the
        // transaction's own timeout answers for a silent peer.
        self.timers.session_due = None;
        match timer.refresher {
            Refresher::Us => self.send_refresh(timer, effects),
            Refresher::Peer => {
                effects.push(Effect::Sip(SipAction::Bye));
                self.end(EndReason::SessionExpired, None, now, effects);
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}
