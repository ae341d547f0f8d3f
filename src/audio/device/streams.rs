//! The `audio-device` thread: finds the devices, chooses a stream format,
//! builds and plays the cpal streams, proves they run, then owns them until
//! told to stop. Also device enumeration, which shares the host lookup.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{
    BufferSize, ErrorKind, FromSample, SampleFormat, SizedSample, StreamConfig, SupportedBufferSize,
    SupportedStreamConfig, SupportedStreamConfigRange,
};

use super::jack_client::{JackClient, RunningJackClient};
use super::realtime::{Callback, Capture, FirstCallback, Playout};
use super::tick::{device_frame, PLAYOUT_PRIME_FRAMES};
use super::{Counters, DeviceChoice, DeviceEntry, DeviceError, DeviceList};
use crate::audio::clock::CardClock;
use crate::media::PCM_RATE;

/// How long a started stream may take to run its first callback. A real card
/// calls back within one period (tens of milliseconds).
const FIRST_CALLBACK_TIMEOUT: Duration = Duration::from_secs(2);

/// The period we ask for: short enough for a phone call's latency, long
/// enough not to wake the audio thread needlessly often.
const PERIOD: Duration = Duration::from_millis(10);

/// How often the audio system's worker rechecks a silent device, so an
/// unplugged card that sends no poll event is still noticed.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// The rings between callbacks and tick hold one second: far more than the
/// tick ever lets wait, so only a stalled tick overflows them.
const RING_SECONDS: usize = 1;

pub(super) struct Request {
    /// The capture device, if the microphone is the card's.
    pub input: Option<DeviceChoice>,
    /// The playback device, if the speaker is the card's.
    pub output: Option<DeviceChoice>,
    /// The card's clock, pulsed by the first direction.
    pub clock: Option<CardClock>,
}

/// One running direction, as the device thread hands it back.
pub(super) struct Half<R> {
    /// The tick's end of the ring to the callback.
    pub ring: R,
    /// The identifier of the device actually opened.
    pub name: String,
    pub rate: u32,
}

/// What the device thread hands back once the requested streams run.
pub(super) struct Opened {
    pub capture: Option<Half<rtrb::Consumer<f32>>>,
    pub playout: Option<Half<rtrb::Producer<f32>>>,
}

