//! One call's life as a pure state machine: the agent's commands and the
//! network's signals go in, SIP actions, media start/stop and `call.state`
//! changes come out. SDP offer/answer is decided here too, so a call can be
//! replayed in a unit test without a socket.

pub mod admission;
mod deadlines;
mod links;
mod midcall;
mod offers;
pub mod phone;
mod session;
pub mod session_timer;
mod transfer;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::media::params::{MediaDirection, StreamParams};
use crate::sdp::{self, LocalMedia, SdpError};
pub use deadlines::{Countdown, CountdownStop};
pub use links::Links;
use session::MediaSession;
use session_timer::SessionTimer;
pub use transfer::{ReferTarget, TransferReport, TransferStatus};

/// A call's id: short, opaque, unique within a daemon run.
pub type CallId = String;

/// The states of `call.state` (PROTOCOL.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// We sent INVITE; nothing but 100 Trying yet.
    Dialing,
    /// The peer rings (180 without SDP).
    Ringing,
    /// The peer sends audio before answering (183, or 18x with SDP).
    EarlyMedia,
    /// An inbound call waits for the agent to answer or reject.
    Incoming,
    Connected,
    /// We hold the peer (it may hold us too).
    Held,
    /// The peer holds us.
    RemoteHeld,
    /// We asked the peer (REFER) to call someone else; waiting to hear how it went.
    Transferring,
    Ended,
}

impl CallState {
    /// Answered and not yet ended, held or not.
    pub fn is_answered(self) -> bool {
        matches!(self, CallState::Connected | CallState::Held | CallState::RemoteHeld | CallState::Transferring)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Outbound,
    Inbound,
}

/// Why a call ended, as the `reason` of its final `call.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The agent hung up a connected call.
    LocalHangup,
    /// The peer sent BYE.
    RemoteHangup,
    /// The agent hung up before the peer answered (we sent CANCEL).
    Cancelled,
    /// The caller gave up before the agent answered (we got CANCEL).
    CallerCancelled,
    /// The agent rejected an inbound call.
    Rejected,
    /// 486 or 600.
    Busy,
    /// 603.
    Declined,
    /// 404 or 604.
    NotFound,
    /// 408, 480 or no final response at all.
    Timeout,
    /// Neither side's SDP had a codec the other speaks.
    NoCommonCodec,
    /// Nobody answered an inbound call in time: it went back to the caller.
    Unanswered,
    /// The peer should have refreshed the session (RFC 4028) and did not.
    SessionExpired,
    /// Our session refresh was refused or went unanswered.
    SessionRefreshFailed,
    /// No RTP arrived for longer than `media.media_timeout_ms`.
    MediaTimeout,
    /// The peer's SDP broke our SRTP policy.
    SrtpRequired,
    /// The peer was handed to someone else (our REFER succeeded), or this
    /// consult call was taken over by the customer it was transferred to.
    Transferred,
    /// An INVITE with Replaces took this call's place.
    Replaced,
    /// Any other failure response.
    Failed,
}

impl EndReason {
    /// How a final failure response to our INVITE reads to an agent.
    pub fn from_status(code: u16) -> Self {
        match code {
            486 | 600 => EndReason::Busy,
            603 => EndReason::Declined,
            404 | 604 => EndReason::NotFound,
            408 | 480 => EndReason::Timeout,
            488 | 606 => EndReason::NoCommonCodec,
            _ => EndReason::Failed,
        }
    }
}

/// How the agent turns an inbound call down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// 486 Busy Here: the contact center may try another agent.
    #[default]
    Busy,
    /// 603 Decline.
    Decline,
}

impl RejectReason {
    pub fn status(self) -> u16 {
        match self {
            RejectReason::Busy => 486,
            RejectReason::Decline => 603,
        }
    }
}

