//! calls.max, the agent's ready state, who may ring, running out of lines,
//! targets that cannot be dialled, and the desk's next deadline: each
//! refusal as the other side sees it (the SIP answer, the error, and what
//! did not happen).

use std::time::Duration;

use super::callbacks::offer;
use super::transfers::{dial, last_state, since, sip_since};
use super::*;
use crate::call::admission::AllowedPeer;
use crate::call::EndReason;
use crate::callback::DialMode;

/// An INVITE from `source` with these particulars, at `ms`.
fn ring_from(bench: &mut Bench, call: &str, source: &str, inbound: Inbound, ms: u64) {
    let input = Input::Incoming { call: call.into(), source: source.parse().unwrap(), inbound };
    bench.handle(input, bench.at(ms)).unwrap();
}

fn inbound(from: &str) -> Inbound {
    Inbound { from: from.into(), offer: peer_sdp("0 101", "sendrecv"), ..Inbound::default() }
}

/// What an INVITE turned away at `ms` left behind: only its SIP refusal.
fn refused(bench: &Bench, mark: usize, call: &str, code: u16, ms: u64) {
    let refusal = Output::Sip { call: call.into(), action: SipAction::Reject { code } };
    assert_eq!(since(bench, mark), vec![(bench.at(ms).at, refusal)], "{call} refused with {code} and nothing else");
    assert!(bench.call_states(call).is_empty(), "the agent never saw {call}");
}

#[test]
fn calls_max_refuses_a_third_dial_an_inbound_call_and_a_consult_but_not_a_replacing_invite() {
    let mut config = config();
    config.calls_max = 2;
    let mut bench = Bench::new(config);
    assert_eq!(dial(&mut bench, "5551000", 0), "c1");
    assert_eq!(dial(&mut bench, "5552000", 100), "c2");
    let mark = bench.outputs.len();
    match bench.command(Command::Dial { to: "5553000".into(), account: None }, 200) {
        Err(DeskError::CallsMax { max: 2 }) => {}
        other => panic!("calls.max: {other:?}"),
    }
    assert!(since(&bench, mark).is_empty(), "no INVITE, no port");
    assert_eq!(bench.desk.lines_wanted(), 0, "no line was taken");

    bench.ring("in1", "sip:caller@127.0.0.1:5070", 300);
    refused(&bench, mark, "in1", 486, 300);

    bench.answer("c1", 1000);
    bench.answer("c2", 1500);
    let mark = bench.outputs.len();
    match bench.command(Command::Consult { call: "c1".into(), to: "colleague".into() }, 2000) {
        Err(DeskError::CallsMax { max: 2 }) => {}
        other => panic!("a consult counts: {other:?}"),
    }
    assert!(since(&bench, mark).is_empty(), "the customer is not even held");

    // The colleague's INVITE replacing c1 takes its place: still two calls.
    let replacing =
        Inbound { replaces: Some("c1".into()), supports_replaces: true, ..inbound("sip:colleague@pbx.test") };
    ring_from(&mut bench, "r1", "127.0.0.1:5070", replacing, 3000);
    let sip = sip_since(&bench, mark);
    assert!(
        matches!(&sip[..], [(3000, r, SipAction::Ringing), (3000, a, SipAction::Accept { .. }), (3000, c, SipAction::Bye)]
            if r == "r1" && a == "r1" && c == "c1"),
        "answered at once, the old call ended: {sip:?}"
    );
    let (new, old) = (last_state(&bench, "r1"), last_state(&bench, "c1"));
    assert_eq!((new.state, new.links.replaces.as_deref()), (CallState::Connected, Some("c1")));
    assert_eq!((old.state, old.reason), (CallState::Ended, Some(EndReason::Replaced)));
    let live: Vec<String> = bench.desk.calls().into_iter().map(|c| c.call).collect();
    assert_eq!(live, ["c2", "r1"]);

    // A call hung up makes room again.
    bench.command(Command::Call { call: "c2".into(), command: crate::call::Command::Hangup }, 4000).unwrap();
    assert_eq!(dial(&mut bench, "5553000", 4100), "c4");
}

