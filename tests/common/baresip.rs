//! A real baresip (1.0.0, Debian `baresip-core`) on 127.0.0.1 for interop
//! tests of the media engine: it sends a sine tone from a WAV file, records
//! what it sends and what it hears (module `sndfile`), and is driven over
//! `ctrl_tcp` (netstring-framed JSON; responses and events share the
//! connection). It runs with `-s`, so its log holds every SIP message.
//!
//! ```ignore
//! let mut bare = Baresip::start(dir.path(), BaresipOptions { codecs: vec![Codec::G722], tone_hz: Some(600.0), ..Default::default() });
//! bare.dial(&softphoned.uri("agent"));
//! bare.wait_event_type(event::ESTABLISHED, Duration::from_secs(5)).await;
//! bare.wait_received_audio(Duration::from_secs(2), Duration::from_secs(10)).await;
//! bare.hangup();
//! bare.wait_event_type(event::CLOSED, Duration::from_secs(5)).await;
//! let heard = Recording::read(&bare.received_audio());
//! ```
//!
//! What baresip 1.0.0 emits (`"type"` of an event; `"param"` in brackets):
//! - incoming call, manual answer mode: `CALL_INCOMING` (caller URI); none in auto mode
//! - outgoing call: `CALL_RINGING` (peer URI) on 180
//! - answered, both directions: `CALL_ESTABLISHED` (peer URI), then `CALL_RTPESTAB` ("audio") on the first RTP
//! - SDES-SRTP agreed: `CALL_MENC` ("0,audio,AES_CM_128_HMAC_SHA1_80"), before `CALL_ESTABLISHED`
//! - ended: `CALL_CLOSED` (reason: "Connection reset by user" on our hangup, "Connection reset by peer"
//!   on the peer's BYE, "end of file" when the tone file ran out, else a SIP status like "486 Busy Here")
//! - RFC 4733 DTMF received: `CALL_DTMF_START` (the digit), then `CALL_DTMF_END` (no param)
//! - hold: there is no hold event. The held side gets `CALL_REMOTE_SDP` ("offer") for the
//!   re-INVITE, the holding side `CALL_REMOTE_SDP` ("answer"); which direction the SDP
//!   carried is read from the SIP trace: [`Baresip::last_received_sdp_direction`].
//! - every offer/answer also gives `CALL_LOCAL_SDP`/`CALL_REMOTE_SDP` and a `CALL_RTCP`.
//!
//! Quirks of 1.0.0 (more in `tests/baresip/options.rs` and `audio.rs`): the
//! tone file is read whole at call start and the call ends when it runs out.
//! Recordings are `dump-YYYY-MM-DD-HH-MM-SS-{enc,dec}.wav`: two calls started in
//! the same second overwrite each other's. `sndcode`/`hangup` without a call
//! answer ok and do nothing; `hold`/`resume` without a call answer "Invalid argument".
#![allow(dead_code)] // each test binary uses its own subset

use std::fs;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "../baresip/audio.rs"]
mod audio;
#[path = "../baresip/options.rs"]
mod options;

use audio::{header_is_final, newest_recording, write_tone, WAV_HEADER_BYTES};
// The harness's API: each test binary uses its own part of it.
#[allow(unused_imports)]
pub use audio::Recording;
#[allow(unused_imports)]
pub use options::{installed, BaresipOptions, Codec, Srtp};

const START_TIMEOUT: Duration = Duration::from_secs(10);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const RECORDING_TIMEOUT: Duration = Duration::from_secs(5);
const READY_LINE: &str = "baresip is ready.";

/// Event types baresip 1.0.0 emits (see the module doc for when).
pub mod event {
    pub const INCOMING: &str = "CALL_INCOMING";
    pub const RINGING: &str = "CALL_RINGING";
    pub const ESTABLISHED: &str = "CALL_ESTABLISHED";
    pub const RTP_ESTABLISHED: &str = "CALL_RTPESTAB";
    pub const MEDIA_ENCRYPTION: &str = "CALL_MENC";
    pub const CLOSED: &str = "CALL_CLOSED";
    pub const DTMF_START: &str = "CALL_DTMF_START";
    pub const DTMF_END: &str = "CALL_DTMF_END";
    pub const REMOTE_SDP: &str = "CALL_REMOTE_SDP";
    pub const AUDIO_ERROR: &str = "AUDIO_ERROR";
}

/// The ctrl_tcp connection: a reader thread sorts what arrives into responses and events.
struct Control {
    stream: TcpStream,
    responses: Receiver<Value>,
    reader: Option<JoinHandle<()>>,
    next_token: u64,
}