/// The body of the `audio-device` thread.
pub(super) fn run(
    request: Request,
    counters: Arc<Counters>,
    ready: mpsc::SyncSender<Result<Opened, DeviceError>>,
    stop: mpsc::Receiver<()>,
) {
    let streams = match start(&request, &counters) {
        Ok((streams, opened)) => {
            if ready.send(Ok(opened)).is_err() {
                return; // open_device gave up waiting; nobody wants these streams.
            }
            streams
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    // Returns when the last handle drops its sender.
    let _ = stop.recv();
    drop(streams);
}

/// What the device thread keeps alive: the cpal streams and the JACK
/// client of the directions asked for.
pub(super) struct Running {
    _streams: Vec<cpal::Stream>,
    _jack: Option<RunningJackClient>,
}

/// Where one direction's audio is exchanged.
enum Endpoint {
    /// A cpal (ALSA) device, in the format chosen for it.
    Cpal(cpal::Device, (StreamConfig, SampleFormat)),
    /// A port of our JACK client, connected to this peer client's ports.
    Jack(String),
}

/// One direction's endpoint, its reported name, and its rate and channels.
struct Prepared {
    endpoint: Endpoint,
    name: String,
    rate: u32,
    channels: u16,
}

/// The audio systems opened so far (each only once a direction needs it),
/// and the streams started on them.
struct Backends {
    host: Option<cpal::Host>,
    jack: Option<JackClient>,
    streams: Vec<cpal::Stream>,
    counters: Arc<Counters>,
}

impl Backends {
    fn host(&mut self) -> Result<&cpal::Host, DeviceError> {
        if self.host.is_none() {
            self.host = Some(host()?);
        }
        Ok(self.host.as_ref().expect("just set"))
    }

    fn jack(&mut self) -> Result<&mut JackClient, DeviceError> {
        if self.jack.is_none() {
            self.jack = Some(JackClient::open(&self.counters)?);
        }
        Ok(self.jack.as_mut().expect("just set"))
    }

    /// Find the device and the format to run it in: a cpal device's own, or
    /// the JACK server's rate on a mono port.
    fn prepare(&mut self, role: Role, choice: &DeviceChoice) -> Result<Prepared, DeviceError> {
        match choice {
            DeviceChoice::Jack(peer) => Ok(Prepared {
                rate: self.jack()?.rate(),
                endpoint: Endpoint::Jack(peer.clone()),
                name: JackClient::label(peer),
                channels: 1,
            }),
            DeviceChoice::Default | DeviceChoice::Named(_) => {
                let name = match choice {
                    DeviceChoice::Named(name) => Some(name.as_str()),
                    _ => None,
                };
                let device = find(self.host()?, role, name)?;
                let name = id_of(&device);
                let config = choose_config(role, &device).map_err(failed(role, &name))?;
                let (rate, channels) = (config.0.sample_rate, config.0.channels);
                Ok(Prepared { endpoint: Endpoint::Cpal(device, config), name, rate, channels })
            }
        }
    }

    /// Start a cpal stream at once; a JACK port runs once the client is activated.
    fn attach(&mut self, role: Role, endpoint: Endpoint, name: &str, callback: Callback) -> Result<(), DeviceError> {
        match endpoint {
            Endpoint::Jack(peer) => self.jack()?.add(&peer, callback),
            Endpoint::Cpal(device, config) => {
                let stream = build(&device, config, callback, &self.counters).map_err(failed(role, name))?;
                stream.play().map_err(failed(role, name))?;
                tracing::info!(role = role.name(), device = %name, format = ?config, "sound card stream running");
                self.streams.push(stream);
                Ok(())
            }
        }
    }
}

/// Build and play only the directions asked for: a daemon that plays a
/// tone into the card needs no microphone, and must not fail for want of one.
/// The JACK directions share one client, activated once both are in it.
fn start(request: &Request, counters: &Arc<Counters>) -> Result<(Running, Opened), DeviceError> {
    let mut backends = Backends { host: None, jack: None, streams: Vec::with_capacity(2), counters: counters.clone() };
    let mut proofs = Vec::with_capacity(2);
    let mut clock = request.clock.clone();
    let capture = match &request.input {
        Some(choice) => {
            let Prepared { endpoint, name, rate, channels } = backends.prepare(Role::Input, choice)?;
            let first = FirstCallback::new(std::thread::current());
            let (ring_in, ring) = rtrb::RingBuffer::new(RING_SECONDS * rate as usize);
            let pulse = clock.take().map(|clock| clock.pulse(device_frame(rate)));
            let state = Capture::new(ring_in, channels, counters.clone(), first.clone(), pulse);
            backends.attach(Role::Input, endpoint, &name, Callback::Capture(state))?;
            proofs.push((Role::Input, name.clone(), first));
            Some(Half { ring, name, rate })
        }
        None => None,
    };
    let playout = match &request.output {
        Some(choice) => {
            let Prepared { endpoint, name, rate, channels } = backends.prepare(Role::Output, choice)?;
            let first = FirstCallback::new(std::thread::current());
            let (ring, ring_out) = rtrb::RingBuffer::new(RING_SECONDS * rate as usize);
            let prime = PLAYOUT_PRIME_FRAMES * device_frame(rate);
            let pulse = clock.take().map(|clock| clock.pulse(device_frame(rate)));
            let state = Playout::new(ring_out, channels, prime, counters.clone(), first.clone(), pulse);
            backends.attach(Role::Output, endpoint, &name, Callback::Playout(state))?;
            proofs.push((Role::Output, name.clone(), first));
            Some(Half { ring, name, rate })
        }
        None => None,
    };
    let jack = backends.jack.take().map(JackClient::activate).transpose()?;
    let deadline = Instant::now() + FIRST_CALLBACK_TIMEOUT;
    for (role, name, first) in &proofs {
        // Each callback unparks this thread once; parking may also wake spuriously.
        while !first.seen() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DeviceError::Silent {
                    role: role.name(),
                    device: name.clone(),
                    waited: FIRST_CALLBACK_TIMEOUT,
                });
            }
            std::thread::park_timeout(left);
        }
    }
    Ok((Running { _streams: backends.streams, _jack: jack }, Opened { capture, playout }))
}

fn failed(role: Role, device: &str) -> impl FnOnce(cpal::Error) -> DeviceError + '_ {
    move |e| DeviceError::Open { role: role.name(), device: device.to_owned(), message: e.to_string() }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Input,
    Output,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Output => "output",
        }
    }
}