#[test]
fn an_agent_not_ready_is_not_rung_and_says_so_once() {
    let mut bench = Bench::new(config());
    let mark = bench.outputs.len();
    assert_eq!(bench.command(Command::SetAgentState(AgentState::NotReady), 0).unwrap(), Reply::Done);
    assert_eq!(bench.command(Command::SetAgentState(AgentState::NotReady), 100).unwrap(), Reply::Done);
    assert_eq!(since(&bench, mark), vec![(bench.t0, Output::Event(Event::AgentState(AgentState::NotReady)))]);
    assert_eq!(bench.desk.agent_state(), AgentState::NotReady);

    let mark = bench.outputs.len();
    bench.ring("in1", "sip:caller@127.0.0.1:5070", 200);
    refused(&bench, mark, "in1", 480, 200);
    assert_eq!(bench.desk.lines_wanted(), 0, "no line was taken");

    let mark = bench.outputs.len();
    bench.command(Command::SetAgentState(AgentState::Ready), 300).unwrap();
    bench.ring("in2", "sip:caller@127.0.0.1:5070", 400);
    assert_eq!(since(&bench, mark)[0], (bench.at(300).at, Output::Event(Event::AgentState(AgentState::Ready))));
    assert_eq!(sip_since(&bench, mark), vec![(400, "in2".to_string(), SipAction::Ringing)]);
    assert_eq!(bench.call_states("in2"), vec![CallState::Incoming]);
}

#[test]
fn a_restricted_desk_refuses_strangers_with_403_before_anything_else() {
    let mut config = config();
    config.inbound.restricted = true;
    config.inbound.allowed = vec![AllowedPeer::Socket("127.0.0.1:5060".parse().unwrap())];
    let mut bench = Bench::new(config);
    let mark = bench.outputs.len();
    // Bench::ring comes from 127.0.0.1:5070: the right host, the wrong port.
    bench.ring("in1", "sip:scanner@127.0.0.1:5070", 0);
    refused(&bench, mark, "in1", 403, 0);

    let mark = bench.outputs.len();
    ring_from(&mut bench, "in2", "127.0.0.1:5060", inbound("sip:pbx@127.0.0.1:5060"), 100);
    assert_eq!(sip_since(&bench, mark), vec![(100, "in2".to_string(), SipAction::Ringing)]);

    // Not ready: a stranger still hears 403, the registrar 480.
    bench.command(Command::SetAgentState(AgentState::NotReady), 200).unwrap();
    let mark = bench.outputs.len();
    ring_from(&mut bench, "in3", "192.0.2.7:5060", inbound("sip:scanner@192.0.2.7"), 300);
    refused(&bench, mark, "in3", 403, 300);
    let mark = bench.outputs.len();
    ring_from(&mut bench, "in4", "127.0.0.1:5060", inbound("sip:pbx@127.0.0.1:5060"), 400);
    refused(&bench, mark, "in4", 480, 400);
}

#[test]
fn a_registrar_located_later_is_trusted_from_then_on() {
    let mut config = config();
    config.inbound.restricted = true;
    let primary = AllowedPeer::Socket("192.0.2.10:5060".parse().unwrap());
    config.inbound.allowed = vec![primary];
    let mut bench = Bench::new(config);
    let mark = bench.outputs.len();
    ring_from(&mut bench, "in1", "192.0.2.20:5060", inbound("sip:pbx@192.0.2.20"), 0);
    refused(&bench, mark, "in1", 403, 0);

    // A fresh lookup located the backup registrar there too.
    let backup = AllowedPeer::Socket("192.0.2.20:5060".parse().unwrap());
    bench.handle(Input::Trust(vec![primary, backup]), bench.at(100)).unwrap();
    let mark = bench.outputs.len();
    ring_from(&mut bench, "in2", "192.0.2.20:5060", inbound("sip:pbx@192.0.2.20"), 200);
    assert_eq!(sip_since(&bench, mark), vec![(200, "in2".to_string(), SipAction::Ringing)]);
}

