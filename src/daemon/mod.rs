//! The tokio shell: the one run loop that owns the phone, the SIP adapter,
//! the media engine and the control socket, reads the clock, and carries
//! out what the pure cores decide. `softphoned`, the demo and the tests all
//! start a daemon through [`start`].

mod accounts;
mod audio;
mod callbacks;
mod dispatch;
mod history;
mod media;
mod recording;
mod transfers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::audio::device::DeviceHealth;
use crate::audio::{AudioError, AudioStatus};
use crate::call::admission::{Admission, InboundPolicy};
use crate::call::phone::{Output, Phone};
use crate::call::{Command, Effect, SipAction};
use crate::callback::Callbacks;
use crate::config::{Config, ConfigError, Listen};
use crate::control::api;
use crate::control::server::{self, ControlRequest, Notification};
use crate::media::codec::{FRAME_SAMPLES, PCM_RATE};
use crate::sip::{SipAgent, SipConfig, SipError, SipEvent, TlsSettings};
use crate::store::Store;
use crate::timing::PreciseAlarm;
use accounts::Accounts;
use media::{MediaEngine, MediaEvent};

/// The media tick: one frame of audio per call.
const TICK: Duration = Duration::from_millis((FRAME_SAMPLES as u64 * 1000) / PCM_RATE as u64);
/// How long shutdown waits for BYEs and CANCELs to be answered.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Notifications buffered per subscriber before it is told it missed some.
const EVENT_BUFFER: usize = 1024;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Sip(#[from] SipError),
    /// The history database could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A thread of the daemon's own could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    /// The control socket could not be bound.
    #[error("control socket {path}: {source}")]
    Control { path: PathBuf, source: std::io::Error },
}

/// A daemon running in the background of this process.
pub struct RunningDaemon {
    pub control_socket: PathBuf,
    /// The first listening point's address.
    pub sip_addr: SocketAddr,
    shutdown: CancellationToken,
    run_loop: JoinHandle<()>,
}

impl RunningDaemon {
    /// Hang up every call, stop, and remove the control socket.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.run_loop.await;
        let _ = std::fs::remove_file(&self.control_socket);
    }
}