/// A running baresip child process with its own folder, config and ports.
pub struct Baresip {
    dir: PathBuf,
    pub user: String,
    /// SIP over UDP and TCP (baresip also listens for TLS on `sip_port + 1`).
    pub sip_port: u16,
    pub ctrl_port: u16,
    child: Option<Child>,
    control: Option<Control>,
    /// Every event received, kept after [`Self::stop`].
    events: Arc<Mutex<Vec<Value>>>,
    /// Events before this index were consumed by a `wait_event`.
    event_cursor: usize,
}

impl Baresip {
    /// Write config, accounts and tone into `dir` (created if missing; keep one
    /// folder per instance), start baresip on fresh loopback ports and wait until
    /// ctrl_tcp answers. Panics with the log if it does not start.
    pub fn start(dir: &Path, options: BaresipOptions) -> Baresip {
        fs::create_dir_all(dir).unwrap();
        let tone = dir.join("tone.wav");
        write_tone(&tone, options.tone_hz, options.tone_secs);
        let mut bare = Baresip {
            dir: dir.to_path_buf(),
            user: options.user.clone(),
            sip_port: 0,
            ctrl_port: 0,
            child: None,
            control: None,
            events: Arc::default(),
            event_cursor: 0,
        };
        // Ports are free when picked, not reserved: on a clash pick again.
        for attempt in 1..=5 {
            bare.sip_port = free_sip_port();
            bare.ctrl_port = free_tcp_port(&[bare.sip_port, bare.sip_port + 1]);
            fs::write(dir.join("config"), options::config(bare.sip_port, bare.ctrl_port, dir, &tone)).unwrap();
            fs::write(dir.join("accounts"), options.account(&bare.sip_uri())).unwrap();
            match bare.spawn_and_wait() {
                Ok(()) => return bare,
                Err(e) if attempt < 5 && e.contains("Address already in use") => bare.kill(),
                Err(e) => panic!("baresip did not start: {e}\n--- baresip.log ---\n{}", bare.log()),
            }
        }
        unreachable!()
    }

