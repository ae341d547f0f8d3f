//! Transition tests for the call state machine and the phone, driven with
//! synthetic signals and a fake clock.

use std::time::{Duration, Instant};

use super::phone::{Phone, PhoneError};
use super::*;
use crate::media::codec::{Codec, OpusParams};
use crate::sdp::{LocalMedia, MediaPolicy, SrtpPolicy};

const LOCAL: &str = "127.0.0.1:40000";

/// Our end of a call that speaks G.711 only, as the older tests expect.
pub(super) fn local() -> LocalMedia {
    LocalMedia {
        rtp: LOCAL.parse().unwrap(),
        session_id: 9,
        policy: MediaPolicy {
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            srtp: SrtpPolicy::Off,
            opus: OpusParams::offer(),
        },
        key_salt: [1; 30],
    }
}

/// A peer's SDP offering `pts`; 101 is telephone-event, the rest static types.
pub(super) fn peer_sdp(pts: &str) -> Vec<u8> {
    let events = if pts.split(' ').any(|pt| pt == "101") { "a=rtpmap:101 telephone-event/8000\r\n" } else { "" };
    format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP {pts}\r\n{events}")
        .into_bytes()
}

pub(super) fn inbound(from: &str, pts: &str) -> Inbound {
    Inbound { from: from.into(), offer: peer_sdp(pts), ..Inbound::default() }
}

pub(super) fn states(outputs: &[phone::Output]) -> Vec<CallState> {
    outputs.iter().filter(|o| o.effect == Effect::StateChanged).map(|o| o.call.state).collect()
}

