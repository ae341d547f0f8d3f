//! Recording policy and call history through the desk, as the recorder, the
//! media path and the store see them: `always` from the answer to the end,
//! `call.record.*` on demand and every refusal, the file's name, and the
//! history record of each way a call ends, written once its media stopped.

use std::path::PathBuf;

use serde_json::{json, Map};

use super::callbacks::offer;
use super::transfers::{dial, fields, history, last_state, since, sip_since};
use super::*;
use crate::call::phone::PhoneError;
use crate::call::RejectReason;
use crate::callback::DialMode;
use crate::history::RecordKind;
use crate::media::codec::Codec;
use crate::recording::metadata;
use crate::recording::{RecordingFormat, RecordingMode, RecordingState, RecordingStatus};

/// What the recorder and the media path were told about recording, from index `mark` on.
fn recording_since(bench: &Bench, mark: usize) -> Vec<Output> {
    since(bench, mark)
        .into_iter()
        .map(|(_, output)| output)
        .filter(|o| matches!(o, Output::Recorder(_) | Output::Media(MediaCommand::Record { .. })))
        .collect()
}

fn record(bench: &mut Bench, call: &str, action: RecordAction, ms: u64) -> Result<Reply, DeskError> {
    bench.command(Command::Record { call: call.into(), action }, ms)
}

fn hang_up(bench: &mut Bench, call: &str, ms: u64) {
    bench.command(Command::Call { call: call.into(), command: crate::call::Command::Hangup }, ms).unwrap();
}

/// The refusal's message, checking it is [`DeskError::InvalidState`].
fn invalid_state(result: Result<Reply, DeskError>) -> String {
    match result {
        Err(DeskError::InvalidState(message)) => message,
        other => panic!("expected an invalid-state refusal, got {other:?}"),
    }
}

/// The recording begun for "c1", a PCMU call to sip:customer@pbx.test of account cc, at `ms`.
fn begin(path: &str, ms: u64, bench: &Bench, callback: Option<&str>, remote: &str) -> Output {
    Output::Recorder(RecorderCommand::Begin {
        call: "c1".into(),
        path: PathBuf::from(path),
        rate: 8000,
        format: RecordingFormat::Wav,
        metadata: metadata(json!({
            "call": "c1",
            "callback": callback,
            "direction": "outbound",
            "local": "sip:agent@pbx.test",
            "remote": remote,
            "display_name": null,
            "account": "cc",
            "codec": Codec::Pcmu,
            "rate": 8000,
            "format": "wav",
            "channels": { "left": "agent", "right": "remote" },
            "started_at": bench.at(ms).wall,
        })),
    })
}

fn record_media(rate: Option<u32>) -> Output {
    Output::Media(MediaCommand::Record { call: "c1".into(), rate })
}

#[test]
fn an_encrypted_recording_is_named_age_everywhere_the_desk_names_it() {
    let mut config = config();
    config.recording.mode = RecordingMode::Always;
    config.recording.encrypted = true;
    let mut bench = Bench::new(config);
    dial(&mut bench, "customer", 0);
    bench.answer("c1", 1234);
    let path = "/rec/2026/12/03/20261203-100001-c1-customer.wav.age";
    let started = vec![begin(path, 1234, &bench, None, "sip:customer@pbx.test"), record_media(Some(8000))];
    assert_eq!(recording_since(&bench, 0), started);
    hang_up(&mut bench, "c1", 5000);
    assert_eq!(fields(&history(&bench, "c1"), &["recording"]), json!({ "recording": path }));
}

#[test]
fn always_records_from_the_answer_to_the_end_and_history_names_the_file() {
    let mut config = config();
    config.recording.mode = RecordingMode::Always;
    let mut bench = Bench::new(config);
    dial(&mut bench, "customer", 0);
    bench.signal("c1", Signal::Progress { code: 180, sdp: None }, 500);
    assert!(recording_since(&bench, 0).is_empty(), "nothing while it rings");
    bench.answer("c1", 1234);
    let path = "/rec/2026/12/03/20261203-100001-c1-customer.wav";
    let started = vec![begin(path, 1234, &bench, None, "sip:customer@pbx.test"), record_media(Some(8000))];
    assert_eq!(recording_since(&bench, 0), started);
    assert_eq!(
        record(&mut bench, "c1", RecordAction::Start, 2000).map_err(|e| e.to_string()),
        Err("call c1 is already being recorded".to_string())
    );

    let mark = bench.outputs.len();
    hang_up(&mut bench, "c1", 61_734);
    let end = metadata(json!({
        "ended_at": bench.at(61_734).wall,
        "reason": "local_hangup",
        "sip_code": null,
        "transfer": null,
        "links": {},
    }));
    let ended = vec![record_media(None), Output::Recorder(RecorderCommand::End { call: "c1".into(), metadata: end })];
    assert_eq!(recording_since(&bench, mark), ended);

    let record = history(&bench, "c1");
    assert_eq!((record.open, record.created_at), (false, bench.wall0));
    let keys = ["recording", "answered_at", "ended_at", "talk_ms", "reason", "quality"];
    let expected = json!({
        "recording": path,
        "answered_at": bench.at(1234).wall,
        "ended_at": bench.at(61_734).wall,
        "talk_ms": 60_500,
        "reason": "local_hangup",
        "quality": null,
    });
    assert_eq!(fields(&record, &keys), expected);
}

