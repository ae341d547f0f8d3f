//! The tokio shell: IO and nothing else. It opens what the config names
//! (SIP, the control socket, the sound card, the store, the recorder),
//! reads the clock once per turn of its loop, hands the desk what arrived
//! ([`crate::desk`] decides everything), and carries out what the desk
//! asks for. `softphoned`, the demo and the tests all start it through
//! [`start`].

mod accounts;
mod audio;
mod bridge;
mod budget;
mod dispatch;
mod instance;
mod memory;
mod metrics;
mod outputs;
mod reload;
mod systemd;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::audio::AudioError;
use crate::callback::Now;
use crate::config::{Config, ConfigError, Listen};
use crate::control::server::{self, ControlRequest, Notification};
use crate::desk::{Desk, Input};
use crate::media_io::{MediaAudio, MediaIo, MediaOut};
use crate::sip::{SipAgent, SipConfig, SipError, SipEvent, TlsSettings};
use crate::store::Store;
use crate::timing::PreciseAlarm;
use accounts::Accounts;

/// How often the run loop looks after what has no event of its own: a
/// sound card that vanished, a line a failed bind left missing (and only
/// while there is such a thing, so an idle daemon sleeps).
const HOUSEKEEPING: Duration = Duration::from_millis(250);
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
    /// The browser bridge could not open (its address, its pairings file).
    #[error("browser bridge: {0}")]
    Bridge(String),
    /// The metrics endpoint could not be bound.
    #[error("metrics.listen {addr}: {source}")]
    Metrics { addr: SocketAddr, source: std::io::Error },
}

/// A daemon running in the background of this process.
pub struct RunningDaemon {
    pub control_socket: PathBuf,
    /// The first listening point's address.
    pub sip_addr: SocketAddr,
    /// The run loop's requests, as the control socket hands them in.
    requests: mpsc::Sender<ControlRequest>,
    shutdown: CancellationToken,
    run_loop: JoinHandle<()>,
}

impl RunningDaemon {
    /// Read the config file again (SIGHUP), as `daemon.reload` does: what
    /// changed, or why the running config stays in force.
    pub async fn reload(&self) -> Result<crate::control::api::ReloadResult, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = crate::control::api::Request::DaemonReload(crate::control::api::NoParams {});
        self.requests
            .send(ControlRequest { request, reply })
            .await
            .map_err(|_| "the daemon is stopping".to_string())?;
        let result = answer.await.map_err(|_| "the daemon is stopping".to_string())?.map_err(|e| e.message)?;
        serde_json::from_value(result).map_err(|e| e.to_string())
    }

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
    let specs = (config.audio.source.clone(), config.audio.sink.clone());
    let audio_specs = specs.clone();
    // Opening a sound card can take seconds: not on the runtime's threads.
    // It is opened once here, so a card that does not work is said at once.
    let (setup, first_open) = tokio::task::spawn_blocking(move || {
        let setup = crate::audio::open(&specs.0, &specs.1)?;
        let first_open = audio::AudioState::first_open(setup.card.as_ref()).map(audio::Job::run);
        Ok::<_, AudioError>((setup, first_open))
    })
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
    let budget = budget::Budget::split(budget::open_files_limit(), &config);
    tracing::info!(
        tcp_connections = budget.sip.connections,
        control_clients = budget.control_clients,
        "descriptors shared out"
    );
    let sip_config = SipConfig {
        listens: listens.clone(),
        public_address: config.sip.public_address,
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
        allow_from: config.allowed_peers()?,
        limits: budget.sip,
        stun: config.nat.stun_server_port().map(|server| crate::sip::StunSettings {
            server,
            interval: Duration::from_secs(config.nat.stun_interval_s.into()),
        }),
        instance: Some(instance::instance_id(&config.store.path)),
        dns_servers: config.dns.server_addrs()?,
    };
    let sip = SipAgent::start(sip_config, sip_tx, sip_shutdown.clone()).await?;
    let control_socket = config.control_socket();
    let listener = server::bind(&control_socket)
        .await
        .map_err(|source| DaemonError::Control { path: control_socket.clone(), source })?;
    let (control_tx, control_rx) = mpsc::channel(256);
    let (events, _) = broadcast::channel(EVENT_BUFFER);
    let bridge = bridge::start(&config, control_tx.clone(), events.clone(), shutdown.clone()).await?;
    let control_seats = server::Seats::new(budget.control_clients);
    let metrics = metrics::start(&config, &sip, &control_seats, bridge.as_ref(), shutdown.clone()).await?;
    tokio::spawn(server::serve(listener, control_seats, control_tx.clone(), events.clone(), shutdown.clone()));
    let mut config = config;
    absolute_recording_dir(&mut config);
    if let Err(e) = usable_dir(&config.recording.dir) {
        // Calls go on without it; ops see at once why recordings will fail.
        tracing::error!(dir = %config.recording.dir.display(), error = %e, "recording.dir is not usable: recordings will fail");
    }
    let (recorder, recorder_reports) =
        crate::recorder::Recorder::start(recorder_settings(&config)?).map_err(DaemonError::Thread)?;
    let audio = MediaAudio { source: setup.source, sink: setup.sink, hold_music };
    let (media, media_rx) =
        MediaIo::start(audio, listens[0].addr.ip(), config.media.clone(), recorder).map_err(DaemonError::Thread)?;
    let (audio_done, audio_rx) = mpsc::unbounded_channel();
    let (reloads, reloads_rx) = mpsc::unbounded_channel();
    let now = clock();
    let mut daemon = Daemon {
        started: Instant::from_std(now.at),
        desk: Desk::new(accounts::desk_config(&config, &sip), now),
        alarm: PreciseAlarm::start().map_err(DaemonError::Thread)?,
        alarm_set: None,
        store,
        media,
        audio: audio::AudioState::new(setup.status, setup.card, audio_specs, audio_done, now.at),
        accounts: Accounts::start(&sip),
        sip,
        events,
        bridge,
        config,
        systemd: systemd::Systemd::new(),
        metrics,
        reloading: false,
        reloads,
    };
    if let Some(opened) = first_open {
        daemon.on_audio_opened(opened, now.at);
    }
    daemon.feed(Input::Restore(open_records), now);
    let sip_addr = daemon.sip.listens()[0].addr;
    let listening: Vec<String> = daemon.sip.listens().iter().map(listen_text).collect();
    tracing::info!(sip = ?listening, control = %control_socket.display(), "softphoned ready");
    let shutdown_loop = shutdown.clone();
    let run_loop = tokio::spawn(async move {
        daemon
            .run(
                Inputs {
                    control: control_rx,
                    sip: sip_rx,
                    media: media_rx,
                    audio: audio_rx,
                    recorder: recorder_reports,
                    reloads: reloads_rx,
                },
                shutdown_loop,
            )
            .await;
        sip_shutdown.cancel();
    });
    Ok(RunningDaemon { control_socket, sip_addr, requests: control_tx, shutdown, run_loop })
}

