//! Moves across calls through the whole desk, as the customer's and the
//! colleague's UAs, the media path, the UI and the store see them: consult
//! then Leave & transfer with Replaces and without, merge, a transferee that
//! never reports, and a peer's REFER followed (or refused at `calls.max`).
//! Also the small readers of a bench's outputs the other desk tests share.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::*;
use crate::call::phone::CallSummary;
use crate::call::{EndReason, ReferTarget, TransferReport, TransferStatus};
use crate::history::{Record, RecordKind};

/// Place a call to `to` (at the default account's domain) at `ms`.
pub(super) fn dial(bench: &mut Bench, to: &str, ms: u64) -> String {
    match bench.command(Command::Dial { to: to.into(), account: None }, ms) {
        Ok(Reply::Call(call)) => call,
        other => panic!("dialling {to}: {other:?}"),
    }
}

/// Every output from index `mark` on, with when it came out.
pub(super) fn since(bench: &Bench, mark: usize) -> Vec<(Instant, Output)> {
    bench.outputs[mark..].to_vec()
}

/// The SIP actions from index `mark` on: milliseconds after time zero, call, action.
pub(super) fn sip_since(bench: &Bench, mark: usize) -> Vec<(u64, String, SipAction)> {
    since(bench, mark)
        .into_iter()
        .filter_map(|(at, output)| match output {
            Output::Sip { call, action } => Some(((at - bench.t0).as_millis() as u64, call, action)),
            _ => None,
        })
        .collect()
}