#[test]
fn a_callbacks_call_is_recorded_under_its_callback_id_too() {
    let mut config = config();
    config.recording.mode = RecordingMode::Always;
    let mut bench = Bench::new(config);
    bench.command(Command::Offer { offer: offer(DialMode::Manual, 0), id: "x".into() }, 0).unwrap();
    let callback = |command| Command::Callback { callback: "cb1".into(), command };
    bench.command(callback(crate::callback::Command::Accept), 100).unwrap();
    bench.command(callback(crate::callback::Command::Call), 1000).unwrap();
    bench.answer("c1", 2500);
    let path = "/rec/2026/12/03/20261203-100002-c1-5551000-cb1.wav";
    let started = vec![begin(path, 2500, &bench, Some("cb1"), "sip:5551000@pbx.test"), record_media(Some(8000))];
    assert_eq!(recording_since(&bench, 0), started);
}

#[test]
fn on_demand_starts_pauses_resumes_and_stops_when_asked_and_only_then() {
    let mut bench = Bench::new(config());
    dial(&mut bench, "customer", 0);
    assert_eq!(invalid_state(record(&mut bench, "c1", RecordAction::Start, 500)), "call c1 is not answered yet");
    bench.answer("c1", 1000);
    assert!(recording_since(&bench, 0).is_empty(), "on_demand: nothing at the answer");

    let path = "/rec/2026/12/03/20261203-100002-c1-customer.wav";
    assert_eq!(record(&mut bench, "c1", RecordAction::Start, 2000).unwrap(), Reply::Recording(path.into()));
    let started = vec![begin(path, 2000, &bench, None, "sip:customer@pbx.test"), record_media(Some(8000))];
    assert_eq!(recording_since(&bench, 0), started);
    let mark = bench.outputs.len();
    assert_eq!(invalid_state(record(&mut bench, "c1", RecordAction::Start, 2500)), "call c1 is already being recorded");
    assert!(since(&bench, mark).is_empty());

    let pause = |paused| Output::Recorder(RecorderCommand::Pause { call: "c1".into(), paused });
    for (action, ms, expected) in [
        (RecordAction::Pause, 3000, vec![pause(true)]),
        (RecordAction::Pause, 3100, vec![]),
        (RecordAction::Resume, 4000, vec![pause(false)]),
        (RecordAction::Resume, 4100, vec![]),
    ] {
        let mark = bench.outputs.len();
        assert_eq!(record(&mut bench, "c1", action, ms).unwrap(), Reply::Done);
        assert_eq!(recording_since(&bench, mark), expected, "{action:?} at {ms} ms");
    }

    let mark = bench.outputs.len();
    assert_eq!(record(&mut bench, "c1", RecordAction::Stop, 5000).unwrap(), Reply::Done);
    let stopped =
        vec![record_media(None), Output::Recorder(RecorderCommand::End { call: "c1".into(), metadata: Map::new() })];
    assert_eq!(recording_since(&bench, mark), stopped);
    for action in [RecordAction::Stop, RecordAction::Pause, RecordAction::Resume] {
        assert_eq!(invalid_state(record(&mut bench, "c1", action, 5100)), "call c1 is not being recorded");
    }

    // Started again: a new file, which history names; the call's end closes it.
    let again = "/rec/2026/12/03/20261203-100006-c1-customer.wav";
    assert_eq!(record(&mut bench, "c1", RecordAction::Start, 6000).unwrap(), Reply::Recording(again.into()));
    let mark = bench.outputs.len();
    bench.signal("c1", Signal::RemoteBye, 9000);
    let end = metadata(json!({
        "ended_at": bench.at(9000).wall,
        "reason": "remote_hangup",
        "sip_code": null,
        "transfer": null,
        "links": {},
    }));
    let ended = vec![record_media(None), Output::Recorder(RecorderCommand::End { call: "c1".into(), metadata: end })];
    assert_eq!(recording_since(&bench, mark), ended);
    assert_eq!(
        fields(&history(&bench, "c1"), &["recording", "talk_ms"]),
        json!({ "recording": again, "talk_ms": 8000 })
    );
}

