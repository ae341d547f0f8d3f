//! A real linphone-daemon (liblinphone 5.1, Debian `linphone-cli`) on
//! 127.0.0.1 for interop tests of transfers: unlike baresip it carries a
//! `Replaces` header from a REFER's Refer-To into its INVITE and says
//! `Supported: replaces`. It auto-answers, sends a tone from a WAV file into
//! a call on command, and is driven over its `--pipe` Unix socket.
//!
//! ```ignore
//! let mut lp = Linphone::start(&dir.join("customer"), "customer", 700.0);
//! // ... the daemon dials lp.sip_uri(); linphone answers by itself ...
//! let id = lp.wait_call_state(state::STREAMS_RUNNING, Duration::from_secs(10)).await.id;
//! lp.play_tone(id);
//! lp.terminate(id);
//! ```
//!
//! Quirks of 5.1.65, found the hard way:
//! - It needs `$HOME/.local/share/linphone` to exist (its database goes
//!   there), so each instance gets a HOME of its own in its folder.
//! - Without `bind_address=127.0.0.1` in both `[sip]` and `[rtp]`, and
//!   `guess_hostname=0` with an explicit contact, its SDP and Contact name
//!   whatever address it guesses; every test peer must stay on loopback.
//! - The pipe is `/tmp/NAME` whatever NAME is. A reply has no terminator
//!   (`Status: Ok\n\nId: 7\n`) but comes in one write, so one reply is what
//!   one read returns once a `Status:` line is in.
//! - Events are not pushed: they queue per connection, from its opening,
//!   and `pop-event` takes them one at a time. So one connection is opened
//!   at start and kept for commands and events alike.
//! - States arrive as `LinphoneCallOutgoingInit`, `IncomingReceived`,
//!   `Connected`, `StreamsRunning`, `Pausing`, `Paused`, `Refered`, `End`,
//!   `Released`, each with the call's `Id`.
//! - With no soundcard and no file playing it sends no RTP at all, only a
//!   STUN keep-alive every 0.5 s: play a tone wherever it should be heard.
//!   It offers and answers PCMU only here, so captures decode.
//! - `call-stats` crashes it; it cannot record what it hears, so what it is
//!   sent must be captured off the wire (its ports: [`Linphone::rtp_ports`]).
#![allow(dead_code)] // each test binary uses its own subset

use std::fs;
use std::io::{Read, Write};
use std::net::UdpSocket;
use std::ops::RangeInclusive;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(10);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);
/// How many RTP ports (even ones, each with its RTCP neighbour) it may use.
const RTP_PORTS: u16 = 20;
const TONE_SECS: u32 = 30;

/// Call states linphone-daemon reports (the `Event:` line without `LinphoneCall`).
pub mod state {
    pub const OUTGOING_INIT: &str = "OutgoingInit";
    pub const INCOMING_RECEIVED: &str = "IncomingReceived";
    pub const CONNECTED: &str = "Connected";
    pub const STREAMS_RUNNING: &str = "StreamsRunning";
    pub const PAUSED: &str = "Paused";
    pub const REFERED: &str = "Refered";
    pub const END: &str = "End";
    pub const RELEASED: &str = "Released";
}

/// One `call-state-changed` event.
#[derive(Debug, Clone)]
pub struct CallEvent {
    /// e.g. [`state::STREAMS_RUNNING`].
    pub state: String,
    pub id: u32,
    /// The `From:` line as linphone shows it.
    pub from: String,
}

/// A running linphone-daemon with its own folder, HOME, config and ports.
pub struct Linphone {
    dir: PathBuf,
    pub user: String,
    pub sip_port: u16,
    /// Where it may open RTP (and RTCP) sockets.
    pub rtp_ports: RangeInclusive<u16>,
    pipe: PathBuf,
    child: Option<Child>,
    connection: Option<UnixStream>,
    /// Every call event popped so far.
    events: Vec<CallEvent>,
    /// Events before this index were consumed by a wait.
    event_cursor: usize,
}

