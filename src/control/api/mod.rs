//! The control protocol's vocabulary: every method's params and result, every
//! notification's params and name, and (in `request`) the one table of
//! methods that the typed [`Request`] and the OpenRPC document in `proto/`
//! are both generated from.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod bridge;
mod callback;
mod recording;
mod request;
mod transfer;

pub use bridge::*;
pub use callback::*;
pub use recording::*;
pub(crate) use request::schema;
pub use request::{method, MethodSpec, Request};
pub use transfer::*;

use crate::account::registration::Report;
use crate::audio::device::DeviceList;
pub use crate::audio::AudioStatus;
use crate::call::phone::CallSummary;
use crate::call::{CallId, Countdown, RejectReason};
use crate::config::{AgentState, Transport};
pub use crate::media::dtmf::DtmfVia;
pub use crate::media::level::Levels;
pub use crate::media::report::QualityEvent;
use crate::media::stream::MediaStats;
pub use crate::media_io::Gains;
pub use crate::recording::{RecordingState, RecordingStatus};

/// Event topics a client may subscribe to (PROTOCOL.md); the default is all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    Call,
    Callback,
    Registration,
    Recording,
    Audio,
    Agent,
}

impl Topic {
    pub const ALL: [Topic; 6] =
        [Topic::Call, Topic::Callback, Topic::Registration, Topic::Recording, Topic::Audio, Topic::Agent];

    /// The topic of a notification, by its method's prefix.
    pub fn of(method: &str) -> Option<Topic> {
        let prefix = method.split('.').next()?;
        Topic::ALL.into_iter().find(|t| serde_json::to_value(t).ok().as_ref().and_then(Value::as_str) == Some(prefix))
    }
}

#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct Empty {}

#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeParams {
    /// The topics wanted; all when absent.
    pub topics: Option<Vec<Topic>>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SubscribeResult {
    pub topics: Vec<Topic>,
}

