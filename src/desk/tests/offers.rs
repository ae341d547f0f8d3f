//! Issue 20: a call's media direction and the conference converge to what
//! the agent asked last, whatever the network's timing. Every pair of
//! {hold, resume, merge, consult, Leave & transfer, the peer's re-INVITE,
//! our session refresh} is played with the second issued while the first's
//! offer is still unanswered, once with a peer that answers everything and
//! once with a peer that answers our first re-INVITE 491 (a peer re-INVITE
//! crossing ours is the other side's glare: we answer it 491). A simulated
//! peer then settles everything, retrying its own re-INVITE as RFC 3261
//! says; at the end each call's last agreed direction, its `call.state`
//! and the conference must match a model of the commands the desk took.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use super::transfers::{dial, last_state, since};
use super::*;
use crate::call::session_timer::{Refresher, SessionTimer};
use crate::call::EndReason;
use crate::media::params::MediaDirection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    Hold,
    Resume,
    Merge,
    Consult,
    Complete,
    PeerReinvite,
    Refresh,
}

const MOVES: [Move; 7] =
    [Move::Hold, Move::Resume, Move::Merge, Move::Consult, Move::Complete, Move::PeerReinvite, Move::Refresh];

/// When our session refresh of the customer's call falls due.
const REFRESH_AT_MS: u64 = 10_000;
/// The first move is made then (unless it is the refresh).
const FIRST_AT_MS: u64 = 5_000;

/// What the desk was asked and took: what the calls must come to.
#[derive(Default)]
struct Model {
    hold: HashMap<String, bool>,
    peer_holds: HashMap<String, bool>,
    conference: BTreeSet<String>,
    consult: Option<String>,
    transferred: bool,
}

/// The peers: answer our re-INVITEs in order, the first one 491 when told
/// to; answer INVITEs and REFERs; retry their own crossed re-INVITE.
struct Peers {
    cursor: usize,
    glare_once: bool,
    /// Our re-INVITEs not answered yet: call and offer.
    unanswered: Vec<(String, String)>,
    /// The customer's re-offer to send again after our 491.
    retry_offer: bool,
    now_ms: u64,
}

fn answer_to(offer: &str) -> Vec<u8> {
    let direction = if offer.contains("a=sendonly") {
        "recvonly"
    } else if offer.contains("a=recvonly") {
        "sendonly"
    } else if offer.contains("a=inactive") {
        "inactive"
    } else {
        "sendrecv"
    };
    peer_sdp("0 101", direction)
}

impl Peers {
    /// Read what the desk sent since last time, and answer all of it.
    fn settle(&mut self, bench: &mut Bench) {
        for _ in 0..200 {
            let new: Vec<Output> = bench.outputs[self.cursor..].iter().map(|(_, o)| o.clone()).collect();
            self.cursor = bench.outputs.len();
            for output in new {
                let Output::Sip { call, action } = output else { continue };
                match action {
                    SipAction::Reinvite { offer, .. } => self.unanswered.push((call, offer)),
                    SipAction::Invite { .. } => {
                        let answered = Signal::Answered {
                            sdp: peer_sdp("0 101", "sendrecv"),
                            session_timer: None,
                            supports_replaces: true,
                        };
                        bench.signal(&call, answered, self.now_ms);
                    }
                    SipAction::Refer { .. } => {
                        bench.signal(&call, Signal::ReferAnswered { code: 202 }, self.now_ms);
                        bench.signal(&call, Signal::TransferProgress { code: 200 }, self.now_ms);
                    }
                    SipAction::AnswerOffer { answer: Err(491), .. } => self.retry_offer = true,
                    _ => {}
                }
            }
            if !self.unanswered.is_empty() {
                let (call, offer) = self.unanswered.remove(0);
                let answer = if std::mem::take(&mut self.glare_once) {
                    Signal::ReinviteAnswered { code: 491, sdp: None }
                } else {
                    Signal::ReinviteAnswered { code: 200, sdp: Some(answer_to(&offer)) }
                };
                bench.signal(&call, answer, self.now_ms);
                continue;
            }
            if std::mem::take(&mut self.retry_offer) {
                peer_reinvite(bench, self.now_ms);
                continue;
            }
            // Waits of a few seconds (glare back-off) are run through; the
            // next session refresh, much later, is not.
            match bench.desk.poll_timeout() {
                Some(due) if due <= bench.at(self.now_ms + 4_100).at => {
                    self.now_ms = (due - bench.t0).as_millis() as u64;
                    bench.run_until(due);
                }
                _ => return,
            }
        }
        panic!("the calls never settled");
    }
}

/// The customer's phone puts us on hold (its re-INVITE offers sendonly).
fn peer_reinvite(bench: &mut Bench, ms: u64) {
    bench.signal("c1", Signal::RemoteOffer { sdp: peer_sdp("0 101", "sendonly"), session_timer: None }, ms);
}