pub(super) fn sip(outputs: &[phone::Output]) -> Vec<SipAction> {
    outputs
        .iter()
        .filter_map(|o| match &o.effect {
            Effect::Sip(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn outbound_call_rings_connects_and_hangs_up_with_bye() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    let out = phone.dial("c1".into(), "sip:bob@127.0.0.1:5070".into(), None, local(), t0).unwrap();
    assert_eq!(states(&out), vec![CallState::Dialing]);
    match &sip(&out)[..] {
        [SipAction::Invite { to, offer, account: None }] => {
            assert_eq!(to, "sip:bob@127.0.0.1:5070");
            assert!(offer.contains("m=audio 40000 RTP/AVP 0 8 101"));
        }
        other => panic!("expected one INVITE, got {other:?}"),
    }
    let out = phone.signal("c1", Signal::Progress { code: 180, sdp: None }, t0);
    assert_eq!(states(&out), vec![CallState::Ringing]);
    let out = phone.signal(
        "c1",
        Signal::Answered { sdp: peer_sdp("8 101"), session_timer: None, supports_replaces: false },
        t0 + Duration::from_secs(2),
    );
    assert_eq!(states(&out), vec![CallState::Connected]);
    let started: Vec<_> = out
        .iter()
        .filter_map(|o| match o.effect {
            Effect::StartMedia(ref n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(started.len(), 1);
    assert_eq!((started[0].codec, started[0].remote.port()), (Codec::Pcma, 6000));
    assert_eq!(phone.get("c1").unwrap().connected_at, Some(t0 + Duration::from_secs(2)));

    let out = phone.command("c1", Command::Hangup, t0 + Duration::from_secs(5)).unwrap();
    assert_eq!(sip(&out), vec![SipAction::Bye]);
    assert!(out.iter().any(|o| o.effect == Effect::StopMedia));
    let last = out.last().unwrap();
    assert_eq!((last.call.state, last.call.reason), (CallState::Ended, Some(EndReason::LocalHangup)));
    assert!(phone.is_empty(), "an ended call leaves the phone");
    assert_eq!(phone.command("c1", Command::Hangup, t0), Err(PhoneError::UnknownCall("c1".into())));
}

#[test]
fn hangup_before_answer_cancels_and_a_late_answer_changes_nothing() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    phone.dial("c1".into(), "sip:x@h".into(), None, local(), t0).unwrap();
    let out = phone.command("c1", Command::Hangup, t0).unwrap();
    assert_eq!(sip(&out), vec![SipAction::Cancel]);
    assert_eq!(out.last().unwrap().call.reason, Some(EndReason::Cancelled));
    assert!(phone
        .signal("c1", Signal::Answered { sdp: peer_sdp("0"), session_timer: None, supports_replaces: false }, t0)
        .is_empty());
}

#[test]
fn failure_responses_end_the_call_with_reason_and_code() {
    for (code, reason) in [
        (486, EndReason::Busy),
        (603, EndReason::Declined),
        (404, EndReason::NotFound),
        (408, EndReason::Timeout),
        (500, EndReason::Failed),
    ] {
        let t0 = Instant::now();
        let mut phone = Phone::new(false);
        phone.dial("c".into(), "sip:x@h".into(), None, local(), t0).unwrap();
        let out = phone.signal("c", Signal::Failed { code }, t0);
        let last = out.last().unwrap();
        assert_eq!(
            (last.call.state, last.call.reason, last.call.sip_code),
            (CallState::Ended, Some(reason), Some(code))
        );
        assert!(sip(&out).is_empty(), "the transaction layer already ACKed the failure");
    }
}

#[test]
fn early_media_starts_audio_before_the_answer() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    phone.dial("c".into(), "sip:x@h".into(), None, local(), t0).unwrap();
    let out = phone.signal("c", Signal::Progress { code: 183, sdp: Some(peer_sdp("0")) }, t0);
    assert_eq!(states(&out), vec![CallState::EarlyMedia]);
    assert!(out.iter().any(|o| matches!(o.effect, Effect::StartMedia(_))));
    // 100 Trying never moves a call.
    assert!(phone.signal("c", Signal::Progress { code: 100, sdp: None }, t0).is_empty());
}

#[test]
fn answer_without_common_codec_hangs_up() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    phone.dial("c".into(), "sip:x@h".into(), None, local(), t0).unwrap();
    let out =
        phone.signal("c", Signal::Answered { sdp: peer_sdp("18"), session_timer: None, supports_replaces: false }, t0);
    assert_eq!(sip(&out), vec![SipAction::Bye]);
    assert_eq!(out.last().unwrap().call.reason, Some(EndReason::NoCommonCodec));
}

#[test]
fn inbound_call_rings_and_hangup_declines_it() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    let out = phone.incoming("i1".into(), inbound("sip:cust@h", "8 0 101"), local(), t0).unwrap();
    assert_eq!(sip(&out), vec![SipAction::Ringing]);
    assert_eq!(states(&out), vec![CallState::Incoming]);
    let out = phone.command("i1", Command::Hangup, t0).unwrap();
    assert_eq!(sip(&out), vec![SipAction::Reject { code: 603 }], "hanging up a ringing call declines it");
}

#[test]
fn inbound_answer_reject_and_caller_cancel() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    phone.incoming("a".into(), inbound("sip:c@h", "8 0 101"), local(), t0).unwrap();
    let out = phone.command("a", Command::Answer, t0).unwrap();
    match &sip(&out)[..] {
        [SipAction::Accept { answer, session_timer: None }] => {
            assert!(answer.contains("m=audio 40000 RTP/AVP 0 101"), "{answer}")
        }
        other => panic!("expected 200 with SDP, got {other:?}"),
    }
    assert_eq!(states(&out), vec![CallState::Connected]);
    assert!(matches!(
        phone.command("a", Command::Answer, t0),
        Err(PhoneError::Call(CallError::InvalidState { state: CallState::Connected, .. }))
    ));
    let out = phone.signal("a", Signal::RemoteBye, t0);
    assert_eq!(out.last().unwrap().call.reason, Some(EndReason::RemoteHangup));

    phone.incoming("b".into(), inbound("sip:c@h", "0"), local(), t0).unwrap();
    let out = phone.command("b", Command::Reject(RejectReason::Decline), t0).unwrap();
    assert_eq!(sip(&out), vec![SipAction::Reject { code: 603 }]);
    assert_eq!(
        (out.last().unwrap().call.reason, out.last().unwrap().call.sip_code),
        (Some(EndReason::Rejected), Some(603))
    );

    phone.incoming("c".into(), inbound("sip:c@h", "0"), local(), t0).unwrap();
    let out = phone.command("c", Command::Reject(RejectReason::default()), t0).unwrap();
    assert_eq!(sip(&out), vec![SipAction::Reject { code: 486 }]);

    phone.incoming("d".into(), inbound("sip:c@h", "0"), local(), t0).unwrap();
    let out = phone.signal("d", Signal::RemoteCancel, t0);
    assert!(sip(&out).is_empty(), "the INVITE transaction answers 487 itself");
    assert_eq!(out.last().unwrap().call.reason, Some(EndReason::CallerCancelled));
    assert!(phone.is_empty());
}

#[test]
fn inbound_offer_without_common_codec_is_refused_with_488() {
    let mut phone = Phone::new(false);
    let out = phone.incoming("x".into(), inbound("sip:c@h", "18"), local(), Instant::now()).unwrap();
    assert_eq!(sip(&out), vec![SipAction::Reject { code: 488 }]);
    assert_eq!(out.last().unwrap().call.reason, Some(EndReason::NoCommonCodec));
    assert!(phone.is_empty());
}

#[test]
fn outbound_calls_cannot_be_answered_and_ids_are_unique() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    phone.dial("c".into(), "sip:x@h".into(), None, local(), t0).unwrap();
    assert!(matches!(phone.command("c", Command::Answer, t0), Err(PhoneError::Call(_))));
    assert_eq!(phone.dial("c".into(), "sip:y@h".into(), None, local(), t0), Err(PhoneError::DuplicateCall("c".into())));
    assert_eq!(phone.list().len(), 1);
}