/// What a reload changed (see `daemon.reload`).
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct ReloadResult {
    /// Account ids: these register now (when they have a registrar) ...
    pub accounts_added: Vec<String>,
    /// ... these unregister; their live calls go on ...
    pub accounts_removed: Vec<String>,
    /// ... and these take their new settings (registering anew when the
    /// registration itself changed).
    pub accounts_changed: Vec<String>,
    /// Keys whose new value waits for a restart (`sip`, `media.threads`,
    /// ...): the running value stays in force.
    pub restart_required: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusResult {
    pub version: String,
    pub uptime_ms: u64,
    /// SIP listening points, as `udp:HOST:PORT`, `tcp:...`, `tls:...`.
    pub sip_listen: Vec<String>,
    /// Where peers reach our SIP over UDP when it is not a listening
    /// address: `sip.public_address` (`IP`), or the NAT mapping a STUN
    /// server reported (`IP:PORT`). Absent: as listened on (a wildcard
    /// listener advertises, per peer, the address the route to it leaves from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_address: Option<String>,
    /// Number of live calls.
    pub calls: usize,
    pub agent_state: AgentState,
    pub accounts: Vec<AccountInfo>,
    pub audio: AudioStatus,
    pub recording_dir: String,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DialParams {
    /// A SIP URI (`sip:bob@127.0.0.1:5070`), or a number or user dialled
    /// at the account's domain.
    pub to: String,
    /// The account to call from; the first configured one when absent.
    pub account: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagParams {
    pub call: CallId,
    /// 1-32 of a-z and `_`: `escalate`, say.
    pub flag: String,
    /// False takes the flag off; true by default.
    pub on: Option<bool>,
}

/// `debug.stall`: how long the run loop blocks.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StallParams {
    pub ms: u64,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountParams {
    pub account: String,
}

/// An account as ops see it: never its password.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AccountInfo {
    pub account: String,
    pub aor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registrar: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound_proxy: Option<String>,
    pub transport: Transport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_answer_after_ms: Option<u64>,
    /// The registration as last reported.
    pub registration: Report,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AccountListResult {
    pub accounts: Vec<AccountInfo>,
}

/// `registration.state`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RegistrationEvent {
    pub account: String,
    #[serde(flatten)]
    pub report: Report,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentStateParams {
    /// `ready` takes calls; `not_ready` refuses them without ringing.
    pub state: AgentState,
}

/// What a countdown counts down to.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountdownKind {
    AutoAnswer,
}

/// `call.countdown`: when it starts, every second, and when it stops (with why).
#[derive(Debug, Serialize, JsonSchema)]
pub struct CallCountdownEvent {
    pub call: CallId,
    pub kind: CountdownKind,
    #[serde(flatten)]
    pub countdown: Countdown,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DialResult {
    pub call: CallId,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallParams {
    pub call: CallId,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectParams {
    pub call: CallId,
    /// `busy` (486, the default) or `decline` (603).
    #[serde(default)]
    pub reason: RejectReason,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CallListResult {
    pub calls: Vec<CallInfo>,
}

/// A live call as `call.list` shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CallInfo {
    #[serde(flatten)]
    pub summary: CallSummary,
    /// RTP/RTCP counters and quality, once media flows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaStats>,
    /// The recording, while there is one (`recording.state` tells changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingStatus>,
    /// The agent's marks (`call.flag`; `call.flags` tells changes).
    pub flags: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DtmfParams {
    pub call: CallId,
    /// Keys to send, in order: 0-9, *, #, A-D (at most 32).
    pub digits: String,
}

/// `call.dtmf`: the peer pressed a key.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DtmfEvent {
    pub call: CallId,
    pub digit: String,
    pub via: DtmfVia,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CallStatsResult {
    /// The call and its full media counters.
    pub call: CallInfo,
    /// The headline figures, as `call.quality` reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityEvent>,
}

#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioSelectParams {
    /// A capture device name from `audio.devices`; unchanged when absent.
    pub input: Option<String>,
    /// A playback device name from `audio.devices`; unchanged when absent.
    pub output: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioVolumeParams {
    /// Microphone gain, 0.0 (silent) to 2.0 (+6 dB); unchanged when absent.
    pub input: Option<f32>,
    /// Speaker gain, 0.0 to 2.0; unchanged when absent.
    pub output: Option<f32>,
}

/// `audio.devices`: what the sound system offers, and what is in use.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AudioDevicesResult {
    #[serde(flatten)]
    pub devices: DeviceList,
    pub in_use: AudioStatus,
}

/// Why `audio.device` was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AudioChange {
    /// `audio.select` switched devices.
    Selected,
    /// `audio.select` could not open what it was asked; nothing changed.
    SelectFailed,
    /// The sound card disappeared (unplugged) or could not be opened: null
    /// is used until it returns.
    Lost,
    /// The lost sound card is back in use.
    Reconnected,
    /// The sound card was opened: a call needs audio.
    Opened,
    /// No call has needed audio for a few seconds: the sound card is closed
    /// until one does.
    Idle,
}

/// `audio.device`: what changed, and what the daemon uses now.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AudioDeviceEvent {
    pub change: AudioChange,
    pub audio: AudioStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Sent when a subscriber fell so far behind that events were dropped for
/// it; the client should re-read state with `call.list`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OverflowEvent {
    pub missed: u64,
}

/// Notification names.
pub mod event {
    pub const CALL_STATE: &str = "call.state";
    pub const CALL_COUNTDOWN: &str = "call.countdown";
    pub const CALL_DTMF: &str = "call.dtmf";
    pub const CALL_QUALITY: &str = "call.quality";
    pub const AUDIO_DEVICE: &str = "audio.device";
    /// Microphone and speaker levels (dBFS, after the gains), every 240 ms during calls.
    pub const AUDIO_LEVEL: &str = "audio.level";
    pub const REGISTRATION_STATE: &str = "registration.state";
    pub const AGENT_STATE: &str = "agent.state";
    pub const CALLBACK_STATE: &str = "callback.state";
    pub const CALLBACK_COUNTDOWN: &str = "callback.countdown";
    /// A call's flags changed: all of them now.
    pub const CALL_FLAGS: &str = "call.flags";
    /// A recording started, paused, resumed or stopped.
    pub const RECORDING_STATE: &str = "recording.state";
    pub const RECORDING_SAVED: &str = "recording.saved";
    pub const RECORDING_FAILED: &str = "recording.failed";
    pub const EVENTS_OVERFLOW: &str = "events.overflow";
}