/// What the agent asks of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Answer,
    Reject(RejectReason),
    Hangup,
    Hold,
    Resume,
    Mute,
    Unmute,
    /// Send these keys (already checked to be 0-9, *, #, A-D).
    Dtmf(String),
    /// REFER the peer to this URI.
    TransferBlind(String),
}

/// What the network did to a call (mapped from SIP by the adapter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A provisional response to our INVITE, with its SDP if any.
    Progress {
        code: u16,
        sdp: Option<Vec<u8>>,
    },
    /// A 2xx to our INVITE, with the session timer it set up.
    Answered {
        sdp: Vec<u8>,
        session_timer: Option<SessionTimer>,
        /// The peer said `Supported: replaces` (RFC 3891).
        supports_replaces: bool,
    },
    /// A final failure to our INVITE, or 408 when no response came.
    Failed {
        code: u16,
    },
    RemoteBye,
    RemoteCancel,
    /// The peer refreshed the session without an offer (we answered it),
    /// with the session timer our answer echoed, if it carried one.
    PeerRefreshed {
        session_timer: Option<SessionTimer>,
    },
    /// A re-INVITE or UPDATE with an offer: hold, resume, a new address or
    /// codec; with the session timer to answer it with, if it carries one.
    RemoteOffer {
        sdp: Vec<u8>,
        session_timer: Option<SessionTimer>,
    },
    /// The answer to our re-INVITE: 2xx with its SDP, or the failure code.
    ReinviteAnswered {
        code: u16,
        sdp: Option<Vec<u8>>,
    },
    /// A key the peer sent by SIP INFO.
    DtmfInfo {
        digit: char,
    },
    /// The media path heard nothing for too long.
    MediaTimeout,
    /// The final answer to our REFER (408 when none came).
    ReferAnswered {
        code: u16,
    },
    /// The transferee's report on its call to the target (NOTIFY sipfrag).
    TransferProgress {
        code: u16,
    },
    /// The peer REFERred us to `to`, and policy let the SIP side accept it (202).
    Referred {
        to: String,
    },
}

/// The SIP side of an effect, carried out by the SIP adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipAction {
    Invite {
        to: String,
        offer: String,
        account: Option<String>,
    },
    Ringing,
    /// 200 to the INVITE, with the session timer to announce, if any.
    Accept {
        answer: String,
        session_timer: Option<SessionTimer>,
    },
    Reject {
        code: u16,
    },
    Cancel,
    Bye,
    /// A re-INVITE with `offer`: a refresh (with the timer), hold or resume.
    Reinvite {
        offer: String,
        session_timer: Option<SessionTimer>,
    },
    /// Answer the peer's re-offer: 200 with our SDP, or the failure code;
    /// with the session timer to announce, if any.
    AnswerOffer {
        answer: Result<String, u16>,
        session_timer: Option<SessionTimer>,
    },
    /// Send keys by SIP INFO (application/dtmf-relay), one request each.
    Info {
        digits: String,
    },
    /// Ask the peer to call the target (REFER, RFC 3515).
    Refer {
        target: ReferTarget,
    },
    /// Tell the peer who REFERred us how our call to its target goes
    /// (NOTIFY with a sipfrag; a final status ends the subscription).
    NotifyRefer {
        code: u16,
    },
}

/// Something the shell must do because a call moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Sip(SipAction),
    /// Start the call's media, or change it to what was just agreed.
    StartMedia(StreamParams),
    StopMedia,
    /// Silence (or restore) the microphone on this call; RTP keeps flowing.
    Mute(bool),
    /// Send keys as RFC 4733 events on the call's RTP.
    SendDtmf(String),
    /// The peer sent a key (by INFO; RTP events come from the media path).
    DtmfReceived(char),
    /// The call's state changed: publish `call.state`.
    StateChanged,
    /// The auto-answer countdown moved: publish `call.countdown`.
    Countdown(Countdown),
    /// Take the call into the local conference's mix, or out of it.
    Conference(bool),
    /// The peer asked us (REFER, accepted) to call this URI: the shell
    /// places that call, linked to this one by `referred_by`.
    Dial(String),
}