#[test]
fn recording_is_refused_when_policy_says_never_and_for_an_unknown_call() {
    let never = "recording.mode is never for this call's account";
    let mut config = config();
    config.recording.mode = RecordingMode::Never;
    let mut bench = Bench::new(config);
    dial(&mut bench, "customer", 0);
    bench.answer("c1", 1000);
    assert_eq!(invalid_state(record(&mut bench, "c1", RecordAction::Start, 2000)), never);

    // The account's own mode wins over recording.mode, both ways.
    let mut config = super::config();
    config.recording.account_modes.insert("cc".into(), RecordingMode::Never);
    let mut bench = Bench::new(config.clone());
    dial(&mut bench, "customer", 0);
    bench.answer("c1", 1000);
    assert_eq!(invalid_state(record(&mut bench, "c1", RecordAction::Start, 2000)), never);
    config.recording.mode = RecordingMode::Always;
    let mut bench = Bench::new(config);
    dial(&mut bench, "customer", 0);
    bench.answer("c1", 1000);
    hang_up(&mut bench, "c1", 3000);
    assert!(recording_since(&bench, 0).is_empty(), "always, but never for account cc");
    assert_eq!(fields(&history(&bench, "c1"), &["recording"]), json!({ "recording": null }));

    let mut bench = Bench::new(super::config());
    match record(&mut bench, "nope", RecordAction::Start, 0) {
        Err(DeskError::Phone(e)) => assert_eq!(e, PhoneError::UnknownCall("nope".into())),
        other => panic!("an unknown call: {other:?}"),
    }
    assert_eq!(invalid_state(record(&mut bench, "nope", RecordAction::Pause, 0)), "call nope is not being recorded");
    assert!(bench.outputs.is_empty());
}

#[test]
fn every_ended_call_leaves_one_history_record_saying_how_it_ended() {
    let mut bench = Bench::new(config());
    // Answered, then the customer hangs up.
    dial(&mut bench, "customer", 0);
    bench.answer("c1", 1000);
    bench.signal("c1", Signal::RemoteBye, 4000);
    // Busy.
    assert_eq!(dial(&mut bench, "busy", 5000), "c2");
    bench.signal("c2", Signal::Progress { code: 180, sdp: None }, 5100);
    bench.signal("c2", Signal::Failed { code: 486 }, 5200);
    // Inbound calls the agent turns down, busy and declined.
    let mark = bench.outputs.len();
    for (call, reason, ms) in [("in1", RejectReason::Busy, 6000), ("in2", RejectReason::Decline, 8000)] {
        bench.ring(call, &format!("sip:{call}@127.0.0.1:5070"), ms);
        let reject = Command::Call { call: call.into(), command: crate::call::Command::Reject(reason) };
        bench.command(reject, ms + 1500).unwrap();
    }
    let rejects: Vec<(u64, String, SipAction)> =
        sip_since(&bench, mark).into_iter().filter(|(_, _, a)| matches!(a, SipAction::Reject { .. })).collect();
    assert_eq!(
        rejects,
        vec![
            (7500, "in1".to_string(), SipAction::Reject { code: 486 }),
            (9500, "in2".to_string(), SipAction::Reject { code: 603 }),
        ]
    );

    let keys = ["direction", "remote", "reason", "sip_code", "answered_at", "ended_at", "talk_ms"];
    let at = |ms| json!(bench.at(ms).wall);
    let expected = [
        (
            "c1",
            0,
            json!({ "direction": "outbound", "remote": "sip:customer@pbx.test", "reason": "remote_hangup",
            "answered_at": at(1000), "ended_at": at(4000), "talk_ms": 3000 }),
        ),
        (
            "c2",
            5000,
            json!({ "direction": "outbound", "remote": "sip:busy@pbx.test", "reason": "busy",
            "sip_code": 486, "answered_at": null, "ended_at": at(5200), "talk_ms": null }),
        ),
        (
            "in1",
            6000,
            json!({ "direction": "inbound", "remote": "sip:in1@127.0.0.1:5070", "reason": "rejected",
            "sip_code": 486, "answered_at": null, "ended_at": at(7500), "talk_ms": null }),
        ),
        (
            "in2",
            8000,
            json!({ "direction": "inbound", "remote": "sip:in2@127.0.0.1:5070", "reason": "rejected",
            "sip_code": 603, "answered_at": null, "ended_at": at(9500), "talk_ms": null }),
        ),
    ];
    for (call, created, body) in expected {
        let record = history(&bench, call);
        assert_eq!((record.open, record.created_at), (false, bench.at(created).wall), "{call}");
        assert_eq!(record.body["created_at"], at(created), "{call}");
        assert_eq!(fields(&record, &keys), body, "{call}");
    }
    let closed = bench.stored().into_iter().filter(|r| r.kind == RecordKind::Call && !r.open);
    assert_eq!(closed.map(|r| r.id).collect::<Vec<_>>(), ["c1", "c2", "in1", "in2"]);
}

