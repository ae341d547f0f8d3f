//! The recorder's thread as the media thread and the daemon drive it:
//! many calls at once, pauses, failures, crash repair, retention.

use super::super::at_rest::sha256;
use super::*;
use crate::recording::{metadata, sidecar_of};

fn events_until(reports: &mut mpsc::UnboundedReceiver<RecorderReport>) -> RecorderReport {
    reports.blocking_recv().expect("the recorder reports")
}

/// One tick with one recorded call, as the media thread hands it over.
fn tick(recorder: &Recorder, call: &str, agent: &[i16], remote: &[i16]) {
    let mut batch = recorder.batch();
    batch.push(call, agent, remote);
    recorder.write(batch);
}

#[test]
fn a_thousand_calls_recorded_at_once_are_each_complete() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, mut reports) = Recorder::start(RecorderSettings::new(dir.path().to_path_buf())).unwrap();
    let calls: Vec<CallId> = (0..1000).map(|n| format!("c{n}")).collect();
    for call in &calls {
        recorder.begin(call, dir.path().join(format!("{call}.wav")), 8000, RecordingFormat::Wav, Map::new());
    }
    // Two seconds of ticks, each carrying every call's frame (its own
    // level), paced as the media thread hands them over.
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut batch = recorder.batch();
        for (n, call) in calls.iter().enumerate() {
            batch.push(call, &[n as i16; 160], &[-(n as i16); 160]);
        }
        recorder.write(batch);
    }
    for call in &calls {
        recorder.end(call, Map::new());
    }
    for _ in &calls {
        match events_until(&mut reports) {
            RecorderReport::Saved { duration_ms, call, .. } => assert_eq!(duration_ms, 2000, "{call}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(recorder.dropped(), 0);
    let samples: Vec<i16> =
        hound::WavReader::open(dir.path().join("c999.wav")).unwrap().samples::<i16>().map(Result::unwrap).collect();
    assert_eq!(samples.len(), 2 * 16000);
    assert!(samples.chunks(2).all(|s| s == [999, -999]), "each call's file has its own audio");
}

#[test]
fn a_paused_span_is_silence_of_the_right_length_and_listed_with_the_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, mut reports) = Recorder::start(RecorderSettings::new(dir.path().to_path_buf())).unwrap();
    let path = dir.path().join("2026/11/21/call.wav");
    let call: CallId = "c1".into();
    recorder.begin(&call, path.clone(), 8000, RecordingFormat::Wav, Map::new());
    let loud = [1000i16; 160];
    for _ in 0..50 {
        tick(&recorder, &call, &loud, &loud);
    }
    recorder.pause(&call, true);
    for _ in 0..25 {
        tick(&recorder, &call, &loud, &loud);
    }
    recorder.pause(&call, false);
    for _ in 0..50 {
        tick(&recorder, &call, &loud, &loud);
    }
    let mut end = Map::new();
    end.insert("call".into(), "c1".into());
    recorder.end(&call, end);
    assert_eq!(
        events_until(&mut reports),
        RecorderReport::Saved {
            call: call.clone(),
            path: path.clone(),
            duration_ms: 2500,
            // 2.5 s of 8 kHz 16-bit stereo after a 44-byte header.
            bytes: 44 + 80_000,
            frames_dropped_total: 0,
        }
    );
    let samples: Vec<i16> = hound::WavReader::open(&path).unwrap().samples::<i16>().map(Result::unwrap).collect();
    let silent: Vec<usize> = samples.chunks(2).enumerate().filter(|(_, s)| s == &[0, 0]).map(|(i, _)| i).collect();
    assert_eq!(silent.len(), 25 * 160, "the pause is silence");
    assert_eq!((silent[0], *silent.last().unwrap()), (8000, 8000 + 25 * 160 - 1), "where the pause was");
    let sidecar: Value = serde_json::from_slice(&std::fs::read(sidecar_of(&path)).unwrap()).unwrap();
    assert_eq!(sidecar["pauses"], json!([{ "from_ms": 1000, "to_ms": 1500 }]));
    assert_eq!(sidecar["call"], "c1");
    assert_eq!(sidecar["sha256"].as_str().unwrap(), sha256(&path).unwrap());
    assert_eq!(recorder.dropped(), 0);
}

