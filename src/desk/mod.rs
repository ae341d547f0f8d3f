//! The agent's desk: every product rule of softphoned in one sans-IO state
//! machine. It owns the phone (all calls and their links), the callbacks,
//! `calls.max`, the agent's ready state and who may ring, the recording
//! policy and file naming, the history record of each call, and the
//! follow-up of a peer's REFER. In the style of str0m's `Rtc`:
//! [`Desk::handle`] takes an input and the present, [`Desk::poll_output`]
//! gives what the shell must do, in order, and [`Desk::poll_timeout`] when
//! to come back. It never reads a clock, touches a socket, file or thread,
//! or draws a random number: ids, ports and keys come in as [`Line`]s.
//!
//! Effects are carried out through one internal queue, first in first out:
//! a call ending that moves its callback, which dials the next attempt,
//! which rings... each step is queued behind the ones before it rather
//! than run by recursion, so their order is the order they were decided.

mod calls;
mod config;
mod follow;
mod history;
mod recording;
mod vocabulary;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::call::admission::AgentState;
use crate::call::phone::{self, CallSummary, Phone};
use crate::callback::{self, Callback, Callbacks, Now};

pub use config::{DeskConfig, DialPlan, RecordingPolicy};
pub use vocabulary::{
    Booking, Command, DeskError, Event, Input, Line, MediaCommand, MediaReport, Output, RecordAction, RecorderCommand,
    RecorderReport, Reply,
};

/// Lines kept ready: a countdown's dial and a consult at the same instant
/// both find one, and the shell refills after every turn.
const SPARE_LINES: usize = 2;

/// A decision waiting in the queue to be carried out. Both kinds are
/// large (a callback's carries its whole card) and the queue holds a few
/// at a time: not worth a box each.
#[allow(clippy::large_enum_variant)]
enum Work {
    Call(phone::Output),
    Callback(callback::Output),
}

/// The agent's desk; see the module's documentation.
pub struct Desk {
    config: DeskConfig,
    phone: Phone,
    callbacks: Callbacks,
    agent_state: AgentState,
    /// Lines the shell opened for the next calls.
    lines: VecDeque<Line>,
    work: VecDeque<Work>,
    /// Dials decided by a timer or a peer's REFER that found no line: they
    /// go on as soon as the shell hands one in, in the same turn.
    parked: VecDeque<Work>,
    out: VecDeque<Output>,
    /// The calls being recorded, and whether each is paused.
    recordings: HashMap<String, recording::Recording>,
    /// Live (and just ended) calls' times and figures, for history.
    call_log: HashMap<String, history::CallLog>,
    /// The present of the input being handled.
    now: Now,
    /// The soonest deadline of any call or callback, kept after each input
    /// so that asking costs nothing however many calls there are.
    next_deadline: Option<Instant>,
    /// A call or callback moved since the deadline was last worked out:
    /// inputs that only report (quality, keys, a line, a media stop) do
    /// not cost a look at every call.
    deadlines_moved: bool,
}

impl Desk {
    pub fn new(config: DeskConfig, now: Now) -> Desk {
        Desk {
            phone: Phone::new(config.hold_on_answer),
            callbacks: Callbacks::new(config.callback),
            agent_state: config.agent_state,
            config,
            lines: VecDeque::new(),
            work: VecDeque::new(),
            parked: VecDeque::new(),
            out: VecDeque::new(),
            recordings: HashMap::new(),
            call_log: HashMap::new(),
            now,
            next_deadline: None,
            deadlines_moved: false,
        }
    }

    /// The configuration was reloaded: new calls, callbacks' timers armed
    /// from now on and new admissions follow it; live calls keep theirs,
    /// and the agent's state is the agent's.
    pub fn reconfigure(&mut self, config: DeskConfig) {
        self.phone.set_hold_on_answer(config.hold_on_answer);
        self.callbacks.set_policy(config.callback);
        self.config = config;
    }