/// Open everything the config names and start the run loop.
pub async fn start(config: Config) -> Result<RunningDaemon, DaemonError> {
    let listens = config.listen_addrs()?;
    if let Some(wild) = listens.iter().find(|l| l.addr.ip().is_unspecified()) {
        return Err(ConfigError::Value {
            key: "sip.listen",
            message: format!("{}: give the address to advertise in SDP and Contact, not a wildcard", wild.addr),
        }
        .into());
    }
    let audio_specs = (config.audio.source.clone(), config.audio.sink.clone());
    let specs = audio_specs.clone();
    // Probing a sound card can take seconds: not on the runtime's threads.
    let setup = tokio::task::spawn_blocking(move || crate::audio::open(&specs.0, &specs.1))
        .await
        .expect("the audio open task does not panic")?;
    let hold_music = match &config.media.hold_music {
        Some(path) => Some(Box::new(crate::audio::WavSource::open(path)?) as Box<dyn crate::audio::AudioSource>),
        None => None,
    };
    let store_path = config.store.path.clone();
    let (store, open_records) = tokio::task::spawn_blocking(move || crate::store::Store::open(&store_path))
        .await
        .expect("the store open task does not panic")?;
    let shutdown = CancellationToken::new();
    // SIP outlives the run loop by the moment it takes to say goodbye.
    let sip_shutdown = CancellationToken::new();
    let (sip_tx, sip_rx) = mpsc::unbounded_channel();
    let sip_config = SipConfig {
        listens: listens.clone(),
        user: config.sip.user.clone(),
        t1: config.t1(),
        tls: TlsSettings {
            ca_file: config.sip.tls_ca_file.clone(),
            verify: config.sip.tls_verify,
            cert_file: config.sip.tls_cert_file.clone(),
            key_file: config.sip.tls_key_file.clone(),
        },
        accounts: config.accounts.clone(),
        session_expires_s: config.sip.session_expires_s,
        min_se_s: config.sip.min_se_s,
        refer_allowed_hosts: config.transfer.refer_allowed_hosts.clone(),
    };
    let sip = SipAgent::start(sip_config, sip_tx, sip_shutdown.clone()).await?;
    let control_socket = config.control_socket();
    let listener = server::bind(&control_socket)
        .await
        .map_err(|source| DaemonError::Control { path: control_socket.clone(), source })?;
    let (control_tx, control_rx) = mpsc::channel(256);
    let (events, _) = broadcast::channel(EVENT_BUFFER);
    tokio::spawn(server::serve(listener, control_tx, events.clone(), shutdown.clone()));
    // Events and history name recordings by absolute path, wherever the daemon runs.
    let mut config = config;
    if let Ok(dir) = std::path::absolute(&config.recording.dir) {
        config.recording.dir = dir;
    }
    let (recorder, recorder_reports) =
        crate::recording::Recorder::start(config.recording.dir.clone()).map_err(DaemonError::Thread)?;
    recording::publish_outcomes(recorder_reports, events.clone());
    let (rtp_tx, rtp_rx) = mpsc::channel(4096);
    let (audio_done, audio_rx) = mpsc::unbounded_channel();
    let mut daemon = Daemon {
        started: Instant::now(),
        phone: Phone::new(config.calls.hold_on_answer),
        callbacks: Callbacks::new(config.callback.policy()),
        alarm: PreciseAlarm::start().map_err(DaemonError::Thread)?,
        store,
        media: MediaEngine::new(
            setup.source,
            setup.sink,
            hold_music,
            listens[0].addr.ip(),
            config.media.clone(),
            rtp_tx,
            recorder.clone(),
        ),
        recorder,
        recordings: std::collections::HashMap::new(),
        media_events: Vec::new(),
        call_log: std::collections::HashMap::new(),
        audio_status: setup.status,
        audio_health: setup.health,
        audio_specs,
        audio_done,
        reconnect_at: None,
        policy: accounts::inbound_policy(&config, &sip),
        accounts: Accounts::start(&sip, &config),
        sip,
        events,
        config,
    };
    daemon.restore_callbacks(open_records);
    let sip_addr = daemon.sip.listens()[0].addr;
    let listening: Vec<String> = daemon.sip.listens().iter().map(listen_text).collect();
    tracing::info!(sip = ?listening, control = %control_socket.display(), "softphoned ready");
    let shutdown_loop = shutdown.clone();
    let run_loop = tokio::spawn(async move {
        daemon.run(control_rx, sip_rx, rtp_rx, audio_rx, shutdown_loop).await;
        sip_shutdown.cancel();
    });
    Ok(RunningDaemon { control_socket, sip_addr, shutdown, run_loop })
}

struct Daemon {
    config: Config,
    started: Instant,
    phone: Phone,
    callbacks: Callbacks,
    /// Wakes the loop for the callbacks' deadlines.
    alarm: PreciseAlarm,
    /// Call and callback history; writes and queries run on its own thread.
    store: Store,
    sip: SipAgent,
    accounts: Accounts,
    policy: InboundPolicy,
    media: MediaEngine,
    /// Reused between ticks so the tick does not allocate.
    media_events: Vec<MediaEvent>,
    /// The recorder thread's handle, and the calls being recorded.
    recorder: crate::recording::Recorder,
    recordings: std::collections::HashMap<crate::call::CallId, recording::Recording>,
    /// Live calls' times and figures, for their history records.
    call_log: std::collections::HashMap<crate::call::CallId, history::CallLog>,
    audio_status: AudioStatus,
    /// Set while a sound card is in use.
    audio_health: Option<DeviceHealth>,
    /// `audio.source`/`audio.sink` as now chosen (config, then `audio.select`).
    audio_specs: (String, String),
    audio_done: mpsc::UnboundedSender<audio::Opened>,
    /// When to try a lost sound card again.
    reconnect_at: Option<Instant>,
    events: broadcast::Sender<Notification>,
}

