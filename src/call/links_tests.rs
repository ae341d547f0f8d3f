//! Moves across calls, driven with synthetic signals and a fake clock:
//! consult, Leave & transfer (with and without Replaces), cancel, merge,
//! answering a second call, being replaced, and following a peer's REFER.

use std::time::{Duration, Instant};

use super::phone::{Output, Phone};
use super::tests::{inbound, local, peer_sdp, sdp_with, sip, states};
use super::*;

fn answered(phone: &mut Phone, id: &str, supports_replaces: bool, t0: Instant) -> Vec<Output> {
    let answer = Signal::Answered { sdp: peer_sdp("0 101"), session_timer: None, supports_replaces };
    phone.signal(id, answer, t0)
}

/// The customer "h" connected and consulting "k" at the colleague (both
/// supporting Replaces or not), whose call is answered; the hold went through.
fn consulting(phone: &mut Phone, supports_replaces: bool, t0: Instant) {
    phone.dial("h".into(), "sip:customer@h".into(), None, local(), t0).unwrap();
    answered(phone, "h", supports_replaces, t0);
    let (call, effects) = Call::dial("k".into(), "sip:colleague@h".into(), None, local(), t0);
    let out = phone.consult("h", call, effects, t0).unwrap();
    let actions = sip(&out);
    assert!(matches!(actions[0], SipAction::Reinvite { .. }), "the customer is held first: {actions:?}");
    assert!(matches!(&actions[1], SipAction::Invite { to, .. } if to == "sip:colleague@h"), "{actions:?}");
    let summary = |id: &str| out.iter().rev().find(|o| o.call.call == id).unwrap().call.clone();
    assert_eq!(summary("h").links.consult.as_deref(), Some("k"));
    assert_eq!(summary("k").links.consult_for.as_deref(), Some("h"));
    let hold_answer = Signal::ReinviteAnswered { code: 200, sdp: Some(sdp_with("0 101", "recvonly")) };
    assert_eq!(states(&phone.signal("h", hold_answer, t0)), vec![CallState::Held]);
    answered(phone, "k", supports_replaces, t0);
}

fn ended(out: &[Output], id: &str) -> Option<(EndReason, Vec<SipAction>)> {
    let last = out.iter().rev().find(|o| o.call.call == id)?;
    let actions = sip(&out.iter().filter(|o| o.call.call == id).cloned().collect::<Vec<_>>());
    (last.call.state == CallState::Ended).then(|| (last.call.reason.unwrap(), actions))
}

#[test]
fn leave_and_transfer_refers_the_customer_with_replaces_and_both_calls_end_transferred() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    consulting(&mut phone, true, t0);
    let out = phone.complete_transfer("h", "k", t0).unwrap();
    let refer =
        SipAction::Refer { target: ReferTarget::Replacing { uri: "sip:colleague@h".into(), consult: "k".into() } };
    assert_eq!(sip(&out), vec![refer]);
    let report = out.last().unwrap().call.transfer.clone().unwrap();
    assert_eq!((report.consult.as_deref(), report.replaces), (Some("k"), true));
    phone.signal("h", Signal::ReferAnswered { code: 202 }, t0);
    // The colleague drops our consult as the customer's INVITE replaces it.
    let out = phone.signal("k", Signal::RemoteBye, t0);
    assert_eq!(ended(&out, "k"), Some((EndReason::Transferred, vec![])));
    let out = phone.signal("h", Signal::TransferProgress { code: 200 }, t0);
    assert_eq!(ended(&out, "h"), Some((EndReason::Transferred, vec![SipAction::Bye])));
    assert!(phone.is_empty());

    // The other order: the customer's report first; we end the consult ourselves.
    consulting(&mut phone, true, t0);
    phone.complete_transfer("h", "k", t0).unwrap();
    let out = phone.signal("h", Signal::TransferProgress { code: 200 }, t0);
    assert_eq!(ended(&out, "h"), Some((EndReason::Transferred, vec![SipAction::Bye])));
    assert_eq!(ended(&out, "k"), Some((EndReason::Transferred, vec![SipAction::Bye])));
    assert!(phone.is_empty());
}

