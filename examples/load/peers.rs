//! The sides under test as processes on 127.0.0.1: softphoned (its config,
//! its control socket: connected calls, daemon.status round trips), baresip
//! 1.0.0 (config, ctrl_tcp events), and the jackd whose dummy driver paces
//! baresip (and softphoned with `--card`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::measure::{free_tcp_port, free_udp_port, stop_child, wait_until};
use crate::{CardVia, Codec, Options};

const START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_GRACE: Duration = Duration::from_secs(5);
const RPC_TIMEOUT: Duration = Duration::from_secs(3);
const BARESIP_MODULES: &str = "/usr/lib/baresip/modules";
/// The ALSA PCM (through the ALSA jack plugin) softphoned plays to with `--card --card-via alsa`.
const CARD_PCM: &str = "load_jack";

pub fn tool_installed(tool: &str) -> bool {
    let paths = std::env::var("PATH").unwrap_or_default() + ":/usr/sbin:/sbin";
    paths.split(':').any(|dir| Path::new(dir).join(tool).is_file())
}

/// What the baresip side lacks for `codec`, if anything.
pub fn baresip_missing(codec: Codec) -> Option<String> {
    let mut missing: Vec<String> =
        ["baresip", "jackd"].iter().filter(|t| !tool_installed(t)).map(|t| t.to_string()).collect();
    let opus_source = if codec == Codec::Opus { Some("ausine") } else { None };
    for module in ["g711", "opus", "jack", "sndfile", "account", "menu", "ctrl_tcp"].into_iter().chain(opus_source) {
        if !Path::new(BARESIP_MODULES).join(format!("{module}.so")).is_file() {
            missing.push(format!("{module}.so"));
        }
    }
    (!missing.is_empty()).then(|| format!("missing {} (bash tests/deps.sh baresip-core jackd2)", missing.join(", ")))
}

/// What `--card` lacks: jackd, and through ALSA the ALSA jack plugin.
pub fn card_missing(via: CardVia) -> Option<String> {
    let plugin = ["/usr/lib/x86_64-linux-gnu/alsa-lib", "/usr/lib/aarch64-linux-gnu/alsa-lib", "/usr/lib/alsa-lib"]
        .iter()
        .any(|dir| Path::new(dir).join("libasound_module_pcm_jack.so").is_file());
    match (tool_installed("jackd"), via, plugin) {
        (true, CardVia::Jack, _) | (true, CardVia::Alsa, true) => None,
        (_, CardVia::Jack, _) => Some("needs jackd (bash tests/deps.sh jackd2)".into()),
        _ => Some("needs jackd and the ALSA jack plugin (bash tests/deps.sh jackd2 libasound2-plugins)".into()),
    }
}

/// softphoned beside this example: target/PROFILE/examples/load -> target/PROFILE/softphoned.
/// Run through cargo (`CARGO` set), it is built first with the same profile.
pub fn softphoned_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    if let Ok(cargo) = std::env::var("CARGO") {
        let release = profile_dir.ends_with("release");
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "--bin", "softphoned"]);
        if release {
            build.arg("--release");
        }
        if let Some(manifest) = option_env!("CARGO_MANIFEST_DIR") {
            build.current_dir(manifest);
        }
        match build.status() {
            Ok(s) if s.success() => {}
            other => crate::fatal(&format!("cargo build --bin softphoned failed: {other:?}")),
        }
    }
    profile_dir.join("softphoned")
}

/// A jackd with the dummy driver: a virtual sound card, 48 kHz, 20 ms periods.
pub struct Jackd {
    child: Child,
    pub name: String,
}