#[test]
fn a_recording_that_cannot_be_created_fails_and_a_crashed_one_is_repaired_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("taken.wav"), b"not ours").unwrap();
    std::fs::write(sidecar_of(&dir.path().join("taken.wav")), b"{}").unwrap();
    // A file left open by a crash: valid up to its last flush, no sidecar.
    let crashed = dir.path().join("old/crashed.wav");
    std::fs::create_dir_all(crashed.parent().unwrap()).unwrap();
    let mut file = RecordingFile::create(&crashed, 8000, &[]).unwrap();
    file.write(&[5; 8000], &[5; 8000]).unwrap();
    file.write(&[5; 100], &[5; 100]).unwrap();
    std::mem::forget(file);

    let (recorder, mut reports) = Recorder::start(RecorderSettings::new(dir.path().to_path_buf())).unwrap();
    recorder.begin(&"c2".into(), dir.path().join("taken.wav"), 8000, RecordingFormat::Wav, Map::new());
    match events_until(&mut reports) {
        RecorderReport::Failed { call, reason } => assert!(call == "c2" && reason.contains("exists"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // The thread repaired the crashed file before serving the queue.
    let sidecar: Value = serde_json::from_slice(&std::fs::read(sidecar_of(&crashed)).unwrap()).unwrap();
    assert_eq!(sidecar["recovered"], true);
    let samples = hound::WavReader::open(&crashed).unwrap().len();
    assert!(samples >= 2 * 8000, "the flushed second survived: {samples}");
}

#[test]
fn a_recording_cut_by_a_crash_keeps_the_parties_its_provisional_sidecar_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("2026/12/03/cut.wav");
    {
        let (recorder, _reports) = Recorder::start(RecorderSettings::new(dir.path().to_path_buf())).unwrap();
        let parties = metadata(json!({ "call": "c9", "remote": "sip:customer@example.test" }));
        recorder.begin(&"c9".into(), path.clone(), 8000, RecordingFormat::Wav, parties);
        tick(&recorder, "c9", &[7; 160], &[7; 160]);
        // Dropping the handle ends the thread without End: as a kill would leave it.
    }
    for _ in 0..200 {
        if sidecar_of(&path).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let early: Value = serde_json::from_slice(&std::fs::read(sidecar_of(&path)).unwrap()).unwrap();
    assert_eq!((early["provisional"].as_bool(), early["call"].as_str()), (Some(true), Some("c9")));

    let (_recorder, _reports) = Recorder::start(RecorderSettings::new(dir.path().to_path_buf())).unwrap();
    let mut sidecar = Value::Null;
    for _ in 0..200 {
        sidecar = serde_json::from_slice(&std::fs::read(sidecar_of(&path)).unwrap()).unwrap();
        if sidecar["recovered"] == true {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(sidecar["recovered"], true, "{sidecar}");
    assert_eq!(sidecar["remote"], "sip:customer@example.test", "the parties survive the crash");
    assert!(sidecar.get("provisional").is_none() && sidecar["sha256"].is_string(), "{sidecar}");
}

/// Make `path` look last written `days` days ago.
fn age_file(path: &Path, days: u64) {
    let then = SystemTime::now() - Duration::from_secs(days * 24 * 3600);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(then).unwrap();
}

fn wait_until(done: impl Fn() -> bool) -> bool {
    (0..400).any(|_| {
        std::thread::sleep(Duration::from_millis(5));
        done()
    })
}

#[test]
fn retention_never_deletes_the_file_being_written_and_deletes_it_once_closed_and_old() {
    let dir = tempfile::tempdir().unwrap();
    let settings = RecorderSettings {
        retention_days: Some(30),
        sweep_every: Duration::from_millis(20),
        ..RecorderSettings::new(dir.path().to_path_buf())
    };
    let (recorder, mut reports) = Recorder::start(settings).unwrap();
    let path = dir.path().join("2026/01/02/20260102-101010-c1-alice.wav");
    recorder.begin(&"c1".into(), path.clone(), 8000, RecordingFormat::Wav, Map::new());
    tick(&recorder, "c1", &[1; 160], &[1; 160]);
    assert!(wait_until(|| path.exists()));
    age_file(&path, 40);
    // Sweeps come and go while it is open: it stays.
    std::thread::sleep(Duration::from_millis(200));
    assert!(path.exists(), "a recording being written is never swept");
    tick(&recorder, "c1", &[1; 160], &[1; 160]);
    recorder.end(&"c1".into(), Map::new());
    assert!(matches!(events_until(&mut reports), RecorderReport::Saved { .. }));
    assert!(path.exists() && sidecar_of(&path).exists(), "closed, but young");
    age_file(&path, 40);
    assert!(wait_until(|| !path.exists() && !sidecar_of(&path).exists()), "closed and old: swept with its sidecar");
}

#[test]
fn a_retention_set_by_a_reload_sweeps_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, _reports) = Recorder::start(RecorderSettings::new(dir.path().to_path_buf())).unwrap();
    let old = dir.path().join("2026/01/02/20260102-101010-c1-alice.wav");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::write(&old, b"RIFF").unwrap();
    age_file(&old, 40);
    recorder.reconfigure(RecorderSettings { retention_days: Some(30), ..RecorderSettings::new(dir.path().into()) });
    assert!(wait_until(|| !old.exists()), "swept after the reload, not a day later");
}