#[test]
fn with_no_line_left_a_dial_fails_and_an_inbound_call_hears_503() {
    let mut bench = Bench::new(config());
    // Straight to the desk: the bench would refill the lines after each input.
    let dialling = |to: &str| Input::Command(Command::Dial { to: to.into(), account: None });
    assert_eq!(bench.desk.handle(dialling("5551000"), bench.at(0)).unwrap(), Reply::Call("c1".into()));
    assert_eq!(bench.desk.handle(dialling("5552000"), bench.at(100)).unwrap(), Reply::Call("c2".into()));
    assert_eq!(bench.desk.lines_wanted(), 2);
    std::iter::from_fn(|| bench.desk.poll_output()).for_each(drop);

    match bench.desk.handle(dialling("5553000"), bench.at(200)) {
        Err(DeskError::NoLine) => {}
        other => panic!("no line: {other:?}"),
    }
    let incoming = Input::Incoming {
        call: "in1".into(),
        source: "127.0.0.1:5070".parse().unwrap(),
        inbound: inbound("sip:caller@127.0.0.1:5070"),
    };
    bench.desk.handle(incoming, bench.at(300)).unwrap();
    let outputs: Vec<Output> = std::iter::from_fn(|| bench.desk.poll_output()).collect();
    assert_eq!(outputs, vec![Output::Sip { call: "in1".into(), action: SipAction::Reject { code: 503 } }]);
    assert_eq!(bench.desk.calls().len(), 2, "nothing rang");

    // The shell opens a line: the next dial takes it.
    let rtp = "127.0.0.1:41000".parse().unwrap();
    let line = Line { call: "c9".into(), rtp, session_id: 9, key_salt: [9; 30] };
    bench.desk.handle(Input::Line(line), bench.at(400)).unwrap();
    assert_eq!(bench.desk.handle(dialling("5553000"), bench.at(500)).unwrap(), Reply::Call("c9".into()));
    assert_eq!(bench.desk.poll_output(), Some(Output::Media(MediaCommand::Open { call: "c9".into(), rtp })));
}

/// The refusal's message, checking it is [`DeskError::InvalidParams`].
fn invalid_params(result: Result<Reply, DeskError>) -> String {
    match result {
        Err(DeskError::InvalidParams(message)) => message,
        other => panic!("expected invalid params, got {other:?}"),
    }
}

#[test]
fn a_target_the_sip_side_cannot_route_or_an_unknown_account_is_refused_before_anything_happens() {
    let mut config = config();
    // As strict as the SIP side's parser: no spaces in a URI.
    config.dial_plan.check_uri =
        |uri| if uri.contains(' ') || !uri.starts_with("sip:") { Err(format!("not a SIP URI: {uri}")) } else { Ok(()) };
    let mut bench = Bench::new(config);
    let dial_as = |to: &str, account: &str| Command::Dial { to: to.into(), account: Some(account.into()) };
    // A number (no scheme) becomes a user at the account's domain, then is checked.
    let refusal = invalid_params(bench.command(dial_as("not a uri", "cc"), 0));
    assert_eq!(refusal, "not a SIP URI: sip:not a uri@pbx.test");
    let refusal = invalid_params(bench.command(dial_as("tel:+15551000", "cc"), 0));
    assert_eq!(refusal, "not a SIP URI: tel:+15551000", "a URI is taken as it is");
    assert_eq!(invalid_params(bench.command(dial_as("5551000", "X"), 0)), "no such account: X");
    assert!(bench.outputs.is_empty(), "no INVITE, no port");
    assert_eq!(bench.desk.lines_wanted(), 0);

    // The same rules for a transfer target, at the call's account.
    assert_eq!(dial(&mut bench, "5551000", 100), "c1");
    bench.answer("c1", 1000);
    let mark = bench.outputs.len();
    let transfer = Command::TransferBlind { call: "c1".into(), to: "not a uri".into() };
    assert_eq!(invalid_params(bench.command(transfer, 2000)), "not a SIP URI: sip:not a uri@pbx.test");
    assert!(since(&bench, mark).is_empty(), "no REFER");
    assert_eq!(last_state(&bench, "c1").state, CallState::Connected);
}

#[test]
fn poll_timeout_is_the_soonest_deadline_of_every_call_and_callback() {
    let mut config = config();
    config.inbound.default_answer.auto_answer_after = Some(Duration::from_millis(2500));
    let mut bench = Bench::new(config);
    assert_eq!(bench.desk.poll_timeout(), None, "nothing pending");
    bench.command(Command::Offer { offer: offer(DialMode::Automatic, 3000), id: "x".into() }, 0).unwrap();
    bench
        .command(Command::Callback { callback: "cb1".into(), command: crate::callback::Command::Accept }, 100)
        .unwrap();
    assert_eq!(bench.desk.poll_timeout(), Some(bench.at(1100).at), "the countdown's first report");
    bench.ring("in1", "sip:caller@127.0.0.1:5070", 300);
    assert_eq!(bench.desk.poll_timeout(), Some(bench.at(1100).at), "the callback's is still the soonest");

    // Each deadline fired on its instant: the countdowns' reports interleave,
    // the call auto-answers at 2.8 s, the callback would dial at 3.1 s.
    let mut fired = Vec::new();
    while let Some(due) = bench.desk.poll_timeout().filter(|due| *due < bench.at(3000).at) {
        fired.push((due - bench.t0).as_millis() as u64);
        bench.handle(Input::Timeout, Now { at: due, wall: bench.wall0 + (due - bench.t0) }).unwrap();
    }
    assert_eq!(fired, [1100, 1300, 2100, 2300, 2800]);
    assert!(matches!(&sip_since(&bench, 0)[..], [(300, _, SipAction::Ringing), (2800, _, SipAction::Accept { .. })]));
    assert_eq!(bench.desk.poll_timeout(), Some(bench.at(3100).at), "the answered call has no deadline");

    let cancel = Command::Callback { callback: "cb1".into(), command: crate::callback::Command::CancelCountdown };
    bench.command(cancel, 3000).unwrap();
    assert_eq!(bench.desk.poll_timeout(), None, "nothing pending");
}