/// Make `step`; the model learns what the desk took.
fn make(bench: &mut Bench, model: &mut Model, step: Move, ms: u64) {
    let customer = "c1".to_string();
    match step {
        Move::Hold | Move::Resume => {
            let hold = step == Move::Hold;
            let command = if hold { crate::call::Command::Hold } else { crate::call::Command::Resume };
            if bench.command(Command::Call { call: customer.clone(), command }, ms).is_ok() {
                model.hold.insert(customer, hold);
            }
        }
        Move::Merge => {
            let other = model.consult.clone().unwrap_or_else(|| "c2".into());
            let calls = vec![customer.clone(), other.clone()];
            if let Ok(Reply::Conference(members)) = bench.command(Command::Merge { calls }, ms) {
                for member in &members {
                    model.hold.insert(member.clone(), false);
                }
                model.conference = members.into_iter().collect();
                if model.consult.as_ref() == Some(&other) {
                    model.consult = None;
                }
            }
        }
        Move::Consult => {
            let consult = Command::Consult { call: customer.clone(), to: "colleague".into() };
            if let Ok(Reply::Consult(id)) = bench.command(consult, ms) {
                model.hold.insert(customer, true);
                model.hold.insert(id.clone(), false);
                model.consult = Some(id);
            }
        }
        Move::Complete => {
            let Some(consult) = model.consult.clone() else { return };
            if bench.command(Command::CompleteTransfer { call: customer, consult }, ms).is_ok() {
                model.transferred = true;
            }
        }
        Move::PeerReinvite => {
            peer_reinvite(bench, ms);
            model.peer_holds.insert(customer, true);
        }
        Move::Refresh => bench.run_ms(REFRESH_AT_MS),
    }
}

/// The last media parameters the desk started `call` with.
fn last_direction(bench: &Bench, call: &str) -> Option<MediaDirection> {
    bench.outputs.iter().rev().find_map(|(_, o)| match o {
        Output::Media(MediaCommand::Start { call: c, negotiated }) if c == call => Some(negotiated.direction),
        _ => None,
    })
}

fn play(first: Move, second: Move, glare_once: bool) {
    let case = format!("{first:?} then {second:?}{}", if glare_once { ", our first re-INVITE met 491" } else { "" });
    let mut config = config();
    config.hold_on_answer = false;
    let mut bench = Bench::new(config);
    let mut model = Model::default();
    dial(&mut bench, "customer", 0);
    let timer = SessionTimer { interval: Duration::from_millis(2 * REFRESH_AT_MS), refresher: Refresher::Us };
    let answered =
        Signal::Answered { sdp: peer_sdp("0 101", "sendrecv"), session_timer: Some(timer), supports_replaces: true };
    bench.signal("c1", answered, 0);
    dial(&mut bench, "other", 0);
    bench.answer("c2", 0);
    let mut peers =
        Peers { cursor: bench.outputs.len(), glare_once: false, unanswered: Vec::new(), retry_offer: false, now_ms: 0 };
    if [first, second].contains(&Move::Complete) {
        make(&mut bench, &mut model, Move::Consult, 0);
        peers.settle(&mut bench);
    }
    peers.glare_once = glare_once;
    let first_at = if first == Move::Refresh { REFRESH_AT_MS } else { FIRST_AT_MS };
    make(&mut bench, &mut model, first, first_at);
    let second_at = if second == Move::Refresh { REFRESH_AT_MS } else { first_at };
    make(&mut bench, &mut model, second, second_at);
    peers.now_ms = second_at.max(first_at);
    peers.settle(&mut bench);

    assert!(peers.unanswered.is_empty(), "{case}: a re-INVITE left unanswered");
    let mut live = vec!["c1".to_string(), "c2".to_string()];
    live.extend(model.consult.clone());
    live.extend(model.conference.iter().cloned());
    live.sort();
    live.dedup();
    for call in live {
        let state = last_state(&bench, &call);
        if model.transferred && (call == "c1" || model.consult.as_ref() == Some(&call)) {
            assert_eq!((state.state, state.reason), (CallState::Ended, Some(EndReason::Transferred)), "{case}: {call}");
            continue;
        }
        let hold = model.hold.get(&call).copied().unwrap_or(false);
        let peer_holds = model.peer_holds.get(&call).copied().unwrap_or(false);
        assert_ne!(state.state, CallState::Ended, "{case}: {call} ended");
        assert_eq!((state.held, state.remote_held), (hold, peer_holds), "{case}: {call}'s call.state");
        let wanted = MediaDirection::from_flags(!peer_holds, !hold);
        assert_eq!(last_direction(&bench, &call), Some(wanted), "{case}: {call}'s media on the wire");
        assert_eq!(state.links.conference, model.conference.contains(&call), "{case}: {call} in the conference");
    }
    let refers = bench.sip().into_iter().filter(|(_, _, a)| matches!(a, SipAction::Refer { .. })).count();
    assert_eq!(refers, usize::from(model.transferred), "{case}: REFERs sent");
}

