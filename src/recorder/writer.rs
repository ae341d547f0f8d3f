//! The recorder's own thread: it owns every open recording file, so the
//! media tick only hands frames over a bounded queue, all of a tick's
//! frames in one [`FrameBatch`] whose buffers come back to be filled again
//! (full queue: the batch is dropped and counted, never waited for). Pauses are written as silence
//! and listed; a write error ends that recording with `Failed` and leaves
//! what is on disk valid; a finished file is fsynced and gets its metadata
//! sidecar (with the sha256 of the file as stored). At start, files a crash
//! left behind (no sidecar, or a provisional one) are repaired when they
//! are plain WAVs and given one. With `recording.retention_days`, the
//! thread sweeps old recordings at start and then daily: it knows which
//! files are open, and the media path never waits on the sweep's disk work.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::at_rest::{self, recover, seal, write_sidecar};
use super::file::RecordingFile;
use super::ogg_opus::OggOpusFile;
use super::sealed;
use crate::call::CallId;
use crate::desk::RecorderReport;
use crate::recording::RecordingFormat;

/// Jobs queued at most: a batch is one tick of every recorded call, so
/// this is about 10 s of audio before ticks are dropped.
const QUEUE: usize = 512;
/// Written batches kept for reuse: a few cover a writer a little behind.
const SPARE_BATCHES: usize = 4;

/// What the recorder thread is started with (`[recording]`).
#[derive(Clone)]
pub struct RecorderSettings {
    /// `recording.dir`: crash recovery and retention look here.
    pub dir: PathBuf,
    /// `recording.encrypt_to`: the recipients of `.age` recordings.
    pub encrypt_to: Vec<age::x25519::Recipient>,
    /// `recording.retention_days`.
    pub retention_days: Option<u32>,
    /// How often the retention sweep runs (and once at start): daily; tests shrink it.
    pub sweep_every: Duration,
}

impl RecorderSettings {
    /// Plain recordings under `dir`, kept forever.
    pub fn new(dir: PathBuf) -> RecorderSettings {
        let sweep_every = Duration::from_secs(24 * 3600);
        RecorderSettings { dir, encrypt_to: Vec::new(), retention_days: None, sweep_every }
    }
}

enum Job {
    Begin {
        call: CallId,
        path: PathBuf,
        rate: u32,
        format: RecordingFormat,
        metadata: Map<String, Value>,
    },
    Frames(FrameBatch),
    Pause {
        call: CallId,
        paused: bool,
    },
    End {
        call: CallId,
        metadata: Map<String, Value>,
    },
    /// A reload's recipients, retention and folder, for what begins after it.
    Settings(Box<RecorderSettings>),
}

/// One tick's frames of every recorded call. Its buffers keep their
/// capacity when it comes back from the writer, so a steady tick fills it
/// without allocating.
#[derive(Default)]
pub struct FrameBatch {
    frames: Vec<RecordedFrame>,
    len: usize,
}

#[derive(Default)]
struct RecordedFrame {
    call: CallId,
    agent: Vec<i16>,
    remote: Vec<i16>,
}

impl FrameBatch {
    /// Add a call's frame: what the agent's side sent and what was heard.
    pub fn push(&mut self, call: &str, agent: &[i16], remote: &[i16]) {
        if self.len == self.frames.len() {
            self.frames.push(RecordedFrame::default());
        }
        let frame = &mut self.frames[self.len];
        frame.call.clear();
        frame.call.push_str(call);
        frame.agent.clear();
        frame.agent.extend_from_slice(agent);
        frame.remote.clear();
        frame.remote.extend_from_slice(remote);
        self.len += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Move `other`'s frames after these, leaving it empty: the buffers are
    /// swapped, not copied, so a steady tick still allocates nothing.
    pub fn append(&mut self, other: &mut FrameBatch) {
        for frame in &mut other.frames[..other.len] {
            if self.len == self.frames.len() {
                self.frames.push(RecordedFrame::default());
            }
            std::mem::swap(&mut self.frames[self.len], frame);
            self.len += 1;
        }
        other.len = 0;
    }

    fn iter(&self) -> impl Iterator<Item = &RecordedFrame> {
        self.frames[..self.len].iter()
    }
}

/// The handle; every method returns at once.
#[derive(Clone)]
pub struct Recorder {
    jobs: SyncSender<Job>,
    dropped: Arc<AtomicU64>,
    /// Written batches, emptied, for the media thread to fill again.
    spare: Arc<Mutex<Vec<FrameBatch>>>,
}

impl Recorder {
    /// Start the thread; crashed files under `dir` are repaired first (on it).
    pub fn start(settings: RecorderSettings) -> io::Result<(Recorder, mpsc::UnboundedReceiver<RecorderReport>)> {
        let (jobs, queue) = sync_channel(QUEUE);
        let (events, reports) = mpsc::unbounded_channel();
        let spare = Arc::new(Mutex::new(Vec::new()));
        let returns = spare.clone();
        std::thread::Builder::new().name("recorder".into()).spawn(move || {
            recover(&settings.dir);
            run(queue, settings, &events, &returns);
        })?;
        Ok((Recorder { jobs, dropped: Arc::new(AtomicU64::new(0)), spare }, reports))
    }

