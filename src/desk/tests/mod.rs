//! The desk played in simulated time, with no socket: a [`Bench`] feeds it
//! inputs at chosen instants, stands in for the shell (lines, media stops),
//! and keeps every output so a test can read what the network, the media
//! path, the UI and the store would have seen.

mod callbacks;
mod limits;
mod offers;
mod recording;
mod transfers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::*;
use crate::call::{CallState, Inbound, Signal, SipAction};
use crate::callback::Now;

/// The shell's side of the desk, in simulated time.
pub(super) struct Bench {
    pub desk: Desk,
    /// Simulated time zero.
    pub t0: Instant,
    pub wall0: Timestamp,
    /// Every output so far, in order, with when it came out.
    pub outputs: Vec<(Instant, Output)>,
    next_line: u32,
}

/// An account "cc" at pbx.test that places calls by default.
pub(super) fn config() -> DeskConfig {
    let mut config = DeskConfig::default();
    config.callback.no_answer_timeout = Duration::from_secs(30);
    config.dial_plan.default_account = Some("cc".into());
    config.dial_plan.domains.insert("cc".into(), "pbx.test".into());
    config.recording.dir = PathBuf::from("/rec");
    config.recording.local_aors.insert("cc".into(), "sip:agent@pbx.test".into());
    config
}

impl Bench {
    pub fn new(config: DeskConfig) -> Bench {
        let t0 = crate::timing::simulation_epoch();
        let wall0: Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        let mut bench = Bench {
            desk: Desk::new(config, Now { at: t0, wall: wall0 }),
            t0,
            wall0,
            outputs: Vec::new(),
            next_line: 0,
        };
        bench.refill(t0);
        bench
    }

    /// The present `ms` milliseconds after time zero, in both clocks.
    pub fn at(&self, ms: u64) -> Now {
        self.at_us(ms * 1000)
    }

    pub fn at_us(&self, us: u64) -> Now {
        let d = Duration::from_micros(us);
        Now { at: self.t0 + d, wall: self.wall0 + d }
    }

    /// Hand the desk `input` at `now`, then do what the shell does: carry
    /// out (record) the outputs, report stopped media, refill the lines.
    pub fn handle(&mut self, input: Input, now: Now) -> Result<Reply, DeskError> {
        let reply = self.desk.handle(input, now);
        self.drain(now);
        reply
    }

    pub fn command(&mut self, command: Command, ms: u64) -> Result<Reply, DeskError> {
        self.handle(Input::Command(command), self.at(ms))
    }

    pub fn signal(&mut self, call: &str, signal: Signal, ms: u64) {
        self.handle(Input::Signal { call: call.into(), signal }, self.at(ms)).unwrap();
    }

    /// Advance simulated time to `until`, firing every deadline on its exact instant.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(due) = self.desk.poll_timeout().filter(|due| *due <= until) {
            let now = Now { at: due, wall: self.wall0 + (due - self.t0) };
            self.handle(Input::Timeout, now).unwrap();
        }
    }

    pub fn run_ms(&mut self, ms: u64) {
        self.run_until(self.t0 + Duration::from_millis(ms));
    }

    fn drain(&mut self, now: Now) {
        loop {
            while let Some(output) = self.desk.poll_output() {
                if let Output::Media(MediaCommand::Stop { call }) = &output {
                    let stopped = MediaReport::Stopped { call: call.clone(), stats: None };
                    self.outputs.push((now.at, output));
                    self.desk.handle(Input::Media(stopped), now).unwrap();
                    continue;
                }
                self.outputs.push((now.at, output));
            }
            // A dial that waited for a line goes on with it, as in the shell.
            if !self.refill(now.at) {
                return;
            }
        }
    }

    /// Hand the desk the lines it wants; true when there were any.
    fn refill(&mut self, at: Instant) -> bool {
        let wanted = self.desk.lines_wanted();
        for _ in 0..wanted {
            self.next_line += 1;
            let n = self.next_line;
            let rtp: SocketAddr = format!("127.0.0.1:{}", 40000 + 2 * n).parse().unwrap();
            let line = Line { call: format!("c{n}"), rtp, session_id: n.into(), key_salt: [n as u8; 30] };
            let now = Now { at, wall: self.wall0 + (at - self.t0) };
            self.desk.handle(Input::Line(line), now).unwrap();
        }
        wanted > 0
    }

    /// Every SIP action so far, with its call and when it went out.
    pub fn sip(&self) -> Vec<(Instant, String, SipAction)> {
        self.outputs
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Sip { call, action } => Some((*at, call.clone(), action.clone())),
                _ => None,
            })
            .collect()
    }

    /// The INVITEs sent: when, which call, to whom.
    pub fn invites(&self) -> Vec<(Instant, String, String)> {
        self.sip()
            .into_iter()
            .filter_map(|(at, call, action)| match action {
                SipAction::Invite { to, .. } => Some((at, call, to)),
                _ => None,
            })
            .collect()
    }

    pub fn events(&self) -> Vec<Event> {
        self.outputs
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    /// The states `call.state` published for `call`, in order.
    pub fn call_states(&self, call: &str) -> Vec<CallState> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::CallState(s) if s.call == call => Some(s.state),
                _ => None,
            })
            .collect()
    }

    /// What the store was handed.
    pub fn stored(&self) -> Vec<crate::history::Record> {
        self.outputs
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Store(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    /// Connect an outbound call as the peer would: 180 then 200 with SDP.
    pub fn answer(&mut self, call: &str, ms: u64) {
        self.signal(call, Signal::Progress { code: 180, sdp: None }, ms);
        let answered =
            Signal::Answered { sdp: peer_sdp("0 101", "sendrecv"), session_timer: None, supports_replaces: true };
        self.signal(call, answered, ms);
    }

    /// An INVITE from `from` at `ms`; the call gets id `call`.
    pub fn ring(&mut self, call: &str, from: &str, ms: u64) {
        let inbound = Inbound { from: from.into(), offer: peer_sdp("0 101", "sendrecv"), ..Inbound::default() };
        let source = "127.0.0.1:5070".parse().unwrap();
        self.handle(Input::Incoming { call: call.into(), source, inbound }, self.at(ms)).unwrap();
    }
}

/// A peer's SDP with PCMU and telephone-event, in `direction`.
pub(super) fn peer_sdp(pts: &str, direction: &str) -> Vec<u8> {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP {pts}\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
    .into_bytes()
}
