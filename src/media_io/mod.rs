//! The media IO of all calls (floor 5) around the pure `media::engine`:
//! the run loop's handle ([`MediaIo`]) onto the `media` thread
//! ([`thread`]), which owns the engine, every call's UDP port pair
//! ([`socket`]: RTP on an even port, RTCP on the next; symmetric: we send
//! from where we receive) and the 20 ms tick's IO (microphone, denoiser
//! and hold music in; playout, packets, recorded frames and verdicts out).
//!
//! Every decision (demultiplexing, mixing, timeouts, quality cadence) is
//! the engine's. The handle binds port pairs ahead of need (the desk's
//! lines), passes commands and asks for figures; what the thread sees
//! comes back as [`MediaOut`] on a channel the run loop listens to.

mod pacer;
mod socket;
mod thread;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};

use crate::audio::{AudioSink, AudioSource};
use crate::call::CallId;
use crate::config::MediaConfig;
use crate::desk::{MediaReport, RecorderCommand};
use crate::media::level::{Levels, MAX_GAIN};
use crate::media::params::StreamParams;
use crate::media::stream::MediaStats;
use crate::recorder::Recorder;
use socket::PortPair;
use thread::{Command, MediaThread, MAX_THREADS};

/// What the media thread tells the run loop.
pub enum MediaOut {
    /// For the desk: a key, a timeout, quality, a stopped call's last figures.
    Report(MediaReport),
    /// Microphone and speaker levels, for `audio.level`.
    Levels(Levels),
}

/// `audio.volume`: microphone and speaker, 0.0 to 2.0.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Gains {
    pub input: f32,
    pub output: f32,
}

impl Default for Gains {
    fn default() -> Self {
        Gains { input: 1.0, output: 1.0 }
    }
}

/// The audio the media thread starts with.
pub struct MediaAudio {
    pub source: Box<dyn AudioSource>,
    pub sink: Box<dyn AudioSink>,
    /// Played to a party we hold; silence without one.
    pub hold_music: Option<Box<dyn AudioSource>>,
}

/// The run loop's side of the media thread. Every method returns at once.
pub struct MediaIo {
    commands: Sender<Command>,
    /// The media threads, and word from the one running the loop that it ended.
    pool: Option<(rayon::ThreadPool, Mutex<Receiver<()>>)>,
    /// The pool's thread that runs the media loop: it sleeps parked between ticks.
    media_thread: std::thread::Thread,
    bind_ip: IpAddr,
    /// Port pairs bound ahead of need (the desk's lines), by RTP address:
    /// binding takes ~150 µs, which a countdown's dial should not wait for.
    spares: HashMap<SocketAddr, Box<PortPair>>,
    gains: Gains,
}

impl MediaIo {
    /// Start the media thread; what it sees comes on the receiver.
    pub fn start(
        audio: MediaAudio,
        bind_ip: IpAddr,
        config: MediaConfig,
        recorder: Recorder,
    ) -> std::io::Result<(MediaIo, mpsc::UnboundedReceiver<MediaOut>)> {
        let (out, reports) = mpsc::unbounded_channel();
        let threads = media_threads(config.threads);
        let media = MediaThread::new(audio, &config, recorder, out, threads);
        let (commands, queue) = std::sync::mpsc::channel();
        // The thread is one of the pool's, so that its tick's lanes go to the others.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|_| "media".into())
            .panic_handler(|_| tracing::error!("a media thread panicked: calls have no audio from now on"))
            .build()
            .map_err(std::io::Error::other)?;
        let (ended, thread_end) = std::sync::mpsc::channel();
        let (started, media_thread) = std::sync::mpsc::channel();
        pool.spawn(move || {
            let _ = started.send(std::thread::current());
            media.run(queue);
            let _ = ended.send(());
        });
        let media_thread = media_thread.recv().map_err(|_| std::io::Error::other("the media thread did not start"))?;
        let io = MediaIo {
            commands,
            media_thread,
            pool: Some((pool, Mutex::new(thread_end))),
            bind_ip,
            spares: HashMap::new(),
            gains: Gains::default(),
        };
        Ok((io, reports))
    }

    fn send(&self, command: Command) {
        // The thread only ends when this handle drops its sender.
        let _ = self.commands.send(command);
        self.wake();
    }

    /// The thread sleeps parked between ticks: it looks at its queue when woken.
    fn wake(&self) {
        self.media_thread.unpark();
    }