/// The first host that initialises (ALSA on Linux). Not `cpal::default_host`:
/// it panics when ALSA cannot read its configuration.
fn host() -> Result<cpal::Host, DeviceError> {
    let mut last_error = "no audio host compiled in".to_string();
    for id in cpal::available_hosts() {
        match cpal::host_from_id(id) {
            Ok(host) => return Ok(host),
            Err(e) => last_error = format!("{}: {e}", id.name()),
        }
    }
    Err(DeviceError::NoHost(last_error))
}

fn id_of(device: &cpal::Device) -> String {
    device.id().map(|id| id.id().to_owned()).unwrap_or_else(|_| device.to_string())
}

fn default_device(host: &cpal::Host, role: Role) -> Option<cpal::Device> {
    match role {
        Role::Input => host.default_input_device(),
        Role::Output => host.default_output_device(),
    }
}

fn devices(host: &cpal::Host, role: Role) -> Vec<cpal::Device> {
    let devices = match role {
        Role::Input => host.input_devices().map(|d| d.collect()),
        Role::Output => host.output_devices().map(|d| d.collect()),
    };
    devices.unwrap_or_default()
}

fn find(host: &cpal::Host, role: Role, name: Option<&str>) -> Result<cpal::Device, DeviceError> {
    let Some(name) = name else {
        return default_device(host, role).ok_or_else(|| DeviceError::NotFound {
            role: role.name(),
            name: "(default)".into(),
            known: devices(host, role).iter().map(id_of).collect(),
        });
    };
    // Look among all devices, not only this role's: ALSA's hints may not
    // know the direction a PCM supports, and opening is the real test.
    let all = host.devices().map(|d| d.collect::<Vec<_>>()).unwrap_or_default();
    all.into_iter()
        .chain(default_device(host, role))
        .find(|device| id_of(device) == name)
        .or_else(|| host.device_by_id(&cpal::DeviceId::new(host.id(), name)))
        .ok_or_else(|| DeviceError::NotFound {
            role: role.name(),
            name: name.into(),
            known: devices(host, role).iter().map(id_of).collect(),
        })
}

/// Rates to run the card at, best first, when it offers them: the media rate
/// itself needs no resampling at all, and 48 kHz is every card's native rate
/// (a whole multiple of the media rate, so the sound server resamples cheaply
/// if it must). Otherwise the device's own preference.
const PREFERRED_RATES: [u32; 2] = [PCM_RATE, 48_000];

/// The device's own preferred format (cpal ranks them: stereo, float, 48 kHz)
/// at the first of [`PREFERRED_RATES`] it supports in that format, with a
/// short period. Any PCM sample format is fine: the callbacks convert.
fn choose_config(role: Role, device: &cpal::Device) -> Result<(StreamConfig, SampleFormat), cpal::Error> {
    let (preferred, ranges): (SupportedStreamConfig, Vec<_>) = match role {
        // A device that cannot list its ranges still has its default format.
        Role::Input => {
            (device.default_input_config()?, device.supported_input_configs().into_iter().flatten().collect())
        }
        Role::Output => {
            (device.default_output_config()?, device.supported_output_configs().into_iter().flatten().collect())
        }
    };
    let like_preferred = |range: &&SupportedStreamConfigRange| {
        range.channels() == preferred.channels() && range.sample_format() == preferred.sample_format()
    };
    let supported = PREFERRED_RATES
        .iter()
        .find_map(|&rate| ranges.iter().filter(like_preferred).find_map(|range| range.try_with_sample_rate(rate)))
        .unwrap_or(preferred);
    if supported.sample_format().is_dsd() || supported.sample_rate() == 0 {
        return Err(cpal::Error::with_message(
            ErrorKind::UnsupportedConfig,
            format!(
                "only {:?} at {} Hz is offered, which is not PCM audio",
                supported.sample_format(),
                supported.sample_rate()
            ),
        ));
    }
    let period = (supported.sample_rate() as u64 * PERIOD.as_millis() as u64 / 1000) as u32;
    let buffer_size = match *supported.buffer_size() {
        SupportedBufferSize::Range { min, max } => BufferSize::Fixed(period.clamp(min, max)),
        SupportedBufferSize::Unknown => BufferSize::Default,
    };
    Ok((StreamConfig { buffer_size, ..supported.config() }, supported.sample_format()))
}

