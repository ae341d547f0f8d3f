//! The sound card through a JACK server (`audio.source`/`audio.sink` =
//! `jack` or `jack:CLIENT`): one JACK client, `softphoned`, with one mono
//! port per direction asked for, connected to the ports of CLIENT (the
//! server's own hardware ports, `system`, by default).
//!
//! Why not cpal's JACK host: it opens one JACK client per stream (and two
//! more, briefly, to probe), each with its own process and notification
//! threads, in stereo. Here a call's microphone and speaker share one client,
//! so the server wakes one thread of ours per period.
//!
//! libjack is loaded when a JACK device is first opened (the `jack` crate's
//! dynamic loading), not linked: the daemon starts and runs on a machine
//! without it, and only asking for `jack` there fails, saying why.

use std::ffi::{c_char, CStr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Once};

use jack::{AudioIn, AudioOut, Client, ClientOptions, ClientStatus, Control, Port, PortFlags, PortSpec, ProcessScope};

use super::realtime::{Callback, Capture, Playout};
use super::{Counters, DeviceEntry, DeviceError, DeviceList};

/// Our name in the JACK graph (the server appends `-01`... when it is taken).
const CLIENT_NAME: &str = "softphoned";

/// A JACK client being set up: ports registered, not yet running.
pub(super) struct JackClient {
    client: Client,
    process: Process,
    /// The peer clients to connect our capture and playout ports to.
    peers: (Option<String>, Option<String>),
    counters: Arc<Counters>,
}

/// A running JACK client. Dropping it deactivates and closes it.
pub(super) struct RunningJackClient {
    _client: jack::AsyncClient<Notifications, Process>,
}

impl JackClient {
    /// Connect to the JACK server (`JACK_DEFAULT_SERVER`, else `default`);
    /// never starts one.
    pub(super) fn open(counters: &Arc<Counters>) -> Result<JackClient, DeviceError> {
        quiet_libjack();
        let (client, _) = Client::new(CLIENT_NAME, ClientOptions::NO_START_SERVER).map_err(|e| match e {
            jack::Error::LibraryError(why) => {
                DeviceError::NoHost(format!("JACK: libjack could not be loaded ({why}); install libjack-jackd2-0"))
            }
            jack::Error::ClientError(status) if status.contains(ClientStatus::SERVER_FAILED) => {
                let server = std::env::var("JACK_DEFAULT_SERVER").unwrap_or_else(|_| "default".into());
                DeviceError::NoHost(format!("JACK: no JACK server named {server:?} is running"))
            }
            other => DeviceError::NoHost(format!("JACK: {other}")),
        })?;
        let process = Process { capture: None, playout: None };
        Ok(JackClient { client, process, peers: (None, None), counters: counters.clone() })
    }

    /// The server's sample rate: the device rate of both directions.
    pub(super) fn rate(&self) -> u32 {
        self.client.sample_rate()
    }

    /// The name our devices are reported under, e.g. `jack:system`.
    pub(super) fn label(peer: &str) -> String {
        format!("jack:{peer}")
    }

    /// Register the port of a direction; it runs once the client is activated.
    pub(super) fn add(&mut self, peer: &str, callback: Callback) -> Result<(), DeviceError> {
        match callback {
            Callback::Capture(state) => {
                let port = self.client.register_port("capture", AudioIn::default()).map_err(failed("input", peer))?;
                self.process.capture = Some((port, state));
                self.peers.0 = Some(peer.into());
            }
            Callback::Playout(state) => {
                let port =
                    self.client.register_port("playback", AudioOut::default()).map_err(failed("output", peer))?;
                self.process.playout = Some((port, state));
                self.peers.1 = Some(peer.into());
            }
        }
        Ok(())
    }

    /// Start processing and connect the ports: the microphone to the peer's
    /// first audio output (a mono port fed by two would sum them), the
    /// speaker to all its audio inputs (both sides of a headset).
    pub(super) fn activate(self) -> Result<RunningJackClient, DeviceError> {
        let JackClient { client, process, peers, counters } = self;
        let ours = (
            process.capture.as_ref().map(|(port, _)| port.name()).transpose(),
            process.playout.as_ref().map(|(port, _)| port.name()).transpose(),
        );
        let (Ok(capture_port), Ok(playout_port)) = ours else {
            return Err(DeviceError::NoHost("JACK: our ports have no names".into()));
        };
        let running = client
            .activate_async(Notifications { counters }, process)
            .map_err(|e| DeviceError::NoHost(format!("JACK: activating the client: {e}")))?;
        let client = running.as_client();
        if let (Some(ours), Some(peer)) = (capture_port, &peers.0) {
            let theirs = peer_ports(client, peer, PortFlags::IS_OUTPUT, "input")?;
            client.connect_ports_by_name(&theirs[0], &ours).map_err(failed("input", peer))?;
        }
        if let (Some(ours), Some(peer)) = (playout_port, &peers.1) {
            for theirs in peer_ports(client, peer, PortFlags::IS_INPUT, "output")? {
                client.connect_ports_by_name(&ours, &theirs).map_err(failed("output", peer))?;
            }
        }
        Ok(RunningJackClient { _client: running })
    }
}