fn countdowns(outputs: &[phone::Output]) -> Vec<(u64, Option<CountdownStop>)> {
    outputs
        .iter()
        .filter_map(|o| match o.effect {
            Effect::Countdown(c) => Some((c.remaining_ms, c.stopped)),
            _ => None,
        })
        .collect()
}

fn auto_answered(after_s: u64, ring_timeout_s: u64) -> Inbound {
    Inbound {
        auto_answer_after: Some(Duration::from_secs(after_s)),
        ring_timeout: Some((Duration::from_secs(ring_timeout_s), 480)),
        ..inbound("sip:cust@h", "0 101")
    }
}

#[test]
fn auto_answer_counts_down_each_second_and_answers_at_zero() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    let out = phone.incoming("a".into(), auto_answered(3, 30), local(), t0).unwrap();
    assert_eq!(countdowns(&out), [(3000, None)]);
    let mut seen = Vec::new();
    let mut now = t0;
    while let Some(at) = phone.next_deadline() {
        now = at;
        let out = phone.poll(now);
        seen.extend(countdowns(&out));
        if states(&out).contains(&CallState::Connected) {
            assert!(matches!(sip(&out)[..], [SipAction::Accept { .. }]));
            break;
        }
    }
    assert_eq!(seen, [(2000, None), (1000, None), (0, Some(CountdownStop::Elapsed))]);
    assert_eq!(now, t0 + Duration::from_secs(3), "answered exactly at zero");
    assert_eq!(phone.poll(now + Duration::from_secs(10)), Vec::new(), "a countdown never fires twice");
}

#[test]
fn auto_answer_stops_on_answer_reject_or_caller_cancel() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    phone.incoming("a".into(), auto_answered(9, 30), local(), t0).unwrap();
    let out = phone.command("a", Command::Answer, t0 + Duration::from_secs(2)).unwrap();
    assert_eq!(countdowns(&out), [(0, Some(CountdownStop::Answered))]);
    assert_eq!(states(&out), [CallState::Connected]);

    phone.incoming("r".into(), auto_answered(9, 30), local(), t0).unwrap();
    let out = phone.command("r", Command::Reject(RejectReason::Busy), t0).unwrap();
    assert_eq!(countdowns(&out), [(0, Some(CountdownStop::Rejected))]);
    assert_eq!(sip(&out), [SipAction::Reject { code: 486 }]);

    phone.incoming("c".into(), auto_answered(9, 30), local(), t0).unwrap();
    let out = phone.signal("c", Signal::RemoteCancel, t0 + Duration::from_secs(1));
    assert_eq!(countdowns(&out), [(0, Some(CountdownStop::CallerCancelled))]);
    assert_eq!(phone.poll(t0 + Duration::from_secs(9)).len(), 0, "nothing fires for a cancelled call");
    assert_eq!(phone.list().len(), 1, "only the answered call is left");
}