    /// Take one input at `now`. A command gets its reply; every other input
    /// replies [`Reply::Done`]. What follows from it waits in
    /// [`Desk::poll_output`].
    pub fn handle(&mut self, input: Input, now: Now) -> Result<Reply, DeskError> {
        self.now = now;
        let reply = match input {
            Input::Command(command) => self.command(command),
            Input::Incoming { call, source, inbound } => {
                self.incoming(call, source, inbound);
                Ok(Reply::Done)
            }
            Input::Signal { call, signal } => {
                let outputs = self.phone.signal(&call, signal, now.at);
                self.queue_calls(outputs);
                Ok(Reply::Done)
            }
            Input::Media(report) => {
                self.media_report(report);
                Ok(Reply::Done)
            }
            Input::Recorder(report) => {
                self.recorder_report(report);
                Ok(Reply::Done)
            }
            Input::Line(line) => {
                self.lines.push_back(line);
                let parked = std::mem::take(&mut self.parked);
                self.work.extend(parked);
                Ok(Reply::Done)
            }
            Input::Trust(peers) => {
                self.config.inbound.allowed = peers;
                Ok(Reply::Done)
            }
            Input::Timeout => {
                self.deadlines_moved = true;
                let calls = self.phone.poll(now.at);
                self.queue_calls(calls);
                let callbacks = self.callbacks.poll(now);
                self.queue_callbacks(callbacks);
                Ok(Reply::Done)
            }
            Input::Restore(records) => {
                self.restore(records);
                Ok(Reply::Done)
            }
            Input::Shutdown => {
                for call in self.phone.list() {
                    if let Ok(outputs) = self.phone.command(&call.call, crate::call::Command::Hangup, now.at) {
                        self.queue_calls(outputs);
                    }
                }
                Ok(Reply::Done)
            }
        };
        self.run_queue();
        if std::mem::take(&mut self.deadlines_moved) {
            self.next_deadline =
                [self.phone.next_deadline(), self.callbacks.next_deadline()].into_iter().flatten().min();
        }
        reply
    }

    /// The next thing the shell must do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to hand the desk [`Input::Timeout`]; `None`: nothing is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_deadline
    }

    /// How many more [`Line`]s the shell should open: the spares, and one
    /// for each dial waiting for a line.
    pub fn lines_wanted(&self) -> usize {
        SPARE_LINES.saturating_sub(self.lines.len()) + self.parked.len()
    }

    /// Live calls, oldest first.
    pub fn calls(&self) -> Vec<CallSummary> {
        self.phone.list()
    }

    /// How many calls are live (without listing them).
    pub fn call_count(&self) -> usize {
        self.phone.len()
    }

    pub fn call(&self, id: &str) -> Option<CallSummary> {
        self.phone.get(id).map(phone::summary)
    }

    /// A live call's recording, while there is one.
    pub fn call_recording(&self, id: &str) -> Option<crate::recording::RecordingStatus> {
        self.recordings.get(id).map(recording::Recording::status)
    }

    /// Open callbacks, oldest offer first.
    pub fn callbacks(&self) -> Vec<Callback> {
        self.callbacks.list()
    }

    pub fn agent_state(&self) -> AgentState {
        self.agent_state
    }

    fn emit(&mut self, output: Output) {
        self.out.push_back(output);
    }

    fn queue_calls(&mut self, outputs: Vec<phone::Output>) {
        self.deadlines_moved = true;
        self.work.extend(outputs.into_iter().map(Work::Call));
    }

    fn queue_callbacks(&mut self, outputs: Vec<callback::Output>) {
        self.deadlines_moved = true;
        self.work.extend(outputs.into_iter().map(Work::Callback));
    }

    /// A dial decided by a timer or a peer would find no line now, though
    /// `calls.max` allows it: it waits for the shell's next line.
    fn must_wait_for_line(&self, work: &Work) -> bool {
        let dials = match work {
            Work::Call(output) => matches!(output.effect, crate::call::Effect::Dial(_)),
            Work::Callback(output) => matches!(output.effect, callback::Effect::Dial { .. }),
        };
        dials && self.lines.is_empty() && self.phone.len() < self.config.calls_max
    }

    /// Carry out every queued decision, and what each one leads to, in order.
    fn run_queue(&mut self) {
        while let Some(work) = self.work.pop_front() {
            if self.must_wait_for_line(&work) {
                self.parked.push_back(work);
                continue;
            }
            match work {
                Work::Call(output) => self.call_effect(output),
                Work::Callback(output) => self.callback_effect(output),
            }
        }
    }
}