/// Misuse of a call by a command.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// The command does not apply in the call's current state.
    #[error("cannot {command} a call that is {state:?} ({direction:?})")]
    InvalidState { command: &'static str, state: CallState, direction: Direction },
}

/// One call.
#[derive(Debug, Clone)]
pub struct Call {
    pub id: CallId,
    pub direction: Direction,
    /// The peer's URI as the agent knows it.
    pub remote: String,
    /// The caller's display name, on inbound calls that carry one.
    pub display_name: Option<String>,
    /// The account the call was placed with, or arrived for.
    pub account: Option<String>,
    /// An `answer-after` hint the caller sent (Call-Info/Alert-Info).
    pub answer_after_hint: Option<Duration>,
    pub state: CallState,
    pub reason: Option<EndReason>,
    /// The SIP status that ended or refused the call, when one did.
    pub sip_code: Option<u16>,
    pub started_at: Instant,
    pub connected_at: Option<Instant>,
    pub ended_at: Option<Instant>,
    pub muted: bool,
    /// The latest transfer, while it runs and after it failed.
    pub transfer: Option<TransferReport>,
    /// The other calls this one is tied to (consult, conference, replaces).
    pub links: Links,
    /// The peer said it supports Replaces, so a consult can be handed over.
    pub supports_replaces: bool,
    media: MediaSession,
    /// Our re-INVITEs: the one in flight, what waits behind it; see `offers.rs`.
    offers: offers::Offers,
    /// Deadlines and countdowns; see `deadlines.rs`.
    timers: deadlines::Timers,
}

/// An INVITE for a new call, with the policy the shell chose for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inbound {
    pub from: String,
    pub display_name: Option<String>,
    pub account: Option<String>,
    pub offer: Vec<u8>,
    pub answer_after_hint: Option<Duration>,
    /// Answer by ourselves after this long (a countdown the UI shows).
    pub auto_answer_after: Option<Duration>,
    /// Send the call back with this code when nobody answered in time.
    pub ring_timeout: Option<(Duration, u16)>,
    /// The session timer to announce when we answer.
    pub session_timer: Option<SessionTimer>,
    /// The caller said `Supported: replaces`.
    pub supports_replaces: bool,
    /// The INVITE carried a Replaces header naming this call of ours: it
    /// is answered at once and the old call ends (RFC 3891).
    pub replaces: Option<CallId>,
}

impl Call {
    /// An outbound call: sends INVITE with our offer.
    pub fn dial(
        id: CallId,
        to: String,
        account: Option<String>,
        local: LocalMedia,
        now: Instant,
    ) -> (Self, Vec<Effect>) {
        let mut call = Call::new(id, Direction::Outbound, to.clone(), CallState::Dialing, local, now);
        let offer = call.media.offer();
        call.account = account.clone();
        (call, vec![Effect::Sip(SipAction::Invite { to, offer, account }), Effect::StateChanged])
    }

    /// An inbound INVITE: rings the agent (starting the auto-answer
    /// countdown when policy says so), or refuses at once with 488 when the
    /// offer has nothing we can speak or breaks the account's SRTP policy
    /// (the agent could not talk anyway).
    pub fn incoming(id: CallId, inbound: Inbound, local: LocalMedia, now: Instant) -> (Self, Vec<Effect>) {
        let mut call = Call::new(id, Direction::Inbound, inbound.from.clone(), CallState::Incoming, local.clone(), now);
        call.display_name = inbound.display_name.clone();
        call.account = inbound.account.clone();
        call.answer_after_hint = inbound.answer_after_hint;
        call.supports_replaces = inbound.supports_replaces;
        call.links.replaces = inbound.replaces.clone();
        let usable =
            sdp::parse(&inbound.offer).and_then(|m| sdp::answer(&m, &local, 1, MediaDirection::SendRecv).map(|_| m));
        match usable {
            Ok(media) => {
                call.media.remote_offer = Some(media);
                let mut effects = vec![Effect::Sip(SipAction::Ringing), Effect::StateChanged];
                call.timers = deadlines::Timers::ringing(&inbound, now, &mut effects);
                (call, effects)
            }
            Err(e) => {
                tracing::info!(call = %call.id, error = %e, "inbound offer refused");
                let mut effects = vec![Effect::Sip(SipAction::Reject { code: 488 })];
                call.end(end_reason_for(&e), Some(488), now, &mut effects);
                (call, effects)
            }
        }
    }