#[test]
fn every_pair_of_moves_over_a_pending_offer_converges_to_the_last_command() {
    for first in MOVES {
        for second in MOVES {
            play(first, second, false);
        }
    }
}

#[test]
fn every_pair_converges_when_our_first_reinvite_meets_glare() {
    for first in MOVES {
        for second in MOVES {
            play(first, second, true);
        }
    }
}

#[test]
fn the_reported_race_consult_then_merge_before_the_hold_is_answered() {
    let mut config = config();
    config.hold_on_answer = false;
    let mut bench = Bench::new(config);
    dial(&mut bench, "customer", 0);
    bench.answer("c1", 0);
    let Ok(Reply::Consult(consult)) =
        bench.command(Command::Consult { call: "c1".into(), to: "colleague".into() }, 1000)
    else {
        panic!("consult refused")
    };
    bench.answer(&consult, 1007);
    // The customer's hold is still unanswered when the merge comes.
    let merged = bench.command(Command::Merge { calls: vec!["c1".into(), consult.clone()] }, 1007).unwrap();
    assert_eq!(merged, Reply::Conference(vec!["c1".into(), consult.clone()]));
    let reinvites = |bench: &Bench| -> Vec<String> {
        bench
            .sip()
            .into_iter()
            .filter_map(|(_, call, a)| match a {
                SipAction::Reinvite { offer, .. } if call == "c1" => Some(offer),
                _ => None,
            })
            .collect()
    };
    assert_eq!(reinvites(&bench).len(), 1, "the resume waits for the hold's answer");
    bench.signal("c1", Signal::ReinviteAnswered { code: 200, sdp: Some(peer_sdp("0 101", "recvonly")) }, 1008);
    let sent = reinvites(&bench);
    assert!(sent.len() == 2 && sent[1].contains("a=sendrecv"), "then the resume goes out: {sent:?}");
    bench.signal("c1", Signal::ReinviteAnswered { code: 200, sdp: Some(peer_sdp("0 101", "sendrecv")) }, 1015);
    let customer = last_state(&bench, "c1");
    assert_eq!((customer.state, customer.held, customer.links.conference), (CallState::Connected, false, true));
    assert_eq!(last_direction(&bench, "c1"), Some(MediaDirection::SendRecv));
}

#[test]
fn a_glare_is_retried_after_rfc_3261s_random_wait() {
    let mut bench = Bench::new(config());
    dial(&mut bench, "customer", 0);
    bench.answer("c1", 0);
    bench.command(Command::Call { call: "c1".into(), command: crate::call::Command::Hold }, 1000).unwrap();
    bench.signal("c1", Signal::ReinviteAnswered { code: 491, sdp: None }, 1100);
    let retry = bench.desk.poll_timeout().expect("a retry is due");
    // We placed the call, so we own its Call-ID: 2.1 to 4 s, in units of 10 ms.
    let wait = retry - bench.at(1100).at;
    assert!(wait >= Duration::from_millis(2100) && wait <= Duration::from_secs(4), "{wait:?}");
    assert_eq!(wait.as_millis() % 10, 0);
    // The peer's own re-INVITE in the meantime is answered: nothing of ours is in flight.
    bench.signal("c1", Signal::RemoteOffer { sdp: peer_sdp("0 101", "sendrecv"), session_timer: None }, 1200);
    assert!(matches!(bench.sip().last(), Some((_, _, SipAction::AnswerOffer { answer: Ok(_), .. }))));
    bench.run_until(retry);
    match bench.sip().last() {
        Some((at, call, SipAction::Reinvite { offer, .. })) => {
            assert_eq!((*at, call.as_str()), (retry, "c1"));
            assert!(offer.contains("a=sendonly"), "the hold is offered again: {offer}");
        }
        other => panic!("expected the hold again, got {other:?}"),
    }
}

#[test]
fn a_peer_reinvite_crossing_ours_is_answered_491_and_changes_nothing() {
    let mut bench = Bench::new(config());
    dial(&mut bench, "customer", 0);
    bench.answer("c1", 0);
    bench.command(Command::Call { call: "c1".into(), command: crate::call::Command::Hold }, 1000).unwrap();
    let mark = bench.outputs.len();
    bench.signal("c1", Signal::RemoteOffer { sdp: peer_sdp("0 101", "sendonly"), session_timer: None }, 1010);
    let answered = since(&bench, mark);
    assert_eq!(answered.len(), 1, "{answered:?}");
    assert!(matches!(&answered[0].1, Output::Sip { action: SipAction::AnswerOffer { answer: Err(491), .. }, .. }));
    assert!(!last_state(&bench, "c1").remote_held);
}
