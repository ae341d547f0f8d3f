//! The desk's vocabulary with the shell: the inputs it is handed (agent
//! commands, SIP signals, media reports, the pre-opened lines it dials
//! from, the clock running out), the outputs it asks the shell to carry
//! out, its replies to commands, and its errors.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::call::admission::{AgentState, AllowedPeer};
use crate::call::phone::{CallSummary, PhoneError};
use crate::call::{CallId, Countdown, Inbound, Signal, SipAction};
use crate::callback::{Callback, CallbackError, CallbackId, CountdownReport, Offer};
use crate::history::Record;
use crate::media::dtmf::DtmfVia;
use crate::media::params::StreamParams;
use crate::media::stream::MediaStats;
use crate::recording::{RecordingFormat, RecordingStatus};

/// What the shell hands the desk.
#[derive(Debug)]
pub enum Input {
    /// The agent (or the contact center) asks for something; it gets a [`Reply`].
    Command(Command),
    /// A new INVITE, not yet admitted: the desk decides and answers.
    Incoming { call: CallId, source: SocketAddr, inbound: Inbound },
    /// Something happened to one of our calls on the SIP side.
    Signal { call: CallId, signal: Signal },
    /// What the media path saw.
    Media(MediaReport),
    /// How a recording ended, from the recorder's thread.
    Recorder(RecorderReport),
    /// A line the shell opened ahead of need (see [`Line`]).
    Line(Line),
    /// Who may call us now (`sip.allow_from` and every address our
    /// registrars and proxies were located at): a later DNS lookup found
    /// one more.
    Trust(Vec<AllowedPeer>),
    /// The instant [`super::Desk::poll_timeout`] named has come.
    Timeout,
    /// At start: the open records a previous run stored.
    Restore(Vec<Record>),
    /// The daemon stops: every call is hung up.
    Shutdown,
}

/// What the agent asks of the desk.
#[derive(Debug)]
pub enum Command {
    /// Place a call to a URI or a number at the account's domain.
    Dial {
        to: String,
        account: Option<String>,
    },
    /// Answer, reject, hang up, hold, resume, mute, unmute or send keys.
    Call {
        call: CallId,
        command: crate::call::Command,
    },
    TransferBlind {
        call: CallId,
        to: String,
    },
    /// Hold the customer and dial the colleague.
    Consult {
        call: CallId,
        to: String,
    },
    /// Leave & transfer.
    CompleteTransfer {
        call: CallId,
        consult: CallId,
    },
    CancelConsult {
        call: CallId,
        consult: CallId,
    },
    Merge {
        calls: Vec<CallId>,
    },
    Record {
        call: CallId,
        action: RecordAction,
    },
    /// Mark (or unmark) a call for its history: `escalate`, say.
    Flag {
        call: CallId,
        flag: String,
        on: bool,
    },
    SetAgentState(AgentState),
    /// A new callback; `id` is the one to use when the offer names none.
    Offer {
        offer: Offer,
        id: CallbackId,
    },
    /// A callback booked for later.
    Schedule(Box<Booking>),
    /// Move a callback; the zone, notes and instructions given before stay
    /// when absent; a number is dialled from now on.
    Reschedule {
        callback: CallbackId,
        at: String,
        tz: Option<String>,
        notes: Option<String>,
        instructions: Option<String>,
        number: Option<String>,
    },
    /// Any other move of a callback.
    Callback {
        callback: CallbackId,
        command: crate::callback::Command,
    },
}

/// `callback.schedule`: a callback booked for later (`at` as the customer
/// said it); `id` is the one to use when the offer names none.
#[derive(Debug)]
pub struct Booking {
    pub offer: Offer,
    pub at: String,
    pub tz: Option<String>,
    pub notes: Option<String>,
    pub instructions: Option<String>,
    /// Booked from this live call: its callback (or its party) fills the gaps.
    pub from_call: Option<CallId>,
    pub id: CallbackId,
}

/// `call.record.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordAction {
    Start,
    Stop,
    Pause,
    Resume,
}

/// The desk's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Done,
    /// The call placed.
    Call(CallId),
    /// The consult call placed.
    Consult(CallId),
    /// Every call now in the conference.
    Conference(Vec<CallId>),
    Callback(CallbackId),
    /// Where the recording goes.
    Recording(PathBuf),
}