/// The present, read once per turn of the loop: tokio's clock (which
/// paused-time tests control) for deadlines, the wall clock for records.
fn clock() -> Now {
    Now { at: Instant::now().into_std(), wall: Timestamp::now() }
}

/// What the run loop listens to, besides its clock.
struct Inputs {
    control: mpsc::Receiver<ControlRequest>,
    sip: mpsc::UnboundedReceiver<SipEvent>,
    media: mpsc::UnboundedReceiver<MediaOut>,
    audio: mpsc::UnboundedReceiver<audio::Opened>,
    recorder: mpsc::UnboundedReceiver<crate::desk::RecorderReport>,
    reloads: mpsc::UnboundedReceiver<reload::Reloaded>,
}

struct Daemon {
    config: Config,
    started: Instant,
    /// Every decision.
    desk: Desk,
    /// Wakes the loop for the desk's deadline to within tens of
    /// microseconds (a countdown dials at zero); tokio's own timer, which
    /// rounds up to the next millisecond, backs it up.
    alarm: PreciseAlarm,
    alarm_set: Option<std::time::Instant>,
    /// Call and callback history; writes and queries run on its own thread.
    store: Store,
    sip: SipAgent,
    accounts: Accounts,
    media: MediaIo,
    /// The agent's audio backends and the sound card's state.
    audio: audio::AudioState,
    events: broadcast::Sender<Notification>,
    /// The browser bridge, when `[bridge]` enables it.
    bridge: Option<Arc<crate::control::bridge::Shared>>,
    /// The watchdog ping and `STATUS=`.
    systemd: systemd::Systemd,
    /// The Prometheus figures, when `[metrics]` opens an endpoint.
    metrics: Option<crate::metrics::Metrics>,
    /// A reload is being read and located (one at a time).
    reloading: bool,
    reloads: mpsc::UnboundedSender<reload::Reloaded>,
}