    fn new(
        id: CallId,
        direction: Direction,
        remote: String,
        state: CallState,
        local: LocalMedia,
        now: Instant,
    ) -> Self {
        Call {
            id,
            direction,
            remote,
            display_name: None,
            account: None,
            answer_after_hint: None,
            state,
            reason: None,
            sip_code: None,
            started_at: now,
            connected_at: None,
            ended_at: None,
            muted: false,
            transfer: None,
            links: Links::default(),
            supports_replaces: false,
            // The SDP session id is drawn at random by the shell: it seeds the glare back-off.
            offers: offers::Offers::new(local.session_id),
            media: MediaSession::new(local),
            timers: deadlines::Timers::default(),
        }
    }

    fn is_early(&self) -> bool {
        matches!(self.state, CallState::Dialing | CallState::Ringing | CallState::EarlyMedia)
    }

    /// Answered and not yet ended, held or not.
    pub fn is_established(&self) -> bool {
        self.state.is_answered()
    }

    /// The codec and payload types agreed last, once media flows.
    pub fn negotiated(&self) -> Option<&StreamParams> {
        self.media.agreed.as_ref()
    }

    /// We hold the peer, as the last completed offer/answer agreed.
    pub fn held_on_wire(&self) -> bool {
        self.media.hold_agreed
    }

    pub fn remote_hold(&self) -> bool {
        self.media.remote_hold
    }

    /// Apply the agent's command.
    pub fn command(&mut self, command: Command, now: Instant) -> Result<Vec<Effect>, CallError> {
        let mut effects = Vec::new();
        match (command, self.state) {
            (Command::Answer, CallState::Incoming) => {
                self.timers.stop_countdown(CountdownStop::Answered, &mut effects);
                self.answer(now, &mut effects);
            }
            (Command::Reject(reason), CallState::Incoming) => {
                self.timers.stop_countdown(CountdownStop::Rejected, &mut effects);
                effects.push(Effect::Sip(SipAction::Reject { code: reason.status() }));
                self.end(EndReason::Rejected, Some(reason.status()), now, &mut effects);
            }
            (Command::Hangup, CallState::Incoming) => {
                self.timers.stop_countdown(CountdownStop::Rejected, &mut effects);
                let code = RejectReason::Decline.status();
                effects.push(Effect::Sip(SipAction::Reject { code }));
                self.end(EndReason::Rejected, Some(code), now, &mut effects);
            }
            (Command::Hangup, _) if self.is_early() => {
                effects.push(Effect::Sip(SipAction::Cancel));
                self.end(EndReason::Cancelled, None, now, &mut effects);
            }
            (Command::Hangup, _) if self.is_established() => {
                effects.push(Effect::Sip(SipAction::Bye));
                self.end(EndReason::LocalHangup, None, now, &mut effects);
            }
            (Command::TransferBlind(to), _) if self.is_established() => {
                return self.refer(ReferTarget::Uri(to), None, now)
            }
            (command, _) if self.is_established() => return self.midcall_command(command),
            (command, state) => {
                return Err(CallError::InvalidState { command: command.name(), state, direction: self.direction })
            }
        }
        Ok(effects)
    }