    /// Frames dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Open `path` for a call's audio at `rate`; `metadata` starts its sidecar.
    pub fn begin(
        &self,
        call: &CallId,
        path: PathBuf,
        rate: u32,
        format: RecordingFormat,
        metadata: Map<String, Value>,
    ) {
        self.send(Job::Begin { call: call.clone(), path, rate, format, metadata });
    }

    /// Settings reloaded: recordings begun from now on are sealed to the
    /// new recipients; those open keep theirs. A new retention (or folder)
    /// is swept at once.
    pub fn reconfigure(&self, settings: RecorderSettings) {
        self.send(Job::Settings(Box::new(settings)));
    }

    /// An empty batch to fill: a written one when there is one.
    pub fn batch(&self) -> FrameBatch {
        self.spare.lock().ok().and_then(|mut spare| spare.pop()).unwrap_or_default()
    }

    /// Hand a tick's frames to the writer (an empty batch is kept for reuse).
    pub fn write(&self, batch: FrameBatch) {
        if batch.is_empty() {
            return recycle(&self.spare, batch);
        }
        self.send(Job::Frames(batch));
    }

    /// Paused spans are written as silence, so timing stays true.
    pub fn pause(&self, call: &CallId, paused: bool) {
        self.send(Job::Pause { call: call.clone(), paused });
    }

    /// Close the call's recording; `metadata` is added to its sidecar.
    pub fn end(&self, call: &CallId, metadata: Map<String, Value>) {
        self.send(Job::End { call: call.clone(), metadata });
    }

    fn send(&self, job: Job) {
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                if let Job::Frames(batch) = job {
                    self.dropped.fetch_add(batch.len as u64, Ordering::Relaxed);
                    recycle(&self.spare, batch);
                } else {
                    // Control jobs are few and must not be lost: wait for room.
                    let _ = self.jobs.send(job);
                }
            }
            Err(TrySendError::Disconnected(_)) => tracing::error!("the recorder thread is gone"),
        }
    }
}

/// A recording file of either format.
enum Sink {
    Wav(RecordingFile),
    OggOpus(OggOpusFile),
}

impl Sink {
    /// A `.age` path is sealed to `recipients` (there must be some); any other is plain.
    fn create(
        path: &Path,
        rate: u32,
        format: RecordingFormat,
        recipients: &[age::x25519::Recipient],
    ) -> io::Result<Sink> {
        let recipients = match (sealed::is_sealed(path), recipients.is_empty()) {
            (false, _) => &[],
            (true, false) => recipients,
            (true, true) => return Err(io::Error::other("an encrypted recording, and no recording.encrypt_to")),
        };
        match format {
            RecordingFormat::Wav => RecordingFile::create(path, rate, recipients).map(Sink::Wav),
            RecordingFormat::OggOpus => OggOpusFile::create(path, rate, recipients).map(Sink::OggOpus),
        }
    }

    fn path(&self) -> &Path {
        match self {
            Sink::Wav(file) => file.path(),
            Sink::OggOpus(file) => file.path(),
        }
    }

    fn duration_ms(&self) -> u64 {
        match self {
            Sink::Wav(file) => file.duration_ms(),
            Sink::OggOpus(file) => file.duration_ms(),
        }
    }

    fn write(&mut self, agent: &[i16], remote: &[i16]) -> io::Result<()> {
        match self {
            Sink::Wav(file) => file.write(agent, remote),
            Sink::OggOpus(file) => file.write(agent, remote),
        }
    }

    fn finish(self) -> io::Result<PathBuf> {
        match self {
            Sink::Wav(file) => file.finish(),
            Sink::OggOpus(file) => file.finish(),
        }
    }
}

struct Open {
    file: Sink,
    metadata: Map<String, Value>,
    paused_at: Option<u64>,
    pauses: Vec<Value>,
}

/// Keep an emptied batch for reuse, up to [`SPARE_BATCHES`].
fn recycle(spare: &Mutex<Vec<FrameBatch>>, mut batch: FrameBatch) {
    batch.len = 0;
    if let Ok(mut spare) = spare.lock() {
        if spare.len() < SPARE_BATCHES {
            spare.push(batch);
        }
    }
}