impl Daemon {
    async fn run(mut self, inputs: Inputs, shutdown: CancellationToken) {
        let Inputs { mut control, mut sip, mut media, mut audio, mut recorder, mut reloads } = inputs;
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        housekeeping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The code start-up ran is released once it has settled, and again
        // after each burst of signalling (see `memory`).
        let mut release_code_at = Some(Instant::now() + memory::SETTLE);
        self.report_health();
        loop {
            let deadline = self.desk.poll_timeout();
            if deadline != self.alarm_set {
                self.alarm.set(deadline);
                self.alarm_set = deadline;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = housekeeping.tick(), if self.has_housekeeping() => {
                    self.watch_audio(clock().at);
                    // Lines a failed bind left the desk without are tried again.
                    self.carry_out(clock());
                }
                Some(opened) = audio.recv() => self.on_audio_opened(opened, clock().at),
                _ = crate::timing::sleep_until(deadline.map(Instant::from_std)) => self.timeout(),
                _ = self.alarm.rung() => self.timeout(),
                _ = crate::timing::sleep_until(release_code_at) => {
                    release_code_at = None;
                    let bytes = memory::release_code();
                    tracing::debug!(bytes, "code pages released");
                }
                Some(out) = media.recv() => self.on_media(out),
                Some(event) = sip.recv() => {
                    self.on_sip(event);
                    release_code_at = Some(Instant::now() + memory::SETTLE);
                }
                Some(report) = recorder.recv() => {
                    self.count(|m| m.recorder(&report));
                    self.feed(Input::Recorder(report), clock());
                }
                Some(ControlRequest { request, reply }) = control.recv() => self.dispatch(request, reply),
                Some(reloaded) = reloads.recv() => self.on_reloaded(reloaded),
                // Here, in the loop, and nowhere else: a loop that stalls stops pinging.
                _ = self.systemd.watchdog_due() => self.systemd.ping(),
            }
            self.report_health();
        }
        let goodbyes = self.feed(Input::Shutdown, clock());
        if tokio::time::timeout(SHUTDOWN_GRACE, wait_all(goodbyes)).await.is_err() {
            tracing::warn!("some calls did not confirm their hangup before shutdown");
        }
        // The last calls' figures complete their records before the store closes.
        self.media.flush().await;
        while let Ok(out) = media.try_recv() {
            self.on_media(out);
        }
        self.accounts.shutdown().await;
        // The store finishes every queued write before it lets go: off the runtime.
        let store = self.store;
        let _ = tokio::task::spawn_blocking(move || drop(store)).await;
    }

    /// The desk's deadline, if it has come (the alarm may ring early).
    fn timeout(&mut self) {
        let now = clock();
        if self.desk.poll_timeout().is_some_and(|due| due <= now.at) {
            self.feed(Input::Timeout, now);
        }
    }

    fn on_sip(&mut self, event: SipEvent) {
        let input = match event {
            SipEvent::Incoming { call, source, inbound } => Input::Incoming { call, source, inbound },
            SipEvent::Signal { call, signal } => Input::Signal { call, signal },
            SipEvent::Registration { account, report } => return self.on_registration(account, report),
            SipEvent::Trusted { peers } => Input::Trust(peers),
            SipEvent::PublicAddress { changed, .. } => return self.on_public_address_change(changed),
        };
        self.feed(input, clock());
    }

    /// A sound card to watch or reconnect, or lines to bind: an idle daemon
    /// with none of these has no timer running.
    fn has_housekeeping(&self) -> bool {
        self.audio.needs_watching() || self.desk.lines_wanted() > 0
    }

    /// What the media thread saw: for the desk, or levels for the meters.
    fn on_media(&mut self, out: MediaOut) {
        match out {
            MediaOut::Report(report) => {
                self.count(|m| m.media(&report));
                self.feed(Input::Media(report), clock());
            }
            MediaOut::Levels(levels) => {
                let event = crate::control::api::event::AUDIO_LEVEL;
                self.publish(Notification::new(event, &serde_json::json!(levels)));
            }
        }
    }

    /// Hand the desk one input and carry out what follows. Returns the
    /// tasks ending dialogs, for a shutdown that waits on them.
    fn feed(&mut self, input: Input, now: Now) -> Vec<JoinHandle<()>> {
        if let Err(e) = self.desk.handle(input, now) {
            tracing::warn!(error = %e, "input refused by the desk");
        }
        self.carry_out(now)
    }

    fn publish(&self, notification: Notification) {
        // No subscriber is not an error.
        let _ = self.events.send(notification);
    }
}

/// `[recording]` as the recorder's thread needs it.
fn recorder_settings(config: &Config) -> Result<crate::recorder::RecorderSettings, ConfigError> {
    Ok(crate::recorder::RecorderSettings {
        encrypt_to: config.recording.recipients()?,
        retention_days: config.recording.retention_days,
        ..crate::recorder::RecorderSettings::new(config.recording.dir.clone())
    })
}

/// Events and history name recordings by absolute path, wherever the daemon runs.
fn absolute_recording_dir(config: &mut Config) {
    if let Ok(dir) = std::path::absolute(&config.recording.dir) {
        config.recording.dir = dir;
    }
}

/// The directory exists (or can be made) and takes a new file.
fn usable_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".softphoned-write-test");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(probe)
}

/// `udp:127.0.0.1:5060`, as config and status write a listening point.
pub fn listen_text(listen: &Listen) -> String {
    format!("{}:{}", listen.transport.as_str(), listen.addr)
}

async fn wait_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}
