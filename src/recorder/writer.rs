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
#[path = "writer_tests.rs"]
mod tests;