    /// `sip:USER@127.0.0.1:PORT`.
    pub fn sip_uri(&self) -> String {
        format!("sip:{}@127.0.0.1:{}", self.user, self.sip_port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id while it runs (to pause it with SIGSTOP, as a slow
    /// path to it would delay its answers).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Send a ctrl_tcp command and return its response
    /// (`{"response":true,"ok":..,"data":"..","token":".."}`).
    pub fn command(&mut self, cmd: &str, params: &str) -> Value {
        let control = self.control.as_mut().expect("baresip is stopped");
        control.next_token += 1;
        let token = format!("t{}", control.next_token);
        let body = json!({ "command": cmd, "params": params, "token": token }).to_string();
        let frame = format!("{}:{body},", body.len());
        if let Err(e) = control.stream.write_all(frame.as_bytes()) {
            panic!("ctrl_tcp write failed: {e}\n--- baresip.log ---\n{}", self.log());
        }
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match control.responses.recv_timeout(left) {
                Ok(response) if response["token"] == token.as_str() => return response,
                Ok(_stale) => continue,
                Err(e) => panic!("no response to {cmd} {params:?}: {e}\n--- baresip.log ---\n{}", self.log()),
            }
        }
    }

    /// A command that must answer `"ok":true`; returns its `data` text.
    fn command_ok(&mut self, cmd: &str, params: &str) -> String {
        let response = self.command(cmd, params);
        if response["ok"] != true {
            panic!("baresip refused {cmd} {params:?}: {response}\n--- baresip.log ---\n{}", self.log());
        }
        response["data"].as_str().unwrap_or_default().to_string()
    }

    pub fn dial(&mut self, uri: &str) {
        self.command_ok("dial", uri);
    }

    /// Answer the incoming call (manual answer mode).
    pub fn accept(&mut self) {
        self.command_ok("accept", "");
    }

    pub fn hangup(&mut self) {
        self.command_ok("hangup", "");
    }

    /// re-INVITE with `a=sendonly`.
    pub fn hold(&mut self) {
        self.command_ok("hold", "");
    }

    /// re-INVITE with `a=sendrecv`.
    pub fn resume(&mut self) {
        self.command_ok("resume", "");
    }

    /// RFC 4733 telephone-events, one per character of `digits` (0-9, *, #, A-D).
    pub fn send_dtmf(&mut self, digits: &str) {
        self.command_ok("sndcode", digits);
    }

    /// Every event received so far, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Wait for the first event after those consumed by earlier waits that
    /// satisfies `pred`; it and every event before it are consumed. Panics
    /// with the events and the log on timeout.
    pub async fn wait_event(&mut self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.events();
            if let Some(offset) = events[self.event_cursor.min(events.len())..].iter().position(&pred) {
                let index = self.event_cursor + offset;
                self.event_cursor = index + 1;
                return events[index].clone();
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = events.iter().map(Value::to_string).collect();
                panic!(
                    "baresip {}: no matching event in {timeout:?}; events:\n{}\n--- baresip.log ---\n{}",
                    self.user,
                    seen.join("\n"),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// [`Self::wait_event`] for an event `"type"`, e.g. [`event::ESTABLISHED`].
    pub async fn wait_event_type(&mut self, kind: &str, timeout: Duration) -> Value {
        self.wait_event(|e| e["type"] == kind, timeout).await
    }

    /// The digits of every `CALL_DTMF_START` so far, in order.
    pub fn received_dtmf(&self) -> String {
        let digits = self.events().into_iter().filter(|e| e["type"] == event::DTMF_START);
        digits.filter_map(|e| e["param"].as_str().map(str::to_string)).collect()
    }

    /// Wait until [`Self::received_dtmf`] ends with `digits`; panics on timeout.
    pub async fn wait_dtmf(&self, digits: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.received_dtmf().ends_with(digits) {
            if Instant::now() >= deadline {
                panic!("baresip {}: DTMF {digits:?} not received, got {:?}", self.user, self.received_dtmf());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The codec of the latest audio encoder baresip set up, from its log.
    pub fn negotiated_codec(&self) -> Option<Codec> {
        let log = self.raw_log();
        let line = log.lines().rev().find_map(|l| l.split("audio: Set audio encoder: ").nth(1))?;
        let name = line.split_whitespace().next()?;
        Codec::ALL.into_iter().find(|c| c.log_name() == name)
    }

    /// Every SIP message baresip received, in order, from its SIP trace.
    pub fn received_sip(&self) -> Vec<String> {
        let arrow = format!("-> 127.0.0.1:{}", self.sip_port);
        self.traced_sip().into_iter().filter(|(route, _)| route.ends_with(&arrow)).map(|(_, msg)| msg).collect()
    }

    /// Every SIP message of the trace, with its `FROM -> TO` line.
    fn traced_sip(&self) -> Vec<(String, String)> {
        let log = self.raw_log();
        let traced = log.split("\x1b[36;1m#\n").skip(1);
        let messages = traced.filter_map(|t| t.split("\x1b[;m").next()?.split_once('\n'));
        messages.map(|(route, msg)| (route.to_string(), msg.to_string())).collect()
    }

    /// The RTP port baresip named in the latest SDP it sent: where its peer
    /// sends audio, for a capture of what baresip was sent.
    pub fn media_port(&self) -> Option<u16> {
        let from = format!("127.0.0.1:{} ->", self.sip_port);
        let sent = self.traced_sip().into_iter().filter(|(route, _)| route.contains(&from));
        let port = |msg: &str| msg.lines().find_map(|l| l.strip_prefix("m=audio ")?.split(' ').next()?.parse().ok());
        sent.filter_map(|(_, msg)| port(&msg)).next_back()
    }

    /// The audio direction (`sendrecv`, `sendonly`, `recvonly`, `inactive`) of
    /// the latest SDP baresip received, offer or answer: `sendonly` means the
    /// peer put baresip on hold.
    pub fn last_received_sdp_direction(&self) -> Option<String> {
        let messages = self.received_sip();
        let sdp = messages
            .iter()
            .rev()
            .find_map(|m| m.split_once("\r\n\r\n").map(|(_, b)| b).filter(|b| b.contains("m=audio")))?;
        let attribute = ["sendrecv", "sendonly", "recvonly", "inactive"]
            .into_iter()
            .find(|d| sdp.lines().any(|l| l.trim_end() == format!("a={d}")));
        Some(attribute.unwrap_or("sendrecv").to_string())
    }

    /// Wait until [`Self::last_received_sdp_direction`] is `direction`; panics on timeout.
    pub async fn wait_received_sdp_direction(&self, direction: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.last_received_sdp_direction().as_deref() != Some(direction) {
            if Instant::now() >= deadline {
                let last = self.last_received_sdp_direction();
                panic!("baresip {}: received SDP direction {last:?}, not {direction}\n{}", self.user, self.log());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Wait until the current call's receive recording holds `length` of audio
    /// (counted at the negotiated codec's rate); panics on timeout.
    pub async fn wait_received_audio(&self, length: Duration, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let codec = self.negotiated_codec();
            let recorded = newest_recording(&self.dir, "dec").and_then(|p| fs::metadata(p).ok());
            if let (Some(codec), Some(meta)) = (codec, recorded) {
                let frame_bytes = 2 * codec.recording_channels() as u64;
                let samples = meta.len().saturating_sub(WAV_HEADER_BYTES) / frame_bytes;
                if samples as f64 >= length.as_secs_f64() * codec.recording_rate() as f64 {
                    return;
                }
            }
            if Instant::now() >= deadline {
                panic!("baresip {}: not {length:?} of received audio in {timeout:?}\n{}", self.user, self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The WAV of what baresip decoded in its latest call. Call it after the
    /// call closed: waits (bounded) until `sndfile` has finalized the header.
    pub fn received_audio(&self) -> PathBuf {
        self.finished_recording("dec")
    }

    /// The WAV of what baresip encoded and sent in its latest call (after the call).
    pub fn sent_audio(&self) -> PathBuf {
        self.finished_recording("enc")
    }

    fn finished_recording(&self, kind: &str) -> PathBuf {
        let deadline = Instant::now() + RECORDING_TIMEOUT;
        loop {
            if let Some(path) = newest_recording(&self.dir, kind).filter(|p| header_is_final(p)) {
                return path;
            }
            if Instant::now() >= deadline {
                panic!("baresip {}: no finished {kind} recording in {}\n{}", self.user, self.dir.display(), self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// stdout and stderr, without colour codes and the status line it redraws.
    pub fn log(&self) -> String {
        let log = strip_ansi(&self.raw_log());
        let lines = log.lines().map(|l| l.rsplit("(bit/s)").next().unwrap_or(l).trim_start().trim_end_matches('\r'));
        lines.collect::<Vec<_>>().join("\n")
    }

    fn raw_log(&self) -> String {
        fs::read(self.dir.join("baresip.log")).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// SIGTERM (baresip hangs up its calls, finalizing the recordings), SIGKILL
    /// after 5 s. Idempotent.
    pub fn stop(&mut self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).stderr(Stdio::null()).status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline && self.child.as_mut().unwrap().try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut control) = self.control.take() {
            let _ = control.stream.shutdown(Shutdown::Both);
            if let Some(reader) = control.reader.take() {
                let _ = reader.join();
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = fs::File::create(self.dir.join("baresip.log")).unwrap();
        let child = Command::new("baresip")
            .arg("-s")
            .arg("-f")
            .arg(&self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn baresip: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!("baresip exited with {status}: {}", self.log()));
            }
            let log = self.log();
            // ctrl_tcp failing to bind only unloads the module: catch it here.
            if log.contains("Address already in use") {
                return Err("Address already in use".into());
            }
            if log.contains(READY_LINE) {
                if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.ctrl_port)) {
                    self.control = Some(Control::new(stream, self.events.clone()));
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("not ready after {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Control {
    fn new(stream: TcpStream, events: Arc<Mutex<Vec<Value>>>) -> Control {
        let (responses_tx, responses) = mpsc::channel();
        let reading = stream.try_clone().unwrap();
        let reader = std::thread::spawn(move || read_messages(reading, responses_tx, events));
        Control { stream, responses, reader: Some(reader), next_token: 0 }
    }
}

/// Split the netstrings (`LEN:JSON,`) until the connection closes.
fn read_messages(stream: TcpStream, responses: Sender<Value>, events: Arc<Mutex<Vec<Value>>>) {
    let mut bytes = BufReader::new(stream).bytes();
    loop {
        let mut len = 0usize;
        loop {
            match bytes.next() {
                Some(Ok(b':')) => break,
                Some(Ok(digit)) if digit.is_ascii_digit() => len = len * 10 + (digit - b'0') as usize,
                _ => return,
            }
        }
        let body: Result<Vec<u8>, _> = bytes.by_ref().take(len).collect();
        let (Ok(body), Some(Ok(b','))) = (body, bytes.next()) else { return };
        let Ok(message) = serde_json::from_slice::<Value>(&body) else { continue };
        if message["response"] == true {
            let _ = responses.send(message);
        } else if message["event"] == true {
            events.lock().unwrap().push(message);
        }
    }
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// A loopback port free for SIP: UDP and TCP on it, TCP (TLS) on the next.
fn free_sip_port() -> u16 {
    for _ in 0..100 {
        let port = free_tcp_port(&[]);
        if port < 65000
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return port;
        }
    }
    panic!("no free loopback port for baresip's SIP");
}

fn free_tcp_port(avoid: &[u16]) -> u16 {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !avoid.contains(&port) {
            return port;
        }
    }
    panic!("no free loopback TCP port");
}