#[test]
fn without_replaces_the_consult_ends_first_and_a_plain_refer_follows() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    consulting(&mut phone, false, t0);
    let out = phone.complete_transfer("h", "k", t0).unwrap();
    assert_eq!(ended(&out, "k"), Some((EndReason::Transferred, vec![SipAction::Bye])));
    let customer: Vec<Output> = out.iter().filter(|o| o.call.call == "h").cloned().collect();
    assert_eq!(sip(&customer), vec![SipAction::Refer { target: ReferTarget::Uri("sip:colleague@h".into()) }]);
    // Replaces needs both sides: a customer that supports it is not enough.
    let mut phone = Phone::new(false);
    phone.dial("h".into(), "sip:customer@h".into(), None, local(), t0).unwrap();
    answered(&mut phone, "h", true, t0);
    let (call, effects) = Call::dial("k".into(), "sip:colleague@h".into(), None, local(), t0);
    phone.consult("h", call, effects, t0).unwrap();
    phone.signal("h", Signal::ReinviteAnswered { code: 200, sdp: Some(sdp_with("0 101", "recvonly")) }, t0);
    answered(&mut phone, "k", false, t0);
    let out = phone.complete_transfer("h", "k", t0).unwrap();
    assert_eq!(ended(&out, "k"), Some((EndReason::Transferred, vec![SipAction::Bye])));
    // The customer's UA refuses REFER altogether: the agent is told, the customer stays.
    let out = phone.signal("h", Signal::ReferAnswered { code: 405 }, t0);
    let call = &out.last().unwrap().call;
    assert_eq!(
        (call.state, call.transfer.as_ref().map(|t| (t.status, t.sip_code))),
        (CallState::Held, Some((TransferStatus::Failed, Some(405))))
    );
}

#[test]
fn cancelling_a_consult_hangs_up_the_colleague_and_resumes_the_customer() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    consulting(&mut phone, true, t0);
    assert!(phone.cancel_consult("h", "nope", t0).is_err());
    let out = phone.cancel_consult("h", "k", t0).unwrap();
    assert_eq!(ended(&out, "k"), Some((EndReason::LocalHangup, vec![SipAction::Bye])));
    let customer: Vec<Output> = out.iter().filter(|o| o.call.call == "h").cloned().collect();
    assert!(matches!(sip(&customer)[..], [SipAction::Reinvite { .. }]), "resume: {customer:?}");
    assert_eq!(customer.last().unwrap().call.links, Links::default());
}

#[test]
fn a_colleague_who_never_answers_gives_the_customer_back() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    phone.dial("h".into(), "sip:customer@h".into(), None, local(), t0).unwrap();
    answered(&mut phone, "h", true, t0);
    let (call, effects) = Call::dial("k".into(), "sip:colleague@h".into(), None, local(), t0);
    phone.consult("h", call, effects, t0).unwrap();
    phone.signal("h", Signal::ReinviteAnswered { code: 200, sdp: Some(sdp_with("0 101", "recvonly")) }, t0);
    let out = phone.signal("k", Signal::Failed { code: 486 }, t0);
    assert_eq!(ended(&out, "k"), Some((EndReason::Busy, vec![])));
    let customer: Vec<Output> = out.iter().filter(|o| o.call.call == "h").cloned().collect();
    assert!(matches!(sip(&customer)[..], [SipAction::Reinvite { .. }]), "resumed: {customer:?}");
    assert_eq!(customer.last().unwrap().call.links.consult, None);
}

#[test]
fn merge_resumes_held_calls_into_the_conference_and_the_last_one_left_leaves_it() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    consulting(&mut phone, true, t0);
    assert!(matches!(phone.merge(&["h".into()], t0), Err(phone::PhoneError::Merge(_))));
    let out = phone.merge(&["h".into(), "k".into()], t0).unwrap();
    let conference: Vec<&str> =
        out.iter().filter(|o| o.effect == Effect::Conference(true)).map(|o| o.call.call.as_str()).collect();
    assert_eq!(conference.len(), 2, "{out:?}");
    let customer: Vec<Output> = out.iter().filter(|o| o.call.call == "h").cloned().collect();
    assert!(matches!(sip(&customer)[..], [SipAction::Reinvite { .. }]), "the held customer is resumed");
    let links = &customer.last().unwrap().call.links;
    assert!(links.conference && links.consult.is_none(), "{links:?}");
    assert_eq!(phone.conference(), vec!["h".to_string(), "k".to_string()]);
    // The colleague leaves: the customer stays, out of a conference of one.
    let out = phone.signal("k", Signal::RemoteBye, t0);
    assert!(out.iter().any(|o| o.call.call == "h" && o.effect == Effect::Conference(false)), "{out:?}");
    assert!(phone.get("h").is_some_and(|c| !c.links.conference && c.is_established()));
}

#[test]
fn answering_a_second_call_holds_the_first_when_policy_says_so() {
    let t0 = Instant::now();
    let mut phone = Phone::new(true);
    super::tests::connected(&mut phone, t0);
    phone.incoming("i".into(), inbound("sip:second@h", "0"), local(), t0).unwrap();
    let out = phone.command("i", Command::Answer, t0).unwrap();
    let first: Vec<Output> = out.iter().filter(|o| o.call.call == "h").cloned().collect();
    assert!(matches!(sip(&first)[..], [SipAction::Reinvite { .. }]), "the first call is held: {out:?}");
    let mut phone = Phone::new(false);
    super::tests::connected(&mut phone, t0);
    phone.incoming("i".into(), inbound("sip:second@h", "0"), local(), t0).unwrap();
    let out = phone.command("i", Command::Answer, t0).unwrap();
    assert!(out.iter().all(|o| o.call.call == "i"), "policy off: {out:?}");
}