#[test]
fn an_unanswered_call_goes_back_with_the_configured_code() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    let ringing = Inbound { ring_timeout: Some((Duration::from_secs(20), 480)), ..inbound("sip:c@h", "0") };
    let out = phone.incoming("u".into(), ringing, local(), t0).unwrap();
    assert!(countdowns(&out).is_empty(), "no countdown without auto-answer");
    assert!(phone.poll(t0 + Duration::from_secs(19)).is_empty());
    let out = phone.poll(t0 + Duration::from_secs(20));
    assert_eq!(sip(&out), [SipAction::Reject { code: 480 }]);
    assert_eq!(
        (out.last().unwrap().call.reason, out.last().unwrap().call.sip_code),
        (Some(EndReason::Unanswered), Some(480))
    );
}

/// The SDP of the re-INVITE among `outputs`.
fn reoffer(outputs: &[phone::Output]) -> String {
    sip(outputs)
        .into_iter()
        .find_map(|a| match a {
            SipAction::Reinvite { offer, .. } => Some(offer),
            _ => None,
        })
        .expect("a re-INVITE")
}

fn connected_outbound(phone: &mut Phone, timer: SessionTimer, t0: Instant) {
    phone.dial("s".into(), "sip:x@h".into(), None, local(), t0).unwrap();
    phone.signal(
        "s",
        Signal::Answered { sdp: peer_sdp("0"), session_timer: Some(timer), supports_replaces: false },
        t0,
    );
}

#[test]
fn we_refresh_half_way_and_a_failed_refresh_ends_the_call() {
    use super::session_timer::Refresher;
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    let timer = SessionTimer { interval: Duration::from_secs(90), refresher: Refresher::Us };
    connected_outbound(&mut phone, timer, t0);
    assert_eq!(phone.next_deadline(), Some(t0 + Duration::from_secs(45)));
    let out = phone.poll(t0 + Duration::from_secs(45));
    assert_eq!(sip(&out), [SipAction::Reinvite { offer: reoffer(&out), session_timer: Some(timer) }]);
    assert_eq!(phone.next_deadline(), None, "the refresh transaction times itself out");
    phone.signal("s", Signal::ReinviteAnswered { code: 200, sdp: Some(peer_sdp("0")) }, t0 + Duration::from_secs(46));
    assert_eq!(phone.next_deadline(), Some(t0 + Duration::from_secs(91)));
    phone.poll(t0 + Duration::from_secs(91));
    let out = phone.signal("s", Signal::ReinviteAnswered { code: 408, sdp: None }, t0 + Duration::from_secs(123));
    assert_eq!(sip(&out), [SipAction::Bye]);
    assert_eq!(
        (out.last().unwrap().call.reason, out.last().unwrap().call.sip_code),
        (Some(EndReason::SessionRefreshFailed), Some(408))
    );
}

#[test]
fn a_peer_that_stops_refreshing_loses_the_session() {
    use super::session_timer::Refresher;
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    let timer = SessionTimer { interval: Duration::from_secs(90), refresher: Refresher::Peer };
    connected_outbound(&mut phone, timer, t0);
    assert_eq!(phone.next_deadline(), Some(t0 + Duration::from_secs(60)));
    phone.signal("s", Signal::PeerRefreshed { session_timer: None }, t0 + Duration::from_secs(40));
    assert_eq!(phone.next_deadline(), Some(t0 + Duration::from_secs(100)), "a refresh restarts the interval");
    let out = phone.poll(t0 + Duration::from_secs(100));
    assert_eq!(sip(&out), [SipAction::Bye]);
    assert_eq!(out.last().unwrap().call.reason, Some(EndReason::SessionExpired));
}