/// Build the stream with callbacks monomorphised for the device's sample format.
fn build(
    device: &cpal::Device,
    (config, format): (StreamConfig, SampleFormat),
    callback: Callback,
    counters: &Arc<Counters>,
) -> Result<cpal::Stream, cpal::Error> {
    let builder = Builder { device, config, callback, counters: counters.clone() };
    match format {
        SampleFormat::I8 => builder.build::<i8>(),
        SampleFormat::I16 => builder.build::<i16>(),
        SampleFormat::I24 => builder.build::<cpal::I24>(),
        SampleFormat::I32 => builder.build::<i32>(),
        SampleFormat::I64 => builder.build::<i64>(),
        SampleFormat::U8 => builder.build::<u8>(),
        SampleFormat::U16 => builder.build::<u16>(),
        SampleFormat::U24 => builder.build::<cpal::U24>(),
        SampleFormat::U32 => builder.build::<u32>(),
        SampleFormat::U64 => builder.build::<u64>(),
        SampleFormat::F32 => builder.build::<f32>(),
        SampleFormat::F64 => builder.build::<f64>(),
        other => Err(cpal::Error::with_message(ErrorKind::UnsupportedConfig, format!("sample format {other:?}"))),
    }
}

struct Builder<'a> {
    device: &'a cpal::Device,
    config: StreamConfig,
    callback: Callback,
    counters: Arc<Counters>,
}

impl Builder<'_> {
    fn build<T: SizedSample + FromSample<f32>>(self) -> Result<cpal::Stream, cpal::Error>
    where
        f32: FromSample<T>,
    {
        let errors = error_callback(self.counters);
        match self.callback {
            Callback::Capture(mut capture) => self.device.build_input_stream::<T, _, _>(
                self.config,
                move |data: &[T], _: &cpal::InputCallbackInfo| capture.push(data),
                errors,
                Some(POLL_TIMEOUT),
            ),
            Callback::Playout(mut playout) => self.device.build_output_stream::<T, _, _>(
                self.config,
                move |data: &mut [T], _: &cpal::OutputCallbackInfo| playout.fill(data),
                errors,
                Some(POLL_TIMEOUT),
            ),
        }
    }
}

/// Runs on the audio thread too, so it only counts and flags; the daemon
/// reads [`super::DeviceHealth`] and does the talking.
fn error_callback(counters: Arc<Counters>) -> impl FnMut(cpal::Error) + Send + 'static {
    move |error: cpal::Error| match error.kind() {
        ErrorKind::Xrun => Counters::add(&counters.xruns, 1),
        ErrorKind::DeviceNotAvailable | ErrorKind::StreamInvalidated | ErrorKind::HostUnavailable => {
            counters.lost.store(true, Ordering::Release);
        }
        _ => Counters::add(&counters.stream_errors, 1),
    }
}

/// Every device of each direction, the default first and always present
/// (ALSA's `default` need not be among the hinted PCMs).
pub(super) fn list() -> DeviceList {
    let Ok(host) = host() else { return DeviceList::default() };
    let entries = |role: Role| {
        let default_name = default_device(&host, role).map(|d| id_of(&d));
        let mut entries: Vec<DeviceEntry> = devices(&host, role)
            .iter()
            .map(|device| {
                let name = id_of(device);
                let description = device.description().map(|d| d.name().to_owned()).unwrap_or_else(|_| name.clone());
                DeviceEntry { is_default: default_name.as_deref() == Some(name.as_str()), name, description }
            })
            .collect();
        if let Some(name) = default_name.filter(|name| !entries.iter().any(|e| &e.name == name)) {
            entries.push(DeviceEntry { name, description: "the system's default device".into(), is_default: true });
        }
        entries.sort_by_key(|e| !e.is_default);
        entries
    };
    DeviceList { inputs: entries(Role::Input), outputs: entries(Role::Output) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_errors_are_counted_and_only_losses_mark_the_device_lost() {
        let counters = Arc::new(Counters::default());
        let mut report = error_callback(counters.clone());
        report(ErrorKind::Xrun.into());
        report(cpal::Error::with_message(ErrorKind::BackendError, "EIO"));
        assert!(!counters.lost.load(Ordering::Acquire));
        report(ErrorKind::DeviceNotAvailable.into());
        assert!(counters.lost.load(Ordering::Acquire));
        let health = super::super::DeviceHealth(counters);
        assert!(health.is_lost());
        assert_eq!((health.counters().xruns, health.counters().stream_errors), (1, 1));
    }
}