#[test]
fn an_invite_with_replaces_is_answered_at_once_and_the_old_call_ends_replaced() {
    let t0 = Instant::now();
    let mut phone = Phone::new(true);
    super::tests::connected(&mut phone, t0);
    let replacing = Inbound { replaces: Some("h".into()), ..inbound("sip:customer@h", "0") };
    let out = phone.incoming("r".into(), replacing, local(), t0).unwrap();
    let new: Vec<Output> = out.iter().filter(|o| o.call.call == "r").cloned().collect();
    assert!(matches!(sip(&new)[..], [SipAction::Ringing, SipAction::Accept { .. }]), "{new:?}");
    assert_eq!(new.last().unwrap().call.links.replaces.as_deref(), Some("h"));
    assert_eq!(ended(&out, "h"), Some((EndReason::Replaced, vec![SipAction::Bye])));
}

#[test]
fn a_followed_refer_dials_the_target_and_reports_to_the_referrer_until_a_final_status() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    super::tests::connected(&mut phone, t0);
    let out = phone.signal("h", Signal::Referred { to: "sip:target@h".into() }, t0);
    assert_eq!(out.iter().map(|o| o.effect.clone()).collect::<Vec<_>>(), vec![Effect::Dial("sip:target@h".into())]);
    dial_referred(&mut phone, "t", "h", t0);
    let notified = |out: &[Output]| -> Vec<u16> {
        out.iter()
            .filter_map(|o| match &o.effect {
                Effect::Sip(SipAction::NotifyRefer { code }) if o.call.call == "h" => Some(*code),
                _ => None,
            })
            .collect()
    };
    assert_eq!(notified(&phone.signal("t", Signal::Progress { code: 180, sdp: None }, t0)), vec![180]);
    assert_eq!(notified(&answered(&mut phone, "t", false, t0)), vec![200]);
    assert_eq!(notified(&phone.command("t", Command::Hold, t0).unwrap()), Vec::<u16>::new());
    assert_eq!(notified(&phone.command("t", Command::Hangup, t0).unwrap()), Vec::<u16>::new(), "200 was final");

    // A target that does not answer: its failure is the final report.
    dial_referred(&mut phone, "u", "h", t0);
    assert_eq!(notified(&phone.signal("u", Signal::Failed { code: 486 }, t0)), vec![486]);
}

#[test]
fn a_transferee_that_never_reports_fails_the_transfer_and_keeps_the_call() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    super::tests::connected(&mut phone, t0);
    phone.command("h", Command::TransferBlind("sip:colleague@h".into()), t0).unwrap();
    phone.signal("h", Signal::ReferAnswered { code: 202 }, t0);
    let silent = t0 + transfer::TRANSFER_REPORT_TIMEOUT;
    assert!(phone.poll(silent - Duration::from_millis(1)).is_empty());
    let out = phone.poll(silent);
    let call = &out.last().unwrap().call;
    assert_eq!(call.state, CallState::Connected);
    assert_eq!(call.transfer.as_ref().map(|t| (t.status, t.sip_code)), Some((TransferStatus::Failed, Some(408))));
    assert!(sip(&out).is_empty(), "no BYE: {out:?}");
}

#[test]
fn leaving_a_two_party_conference_hands_the_customer_to_the_colleague() {
    let t0 = Instant::now();
    let mut phone = Phone::new(false);
    consulting(&mut phone, true, t0);
    phone.merge(&["h".into(), "k".into()], t0).unwrap();
    phone.signal("h", Signal::ReinviteAnswered { code: 200, sdp: Some(sdp_with("0 101", "sendrecv")) }, t0);
    let out = phone.complete_transfer("h", "k", t0).unwrap();
    let refer =
        SipAction::Refer { target: ReferTarget::Replacing { uri: "sip:colleague@h".into(), consult: "k".into() } };
    assert_eq!(sip(&out), vec![refer]);
    let out = phone.signal("h", Signal::TransferProgress { code: 200 }, t0);
    assert_eq!(ended(&out, "h"), Some((EndReason::Transferred, vec![SipAction::Bye])));
    assert_eq!(ended(&out, "k").map(|(reason, _)| reason), Some(EndReason::Transferred));
    assert!(phone.is_empty());
}

/// Place `id` to the target of a REFER that came on `referrer`, as the desk does.
fn dial_referred(phone: &mut Phone, id: &str, referrer: &str, t0: Instant) {
    let (mut call, effects) = Call::dial(id.into(), "sip:target@h".into(), None, local(), t0);
    call.links.referred_by = Some(referrer.into());
    phone.insert((call, effects), t0).unwrap();
}
