//! Transition tests for the call state machine and the phone, driven with
//! synthetic signals and a fake clock.

use std::time::{Duration, Instant};

use super::phone::{Phone, PhoneError};
use super::*;
use crate::media::Codec;

const LOCAL: &str = "127.0.0.1:40000";

/// A peer's SDP offering `pts`; 101 is telephone-event, the rest static types.
fn peer_sdp(pts: &str) -> Vec<u8> {
    let events = if pts.split(' ').any(|pt| pt == "101") { "a=rtpmap:101 telephone-event/8000\r\n" } else { "" };
    format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP {pts}\r\n{events}")
        .into_bytes()
}

fn states(outputs: &[phone::Output]) -> Vec<CallState> {
    outputs.iter().filter(|o| o.effect == Effect::StateChanged).map(|o| o.call.state).collect()
}

fn sip(outputs: &[phone::Output]) -> Vec<SipAction> {
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
    let mut phone = Phone::new();
    let out = phone.dial("c1".into(), "sip:bob@127.0.0.1:5070".into(), LOCAL.parse().unwrap(), 9, t0).unwrap();
    assert_eq!(states(&out), vec![CallState::Dialing]);
    match &sip(&out)[..] {
        [SipAction::Invite { to, offer }] => {
            assert_eq!(to, "sip:bob@127.0.0.1:5070");
            assert!(offer.contains("m=audio 40000 RTP/AVP 0 8 101"));
        }
        other => panic!("expected one INVITE, got {other:?}"),
    }
    let out = phone.signal("c1", Signal::Progress { code: 180, sdp: None }, t0);
    assert_eq!(states(&out), vec![CallState::Ringing]);
    let out = phone.signal("c1", Signal::Answered { sdp: peer_sdp("8 101") }, t0 + Duration::from_secs(2));
    assert_eq!(states(&out), vec![CallState::Connected]);
    let started: Vec<_> = out
        .iter()
        .filter_map(|o| match o.effect {
            Effect::StartMedia(n) => Some(n),
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
    let mut phone = Phone::new();
    phone.dial("c1".into(), "sip:x@h".into(), LOCAL.parse().unwrap(), 1, t0).unwrap();
    let out = phone.command("c1", Command::Hangup, t0).unwrap();
    assert_eq!(sip(&out), vec![SipAction::Cancel]);
    assert_eq!(out.last().unwrap().call.reason, Some(EndReason::Cancelled));
    assert!(phone.signal("c1", Signal::Answered { sdp: peer_sdp("0") }, t0).is_empty());
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
        let mut phone = Phone::new();
        phone.dial("c".into(), "sip:x@h".into(), LOCAL.parse().unwrap(), 1, t0).unwrap();
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
    let mut phone = Phone::new();
    phone.dial("c".into(), "sip:x@h".into(), LOCAL.parse().unwrap(), 1, t0).unwrap();
    let out = phone.signal("c", Signal::Progress { code: 183, sdp: Some(peer_sdp("0")) }, t0);
    assert_eq!(states(&out), vec![CallState::EarlyMedia]);
    assert!(out.iter().any(|o| matches!(o.effect, Effect::StartMedia(_))));
    // 100 Trying never moves a call.
    assert!(phone.signal("c", Signal::Progress { code: 100, sdp: None }, t0).is_empty());
}

#[test]
fn answer_without_common_codec_hangs_up() {
    let t0 = Instant::now();
    let mut phone = Phone::new();
    phone.dial("c".into(), "sip:x@h".into(), LOCAL.parse().unwrap(), 1, t0).unwrap();
    let out = phone.signal("c", Signal::Answered { sdp: peer_sdp("18") }, t0);
    assert_eq!(sip(&out), vec![SipAction::Bye]);
    assert_eq!(out.last().unwrap().call.reason, Some(EndReason::NoCommonCodec));
}

#[test]
fn inbound_call_rings_and_hangup_declines_it() {
    let t0 = Instant::now();
    let mut phone = Phone::new();
    let out =
        phone.incoming("i1".into(), "sip:cust@h".into(), &peer_sdp("8 0 101"), LOCAL.parse().unwrap(), 3, t0).unwrap();
    assert_eq!(sip(&out), vec![SipAction::Ringing]);
    assert_eq!(states(&out), vec![CallState::Incoming]);
    let out = phone.command("i1", Command::Hangup, t0).unwrap();
    assert_eq!(sip(&out), vec![SipAction::Reject { code: 603 }], "hanging up a ringing call declines it");
}

#[test]
fn inbound_answer_reject_and_caller_cancel() {
    let t0 = Instant::now();
    let mut phone = Phone::new();
    let local = LOCAL.parse().unwrap();
    phone.incoming("a".into(), "sip:c@h".into(), &peer_sdp("8 0 101"), local, 3, t0).unwrap();
    let out = phone.command("a", Command::Answer, t0).unwrap();
    match &sip(&out)[..] {
        [SipAction::Accept { answer }] => assert!(answer.contains("m=audio 40000 RTP/AVP 0 101"), "{answer}"),
        other => panic!("expected 200 with SDP, got {other:?}"),
    }
    assert_eq!(states(&out), vec![CallState::Connected]);
    assert!(matches!(
        phone.command("a", Command::Answer, t0),
        Err(PhoneError::Call(CallError::InvalidState { state: CallState::Connected, .. }))
    ));
    let out = phone.signal("a", Signal::RemoteBye, t0);
    assert_eq!(out.last().unwrap().call.reason, Some(EndReason::RemoteHangup));

    phone.incoming("b".into(), "sip:c@h".into(), &peer_sdp("0"), local, 4, t0).unwrap();
    let out = phone.command("b", Command::Reject(RejectReason::Decline), t0).unwrap();
    assert_eq!(sip(&out), vec![SipAction::Reject { code: 603 }]);
    assert_eq!(
        (out.last().unwrap().call.reason, out.last().unwrap().call.sip_code),
        (Some(EndReason::Rejected), Some(603))
    );

    phone.incoming("c".into(), "sip:c@h".into(), &peer_sdp("0"), local, 5, t0).unwrap();
    let out = phone.command("c", Command::Reject(RejectReason::default()), t0).unwrap();
    assert_eq!(sip(&out), vec![SipAction::Reject { code: 486 }]);

    phone.incoming("d".into(), "sip:c@h".into(), &peer_sdp("0"), local, 6, t0).unwrap();
    let out = phone.signal("d", Signal::RemoteCancel, t0);
    assert!(sip(&out).is_empty(), "the INVITE transaction answers 487 itself");
    assert_eq!(out.last().unwrap().call.reason, Some(EndReason::CallerCancelled));
    assert!(phone.is_empty());
}

#[test]
fn inbound_offer_without_common_codec_is_refused_with_488() {
    let mut phone = Phone::new();
    let out = phone
        .incoming("x".into(), "sip:c@h".into(), &peer_sdp("18"), LOCAL.parse().unwrap(), 1, Instant::now())
        .unwrap();
    assert_eq!(sip(&out), vec![SipAction::Reject { code: 488 }]);
    assert_eq!(out.last().unwrap().call.reason, Some(EndReason::NoCommonCodec));
    assert!(phone.is_empty());
}

#[test]
fn outbound_calls_cannot_be_answered_and_ids_are_unique() {
    let t0 = Instant::now();
    let mut phone = Phone::new();
    phone.dial("c".into(), "sip:x@h".into(), LOCAL.parse().unwrap(), 1, t0).unwrap();
    assert!(matches!(phone.command("c", Command::Answer, t0), Err(PhoneError::Call(_))));
    assert_eq!(
        phone.dial("c".into(), "sip:y@h".into(), LOCAL.parse().unwrap(), 1, t0),
        Err(PhoneError::DuplicateCall("c".into()))
    );
    assert_eq!(phone.list().len(), 1);
}