#[test]
fn a_peers_re_offer_renews_the_session_with_the_timer_our_answer_announces() {
    use super::session_timer::Refresher;
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    connected_outbound(&mut phone, SessionTimer { interval: Duration::from_secs(90), refresher: Refresher::Us }, t0);
    let theirs = SessionTimer { interval: Duration::from_secs(180), refresher: Refresher::Peer };
    let offer = Signal::RemoteOffer { sdp: sdp_with("0", "sendonly"), session_timer: Some(theirs) };
    let out = phone.signal("s", offer, t0 + Duration::from_secs(40));
    assert!(matches!(sip(&out)[..], [SipAction::AnswerOffer { answer: Ok(_), session_timer: Some(t) }] if t == theirs));
    assert_eq!(phone.next_deadline(), Some(t0 + Duration::from_secs(40 + 148)), "the peer refreshes now");
    let out = phone.poll(t0 + Duration::from_secs(188));
    assert_eq!(sip(&out), [SipAction::Bye]);
    assert_eq!(out.last().unwrap().call.reason, Some(EndReason::SessionExpired));
}

#[test]
fn an_answered_call_announces_the_session_timer_it_was_offered() {
    use super::session_timer::Refresher;
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    let timer = SessionTimer { interval: Duration::from_secs(1800), refresher: Refresher::Us };
    let call = Inbound { session_timer: Some(timer), ..inbound("sip:c@h", "0") };
    phone.incoming("t".into(), call, local(), t0).unwrap();
    let out = phone.command("t", Command::Answer, t0).unwrap();
    assert!(matches!(sip(&out)[..], [SipAction::Accept { session_timer: Some(t), .. }] if t == timer));
    assert_eq!(phone.next_deadline(), Some(t0 + Duration::from_secs(900)));
}

pub(super) fn sdp_with(pts: &str, direction: &str) -> Vec<u8> {
    let mut body = peer_sdp(pts);
    body.extend_from_slice(format!("a={direction}\r\n").as_bytes());
    body
}

pub(super) fn connected(phone: &mut Phone, t0: Instant) {
    phone.dial("h".into(), "sip:x@h".into(), None, local(), t0).unwrap();
    phone.signal("h", Signal::Answered { sdp: peer_sdp("0 101"), session_timer: None, supports_replaces: false }, t0);
}

