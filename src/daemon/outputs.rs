//! Carrying out what the desk asks, in its order: SIP actions to the
//! adapter, media commands and recorder jobs to the media thread (the
//! recorder's jobs in order with the frames), snapshots to the store,
//! events to the subscribers.
//! Also keeping the desk supplied with lines (ids, bound ports, keys).

use tokio::task::JoinHandle;

use super::Daemon;
use crate::callback::Now;
use crate::control::api::{self, event};
use crate::control::server::Notification;
use crate::desk::{Event, Input, Line, MediaCommand, Output};

impl Daemon {
    /// Carry out every output the desk has, then refill its lines. Returns
    /// the tasks ending dialogs (BYE, CANCEL), for a shutdown that waits.
    pub(super) fn carry_out(&mut self, now: Now) -> Vec<JoinHandle<()>> {
        let mut endings = Vec::new();
        loop {
            while let Some(output) = self.desk.poll_output() {
                self.count(|m| m.output(&output));
                match output {
                    Output::Sip { call, action } => endings.extend(self.sip.execute(&call, action)),
                    Output::Media(command) => self.media_command(command, now),
                    Output::Recorder(command) => self.media.recorder(command),
                    Output::Event(event) => self.publish(notification(event)),
                    Output::Store(record) => self.store.save(record),
                }
            }
            // A dial that waited for a line goes on with it: carry that out too.
            if !self.supply_lines(now) {
                return endings;
            }
        }
    }

    fn media_command(&mut self, command: MediaCommand, now: Now) {
        match command {
            MediaCommand::Open { call, rtp } => self.media.open(&call, rtp),
            MediaCommand::Start { call, negotiated } => {
                self.media.start_media(&call, negotiated);
                self.audio_needed_by(&call, now.at);
            }
            MediaCommand::Stop { call } => {
                self.audio_released_by(&call, now.at);
                self.media.stop(&call);
            }
            MediaCommand::Release { rtp } => self.media.release(rtp),
            MediaCommand::Mute { call, muted } => self.media.set_muted(&call, muted),
            MediaCommand::Dtmf { call, digits } => self.media.queue_dtmf(&call, digits),
            MediaCommand::Conference { call, joined } => self.media.set_conference(&call, joined),
            MediaCommand::Record { call, rate } => self.media.set_recording(&call, rate),
        }
    }

    /// Open the lines the desk wants: binding a port pair takes ~150 µs,
    /// which is spent here, after a turn, rather than before a dial. A bind
    /// that fails (ports or descriptors exhausted) is tried again on the
    /// next turn or tick. True when lines were handed in.
    fn supply_lines(&mut self, now: Now) -> bool {
        let wanted = self.desk.lines_wanted();
        for _ in 0..wanted {
            let rtp = match self.media.bind_line() {
                Ok(rtp) => rtp,
                Err(e) => {
                    tracing::warn!(error = %e, "no spare RTP port pair");
                    return false;
                }
            };
            let line = Line {
                call: self.sip.new_call_id(),
                rtp,
                session_id: rand::random::<u32>().into(),
                key_salt: rand::random(),
            };
            if let Err(e) = self.desk.handle(Input::Line(line), now) {
                tracing::warn!(error = %e, "line refused");
            }
        }
        wanted > 0
    }
}

/// A desk event as the control protocol writes it.
fn notification(desk_event: Event) -> Notification {
    match desk_event {
        Event::CallState(summary) => Notification::new(event::CALL_STATE, &value(summary)),
        Event::CallCountdown { call, countdown } => {
            let kind = api::CountdownKind::AutoAnswer;
            Notification::new(event::CALL_COUNTDOWN, &value(api::CallCountdownEvent { call, kind, countdown }))
        }
        Event::CallDtmf { call, digit, via } => {
            Notification::new(event::CALL_DTMF, &value(api::DtmfEvent { call, digit: digit.to_string(), via }))
        }
        Event::CallQuality { call, stats } => {
            Notification::new(event::CALL_QUALITY, &value(api::QualityEvent::new(call, &stats)))
        }
        Event::CallbackState(callback) => Notification::new(event::CALLBACK_STATE, &value(callback)),
        Event::CallbackCountdown { callback, countdown } => {
            Notification::new(event::CALLBACK_COUNTDOWN, &value(api::CallbackCountdownEvent { callback, countdown }))
        }
        Event::AgentState(state) => Notification::new(event::AGENT_STATE, &value(api::AgentStateParams { state })),
        Event::CallFlags { call, flags } => {
            Notification::new(event::CALL_FLAGS, &value(api::CallFlagsEvent { call, flags }))
        }
        Event::RecordingState { call, status } => {
            Notification::new(event::RECORDING_STATE, &value(api::RecordingStateEvent { call, status }))
        }
        Event::RecordingSaved { call, path, duration_ms } => {
            Notification::new(event::RECORDING_SAVED, &value(api::RecordingSavedEvent { call, path, duration_ms }))
        }
        Event::RecordingFailed { call, reason } => {
            Notification::new(event::RECORDING_FAILED, &value(api::RecordingFailedEvent { call, reason }))
        }
    }
}

fn value(params: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(params).expect("plain struct")
}
