//! An answered call's own life: hold and resume by re-INVITE (one at a
//! time: see `offers.rs`), the peer's re-offers (its hold, a new address
//! or codec), mute, keys sent and received, the answers to our re-INVITEs,
//! and the media path's verdict that the peer went silent.

use std::time::Instant;

use super::offers::Pending;
use super::session_timer::SessionTimer;
use super::{Call, CallError, CallState, Command, Effect, EndReason, Signal, SipAction};
use crate::sdp;

impl Command {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Command::Answer => "answer",
            Command::Reject(_) => "reject",
            Command::Hangup => "hang up",
            Command::Hold => "hold",
            Command::Resume => "resume",
            Command::Mute => "mute",
            Command::Unmute => "unmute",
            Command::Dtmf(_) => "send DTMF on",
            Command::TransferBlind(_) => "transfer",
        }
    }
}

impl Call {
    /// Connected, held or held by the peer, from who holds whom.
    pub(super) fn established_state(&self) -> CallState {
        if self.transferring() {
            CallState::Transferring
        } else if self.media.hold_agreed {
            CallState::Held
        } else if self.media.remote_hold {
            CallState::RemoteHeld
        } else {
            CallState::Connected
        }
    }

    pub(super) fn midcall_command(&mut self, command: Command) -> Result<Vec<Effect>, CallError> {
        let refuse = |call: &Call| CallError::InvalidState {
            command: command.name(),
            state: call.state,
            direction: call.direction,
        };
        let mut effects = Vec::new();
        match &command {
            Command::Hold | Command::Resume => {
                // Asked while a re-INVITE is in flight, it follows that one.
                if !self.ask_hold(command == Command::Hold, &mut effects) {
                    return Err(refuse(self));
                }
            }
            Command::Mute | Command::Unmute => {
                let mute = command == Command::Mute;
                if self.muted != mute {
                    self.muted = mute;
                    effects.push(Effect::Mute(mute));
                    effects.push(Effect::StateChanged);
                }
            }
            Command::Dtmf(digits) => {
                let has_events = self.media.agreed.as_ref().is_some_and(|n| n.telephone_event.is_some());
                effects.push(if has_events {
                    Effect::SendDtmf(digits.clone())
                } else {
                    Effect::Sip(SipAction::Info { digits: digits.clone() })
                });
            }
            Command::Answer | Command::Reject(_) | Command::Hangup | Command::TransferBlind(_) => {
                return Err(refuse(self))
            }
        }
        Ok(effects)
    }

    pub(super) fn midcall_signal(&mut self, signal: Signal, now: Instant, effects: &mut Vec<Effect>) {
        match signal {
            Signal::PeerRefreshed { session_timer } => self.timers.session_renewed(session_timer, now),
            Signal::RemoteOffer { sdp, session_timer } => self.answer_remote_offer(&sdp, session_timer, now, effects),
            Signal::ReinviteAnswered { code, sdp } => self.reinvite_answered(code, sdp, now, effects),
            Signal::DtmfInfo { digit } => effects.push(Effect::DtmfReceived(digit)),
            Signal::Referred { to } => effects.push(Effect::Dial(to)),
            Signal::MediaTimeout => {
                effects.push(Effect::Sip(SipAction::Bye));
                self.end(EndReason::MediaTimeout, None, now, effects);
            }
            _ => {}
        }
    }

    /// A refused re-offer leaves the call as it was (RFC 3264 §8: 488, the
    /// old session stays); an accepted one may hold us or move the media,
    /// and renews the session with the timer our answer announces.
    fn answer_remote_offer(
        &mut self,
        body: &[u8],
        session_timer: Option<SessionTimer>,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        if self.offer_crosses_ours() {
            // RFC 3261 §14.2: the peer retries after its own random wait.
            tracing::info!(call = %self.id, "the peer's re-offer crosses ours: 491");
            effects.push(Effect::Sip(SipAction::AnswerOffer { answer: Err(491), session_timer }));
            return;
        }
        let held_by_peer = self.media.remote_hold;
        let answered = sdp::parse(body).and_then(|remote| self.media.answer(&remote));
        match answered {
            Ok((answer, negotiated)) => {
                effects.push(Effect::Sip(SipAction::AnswerOffer { answer: Ok(answer), session_timer }));
                effects.push(Effect::StartMedia(negotiated));
                self.timers.session_renewed(session_timer, now);
                self.refresh_state(effects);
                // Held both ways the state stays `held`, but `remote_held` moved.
                if self.media.remote_hold != held_by_peer && !effects.contains(&Effect::StateChanged) {
                    effects.push(Effect::StateChanged);
                }
            }
            Err(e) => {
                tracing::info!(call = %self.id, error = %e, "re-offer refused");
                effects.push(Effect::Sip(SipAction::AnswerOffer { answer: Err(488), session_timer }));
            }
        }
    }

    fn reinvite_answered(&mut self, code: u16, body: Option<Vec<u8>>, now: Instant, effects: &mut Vec<Effect>) {
        let Some(pending) = self.exchange_done() else { return };
        if (200..300).contains(&code) {
            self.timers.session_refreshed(now);
            let agreed = body.map(|b| sdp::parse(&b).and_then(|remote| self.media.on_answer(&remote)));
            match agreed {
                Some(Ok(negotiated)) => effects.push(Effect::StartMedia(negotiated)),
                Some(Err(e)) => tracing::warn!(call = %self.id, error = %e, "unusable answer to our re-INVITE"),
                None => {}
            }
            self.refresh_state(effects);
            return self.converge(effects);
        }
        // Not taken: the wire keeps the hold state it had.
        if pending != Pending::Refresh {
            self.media.local_hold = pending == Pending::Resume;
        }
        if code == 491 {
            return self.glare(pending, now);
        }
        match pending {
            Pending::Refresh => {
                if self.timers.refresh_answered(code, now) {
                    effects.push(Effect::Sip(SipAction::Bye));
                    return self.end(EndReason::SessionRefreshFailed, Some(code), now, effects);
                }
            }
            // The peer refused: the call stays as it was, and says so.
            Pending::Hold | Pending::Resume => {
                tracing::info!(call = %self.id, code, ?pending, "re-INVITE refused");
                self.hold_refused();
                effects.push(Effect::StateChanged);
            }
        }
        self.converge(effects);
    }

    fn refresh_state(&mut self, effects: &mut Vec<Effect>) {
        let state = self.established_state();
        if state != self.state {
            self.state = state;
            effects.push(Effect::StateChanged);
        }
    }
}