impl Daemon {
    async fn run(
        mut self,
        mut control: mpsc::Receiver<ControlRequest>,
        mut sip: mpsc::UnboundedReceiver<SipEvent>,
        mut rtp: mpsc::Receiver<media::RtpIn>,
        mut audio_opened: mpsc::UnboundedReceiver<audio::Opened>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(TICK);
        // Burst: after a stall, catch up so the RTP clock keeps real time.
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        loop {
            let deadline = self.phone.next_deadline().map(Instant::from_std);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let mut events = std::mem::take(&mut self.media_events);
                    self.media.tick(Instant::now().into_std(), ntp_now(), &mut events);
                    self.on_media(&mut events);
                    self.media_events = events;
                    self.watch_audio(Instant::now());
                    self.media.keep_spare();
                }
                Some(opened) = audio_opened.recv() => self.on_audio_opened(opened),
                _ = crate::timing::sleep_until(deadline) => {
                    let outputs = self.phone.poll(Instant::now().into_std());
                    self.apply(outputs);
                }
                _ = self.alarm.rung() => {
                    let outputs = self.callbacks.poll(self.now());
                    self.apply_callbacks(outputs);
                }
                Some(packet) = rtp.recv() => {
                    let mut events = std::mem::take(&mut self.media_events);
                    self.media.receive(packet, &mut events);
                    self.on_media(&mut events);
                    self.media_events = events;
                }
                Some(event) = sip.recv() => self.on_sip(event),
                Some(ControlRequest { request, reply }) = control.recv() => {
                    if request.method == api::method::HISTORY_LIST {
                        self.history(request.params, reply);
                    } else {
                        let _ = reply.send(self.dispatch(request));
                    }
                }
            }
        }
        self.hang_up_all().await;
        self.accounts.shutdown().await;
        // The store finishes every queued write before it lets go: off the runtime.
        let store = self.store;
        let _ = tokio::task::spawn_blocking(move || drop(store)).await;
    }

    /// On shutdown, nobody is left hanging on a dead line: every call gets
    /// its BYE or CANCEL, and we wait (briefly) for them to be answered.
    async fn hang_up_all(&mut self) {
        let now = Instant::now().into_std();
        let mut goodbyes = Vec::new();
        for call in self.phone.list() {
            if let Ok(outputs) = self.phone.command(&call.call, Command::Hangup, now) {
                goodbyes.extend(self.apply(outputs));
            }
        }
        let all = wait_all(goodbyes);
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            tracing::warn!("some calls did not confirm their hangup before shutdown");
        }
    }

    fn on_sip(&mut self, event: SipEvent) {
        let now = Instant::now().into_std();
        let outputs = match event {
            SipEvent::Incoming { call, source, inbound } => {
                // One replacing a call of ours takes its place, so it does not count.
                if self.phone.len() >= self.config.calls.max && inbound.replaces.is_none() {
                    tracing::warn!(%call, %source, max = self.config.calls.max, "inbound call refused: calls.max reached");
                    self.sip.execute(&call, SipAction::Reject { code: 486 });
                    return;
                }
                let inbound = match self.policy.admit(source, inbound, self.accounts.agent_state) {
                    Admission::Admit(inbound) => *inbound,
                    Admission::Refuse { code, why } => {
                        tracing::warn!(%call, %source, code, why, "inbound call refused");
                        self.sip.execute(&call, SipAction::Reject { code });
                        return;
                    }
                };
                tracing::info!(%call, from = %inbound.from, %source, account = inbound.account.as_deref().unwrap_or(""),
                    auto_answer_ms = ?inbound.auto_answer_after.map(|d| d.as_millis()), "incoming call");
                let local = match self.media.open(&call) {
                    Ok(local) => local,
                    Err(e) => {
                        tracing::error!(%call, error = %e, "no RTP port for incoming call");
                        self.sip.execute(&call, SipAction::Reject { code: 503 });
                        return;
                    }
                };
                let local = self.local_media(inbound.account.as_deref(), local);
                match self.phone.incoming(call, inbound, local, now) {
                    Ok(outputs) => outputs,
                    Err(e) => {
                        tracing::error!(error = %e, "incoming call refused");
                        return;
                    }
                }
            }
            SipEvent::Signal { call, signal } => self.phone.signal(&call, signal, now),
            SipEvent::Registration { account, report } => {
                let event = api::RegistrationEvent { account: account.clone(), report: report.clone() };
                self.publish(api::event::REGISTRATION_STATE, &serde_json::to_value(event).expect("plain struct"));
                self.accounts.on_report(account, report);
                return;
            }
        };
        self.apply(outputs);
    }

    /// Carry out the effects the phone decided, in order. Returns the tasks
    /// ending dialogs, for a shutdown that wants to wait on them.
    fn apply(&mut self, outputs: Vec<Output>) -> Vec<JoinHandle<()>> {
        let mut endings = Vec::new();
        for Output { call, effect } in outputs {
            match effect {
                Effect::Sip(action) => endings.extend(self.sip.execute(&call.call, action)),
                Effect::StartMedia(negotiated) => self.media.start(&call.call, negotiated, Instant::now().into_std()),
                Effect::StopMedia => {
                    self.keep_quality(&call.call);
                    self.media.stop(&call.call);
                }
                Effect::Mute(muted) => self.media.set_muted(&call.call, muted),
                Effect::SendDtmf(digits) => {
                    if let Err(e) = self.media.queue_dtmf(&call.call, &digits) {
                        tracing::warn!(call = %call.call, error = %e, "keys not sent");
                    }
                }
                Effect::DtmfReceived(digit) => self.publish_dtmf(&call.call, digit, api::DtmfVia::Info),
                Effect::StateChanged => {
                    tracing::info!(call = %call.call, state = ?call.state, reason = ?call.reason, sip_code = ?call.sip_code, "call state");
                    self.publish(api::event::CALL_STATE, &serde_json::to_value(&call).expect("plain struct"));
                    self.follow_recording(&call);
                    self.log_call(&call);
                    self.follow_call(&call);
                }
                Effect::Conference(joined) => self.media.set_conference(&call.call, joined),
                Effect::Dial(to) => self.follow_referral(&call.call, call.account.clone(), &to),
                Effect::Countdown(countdown) => {
                    let kind = api::CountdownKind::AutoAnswer;
                    let event = api::CallCountdownEvent { call: call.call.clone(), kind, countdown };
                    self.publish(api::event::CALL_COUNTDOWN, &serde_json::to_value(event).expect("plain struct"));
                }
            }
        }
        endings
    }

    /// Act on what the media path reported.
    fn on_media(&mut self, events: &mut Vec<MediaEvent>) {
        for event in events.drain(..) {
            match event {
                MediaEvent::Dtmf { call, digit } => self.publish_dtmf(&call, digit, api::DtmfVia::Rtp),
                MediaEvent::Timeout { call } => {
                    tracing::warn!(%call, "no RTP for media.media_timeout_ms: ending the call");
                    let outputs =
                        self.phone.signal(&call, crate::call::Signal::MediaTimeout, Instant::now().into_std());
                    self.apply(outputs);
                }
                MediaEvent::Quality { call, stats } => {
                    let event = api::QualityEvent::new(call, &stats);
                    self.publish(api::event::CALL_QUALITY, &serde_json::to_value(event).expect("plain struct"));
                }
            }
        }
    }

    fn publish_dtmf(&self, call: &str, digit: char, via: api::DtmfVia) {
        tracing::info!(%call, %digit, ?via, "key received");
        let event = api::DtmfEvent { call: call.into(), digit: digit.to_string(), via };
        self.publish(api::event::CALL_DTMF, &serde_json::to_value(event).expect("plain struct"));
    }

    /// Our end of a new call's media, under its account's policy.
    fn local_media(&self, account: Option<&str>, rtp: SocketAddr) -> crate::sdp::LocalMedia {
        let account = account.and_then(|id| self.config.accounts.iter().find(|a| a.id == id));
        let media = &self.config.media;
        let names = account.and_then(|a| a.codecs.as_ref()).unwrap_or(&media.codecs);
        let codecs = crate::config::parse_codecs("media.codecs", names).expect("checked when the config was loaded");
        let mut opus = crate::media::codec::OpusParams::offer();
        opus.use_inband_fec = media.opus_fec;
        crate::sdp::LocalMedia {
            rtp,
            session_id: rand::random::<u32>().into(),
            policy: crate::sdp::MediaPolicy { codecs, srtp: account.and_then(|a| a.srtp).unwrap_or(media.srtp), opus },
            key_salt: rand::random(),
        }
    }

    fn publish(&self, method: &str, params: &Value) {
        // No subscriber is not an error.
        let _ = self.events.send(Notification::new(method, params));
    }
}

/// `udp:127.0.0.1:5060`, as config and status write a listening point.
pub fn listen_text(listen: &Listen) -> String {
    format!("{}:{}", listen.transport.as_str(), listen.addr)
}

/// The wallclock as a 64-bit NTP timestamp, for RTCP sender reports.
fn ntp_now() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    crate::media::rtcp::ntp_from_unix(since.as_secs(), since.subsec_nanos())
}

async fn wait_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}