    /// Set the microphone and/or speaker gain (each within 0.0..=2.0).
    pub fn set_gains(&mut self, input: Option<f32>, output: Option<f32>) -> Gains {
        let clamp = |gain: f32| gain.clamp(0.0, MAX_GAIN);
        self.gains =
            Gains { input: input.map_or(self.gains.input, clamp), output: output.map_or(self.gains.output, clamp) };
        self.send(Command::Gains(self.gains));
        self.gains
    }

    /// `[media]` as reloaded: calls opened from now on use it; those up
    /// keep what they started with.
    pub fn reconfigure(&mut self, config: &MediaConfig) {
        self.send(Command::Reconfigure(Box::new(thread::engine_config(config))));
    }

    /// Use another microphone and speaker from now on (device switch or loss).
    pub fn replace_audio(&mut self, source: Box<dyn AudioSource>, sink: Box<dyn AudioSink>) {
        self.send(Command::Audio { source, sink });
    }

    /// Bind a port pair for a call to come (a desk line), and keep it
    /// until a call takes it; returns the RTP address.
    pub fn bind_line(&mut self) -> std::io::Result<SocketAddr> {
        let pair = PortPair::bind(self.bind_ip)?;
        let local = pair.rtp_addr()?;
        self.spares.insert(local, Box::new(pair));
        Ok(local)
    }

    /// Close a port pair no call took.
    pub fn release(&mut self, rtp: SocketAddr) {
        self.spares.remove(&rtp);
    }

    /// Give `call` the port pair bound at `rtp` (a line's).
    pub fn open(&mut self, call: &CallId, rtp: SocketAddr) {
        match self.spares.remove(&rtp) {
            Some(ports) => self.send(Command::Open { call: call.clone(), ports }),
            None => tracing::error!(%call, %rtp, "no port pair bound there: the call has no media"),
        }
    }

    /// Media starts, or changes after a re-offer. A change of codec,
    /// address or keys starts a new stream; a hold or resume keeps it.
    pub fn start_media(&mut self, call: &CallId, negotiated: StreamParams) {
        self.send(Command::Start { call: call.clone(), negotiated: Box::new(negotiated) });
    }

    /// Close the call's media; [`MediaReport::Stopped`] follows with its last figures.
    pub fn stop(&mut self, call: &CallId) {
        self.send(Command::Stop { call: call.clone() });
    }

    pub fn set_muted(&mut self, call: &CallId, muted: bool) {
        self.send(Command::Mute { call: call.clone(), muted });
    }

    /// Hand the call's frames to the recorder (at `rate`: 8000 or 16000), or stop.
    pub fn set_recording(&mut self, call: &CallId, rate: Option<u32>) {
        self.send(Command::Record { call: call.clone(), rate });
    }

    /// Take the call into the local conference, or out of it.
    pub fn set_conference(&mut self, call: &CallId, joined: bool) {
        self.send(Command::Conference { call: call.clone(), joined });
    }

    /// Queue keys to send (RFC 4733); a refusal is logged by the thread.
    pub fn queue_dtmf(&mut self, call: &CallId, digits: String) {
        self.send(Command::Dtmf { call: call.clone(), digits });
    }

    /// A recording begins, pauses or ends: through the media thread, so the
    /// recorder gets it in order with the frames (a pause or an end after
    /// every frame recorded before it).
    pub fn recorder(&mut self, command: RecorderCommand) {
        self.send(Command::Recorder(command));
    }

    /// The figures of `calls`, in order, answered between two ticks.
    pub fn stats(&self, calls: Vec<CallId>, reply: oneshot::Sender<Vec<Option<MediaStats>>>) {
        self.send(Command::Stats { calls, reply });
    }

    /// Wait until every command sent so far is carried out (at shutdown,
    /// so the last calls' figures reach their records).
    pub async fn flush(&self) {
        let (done, carried_out) = oneshot::channel();
        self.send(Command::Flush(done));
        let _ = carried_out.await;
    }
}

impl Drop for MediaIo {
    fn drop(&mut self) {
        // Closing the queue ends the thread after what is queued.
        let (closed, _) = std::sync::mpsc::channel();
        drop(std::mem::replace(&mut self.commands, closed));
        self.wake();
        if let Some((_pool, thread_end)) = self.pool.take() {
            // Disconnected too when the thread panicked.
            let _ = thread_end.into_inner().map(|thread_end| thread_end.recv());
        }
    }
}

/// `media.threads`, or one per core when 0, within 1..=MAX_THREADS.
fn media_threads(configured: usize) -> usize {
    let wanted = match configured {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    wanted.clamp(1, MAX_THREADS)
}