fn media(outputs: &[phone::Output]) -> Vec<crate::media::params::StreamParams> {
    outputs
        .iter()
        .filter_map(|o| match &o.effect {
            Effect::StartMedia(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn hold_and_resume_by_reinvite() {
    use crate::media::params::MediaDirection;
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    connected(&mut phone, t0);
    let out = phone.command("h", Command::Hold, t0).unwrap();
    let offer = reoffer(&out);
    assert!(offer.contains("a=sendonly\r\n") && offer.contains("o=- 9 2 IN IP4"), "{offer}");
    assert!(states(&out).is_empty(), "held only once the peer agrees");
    let out = phone.signal("h", Signal::ReinviteAnswered { code: 200, sdp: Some(sdp_with("0", "recvonly")) }, t0);
    assert_eq!(states(&out), [CallState::Held]);
    assert_eq!(media(&out)[0].direction, MediaDirection::SendOnly);
    assert!(out.last().unwrap().call.held);
    assert!(matches!(phone.command("h", Command::Hold, t0), Err(PhoneError::Call(CallError::InvalidState { .. }))));

    let out = phone.command("h", Command::Resume, t0).unwrap();
    assert!(reoffer(&out).contains("a=sendrecv\r\n"));
    let out = phone.signal("h", Signal::ReinviteAnswered { code: 200, sdp: Some(sdp_with("0", "sendrecv")) }, t0);
    assert_eq!(states(&out), [CallState::Connected]);
    assert_eq!(media(&out)[0].direction, MediaDirection::SendRecv);
}

#[test]
fn a_resume_asked_while_the_hold_is_in_flight_follows_its_answer() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    connected(&mut phone, t0);
    phone.command("h", Command::Hold, t0).unwrap();
    let out = phone.command("h", Command::Resume, t0).unwrap();
    assert!(sip(&out).is_empty(), "one re-INVITE at a time: {out:?}");
    assert!(matches!(phone.command("h", Command::Resume, t0), Err(PhoneError::Call(CallError::InvalidState { .. }))));
    let out = phone.signal("h", Signal::ReinviteAnswered { code: 200, sdp: Some(sdp_with("0", "recvonly")) }, t0);
    assert!(reoffer(&out).contains("a=sendrecv\r\n"), "the resume goes out once the hold is answered");
    let out = phone.signal("h", Signal::ReinviteAnswered { code: 200, sdp: Some(sdp_with("0", "sendrecv")) }, t0);
    assert_eq!((out.last().unwrap().call.state, out.last().unwrap().call.held), (CallState::Connected, false));

    // Asking back what is on the wire while the hold is in flight sends nothing more.
    phone.command("h", Command::Hold, t0).unwrap();
    phone.command("h", Command::Resume, t0).unwrap();
    phone.command("h", Command::Hold, t0).unwrap();
    let out = phone.signal("h", Signal::ReinviteAnswered { code: 200, sdp: Some(sdp_with("0", "recvonly")) }, t0);
    assert!(sip(&out).is_empty(), "{out:?}");
    assert_eq!(out.last().unwrap().call.state, CallState::Held);
}

#[test]
fn a_refused_hold_leaves_the_call_connected_and_says_so() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    connected(&mut phone, t0);
    phone.command("h", Command::Hold, t0).unwrap();
    let out = phone.signal("h", Signal::ReinviteAnswered { code: 488, sdp: None }, t0);
    assert_eq!(states(&out), [CallState::Connected]);
    assert!(!out.last().unwrap().call.held);
    assert!(phone.command("h", Command::Hold, t0).is_ok(), "the agent may try again");
}

#[test]
fn the_peers_hold_is_answered_and_reported() {
    use crate::media::params::MediaDirection;
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    connected(&mut phone, t0);
    let out = phone.signal("h", Signal::RemoteOffer { sdp: sdp_with("0", "sendonly"), session_timer: None }, t0);
    match &sip(&out)[..] {
        [SipAction::AnswerOffer { answer: Ok(answer), .. }] => assert!(answer.contains("a=recvonly\r\n"), "{answer}"),
        other => panic!("expected an answer, got {other:?}"),
    }
    assert_eq!(media(&out)[0].direction, MediaDirection::RecvOnly);
    assert_eq!(states(&out), [CallState::RemoteHeld]);
    assert!(out.last().unwrap().call.remote_held);

    // We hold too: inactive; the peer resumes while we still hold: we only send.
    let out = phone.command("h", Command::Hold, t0).unwrap();
    assert!(reoffer(&out).contains("a=inactive\r\n"));
    let out = phone.signal("h", Signal::ReinviteAnswered { code: 200, sdp: Some(sdp_with("0", "inactive")) }, t0);
    assert_eq!(states(&out), [CallState::Held]);
    let out = phone.signal("h", Signal::RemoteOffer { sdp: sdp_with("0", "sendrecv"), session_timer: None }, t0);
    assert!(matches!(&sip(&out)[..], [SipAction::AnswerOffer { answer: Ok(a), .. }] if a.contains("a=sendonly\r\n")));
    assert!(!out.last().unwrap().call.remote_held);

    let out = phone.signal("h", Signal::RemoteOffer { sdp: peer_sdp("18"), session_timer: None }, t0);
    assert_eq!(
        sip(&out),
        [SipAction::AnswerOffer { answer: Err(488), session_timer: None }],
        "an unusable re-offer keeps the call"
    );
    assert!(states(&out).is_empty());
}

#[test]
fn mute_keys_and_media_timeout() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    connected(&mut phone, t0);
    let out = phone.command("h", Command::Mute, t0).unwrap();
    assert!(out.iter().any(|o| o.effect == Effect::Mute(true)));
    assert!(out.last().unwrap().call.muted);
    assert!(phone.command("h", Command::Mute, t0).unwrap().is_empty(), "muting twice changes nothing");
    let out = phone.command("h", Command::Dtmf("12#".into()), t0).unwrap();
    assert_eq!(out[0].effect, Effect::SendDtmf("12#".into()), "telephone-event was agreed");
    let out = phone.signal("h", Signal::DtmfInfo { digit: '5' }, t0);
    assert_eq!(out[0].effect, Effect::DtmfReceived('5'));

    phone.dial("n".into(), "sip:y@h".into(), None, local(), t0).unwrap();
    phone.signal("n", Signal::Answered { sdp: peer_sdp("0"), session_timer: None, supports_replaces: false }, t0);
    let out = phone.command("n", Command::Dtmf("9".into()), t0).unwrap();
    assert_eq!(sip(&out), [SipAction::Info { digits: "9".into() }], "no telephone-event: SIP INFO");

    let out = phone.signal("n", Signal::MediaTimeout, t0);
    assert_eq!(sip(&out), [SipAction::Bye]);
    assert_eq!(out.last().unwrap().call.reason, Some(EndReason::MediaTimeout));
    assert!(matches!(
        phone.dial("d".into(), "sip:z@h".into(), None, local(), t0).map(|_| phone.command("d", Command::Hold, t0)),
        Ok(Err(PhoneError::Call(CallError::InvalidState { state: CallState::Dialing, .. })))
    ));
}

#[test]
fn a_refresh_repeats_our_sdp_with_the_same_version() {
    use super::session_timer::Refresher;
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    let timer = SessionTimer { interval: Duration::from_secs(90), refresher: Refresher::Us };
    let out = phone.dial("s".into(), "sip:x@h".into(), None, local(), t0).unwrap();
    let first = match &sip(&out)[..] {
        [SipAction::Invite { offer, .. }] => offer.clone(),
        other => panic!("{other:?}"),
    };
    phone.signal(
        "s",
        Signal::Answered { sdp: peer_sdp("0"), session_timer: Some(timer), supports_replaces: false },
        t0,
    );
    let out = phone.poll(t0 + Duration::from_secs(45));
    assert_eq!(reoffer(&out), first, "nothing changed, so neither does o= (RFC 3264 §8)");
}

#[test]
fn blind_transfer_refers_the_peer_and_ends_the_call_once_the_target_answers() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    connected(&mut phone, t0);
    let out = phone.command("h", Command::TransferBlind("sip:colleague@127.0.0.1:5080".into()), t0).unwrap();
    assert_eq!(sip(&out), vec![SipAction::Refer { target: ReferTarget::Uri("sip:colleague@127.0.0.1:5080".into()) }]);
    assert_eq!(states(&out), vec![CallState::Transferring]);
    let again = phone.command("h", Command::TransferBlind("sip:x@127.0.0.1".into()), t0).unwrap_err();
    assert!(again.to_string().contains("transfer"), "{again}");
    // 202, then the transferee's reports: trying, ringing, answered.
    for code in [202, 100, 180] {
        let signal = if code == 202 { Signal::ReferAnswered { code } } else { Signal::TransferProgress { code } };
        assert!(phone.signal("h", signal, t0).is_empty(), "{code} changes nothing");
    }
    let out = phone.signal("h", Signal::TransferProgress { code: 200 }, t0);
    assert_eq!(sip(&out), vec![SipAction::Bye]);
    let ended = &out.last().unwrap().call;
    assert_eq!(
        (ended.state, ended.reason, ended.sip_code),
        (CallState::Ended, Some(EndReason::Transferred), Some(200))
    );
    assert!(phone.get("h").is_none());
}