/// The latest `call.state` published for `call`.
pub(super) fn last_state(bench: &Bench, call: &str) -> CallSummary {
    bench
        .events()
        .into_iter()
        .rev()
        .find_map(|e| match e {
            Event::CallState(summary) if summary.call == call => Some(*summary),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no call.state for {call}"))
}

/// The one closed history record of `call` (open snapshots come before it,
/// from the answer on); none comes after it.
pub(super) fn history(bench: &Bench, call: &str) -> Record {
    let records: Vec<Record> =
        bench.stored().into_iter().filter(|r| r.kind == RecordKind::Call && r.id == call).collect();
    let closed: Vec<&Record> = records.iter().filter(|r| !r.open).collect();
    assert_eq!(closed.len(), 1, "exactly one closed history record of {call}: {records:?}");
    assert!(!records.last().expect("one at least").open, "the closed record is the last: {records:?}");
    closed[0].clone()
}

/// The members of a record's body named by `keys` that it has (absent ones are left out).
pub(super) fn fields(record: &Record, keys: &[&str]) -> Value {
    let present: Map<String, Value> =
        keys.iter().filter_map(|key| record.body.get(*key).map(|v| (key.to_string(), v.clone()))).collect();
    Value::Object(present)
}

/// The peer answers `call` (180, then 200 with SDP), saying whether it supports Replaces.
fn answered(bench: &mut Bench, call: &str, supports_replaces: bool, ms: u64) {
    bench.signal(call, Signal::Progress { code: 180, sdp: None }, ms);
    let answer = Signal::Answered { sdp: peer_sdp("0 101", "sendrecv"), session_timer: None, supports_replaces };
    bench.signal(call, answer, ms);
}

fn hold_offer(action: &SipAction) -> bool {
    matches!(action, SipAction::Reinvite { offer, session_timer: None } if offer.contains("a=sendonly\r\n"))
}

fn resume_offer(action: &SipAction) -> bool {
    matches!(action, SipAction::Reinvite { offer, session_timer: None } if offer.contains("a=sendrecv\r\n"))
}

/// The customer "c1" (answered at 1 s, supporting Replaces) held at 5 s
/// for a consult "c2" to the colleague, who answers at 8 s.
fn consulting(bench: &mut Bench, colleague_supports_replaces: bool) {
    assert_eq!(dial(bench, "customer", 0), "c1");
    bench.answer("c1", 1000);
    let mark = bench.outputs.len();
    let consult = bench.command(Command::Consult { call: "c1".into(), to: "colleague".into() }, 5000);
    assert_eq!(consult.unwrap(), Reply::Consult("c2".into()));
    let sip = sip_since(bench, mark);
    assert_eq!(sip.len(), 2, "{sip:?}");
    assert_eq!((sip[0].0, sip[0].1.as_str()), (5000, "c1"));
    assert!(hold_offer(&sip[0].2), "the customer is held first: {sip:?}");
    assert!(
        matches!(&sip[1], (5000, call, SipAction::Invite { to, account, .. })
            if call == "c2" && to == "sip:colleague@pbx.test" && account.as_deref() == Some("cc")),
        "the colleague is dialled on a new call, from the customer's account: {sip:?}"
    );
    let held = Signal::ReinviteAnswered { code: 200, sdp: Some(peer_sdp("0 101", "recvonly")) };
    bench.signal("c1", held, 5100);
    assert_eq!(last_state(bench, "c1").state, CallState::Held);
    answered(bench, "c2", colleague_supports_replaces, 8000);
    assert_eq!(last_state(bench, "c1").links.consult.as_deref(), Some("c2"));
    let consult = last_state(bench, "c2");
    assert_eq!((consult.state, consult.links.consult_for.as_deref()), (CallState::Connected, Some("c1")));
}

/// A call's final state: (state, reason, sip_code).
fn end_of(bench: &Bench, call: &str) -> (CallState, Option<EndReason>, Option<u16>) {
    let summary = last_state(bench, call);
    (summary.state, summary.reason, summary.sip_code)
}

#[test]
fn leave_and_transfer_with_replaces_refers_the_customer_and_both_calls_end_transferred() {
    let mut bench = Bench::new(config());
    consulting(&mut bench, true);
    let mark = bench.outputs.len();
    let done = bench.command(Command::CompleteTransfer { call: "c1".into(), consult: "c2".into() }, 20_000);
    assert_eq!(done.unwrap(), Reply::Done);
    let target = ReferTarget::Replacing { uri: "sip:colleague@pbx.test".into(), consult: "c2".into() };
    assert_eq!(sip_since(&bench, mark), vec![(20_000, "c1".to_string(), SipAction::Refer { target })]);
    let customer = last_state(&bench, "c1");
    assert_eq!(customer.state, CallState::Transferring);
    let trying = TransferReport {
        to: "sip:colleague@pbx.test".into(),
        consult: Some("c2".into()),
        replaces: true,
        status: TransferStatus::Trying,
        sip_code: None,
    };
    assert_eq!(customer.transfer, Some(trying));

    bench.signal("c1", Signal::ReferAnswered { code: 202 }, 20_100);
    // The colleague drops our consult as the customer's INVITE replaces it.
    bench.signal("c2", Signal::RemoteBye, 21_000);
    assert_eq!(end_of(&bench, "c2"), (CallState::Ended, Some(EndReason::Transferred), None));
    assert_eq!(last_state(&bench, "c1").state, CallState::Transferring, "until the customer reports");
    bench.signal("c1", Signal::TransferProgress { code: 200 }, 21_500);
    assert_eq!(end_of(&bench, "c1"), (CallState::Ended, Some(EndReason::Transferred), Some(200)));
    assert_eq!(
        sip_since(&bench, mark)[1..],
        [(21_500, "c1".to_string(), SipAction::Bye)],
        "we never BYE the colleague"
    );

    let closed = bench.stored().into_iter().filter(|r| r.kind == RecordKind::Call && !r.open);
    assert_eq!(closed.map(|r| r.id).collect::<Vec<_>>(), ["c2", "c1"], "in the order the calls ended");
    let keys = ["reason", "sip_code", "talk_ms", "direction", "remote"];
    let colleague = json!({ "reason": "transferred", "talk_ms": 13_000, "direction": "outbound",
        "remote": "sip:colleague@pbx.test" });
    assert_eq!(fields(&history(&bench, "c2"), &keys), colleague);
    let customer = json!({ "reason": "transferred", "sip_code": 200, "talk_ms": 20_500, "direction": "outbound",
        "remote": "sip:customer@pbx.test" });
    assert_eq!(fields(&history(&bench, "c1"), &keys), customer);
    assert!(bench.desk.calls().is_empty());
    assert_eq!(bench.desk.poll_timeout(), None, "the transfer's report deadline went with the call");
}

#[test]
fn leave_and_transfer_without_replaces_ends_the_consult_first_then_refers_to_the_colleague() {
    let mut bench = Bench::new(config());
    // The customer supports Replaces, the colleague does not: both must.
    consulting(&mut bench, false);
    let mark = bench.outputs.len();
    bench.command(Command::CompleteTransfer { call: "c1".into(), consult: "c2".into() }, 20_000).unwrap();
    let refer = SipAction::Refer { target: ReferTarget::Uri("sip:colleague@pbx.test".into()) };
    assert_eq!(
        sip_since(&bench, mark),
        vec![(20_000, "c2".to_string(), SipAction::Bye), (20_000, "c1".to_string(), refer)],
        "the colleague is free before the customer calls"
    );
    assert_eq!(end_of(&bench, "c2"), (CallState::Ended, Some(EndReason::Transferred), None));
    let colleague = json!({ "reason": "transferred", "talk_ms": 12_000 });
    assert_eq!(fields(&history(&bench, "c2"), &["reason", "sip_code", "talk_ms"]), colleague);
    let customer = last_state(&bench, "c1");
    assert_eq!((customer.state, customer.links.consult.as_deref()), (CallState::Transferring, None));
    let trying = TransferReport {
        to: "sip:colleague@pbx.test".into(),
        consult: Some("c2".into()),
        replaces: false,
        status: TransferStatus::Trying,
        sip_code: None,
    };
    assert_eq!(customer.transfer, Some(trying));

    bench.signal("c1", Signal::ReferAnswered { code: 202 }, 20_100);
    bench.signal("c1", Signal::TransferProgress { code: 180 }, 21_000);
    assert_eq!(last_state(&bench, "c1").state, CallState::Transferring, "a provisional report changes nothing");
    bench.signal("c1", Signal::TransferProgress { code: 200 }, 23_000);
    assert_eq!(sip_since(&bench, mark)[2..], [(23_000, "c1".to_string(), SipAction::Bye)]);
    assert_eq!(end_of(&bench, "c1"), (CallState::Ended, Some(EndReason::Transferred), Some(200)));
    let customer = json!({ "reason": "transferred", "sip_code": 200, "talk_ms": 22_000 });
    assert_eq!(fields(&history(&bench, "c1"), &["reason", "sip_code", "talk_ms"]), customer);
    assert!(bench.desk.calls().is_empty());
}

#[test]
fn merge_resumes_the_call_held_on_answer_and_joins_both_to_the_conference() {
    let mut bench = Bench::new(config());
    assert_eq!(dial(&mut bench, "customer", 0), "c1");
    bench.answer("c1", 1000);
    bench.ring("in1", "sip:second@127.0.0.1:5070", 2000);
    let mark = bench.outputs.len();
    bench.command(Command::Call { call: "in1".into(), command: crate::call::Command::Answer }, 3000).unwrap();
    let sip = sip_since(&bench, mark);
    assert!(
        matches!(&sip[..], [(3000, a, SipAction::Accept { .. }), (3000, h, hold)]
        if a == "in1" && h == "c1" && hold_offer(hold)),
        "hold_on_answer holds the first call: {sip:?}"
    );
    bench.signal("c1", Signal::ReinviteAnswered { code: 200, sdp: Some(peer_sdp("0 101", "recvonly")) }, 3100);
    assert_eq!(last_state(&bench, "c1").state, CallState::Held);

    let mark = bench.outputs.len();
    let merged = bench.command(Command::Merge { calls: vec!["in1".into(), "c1".into()] }, 10_000).unwrap();
    assert_eq!(merged, Reply::Conference(vec!["c1".into(), "in1".into()]));
    let sip = sip_since(&bench, mark);
    assert!(matches!(&sip[..], [(10_000, c, resume)] if c == "c1" && resume_offer(resume)), "{sip:?}");
    let conference = |bench: &Bench, mark: usize| -> Vec<MediaCommand> {
        since(bench, mark)
            .into_iter()
            .filter_map(|(_, o)| match o {
                Output::Media(command @ MediaCommand::Conference { .. }) => Some(command),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        conference(&bench, mark),
        vec![
            MediaCommand::Conference { call: "c1".into(), joined: true },
            MediaCommand::Conference { call: "in1".into(), joined: true },
        ]
    );
    bench.signal("c1", Signal::ReinviteAnswered { code: 200, sdp: Some(peer_sdp("0 101", "sendrecv")) }, 10_100);
    for call in ["c1", "in1"] {
        let summary = last_state(&bench, call);
        assert_eq!((summary.state, summary.held, summary.links.conference), (CallState::Connected, false, true));
    }

    // The first caller leaves: the other stays, out of a conference of one.
    let mark = bench.outputs.len();
    bench.signal("c1", Signal::RemoteBye, 30_000);
    assert_eq!(conference(&bench, mark), vec![MediaCommand::Conference { call: "in1".into(), joined: false }]);
    let left = last_state(&bench, "in1");
    assert_eq!((left.state, left.links.conference), (CallState::Connected, false));
}

#[test]
fn a_transferee_that_never_reports_fails_the_transfer_at_sixty_seconds_and_keeps_the_call() {
    let mut bench = Bench::new(config());
    dial(&mut bench, "customer", 0);
    bench.answer("c1", 1000);
    let mark = bench.outputs.len();
    bench.command(Command::TransferBlind { call: "c1".into(), to: "colleague".into() }, 2000).unwrap();
    let refer = SipAction::Refer { target: ReferTarget::Uri("sip:colleague@pbx.test".into()) };
    assert_eq!(sip_since(&bench, mark), vec![(2000, "c1".to_string(), refer)]);
    assert_eq!(last_state(&bench, "c1").state, CallState::Transferring);
    bench.signal("c1", Signal::ReferAnswered { code: 202 }, 2500);
    // crate::call::transfer::TRANSFER_REPORT_TIMEOUT (60 s), from the REFER.
    let due = bench.t0 + Duration::from_secs(62);
    assert_eq!(bench.desk.poll_timeout(), Some(due));

    let mark = bench.outputs.len();
    bench.run_until(due - Duration::from_millis(1));
    assert!(since(&bench, mark).is_empty(), "nothing 1 ms before");
    assert_eq!(bench.desk.call("c1").map(|c| c.state), Some(CallState::Transferring));
    bench.run_until(due);
    let out = since(&bench, mark);
    let [(at, Output::Event(Event::CallState(call)))] = &out[..] else {
        panic!("one call.state and nothing else: {out:?}")
    };
    assert_eq!(*at, due);
    assert_eq!((call.call.as_str(), call.state, call.reason), ("c1", CallState::Connected, None));
    let failed = TransferReport {
        to: "sip:colleague@pbx.test".into(),
        consult: None,
        replaces: false,
        status: TransferStatus::Failed,
        sip_code: Some(408),
    };
    assert_eq!(call.transfer, Some(failed));
    assert_eq!(bench.desk.poll_timeout(), None);
    assert!(bench.stored().iter().all(|r| r.kind != RecordKind::Call || r.open), "the customer is still ours");
}

#[test]
fn a_peers_refer_is_followed_with_a_new_call_and_the_referrer_hears_how_it_goes() {
    let mut bench = Bench::new(config());
    dial(&mut bench, "customer", 0);
    bench.answer("c1", 1000);
    let mark = bench.outputs.len();
    bench.signal("c1", Signal::Referred { to: "sip:target@pbx.test".into() }, 5000);
    let placed = since(&bench, mark);
    assert_eq!(
        placed[0],
        (
            bench.at(5000).at,
            Output::Media(MediaCommand::Open { call: "c2".into(), rtp: "127.0.0.1:40004".parse().unwrap() })
        )
    );
    let sip = sip_since(&bench, mark);
    assert!(
        matches!(&sip[..], [(5000, c, SipAction::Invite { to, account, .. })]
        if c == "c2" && to == "sip:target@pbx.test" && account.as_deref() == Some("cc")),
        "{sip:?}"
    );
    let first = bench.events().into_iter().find_map(|e| match e {
        Event::CallState(summary) if summary.call == "c2" => Some(summary),
        _ => None,
    });
    let first = first.expect("c2 was published");
    assert_eq!(
        (first.state, first.links.referred_by.as_deref()),
        (CallState::Dialing, Some("c1")),
        "linked from its first state"
    );

    bench.signal("c2", Signal::Progress { code: 180, sdp: None }, 5200);
    let answer = Signal::Answered { sdp: peer_sdp("0 101", "sendrecv"), session_timer: None, supports_replaces: false };
    bench.signal("c2", answer, 6000);
    let target = last_state(&bench, "c2");
    assert_eq!((target.state, target.links.referred_by.as_deref()), (CallState::Connected, Some("c1")));
    let notified: Vec<(u64, String, SipAction)> =
        sip_since(&bench, mark).into_iter().filter(|(_, call, _)| call == "c1").collect();
    assert_eq!(
        notified,
        vec![
            (5200, "c1".to_string(), SipAction::NotifyRefer { code: 180 }),
            (6000, "c1".to_string(), SipAction::NotifyRefer { code: 200 }),
        ]
    );
    assert_eq!(last_state(&bench, "c1").state, CallState::Connected, "the referrer hangs up, not us");
}

#[test]
fn a_peers_refer_at_calls_max_is_answered_503_and_nothing_is_dialled() {
    let mut config = config();
    config.calls_max = 1;
    let mut bench = Bench::new(config);
    dial(&mut bench, "customer", 0);
    bench.answer("c1", 1000);
    let mark = bench.outputs.len();
    bench.signal("c1", Signal::Referred { to: "sip:target@pbx.test".into() }, 5000);
    let notify = Output::Sip { call: "c1".into(), action: SipAction::NotifyRefer { code: 503 } };
    assert_eq!(since(&bench, mark), vec![(bench.at(5000).at, notify)]);
    assert_eq!(bench.desk.lines_wanted(), 0, "no line was taken");
    assert_eq!(bench.desk.calls().len(), 1);
}