impl Linphone {
    /// Write config and a `tone_hz` tone (half scale, 8 kHz) into `dir`
    /// (created if missing; one folder per instance), start linphone-daemon
    /// on fresh loopback ports in auto-answer mode and open its pipe.
    /// Panics with its log if it does not start.
    pub fn start(dir: &Path, user: &str, tone_hz: f64) -> Linphone {
        let home = dir.join("home");
        fs::create_dir_all(home.join(".local/share/linphone")).unwrap();
        write_tone(&dir.join("tone.wav"), tone_hz);
        let sip_port = free_udp_ports(1);
        let rtp_base = free_udp_ports(RTP_PORTS);
        let mut linphone = Linphone {
            dir: dir.to_path_buf(),
            user: user.into(),
            sip_port,
            rtp_ports: rtp_base..=rtp_base + RTP_PORTS - 1,
            pipe: PathBuf::from(format!("/tmp/softphoned-lp-{}-{sip_port}", std::process::id())),
            child: None,
            connection: None,
            events: Vec::new(),
            event_cursor: 0,
        };
        fs::write(dir.join("lp.rc"), linphone.config()).unwrap();
        linphone.spawn_and_connect(&home);
        // μ-law only, so that what it is sent and sends decodes from a capture.
        linphone.command_ok("audio-codec-disable ALL");
        linphone.command_ok("audio-codec-enable PCMU/8000/1");
        linphone
    }

    fn config(&self) -> String {
        let (user, port) = (&self.user, self.sip_port);
        let (first, last) = (self.rtp_ports.start(), self.rtp_ports.end());
        format!(
            "[sip]\nsip_port={port}\nsip_tcp_port=-1\nsip_tls_port=-1\nuse_ipv6=0\nipv6_migration_done=1\n\
             guess_hostname=0\ncontact=sip:{user}@127.0.0.1:{port}\nbind_address=127.0.0.1\n\
             [rtp]\nbind_address=127.0.0.1\naudio_rtp_port={first}-{last}\n\
             [sound]\nechocancellation=0\n\
             [video]\ncapture=0\ndisplay=0\nautomatically_initiate=0\nautomatically_accept=0\n"
        )
    }