/// The JACK clients each direction can connect to, as `jack:CLIENT`
/// entries in the server's order (the hardware, `system`, first); empty
/// when no server answers. Our own clients are left out.
pub(super) fn list() -> DeviceList {
    quiet_libjack();
    let Ok((client, _)) = Client::new("softphoned-list", ClientOptions::NO_START_SERVER) else {
        return DeviceList::default();
    };
    let entries = |flags: PortFlags, what: &str| {
        let mut peers: Vec<&str> = vec![];
        let ports = client.ports(None, Some(AudioIn::default().jack_port_type()), flags);
        for peer in ports.iter().filter_map(|port| port.split_once(':')).map(|(peer, _)| peer) {
            if !peer.starts_with(CLIENT_NAME) && !peers.contains(&peer) {
                peers.push(peer);
            }
        }
        let entry = |peer: &&str| DeviceEntry {
            name: JackClient::label(peer),
            description: format!("JACK: {what} of {peer}"),
            is_default: false,
        };
        peers.iter().map(entry).collect()
    };
    DeviceList {
        inputs: entries(PortFlags::IS_OUTPUT, "the audio outputs"),
        outputs: entries(PortFlags::IS_INPUT, "the audio inputs"),
    }
}

/// libjack reports a missing server as five errors on every attempt, and
/// the daemon tries again every few seconds while a call waits for the
/// card; its own warning already says why, so libjack's lines go to debug.
/// Only once libjack has loaded: setting the functions calls into it.
fn quiet_libjack() {
    static QUIET: Once = Once::new();
    if jack_sys::library().is_ok() {
        QUIET
            .call_once(|| jack::set_logger(jack::LoggerType::Custom { info: libjack_message, error: libjack_message }));
    }
}

unsafe extern "C" fn libjack_message(message: *const c_char) {
    if !message.is_null() {
        // SAFETY: libjack passes a NUL-terminated string that lives for the call.
        let message = unsafe { CStr::from_ptr(message) };
        tracing::debug!(target: "libjack", "{}", message.to_string_lossy());
    }
}

/// The audio ports of `peer` in the direction given; an error naming the
/// clients that do have such ports when it has none.
fn peer_ports(client: &Client, peer: &str, flags: PortFlags, role: &'static str) -> Result<Vec<String>, DeviceError> {
    let all = client.ports(None, Some(jack::AudioIn::default().jack_port_type()), flags);
    let prefix = format!("{peer}:");
    let mine: Vec<String> = all.iter().filter(|name| name.starts_with(&prefix)).cloned().collect();
    if mine.is_empty() {
        let mut known: Vec<String> =
            all.iter().filter_map(|name| name.split_once(':')).map(|(c, _)| JackClient::label(c)).collect();
        known.dedup();
        return Err(DeviceError::NotFound { role, name: JackClient::label(peer), known });
    }
    Ok(mine)
}

fn failed<'a>(role: &'static str, peer: &'a str) -> impl FnOnce(jack::Error) -> DeviceError + 'a {
    move |e| DeviceError::Open { role, device: JackClient::label(peer), message: e.to_string() }
}

/// The process callback, on JACK's real-time thread: both directions in one
/// wake-up, through the same conversions as a cpal stream's callbacks.
pub(super) struct Process {
    capture: Option<(Port<AudioIn>, Capture)>,
    playout: Option<(Port<AudioOut>, Playout)>,
}

impl jack::ProcessHandler for Process {
    fn process(&mut self, _: &Client, scope: &ProcessScope) -> Control {
        if let Some((port, capture)) = &mut self.capture {
            capture.push(port.as_slice(scope));
        }
        if let Some((port, playout)) = &mut self.playout {
            playout.fill(port.as_mut_slice(scope));
        }
        Control::Continue
    }
}

/// The server's notifications (on its notification thread): only counted
/// and flagged, as the cpal error callback does.
pub(super) struct Notifications {
    counters: Arc<Counters>,
}

impl jack::NotificationHandler for Notifications {
    unsafe fn shutdown(&mut self, _status: ClientStatus, _reason: &str) {
        self.counters.lost.store(true, Ordering::Release);
    }

    fn xrun(&mut self, _: &Client) -> Control {
        Counters::add(&self.counters.xruns, 1);
        Control::Continue
    }
}
