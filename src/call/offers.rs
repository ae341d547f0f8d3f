//! Our side of a dialog's offer/answer exchanges, so that a call's media
//! direction converges to what the agent asked for last, whatever the
//! network's timing. One re-INVITE of ours at a time (RFC 3261 §14.1):
//! a hold or resume asked while one is in flight is remembered and sent
//! when it completes (a hold then a resume before the first is answered
//! sends the resume after it; asking back what is on the wire sends
//! nothing). A REFER waits behind it too. A 491 (both sides re-INVITEd at
//! once) is retried after RFC 3261's random delay (2.1–4 s when we placed
//! the call, 0–2 s when the peer did), and a peer's re-INVITE that crosses
//! ours is answered 491. The randomness is seeded per call by the shell.

use std::time::{Duration, Instant};

use super::session_timer::SessionTimer;
use super::{Call, Direction, Effect, SipAction};

/// What our re-INVITE in flight (or waiting to be retried) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pending {
    Refresh,
    Hold,
    Resume,
}

/// The call's offer/answer bookkeeping.
#[derive(Debug, Clone)]
pub(super) struct Offers {
    /// Our re-INVITE in flight, and what it was for.
    in_flight: Option<Pending>,
    /// After a 491: when to try again, and what failed.
    retry: Option<(Instant, Pending)>,
    /// The hold state the agent asked for last: what the call converges to.
    hold_wanted: bool,
    /// In-dialog requests held back while our re-INVITE is in flight.
    queued: Vec<SipAction>,
    /// xorshift state for the glare back-off.
    seed: u64,
}

impl Offers {
    pub(super) fn new(seed: u64) -> Offers {
        // xorshift must not start at zero.
        Offers { in_flight: None, retry: None, hold_wanted: false, queued: Vec::new(), seed: seed | 1 }
    }

    /// An exchange of ours is in flight or waits to be retried.
    pub(super) fn busy(&self) -> bool {
        self.in_flight.is_some() || self.retry.is_some()
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.retry.map(|(at, _)| at)
    }

    /// RFC 3261 §14.1's wait after a 491, in units of 10 ms.
    fn glare_delay(&mut self, owner: bool) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let (from_ms, span_ms) = if owner { (2100, 1900) } else { (0, 2000) };
        Duration::from_millis(from_ms + (self.seed % (span_ms / 10 + 1)) * 10)
    }
}

impl Call {
    /// The agent's last ask is that we hold the peer (in flight or done).
    pub fn hold_wanted(&self) -> bool {
        self.offers.hold_wanted
    }

    /// The agent asks for hold (or resume): sent now, or once the exchange
    /// in flight completes. False when that is asked already.
    pub(super) fn ask_hold(&mut self, hold: bool, effects: &mut Vec<Effect>) -> bool {
        if self.offers.hold_wanted == hold {
            return false;
        }
        self.offers.hold_wanted = hold;
        self.converge(effects);
        true
    }

    /// Time for our session refresh; the exchange in flight (or its retry)
    /// refreshes the session when it is answered.
    pub(super) fn send_refresh(&mut self, timer: SessionTimer, effects: &mut Vec<Effect>) {
        if self.offers.busy() {
            return;
        }
        self.offers.in_flight = Some(Pending::Refresh);
        let offer = self.media.offer();
        effects.push(Effect::Sip(SipAction::Reinvite { offer, session_timer: Some(timer) }));
    }

    /// Send `action` now, or after our re-INVITE in flight is answered.
    pub(super) fn send_in_dialog(&mut self, action: SipAction, effects: &mut Vec<Effect>) {
        if self.offers.in_flight.is_some() {
            self.offers.queued.push(action);
        } else {
            effects.push(Effect::Sip(action));
        }
    }

    /// A peer's offer arrived: it crosses ours when one is in flight.
    pub(super) fn offer_crosses_ours(&self) -> bool {
        self.offers.in_flight.is_some()
    }

    /// The exchange in flight completed: what it was for, if one was.
    pub(super) fn exchange_done(&mut self) -> Option<Pending> {
        self.offers.in_flight.take()
    }

    /// Both sides re-INVITEd at once (491): ours is tried again later.
    pub(super) fn glare(&mut self, pending: Pending, now: Instant) {
        let delay = self.offers.glare_delay(self.direction == Direction::Outbound);
        tracing::info!(call = %self.id, ?pending, delay_ms = delay.as_millis() as u64, "re-INVITE glare (491): retrying");
        self.offers.retry = Some((now + delay, pending));
    }

    /// The agent's last ask stands refused by the peer: what is on the wire stays.
    pub(super) fn hold_refused(&mut self) {
        self.offers.hold_wanted = self.media.local_hold;
    }

    /// After a 491's wait: send what is still wanted.
    pub(super) fn poll_glare(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let Some((at, pending)) = self.offers.retry.filter(|(at, _)| *at <= now) else { return };
        self.offers.retry = None;
        tracing::debug!(call = %self.id, ?pending, waited_since = ?at, "glare wait over");
        if pending == Pending::Refresh && self.offers.hold_wanted == self.media.local_hold {
            if let Some(timer) = self.timers.session() {
                return self.send_refresh(timer, effects);
            }
        }
        self.converge(effects);
    }

    /// Nothing in flight: send the hold or resume still wanted, else what waited.
    pub(super) fn converge(&mut self, effects: &mut Vec<Effect>) {
        if self.offers.busy() {
            return;
        }
        if self.offers.hold_wanted != self.media.local_hold {
            let hold = self.offers.hold_wanted;
            self.media.local_hold = hold;
            self.offers.in_flight = Some(if hold { Pending::Hold } else { Pending::Resume });
            let offer = self.media.offer();
            effects.push(Effect::Sip(SipAction::Reinvite { offer, session_timer: None }));
            return;
        }
        effects.extend(self.offers.queued.drain(..).map(Effect::Sip));
    }
}