#[test]
fn a_calls_closed_record_is_written_only_once_its_media_has_stopped() {
    let mut bench = Bench::new(config());
    dial(&mut bench, "customer", 0);
    bench.answer("c1", 1000);
    // Played as the shell would, without the bench reporting the stop at once.
    let hangup = Command::Call { call: "c1".into(), command: crate::call::Command::Hangup };
    bench.desk.handle(Input::Command(hangup), bench.at(5000)).unwrap();
    let outputs: Vec<Output> = std::iter::from_fn(|| bench.desk.poll_output()).collect();
    assert!(outputs.contains(&Output::Media(MediaCommand::Stop { call: "c1".into() })), "{outputs:?}");
    assert!(!outputs.iter().any(|o| matches!(o, Output::Store(_))), "no closed record while media runs: {outputs:?}");

    let stopped = MediaReport::Stopped { call: "c1".into(), stats: None };
    bench.desk.handle(Input::Media(stopped), bench.at(5040)).unwrap();
    let outputs: Vec<Output> = std::iter::from_fn(|| bench.desk.poll_output()).collect();
    let [Output::Store(record)] = &outputs[..] else { panic!("exactly the record: {outputs:?}") };
    assert_eq!((record.kind, record.id.as_str(), record.open), (RecordKind::Call, "c1", false));
    let times = json!({ "ended_at": bench.at(5000).wall, "talk_ms": 4000 });
    assert_eq!(fields(record, &["ended_at", "talk_ms"]), times, "the call's end, not the media's");

    let again = MediaReport::Stopped { call: "c1".into(), stats: None };
    bench.desk.handle(Input::Media(again), bench.at(5050)).unwrap();
    assert_eq!(bench.desk.poll_output(), None, "one record per call");
}

#[test]
fn under_always_a_recording_the_agent_stopped_stays_stopped_through_hold_and_resume() {
    let mut config = config();
    config.recording.mode = RecordingMode::Always;
    let mut bench = Bench::new(config);
    dial(&mut bench, "customer", 0);
    bench.answer("c1", 1000);
    bench.command(Command::Record { call: "c1".into(), action: RecordAction::Stop }, 2000).unwrap();
    let hold = Command::Call { call: "c1".into(), command: crate::call::Command::Hold };
    bench.command(hold, 3000).unwrap();
    bench.signal("c1", Signal::ReinviteAnswered { code: 200, sdp: Some(peer_sdp("0 101", "recvonly")) }, 3100);
    let resume = Command::Call { call: "c1".into(), command: crate::call::Command::Resume };
    bench.command(resume, 4000).unwrap();
    bench.signal("c1", Signal::ReinviteAnswered { code: 200, sdp: Some(peer_sdp("0 101", "sendrecv")) }, 4100);
    let begins =
        bench.outputs.iter().filter(|(_, o)| matches!(o, Output::Recorder(RecorderCommand::Begin { .. }))).count();
    assert_eq!(begins, 1, "only the answer started a recording");
    assert_eq!(last_state(&bench, "c1").state, CallState::Connected);
}

#[test]
fn after_a_failed_recording_the_agent_may_start_another() {
    let mut bench = Bench::new(config());
    dial(&mut bench, "customer", 0);
    bench.answer("c1", 1000);
    let start = || Command::Record { call: "c1".into(), action: RecordAction::Start };
    bench.command(start(), 2000).unwrap();
    let failed = RecorderReport::Failed { call: "c1".into(), reason: "No space left on device".into() };
    let recording = bench.desk.call_recording("c1").expect("recording");
    assert_eq!(recording.state, RecordingState::Recording);
    let stopped = RecordingStatus { state: RecordingState::Stopped, path: recording.path };
    let mark = bench.outputs.len();
    bench.handle(Input::Recorder(failed), bench.at(3000)).unwrap();
    let told = since(&bench, mark);
    assert_eq!(
        told.into_iter().map(|(_, o)| o).collect::<Vec<_>>(),
        [
            Output::Media(MediaCommand::Record { call: "c1".into(), rate: None }),
            Output::Event(Event::RecordingState { call: "c1".into(), status: stopped }),
            Output::Event(Event::RecordingFailed { call: "c1".into(), reason: "No space left on device".into() }),
        ]
    );
    assert!(matches!(bench.command(start(), 4000), Ok(Reply::Recording(_))), "not 'already being recorded'");
}