    fn spawn_and_connect(&mut self, home: &Path) {
        let _ = fs::remove_file(&self.pipe);
        let pipe_name = self.pipe.file_name().unwrap().to_str().unwrap().to_string();
        let output = fs::File::create(self.dir.join("stdout.txt")).unwrap();
        let child = Command::new("linphone-daemon")
            .current_dir(&self.dir)
            .env("HOME", home)
            .args(["--config", "lp.rc", "--pipe", &pipe_name, "--auto-answer", "--log"])
            .arg(self.dir.join("linphone.log"))
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .expect("linphone-daemon starts");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!("linphone-daemon exited with {status}:\n{}", self.log());
            }
            // Its SIP socket is bound before the pipe is created.
            if let Ok(stream) = UnixStream::connect(&self.pipe) {
                stream.set_read_timeout(Some(POLL)).unwrap();
                self.connection = Some(stream);
                return;
            }
            if Instant::now() >= deadline {
                panic!("linphone-daemon did not open {} in {START_TIMEOUT:?}:\n{}", self.pipe.display(), self.log());
            }
            std::thread::sleep(POLL);
        }
    }

    /// `sip:USER@127.0.0.1:PORT`.
    pub fn sip_uri(&self) -> String {
        format!("sip:{}@127.0.0.1:{}", self.user, self.sip_port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Send one command and return its reply (`Status: Ok\n\n...`); panics
    /// if none comes in 5 s.
    pub fn command(&mut self, command: &str) -> String {
        let mut connection = self.connection.as_ref().expect("linphone-daemon is stopped");
        if let Err(e) = connection.write_all(format!("{command}\n").as_bytes()) {
            panic!("linphone pipe write failed: {e}\n{}", self.log());
        }
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut reply = Vec::new();
        let mut buffer = [0u8; 65536];
        while !String::from_utf8_lossy(&reply).contains("Status: ") {
            match connection.read(&mut buffer) {
                Ok(0) => panic!("linphone-daemon closed its pipe on {command:?}:\n{}", self.log()),
                Ok(n) => reply.extend_from_slice(&buffer[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("linphone pipe read failed: {e}\n{}", self.log()),
            }
            if Instant::now() >= deadline {
                panic!("linphone-daemon: no reply to {command:?} in {COMMAND_TIMEOUT:?}:\n{}", self.log());
            }
        }
        String::from_utf8_lossy(&reply).into_owned()
    }

    /// [`Self::command`], panicking unless it says `Status: Ok`.
    pub fn command_ok(&mut self, command: &str) -> String {
        let reply = self.command(command);
        assert!(reply.starts_with("Status: Ok"), "linphone {command:?}: {reply}");
        reply
    }

    /// Pop every queued event into [`Self::events`].
    fn pop_events(&mut self) {
        loop {
            let reply = self.command("pop-event");
            if let Some(event) = parse_call_event(&reply) {
                self.events.push(event);
            }
            // `Size` is what is left after this one.
            let left = field(&reply, "Size").and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
            if left == 0 {
                return;
            }
        }
    }

    /// Every call event so far, consumed or not.
    pub fn events(&mut self) -> &[CallEvent] {
        self.pop_events();
        &self.events
    }

    /// Wait for the first event not yet consumed that matches, consuming it
    /// and those before it; panics with all events and the log on timeout.
    pub async fn wait_event(&mut self, mut matches: impl FnMut(&CallEvent) -> bool, timeout: Duration) -> CallEvent {
        let deadline = Instant::now() + timeout;
        loop {
            self.pop_events();
            if let Some(offset) = self.events[self.event_cursor..].iter().position(&mut matches) {
                self.event_cursor += offset + 1;
                return self.events[self.event_cursor - 1].clone();
            }
            if Instant::now() >= deadline {
                panic!(
                    "linphone {}: no matching event in {timeout:?}; events:\n{:#?}\n--- linphone.log ---\n{}",
                    self.user,
                    self.events,
                    self.log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// [`Self::wait_event`] for a call `state` (of any call).
    pub async fn wait_call_state(&mut self, state: &str, timeout: Duration) -> CallEvent {
        self.wait_event(|e| e.state == state, timeout).await
    }

    /// [`Self::wait_event`] for a call `state` of call `id`.
    pub async fn wait_state_of(&mut self, id: u32, state: &str, timeout: Duration) -> CallEvent {
        self.wait_event(|e| e.id == id && e.state == state, timeout).await
    }

    /// How long call `id` has been up, in whole seconds (`call-status`).
    pub fn call_duration(&mut self, id: u32) -> u64 {
        let reply = self.command_ok(&format!("call-status {id}"));
        field(&reply, "Duration").and_then(|d| d.parse().ok()).unwrap_or(0)
    }

    /// Wait until call `id` has been up `secs` seconds; panics on timeout.
    pub async fn wait_call_duration(&mut self, id: u32, secs: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.call_duration(id) < secs {
            if Instant::now() >= deadline {
                panic!("linphone {}: call {id} not up {secs} s in {timeout:?}\n{}", self.user, self.log());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Send the tone into call `id` (instead of the silence it sends without a soundcard).
    pub fn play_tone(&mut self, id: u32) {
        let tone = self.dir.join("tone.wav");
        self.command_ok(&format!("incall-player-start {} {id}", tone.display()));
    }

    /// Hang up call `id` (a BYE, or CANCEL before it is answered).
    pub fn terminate(&mut self, id: u32) {
        self.command_ok(&format!("terminate {id}"));
    }

    /// Every SIP message it received or sent, in order, from its log.
    pub fn sip_messages(&self) -> Vec<SipMessage> {
        let log = fs::read(self.dir.join("linphone.log")).unwrap_or_default();
        let mut messages: Vec<SipMessage> = Vec::new();
        let mut in_message = false;
        for line in String::from_utf8_lossy(&log).lines() {
            let received = line.contains("]: received [") && line.contains("new bytes from");
            if received || line.contains("]: message sent to [") {
                messages.push(SipMessage { received, text: String::new() });
                in_message = true;
            } else if is_log_line(line) {
                in_message = false;
            } else if in_message {
                let text = &mut messages.last_mut().unwrap().text;
                text.push_str(line.trim_end_matches('\r'));
                text.push('\n');
            }
        }
        messages.iter_mut().for_each(|m| m.text = m.text.trim().to_string());
        messages
    }

    /// Its own log file (SIP messages included), then what it printed.
    pub fn log(&self) -> String {
        let read = |name: &str| fs::read(self.dir.join(name)).map(|b| String::from_utf8_lossy(&b).into_owned());
        format!(
            "{}\n--- stdout ---\n{}",
            read("linphone.log").unwrap_or_default(),
            read("stdout.txt").unwrap_or_default()
        )
    }

    /// Kill it (calls are not hung up) and remove its pipe. Idempotent.
    pub fn kill(&mut self) {
        self.connection = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_file(&self.pipe);
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One SIP message as a peer logged it (linphone here, or sipp's `-trace_msg`).
#[derive(Debug, Clone)]
pub struct SipMessage {
    /// Received by the peer, else sent by it.
    pub received: bool,
    /// Start line, headers, blank line, body; lines end in `\n`.
    pub text: String,
}

impl SipMessage {
    pub fn starts(&self, start: &str) -> bool {
        self.text.starts_with(start)
    }

    /// The value of the first header `name` (case-insensitive, long form).
    pub fn header(&self, name: &str) -> Option<&str> {
        let head = self.text.split("\n\n").next().unwrap();
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let line = head.lines().find(|l| l.to_ascii_lowercase().starts_with(&prefix))?;
        Some(line[prefix.len()..].trim())
    }

    pub fn call_id(&self) -> &str {
        self.header("Call-ID").unwrap_or_else(|| panic!("no Call-ID:\n{}", self.text))
    }

    /// The `tag` parameter of `header` (From or To).
    pub fn tag(&self, header: &str) -> String {
        let value = self.header(header).unwrap_or_else(|| panic!("no {header}:\n{}", self.text));
        let tag = value.split(";tag=").nth(1).unwrap_or_else(|| panic!("no tag in {header}:\n{}", self.text));
        tag.split(';').next().unwrap().to_string()
    }

    /// The port of the SDP's `m=audio` line.
    pub fn audio_port(&self) -> u16 {
        let port = self.text.lines().find_map(|l| l.strip_prefix("m=audio ")?.split(' ').next()?.parse().ok());
        port.unwrap_or_else(|| panic!("no m=audio:\n{}", self.text))
    }
}

/// A line of linphone's own logging (`2026-11-21 20:36:42:862 belle-sip-...`),
/// which ends a logged SIP message.
fn is_log_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() > 24 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-' && bytes[10] == b' '
}

/// Whether linphone-daemon is installed. Under `CI=true` a missing one
/// fails the test loudly; elsewhere it is skipped with a line saying so.
pub fn installed() -> bool {
    super::require_tool("linphone-daemon")
}

/// `Key: value` of a reply.
fn field<'a>(reply: &'a str, key: &str) -> Option<&'a str> {
    reply.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')).map(str::trim)
}

fn parse_call_event(reply: &str) -> Option<CallEvent> {
    if field(reply, "Event-type")? != "call-state-changed" {
        return None;
    }
    Some(CallEvent {
        state: field(reply, "Event")?.trim_start_matches("LinphoneCall").to_string(),
        id: field(reply, "Id")?.parse().ok()?,
        from: field(reply, "From").unwrap_or_default().to_string(),
    })
}

/// A 16-bit mono 8 kHz WAV of a `hz` sine at half scale, 30 s long.
fn write_tone(path: &Path, hz: f64) {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..8000 * TONE_SECS {
        let phase = 2.0 * std::f64::consts::PI * hz * f64::from(n) / 8000.0;
        writer.write_sample((16000.0 * phase.sin()) as i16).unwrap();
    }
    writer.finalize().unwrap();
}

/// The first of `count` consecutive loopback UDP ports free right now, even
/// (RTP's convention) and below 60000.
fn free_udp_ports(count: u16) -> u16 {
    for _ in 0..200 {
        let base = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port() & !1;
        if (1024..60000).contains(&base) && (base..base + count).all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no {count} free consecutive loopback UDP ports");
}