    /// Apply what the network did. Signals that no longer matter (a late
    /// 180 after the agent hung up, a BYE racing our own) change nothing.
    pub fn signal(&mut self, signal: Signal, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        match signal {
            Signal::Progress { code, sdp } if self.is_early() && code > 100 => {
                let early = sdp.and_then(|body| sdp::parse(&body).and_then(|m| self.media.on_answer(&m)).ok());
                let next = if early.is_some() || code == 183 { CallState::EarlyMedia } else { CallState::Ringing };
                if let Some(negotiated) = early {
                    effects.push(Effect::StartMedia(negotiated));
                }
                if next != self.state {
                    self.state = next;
                    effects.push(Effect::StateChanged);
                }
            }
            Signal::Answered { sdp, session_timer, supports_replaces } if self.is_early() => {
                self.supports_replaces = supports_replaces;
                match sdp::parse(&sdp).and_then(|m| self.media.on_answer(&m)) {
                    Ok(negotiated) => {
                        effects.push(Effect::StartMedia(negotiated));
                        self.connect(session_timer, now, &mut effects);
                    }
                    Err(e) => {
                        tracing::info!(call = %self.id, error = %e, "the peer's answer is unusable");
                        effects.push(Effect::Sip(SipAction::Bye));
                        self.end(end_reason_for(&e), None, now, &mut effects);
                    }
                }
            }
            Signal::Failed { code } if self.is_early() => {
                self.end(EndReason::from_status(code), Some(code), now, &mut effects);
            }
            Signal::RemoteBye if self.state != CallState::Ended => {
                // The colleague drops the consult because the customer took its place.
                let reason = if self.links.handing_over { EndReason::Transferred } else { EndReason::RemoteHangup };
                self.end(reason, None, now, &mut effects);
            }
            Signal::RemoteCancel if self.state == CallState::Incoming => {
                self.timers.stop_countdown(CountdownStop::CallerCancelled, &mut effects);
                self.end(EndReason::CallerCancelled, Some(487), now, &mut effects);
            }
            // A 2xx to REFER only means the transferee will try: its reports tell.
            Signal::ReferAnswered { code } if code >= 300 => self.transfer_finished(code, now, &mut effects),
            Signal::TransferProgress { code } if code >= 200 => self.transfer_finished(code, now, &mut effects),
            signal if self.is_established() => self.midcall_signal(signal, now, &mut effects),
            _ => {}
        }
        effects
    }

    fn answer(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let offer = self.media.remote_offer.take().expect("an incoming call keeps its usable offer");
        let (answer, negotiated) = self.media.answer(&offer).expect("the offer was checked on arrival");
        let session_timer = self.timers.answer_session_timer();
        effects.push(Effect::Sip(SipAction::Accept { answer, session_timer }));
        effects.push(Effect::StartMedia(negotiated));
        self.connect(session_timer, now, effects);
    }

    fn connect(&mut self, session_timer: Option<SessionTimer>, now: Instant, effects: &mut Vec<Effect>) {
        self.state = self.established_state();
        self.connected_at = Some(now);
        self.timers.connected(session_timer, now);
        effects.push(Effect::StateChanged);
    }

    pub(super) fn end(&mut self, reason: EndReason, sip_code: Option<u16>, now: Instant, effects: &mut Vec<Effect>) {
        self.timers = deadlines::Timers::default();
        // Nothing queued behind a re-INVITE goes out after the end.
        self.offers = offers::Offers::new(0);
        self.state = CallState::Ended;
        self.reason = Some(reason);
        self.sip_code = sip_code;
        self.ended_at = Some(now);
        effects.push(Effect::StopMedia);
        effects.push(Effect::StateChanged);
    }
}

/// How a refused SDP reads as the reason a call ended.
fn end_reason_for(error: &SdpError) -> EndReason {
    match error {
        SdpError::SrtpRequired | SdpError::SrtpRefused(_) => EndReason::SrtpRequired,
        _ => EndReason::NoCommonCodec,
    }
}

#[cfg(test)]
mod links_tests;
#[cfg(test)]
mod tests;