#[test]
fn an_invite_replacing_an_answered_call_rings_through_not_ready_but_one_naming_a_ringing_call_counts() {
    let mut config = config();
    config.calls_max = 1;
    let mut bench = Bench::new(config);
    dial(&mut bench, "customer", 0);
    bench.signal("c1", Signal::Progress { code: 180, sdp: None }, 500);
    // c1 only rings: an INVITE naming it replaces nothing, so it is a second call.
    let mark = bench.outputs.len();
    let early = Inbound { replaces: Some("c1".into()), ..inbound("sip:colleague@pbx.test") };
    ring_from(&mut bench, "r1", "127.0.0.1:5070", early, 600);
    refused(&bench, mark, "r1", 486, 600);

    bench.answer("c1", 1000);
    bench.command(Command::SetAgentState(AgentState::NotReady), 1500).unwrap();
    // An attended transfer to the agent, taking c1's place: not a new call for a not-ready agent.
    let replacing = Inbound { replaces: Some("c1".into()), ..inbound("sip:colleague@pbx.test") };
    ring_from(&mut bench, "r2", "127.0.0.1:5070", replacing, 2000);
    assert_eq!(last_state(&bench, "r2").state, CallState::Connected);
    assert_eq!(last_state(&bench, "c1").reason, Some(EndReason::Replaced));
}

#[test]
fn a_60_kb_target_is_refused_at_once_with_nothing_sent() {
    let mut bench = Bench::new(config());
    let mark = bench.outputs.len();
    let huge = format!("sip:{}@pbx.test", "a".repeat(60 * 1024));
    match bench.command(Command::Dial { to: huge, account: None }, 0) {
        Err(DeskError::InvalidParams(why)) => assert!(why.contains("at most 1024"), "{why}"),
        other => panic!("expected invalid params, got {other:?}"),
    }
    assert!(since(&bench, mark).is_empty(), "no INVITE, no line taken");
}

#[test]
fn a_reload_applies_to_new_calls_and_leaves_the_live_one_be() {
    let mut bench = Bench::new(config());
    let live = dial(&mut bench, "5551000", 0);
    bench.answer(&live, 500);
    let mut reloaded = config();
    reloaded.calls_max = 1;
    reloaded.default_media.codecs = vec![crate::media::codec::Codec::Pcma];
    bench.desk.reconfigure(reloaded.clone());
    match bench.command(Command::Dial { to: "5552000".into(), account: None }, 1100) {
        Err(DeskError::CallsMax { max: 1 }) => {}
        other => panic!("the reloaded calls.max: {other:?}"),
    }
    assert_eq!(last_state(&bench, &live).state, CallState::Connected, "the live call goes on");

    reloaded.calls_max = 2;
    bench.desk.reconfigure(reloaded);
    let next = dial(&mut bench, "5552000", 1300);
    let offers: Vec<(String, String)> = bench
        .sip()
        .into_iter()
        .filter_map(|(_, call, action)| match action {
            SipAction::Invite { offer, .. } => Some((call, offer.lines().find(|l| l.starts_with("m=audio"))?.into())),
            _ => None,
        })
        .collect();
    let payloads = |m: &str| m.split_whitespace().skip(3).collect::<Vec<_>>().join(" ");
    assert_eq!(offers.len(), 2);
    assert_eq!((offers[0].0.as_str(), payloads(&offers[0].1).as_str()), (live.as_str(), "0 8 101"));
    assert_eq!((offers[1].0.as_str(), payloads(&offers[1].1).as_str()), (next.as_str(), "8 101"));
}