/// What the media path reports.
#[derive(Debug)]
pub enum MediaReport {
    /// The peer pressed a key (RFC 4733).
    Dtmf { call: CallId, digit: char },
    /// No RTP for longer than `media.media_timeout_ms`.
    Timeout { call: CallId },
    /// Time for this call's `call.quality`.
    Quality { call: CallId, stats: Box<MediaStats> },
    /// The shell stopped the call's media as asked; its last figures.
    Stopped { call: CallId, stats: Option<Box<MediaStats>> },
}

/// The recorder's word on a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecorderReport {
    /// Closed and sealed: the file, how much audio it holds, its size, and
    /// the frames the recorder has dropped so far, all recordings together
    /// (it fell behind: see `recorder`).
    Saved { call: CallId, path: PathBuf, duration_ms: u64, bytes: u64, frames_dropped_total: u64 },
    /// Could not be created or written (a full disk...): what reached the disk stays valid.
    Failed { call: CallId, reason: String },
}

/// What a new call needs that only the shell can provide: its id, a bound
/// RTP/RTCP port pair (binding takes ~150 µs, which a countdown's dial must
/// not wait for) and fresh random values for its SDP session and SRTP keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The id of the call placed on this line (an inbound call keeps the SIP side's id).
    pub call: CallId,
    pub rtp: SocketAddr,
    pub session_id: u64,
    pub key_salt: [u8; 30],
}

/// Something the shell must carry out, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Sip {
        call: CallId,
        action: SipAction,
    },
    Media(MediaCommand),
    Recorder(RecorderCommand),
    Event(Event),
    /// Save this snapshot in the history store.
    Store(Record),
}

#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// Give the call the port pair bound at `rtp` (a [`Line`]'s).
    Open {
        call: CallId,
        rtp: SocketAddr,
    },
    /// Start the call's media, or change it to what was just agreed.
    Start {
        call: CallId,
        negotiated: StreamParams,
    },
    /// Stop it and report back with [`MediaReport::Stopped`].
    Stop {
        call: CallId,
    },
    /// Give back a port pair that no call took (a line refused at once).
    Release {
        rtp: SocketAddr,
    },
    Mute {
        call: CallId,
        muted: bool,
    },
    /// Send keys as RFC 4733 events.
    Dtmf {
        call: CallId,
        digits: String,
    },
    Conference {
        call: CallId,
        joined: bool,
    },
    /// Hand the call's frames to the recorder at this rate, or stop.
    Record {
        call: CallId,
        rate: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum RecorderCommand {
    /// Open `path`; `metadata` starts its sidecar.
    Begin {
        call: CallId,
        path: PathBuf,
        rate: u32,
        format: RecordingFormat,
        metadata: Map<String, Value>,
    },
    Pause {
        call: CallId,
        paused: bool,
    },
    /// Close the file; `metadata` is added to its sidecar (the shell adds
    /// the recorder's own counters).
    End {
        call: CallId,
        metadata: Map<String, Value>,
    },
}

/// What the UI is told (the control layer writes each as a notification).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    CallState(Box<CallSummary>),
    CallCountdown {
        call: CallId,
        countdown: Countdown,
    },
    CallDtmf {
        call: CallId,
        digit: char,
        via: DtmfVia,
    },
    CallQuality {
        call: CallId,
        stats: Box<MediaStats>,
    },
    CallbackState(Box<Callback>),
    CallbackCountdown {
        callback: CallbackId,
        countdown: CountdownReport,
    },
    AgentState(AgentState),
    /// The agent's marks on a call changed (`call.flag`): all of them now.
    CallFlags {
        call: CallId,
        flags: Vec<String>,
    },
    /// A recording started, paused, resumed or stopped.
    RecordingState {
        call: CallId,
        status: RecordingStatus,
    },
    RecordingSaved {
        call: CallId,
        path: PathBuf,
        duration_ms: u64,
    },
    RecordingFailed {
        call: CallId,
        reason: String,
    },
}

/// A command the desk refused.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// The phone refused: no such call, or not in a state for this.
    #[error(transparent)]
    Phone(#[from] PhoneError),
    /// The callbacks refused: no such callback, closed, or not in a state for this.
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// `calls.max` calls are up already.
    #[error("the agent already has {max} calls (calls.max); hang one up first")]
    CallsMax { max: usize },
    /// The shell has no bound port pair ready.
    #[error("no RTP port available")]
    NoLine,
    /// The command's values cannot be used (a target that is no SIP URI...).
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The command does not apply now (recording refusals).
    #[error("{0}")]
    InvalidState(String),
}