fn run(
    queue: Receiver<Job>,
    mut settings: RecorderSettings,
    events: &mpsc::UnboundedSender<RecorderReport>,
    spare: &Mutex<Vec<FrameBatch>>,
) {
    let mut open: HashMap<CallId, Open> = HashMap::new();
    let fail = |call: CallId, reason: String| {
        tracing::warn!(%call, %reason, "recording failed; the call goes on");
        let _ = events.send(RecorderReport::Failed { call, reason });
    };
    let mut next_sweep = Instant::now();
    loop {
        if let Some(days) = settings.retention_days.filter(|_| Instant::now() >= next_sweep) {
            let writing: HashSet<PathBuf> = open.values().map(|o| o.file.path().to_path_buf()).collect();
            at_rest::sweep(&settings.dir, days, &writing, SystemTime::now());
            next_sweep = Instant::now() + settings.sweep_every;
        }
        // Without retention, no deadline: recv_timeout waits as recv does.
        let wait =
            settings.retention_days.map_or(Duration::MAX, |_| next_sweep.saturating_duration_since(Instant::now()));
        let job = match queue.recv_timeout(wait) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match job {
            Job::Settings(new) => {
                if new.retention_days != settings.retention_days || new.dir != settings.dir {
                    next_sweep = Instant::now();
                }
                settings = RecorderSettings { sweep_every: settings.sweep_every, ..*new };
            }
            Job::Begin { call, path, rate, format, mut metadata } => {
                if sealed::is_sealed(&path) {
                    let recipients: Vec<String> = settings.encrypt_to.iter().map(|r| r.to_string()).collect();
                    metadata.insert("encryption".into(), json!({ "scheme": "age", "recipients": recipients }));
                }
                let created = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|_| Sink::create(&path, rate, format, &settings.encrypt_to));
                // The sidecar is there from the start, marked provisional, so a
                // crash leaves the parties named beside the audio.
                let mut provisional = metadata.clone();
                provisional.insert("provisional".into(), true.into());
                let created = created.and_then(|file| write_sidecar(&path, &provisional).map(|_| file));
                match created {
                    Ok(file) => {
                        tracing::info!(%call, path = %path.display(), "recording");
                        open.insert(call, Open { file, metadata, paused_at: None, pauses: Vec::new() });
                    }
                    Err(e) => fail(call, format!("{}: {e}", path.display())),
                }
            }
            Job::Frames(batch) => {
                for frame in batch.iter() {
                    let Some(recording) = open.get_mut(&frame.call) else { continue };
                    let written = if recording.paused_at.is_some() {
                        let silence = vec![0; frame.agent.len().max(frame.remote.len())];
                        recording.file.write(&silence, &silence)
                    } else {
                        recording.file.write(&frame.agent, &frame.remote)
                    };
                    if let Err(e) = written {
                        // What is on disk stays a valid WAV up to the last second.
                        let recording = open.remove(&frame.call).expect("just used");
                        fail(frame.call.clone(), format!("{}: {e}", recording.file.path().display()));
                    }
                }
                recycle(spare, batch);
            }
            Job::Pause { call, paused } => {
                let Some(recording) = open.get_mut(&call) else { continue };
                let now = recording.file.duration_ms();
                match (paused, recording.paused_at) {
                    (true, None) => recording.paused_at = Some(now),
                    (false, Some(from)) => {
                        recording.paused_at = None;
                        recording.pauses.push(json!({ "from_ms": from, "to_ms": now }));
                    }
                    _ => {}
                }
            }
            Job::End { call, metadata } => {
                let Some(mut recording) = open.remove(&call) else { continue };
                if let Some(from) = recording.paused_at.take() {
                    recording.pauses.push(json!({ "from_ms": from, "to_ms": recording.file.duration_ms() }));
                }
                let duration_ms = recording.file.duration_ms();
                let frames_dropped_total = metadata.get("frames_dropped_total").and_then(Value::as_u64).unwrap_or(0);
                recording.metadata.extend(metadata);
                recording.metadata.insert("pauses".into(), Value::Array(recording.pauses));
                recording.metadata.insert("duration_ms".into(), duration_ms.into());
                match recording.file.finish().and_then(|path| seal(&path, recording.metadata).map(|_| path)) {
                    Ok(path) => {
                        tracing::info!(%call, path = %path.display(), duration_ms, "recording saved");
                        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
                        let _ =
                            events.send(RecorderReport::Saved { call, path, duration_ms, bytes, frames_dropped_total });
                    }
                    Err(e) => fail(call, e.to_string()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