#[test]
fn a_failed_transfer_leaves_the_call_with_the_agent_and_says_why() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    connected(&mut phone, t0);
    // The target is busy: the transferee reports 486.
    phone.command("h", Command::TransferBlind("sip:colleague@127.0.0.1:5080".into()), t0).unwrap();
    phone.signal("h", Signal::ReferAnswered { code: 202 }, t0);
    let out = phone.signal("h", Signal::TransferProgress { code: 486 }, t0);
    assert!(sip(&out).is_empty(), "no BYE: the customer stays");
    let call = &out.last().unwrap().call;
    assert_eq!(call.state, CallState::Connected);
    let report = call.transfer.clone().unwrap();
    assert_eq!((report.status, report.sip_code), (TransferStatus::Failed, Some(486)));
    // The peer refuses REFER itself: same, with its code; the call goes on.
    phone.command("h", Command::TransferBlind("sip:colleague@127.0.0.1:5080".into()), t0).unwrap();
    let out = phone.signal("h", Signal::ReferAnswered { code: 501 }, t0);
    let call = &out.last().unwrap().call;
    assert_eq!((call.state, call.transfer.as_ref().unwrap().sip_code), (CallState::Connected, Some(501)));
    let out = phone.command("h", Command::Hold, t0).unwrap();
    assert!(matches!(sip(&out)[..], [SipAction::Reinvite { .. }]), "the call works as before: {out:?}");
}