impl Jackd {
    /// `period`: frames per period at 48 kHz (960 = 20 ms; softphoned's
    /// ALSA streams ask for 480, so `--card` runs it at 480 = 10 ms).
    pub fn start(dir: &Path, period: u32) -> Result<Jackd, String> {
        let name = format!("softphoned-load-{}", std::process::id());
        let log = std::fs::File::create(dir.join("jackd.log")).map_err(|e| e.to_string())?;
        // Not realtime: softphoned's tick is not either, and both are judged alike.
        let child = Command::new("jackd")
            .args([
                "--no-realtime",
                "-n",
                &name,
                "-d",
                "dummy",
                "-r",
                "48000",
                "-p",
                &period.to_string(),
                "-C",
                "2",
                "-P",
                "2",
            ])
            .env("JACK_NO_AUDIO_RESERVATION", "1")
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn jackd: {e}"))?;
        let mut jack = Jackd { child, name };
        let up = wait_until(START_TIMEOUT, || {
            Command::new("jack_lsp")
                .envs(jack.env())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("system:playback_1"))
                .unwrap_or(false)
        });
        if !up {
            stop_child(&mut jack.child, libc::SIGTERM, STOP_GRACE);
            let log = std::fs::read_to_string(dir.join("jackd.log")).unwrap_or_default();
            return Err(format!("jackd did not come up in {START_TIMEOUT:?}:\n{log}"));
        }
        Ok(jack)
    }

    /// The environment a JACK client of this server needs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("JACK_DEFAULT_SERVER", self.name.clone()),
            ("JACK_NO_START_SERVER", "1".into()),
            ("JACK_NO_AUDIO_RESERVATION", "1".into()),
        ]
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(mut self) {
        stop_child(&mut self.child, libc::SIGTERM, STOP_GRACE);
    }
}

/// A running softphoned answering every call at once.
pub struct Softphoned {
    child: Child,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub sip_port: u16,
    pub recordings: PathBuf,
}

impl Softphoned {
    pub fn start(
        binary: &Path,
        dir: &Path,
        calls: u32,
        options: &Options,
        jack: Option<&Jackd>,
    ) -> Result<Softphoned, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let socket = dir.join("control.sock");
        let recordings = dir.join("recordings");
        let sip_port = free_udp_port();
        let codec = match options.codec {
            Codec::Pcmu => "pcmu",
            Codec::Opus => "opus",
        };
        // With `--card` both directions are jackd's, and the daemon sends
        // the dummy card's silence, as baresip does.
        let card = match options.card_via {
            CardVia::Jack => "jack".to_string(),
            CardVia::Alsa => format!("device:{CARD_PCM}"),
        };
        let (source, sink) = if options.card { (card.clone(), card) } else { ("tone:440".into(), "null".into()) };
        let config = format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:{sip_port}\"]\nuser = \"agent\"\n\
             allow_from = [\"127.0.0.1\"]\nsession_expires_s = 0\n\
             [agent]\nauto_answer_after_ms = 0\n\
             [calls]\nmax = {max}\nhold_on_answer = false\n\
             [media]\ncodecs = [\"{codec}\"]\nmedia_timeout_ms = 0\nthreads = {threads}\n\
             [audio]\nsource = \"{source}\"\nsink = \"{sink}\"\n\
             [recording]\nmode = \"{mode}\"\ndir = \"{recordings}\"\n\
             [control]\nsocket = \"{socket}\"\n\
             [store]\npath = \"{store}\"\n",
            max = calls + 4,
            threads = options.media_threads,
            mode = if options.record { "always" } else { "never" },
            recordings = recordings.display(),
            socket = socket.display(),
            store = dir.join("history.sqlite3").display(),
        );
        std::fs::write(dir.join("softphoned.toml"), config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("daemon.log")).map_err(|e| e.to_string())?;
        let mut command = Command::new(binary);
        command
            .current_dir(dir)
            .arg("--config")
            .arg(dir.join("softphoned.toml"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log);
        if let (true, Some(jack)) = (options.card, jack) {
            command.envs(jack.env());
            if options.card_via == CardVia::Alsa {
                let alsa = dir.join("alsa.conf");
                std::fs::write(&alsa, card_alsa_config()).map_err(|e| e.to_string())?;
                command.env("ALSA_CONFIG_PATH", alsa);
            }
        }
        let child = command.spawn().map_err(|e| format!("spawn {}: {e}", binary.display()))?;
        let mut daemon = Softphoned { child, dir: dir.into(), socket, sip_port, recordings };
        let up = wait_until(START_TIMEOUT, || daemon.exited().is_none() && daemon.rpc("daemon.status").is_ok());
        if !up {
            let log = daemon.log();
            daemon.stop();
            return Err(format!("softphoned did not answer on its socket in {START_TIMEOUT:?}:\n{log}"));
        }
        if options.card {
            let status = daemon.rpc("daemon.status")?;
            let audio = &status["audio"];
            if audio["sink"]["kind"] != "device" || audio["source"]["kind"] != "device" {
                let text = audio.to_string();
                daemon.stop();
                return Err(format!("--card: softphoned could not open {source}: {text}"));
            }
        }
        Ok(daemon)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<i32> {
        self.child.try_wait().ok().flatten().map(|s| s.code().unwrap_or(-1))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// One request without parameters on a fresh connection; its `result`.
    pub fn rpc(&self, method: &str) -> Result<serde_json::Value, String> {
        self.request(method, serde_json::json!({}))
    }

    /// One request on a fresh connection; its `result`.
    pub fn request(&self, method: &str, params: serde_json::Value) -> Result<serde_json::Value, String> {
        let mut conn = RpcConnection::open(&self.socket)?;
        conn.call(method, &params).map(|(result, _)| result)
    }

    /// Calls in state `connected`, as call.list says.
    pub fn connected_calls(&self) -> usize {
        let Ok(list) = self.rpc("call.list") else { return 0 };
        let calls = list["calls"].as_array().cloned().unwrap_or_default();
        calls.iter().filter(|c| c["state"] == "connected").count()
    }

    /// Round trips of daemon.status, one every `every`, until stopped (at most 10,000).
    pub fn probe_control(&self, every: Duration) -> ControlProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let socket = self.socket.clone();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = vec![];
            let mut errors = 0;
            let Ok(mut conn) = RpcConnection::open(&socket) else { return (samples, 1) };
            while !flag.load(Ordering::Relaxed) && samples.len() < 10_000 {
                match conn.call("daemon.status", &serde_json::json!({})) {
                    Ok((_, took)) => samples.push(took.as_secs_f64() * 1e6),
                    Err(_) => {
                        errors += 1;
                        match RpcConnection::open(&socket) {
                            Ok(fresh) => conn = fresh,
                            Err(_) => break,
                        }
                    }
                }
                std::thread::sleep(every);
            }
            (samples, errors)
        });
        ControlProbe { stop, thread }
    }

    /// SIGTERM (recordings are closed and fsynced), SIGKILL after a grace.
    pub fn stop(&mut self) -> bool {
        stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(10))
    }
}

impl Drop for Softphoned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ALSA config of `--card`: a PCM through the jack plugin to jackd's dummy card.
fn card_alsa_config() -> String {
    format!(
        "</usr/share/alsa/alsa.conf>\n\
         pcm.{CARD_PCM} {{\n  type plug\n  slave {{\n    pcm {{\n      type jack\n\
         \x20     playback_ports {{ 0 system:playback_1 1 system:playback_2 }}\n\
         \x20     capture_ports {{ 0 system:capture_1 1 system:capture_2 }}\n    }}\n  }}\n\
         \x20 hint {{ show on description \"jackd dummy card\" }}\n}}\n"
    )
}

pub struct ControlProbe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Vec<f64>, usize)>,
}

impl ControlProbe {
    /// The round trips in µs, and the requests that failed.
    pub fn finish(self) -> (Vec<f64>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// One JSON-RPC connection to the control socket (a line each way).
struct RpcConnection {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl RpcConnection {
    fn open(path: &Path) -> Result<RpcConnection, String> {
        let stream = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
        stream.set_read_timeout(Some(RPC_TIMEOUT)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(RPC_TIMEOUT)).map_err(|e| e.to_string())?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        Ok(RpcConnection { writer: stream, reader, next_id: 1 })
    }

    fn call(&mut self, method: &str, params: &serde_json::Value) -> Result<(serde_json::Value, Duration), String> {
        let id = self.next_id;
        self.next_id += 1;
        let request = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let line = format!("{request}\n");
        let sent = Instant::now();
        self.writer.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
        let mut answer = String::new();
        loop {
            answer.clear();
            if self.reader.read_line(&mut answer).map_err(|e| e.to_string())? == 0 {
                return Err("the daemon closed the connection".into());
            }
            let message: serde_json::Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
            if message["id"] == id {
                let took = sent.elapsed();
                return match message.get("result") {
                    Some(result) => Ok((result.clone(), took)),
                    None => Err(format!("{method}: {}", message["error"])),
                };
            }
        }
    }
}

/// A running baresip 1.0.0 answering every call, paced by jackd.
pub struct Baresip {
    child: Child,
    pub dir: PathBuf,
    pub sip_port: u16,
    established: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl Baresip {
    pub fn start(dir: &Path, options: &Options, jack: &Jackd) -> Result<Baresip, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let recordings = dir.join("recordings");
        std::fs::create_dir_all(&recordings).map_err(|e| e.to_string())?;
        let sip_port = free_udp_port();
        let ctrl_port = free_tcp_port();
        let codec = match options.codec {
            Codec::Pcmu => "PCMU",
            Codec::Opus => "opus/48000/2",
        };
        // The source drives baresip's sending: jack's period paces it. No
        // player: baresip still decodes what it receives (as softphoned's
        // `null` sink does), and each JACK client counts against jackd's 64.
        // With Opus the source is a 440 Hz tone (`ausine`, paced by its own
        // thread), as softphoned's is: Opus encodes the card's silence for
        // almost nothing, and the comparison would be about that.
        // baresip 1.0's ausine writes 16-bit stereo only (Opus is stereo in
        // baresip, so no resampler runs on it).
        let (source, source_format, source_channels) = match options.codec {
            Codec::Pcmu => ("jack,", "float", 1),
            Codec::Opus => ("ausine,440", "s16", 2),
        };
        let mut config = format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\n\
             audio_source {source}\naudio_player jack,\nausrc_format {source_format}\nauplay_format float\n\
             ausrc_srate 48000\nauplay_srate 48000\nausrc_channels {source_channels}\nauplay_channels 1\n\
             module_path {BARESIP_MODULES}\n\
             call_max_calls 255\njack_connect_ports yes\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl_port}\nsnd_path {}\n",
            recordings.display()
        );
        let mut modules = vec!["g711", "jack"];
        if options.codec == Codec::Opus {
            modules.extend(["opus", "ausine"]);
        }
        if options.record {
            modules.push("sndfile");
        }
        for module in modules {
            config += &format!("module {module}.so\n");
        }
        for module in ["account", "menu", "ctrl_tcp"] {
            config += &format!("module_app {module}.so\n");
        }
        std::fs::write(dir.join("config"), config).map_err(|e| e.to_string())?;
        let account = format!("<sip:agent@127.0.0.1:{sip_port}>;regint=0;answermode=auto;audio_codecs={codec}\n");
        std::fs::write(dir.join("accounts"), account).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("baresip.log")).map_err(|e| e.to_string())?;
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir)
            .current_dir(dir)
            .envs(jack.env())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn baresip: {e}"))?;
        let mut bare =
            Baresip { child, dir: dir.into(), sip_port, established: Arc::default(), closed: Arc::default() };
        let mut stream = None;
        let up = wait_until(START_TIMEOUT, || {
            if bare.child.try_wait().ok().flatten().is_some() {
                return true;
            }
            bare.log().contains("baresip is ready.") && {
                stream = TcpStream::connect(("127.0.0.1", ctrl_port)).ok();
                stream.is_some()
            }
        });
        let Some(stream) = stream.filter(|_| up) else {
            let log = bare.log();
            stop_child(&mut bare.child, libc::SIGKILL, STOP_GRACE);
            return Err(format!("baresip did not start in {START_TIMEOUT:?}:\n{log}"));
        };
        let (established, closed) = (bare.established.clone(), bare.closed.clone());
        std::thread::spawn(move || count_events(stream, established, closed));
        Ok(bare)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn established(&self) -> usize {
        self.established.load(Ordering::Relaxed)
    }

    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::Relaxed)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    /// SIGTERM, SIGKILL after a grace.
    pub fn stop(&mut self) -> bool {
        stop_child(&mut self.child, libc::SIGTERM, STOP_GRACE)
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read ctrl_tcp's netstrings (`LEN:JSON,`) until the connection closes,
/// counting CALL_ESTABLISHED and CALL_CLOSED events.
fn count_events(stream: TcpStream, established: Arc<AtomicUsize>, closed: Arc<AtomicUsize>) {
    let mut bytes = BufReader::new(stream).bytes();
    loop {
        let mut len = 0usize;
        loop {
            match bytes.next() {
                Some(Ok(b':')) => break,
                Some(Ok(d)) if d.is_ascii_digit() => len = len.saturating_mul(10).saturating_add((d - b'0') as usize),
                _ => return,
            }
        }
        let body: Result<Vec<u8>, _> = bytes.by_ref().take(len.min(1 << 20)).collect();
        let (Ok(body), Some(Ok(b','))) = (body, bytes.next()) else { return };
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(&body) else { continue };
        match message["type"].as_str() {
            Some("CALL_ESTABLISHED") => established.fetch_add(1, Ordering::Relaxed),
            Some("CALL_CLOSED") => closed.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }
}
