//! Shared by the integration tests: a real `softphoned` process on loopback
//! driven through its control socket, and the rule for missing peers.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub mod alsa;
pub mod baresip;
pub mod capture;
pub mod home;
pub mod jack;
pub mod kamailio;
pub mod linphone;
pub mod netns;
pub mod prometheus;
pub mod recorded;
pub mod sipp;

use serde_json::json;
use softphoned::control::client::Client;

/// A `softphoned` child process with its own folder, config and socket.
pub struct Daemon {
    child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// The first listening point's port.
    pub sip_port: u16,
    /// Every listening point, as `daemon.status` names them (`udp:IP:PORT`).
    pub sip_listen: Vec<String>,
    env: Vec<(String, String)>,
    launch: Launch,
}

/// How the process is started again on a restart: [`Setup`]'s process options.
struct Launch {
    open_files: Option<u64>,
    netns: Option<String>,
    watchdog_pid: bool,
}

/// How a [`Daemon`] is started, past its name.
pub struct Setup<'a> {
    /// `[sip] listen`.
    pub listen: &'a [&'a str],
    /// TOML appended to the config (it may go on with keys of `[sip]`).
    pub extra: &'a str,
    pub env: &'a [(&'a str, &'a str)],
    /// The open files limit, soft and hard, the process starts under.
    pub open_files: Option<u64>,
    /// The network namespace (`ip netns` name) it runs in, entered with
    /// `ip netns exec`, so that /etc/netns/NAME/resolv.conf, if the test
    /// wrote one, is its /etc/resolv.conf.
    pub netns: Option<&'a str>,
    /// Start it as systemd does a service with `WatchdogSec=`: with
    /// `WATCHDOG_PID` set to its own pid (which sd-notify checks), by way
    /// of `sh -c 'WATCHDOG_PID=$$ exec ...'` (not inside a `netns`).
    pub watchdog_pid: bool,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup { listen: &["udp:127.0.0.1:0"], extra: "", env: &[], open_files: None, netns: None, watchdog_pid: false }
    }
}

impl Daemon {
    /// Start `softphoned` listening on 127.0.0.1, with `extra` TOML tables
    /// appended to its config, and wait until its socket answers.
    pub async fn spawn(name: &str, extra: &str) -> Daemon {
        Self::spawn_with(name, Setup { extra, ..Setup::default() }).await
    }

    /// [`spawn`](Self::spawn) with extra environment variables for the daemon.
    pub async fn spawn_with_env(name: &str, extra: &str, env: &[(&str, &str)]) -> Daemon {
        Self::spawn_with(name, Setup { extra, env, ..Setup::default() }).await
    }

    pub async fn spawn_with(name: &str, setup: Setup<'_>) -> Daemon {
        let Setup { listen, extra, env, open_files, netns, watchdog_pid } = setup;
        let netns = netns.map(str::to_string);
        let listen: Vec<String> = listen.iter().map(|l| format!("\"{l}\"")).collect();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        // Each daemon keeps its history in its own folder, never the user's.
        // First in the file: `extra` may go on with keys of [sip].
        let store =
            if extra.contains("[store]") { String::new() } else { "[store]\npath = \"history.sqlite3\"\n".into() };
        std::fs::write(
            dir.path().join("softphoned.toml"),
            format!(
                "{store}[control]\nsocket = \"{}\"\n[sip]\nlisten = [{}]\nuser = \"{name}\"\n{extra}\n",
                socket.display(),
                listen.join(", ")
            ),
        )
        .unwrap();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let launch = Launch { open_files, netns, watchdog_pid };
        let child = Self::start_process(dir.path(), &env, &launch);
        let mut daemon = Daemon { child, dir, socket, sip_port: 0, sip_listen: Vec::new(), env, launch };
        daemon.wait_started().await;
        daemon
    }

    fn start_process(dir: &Path, env: &[(String, String)], launch: &Launch) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("daemon.log")).unwrap();
        let daemon = env!("CARGO_BIN_EXE_softphoned");
        // `ip netns exec` and `exec` in sh run the daemon in place: the child is the daemon itself.
        let mut command = match (&launch.netns, launch.watchdog_pid) {
            (Some(name), _) => {
                let mut ip = Command::new("ip");
                ip.args(["netns", "exec", name, daemon]);
                ip
            }
            (None, true) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\"", daemon]);
                sh
            }
            (None, false) => Command::new(daemon),
        };
        if let Some(limit) = launch.open_files {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
            unsafe {
                command.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                });
            }
        }
        // Run in its own folder, so relative paths in the config land there.
        command
            .current_dir(dir)
            .arg("--config")
            .arg(dir.join("softphoned.toml"))
            .env("RUST_LOG", "debug,rsipstack=info")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("softphoned starts")
    }

    async fn wait_started(&mut self) {
        let mut client = self.wait_ready().await;
        let status = client.call("daemon.status", json!({})).await.unwrap();
        self.sip_listen = status["sip_listen"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().into()).collect();
        self.sip_port = self.sip_listen[0].rsplit(':').next().unwrap().parse().unwrap();
    }

    /// SIGKILL, as a crash would, then start again on the same folder and
    /// config (the log goes on in the same file).
    pub async fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.child = Self::start_process(self.dir.path(), &self.env, &self.launch);
        self.wait_started().await;
    }

    async fn wait_ready(&mut self) -> Client {
        for _ in 0..500 {
            if let Ok(client) = Client::connect(&self.socket).await {
                return client;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("softphoned exited with {status}:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("softphoned did not open its control socket in 10 s:\n{}", self.log());
    }

    /// A new client connection, subscribed to every event.
    pub async fn client(&self) -> Client {
        let mut client = Client::connect(&self.socket).await.unwrap();
        client.call("events.subscribe", json!({})).await.unwrap();
        client
    }

    /// The `IP:PORT` of the listening point over `transport` (`udp`, `tcp`).
    pub fn listening(&self, transport: &str) -> String {
        let found = self.sip_listen.iter().find(|l| l.starts_with(transport));
        found.unwrap_or_else(|| panic!("no {transport} in {:?}", self.sip_listen))[transport.len() + 1..].to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@127.0.0.1:{}", self.sip_port)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// SIGTERM, as systemd stops it; returns once the process has exited.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether an external tool is installed. Under `CI=true` a missing tool
/// fails the test loudly; elsewhere it is skipped with a line saying so.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{tool} is required under CI=true: run tests/run.sh, which installs it");
        }
        // Straight to stderr: the harness hides a passing test's output.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED: {tool} not installed (run tests/run.sh)");
    }
    found
}

/// [`require_tool`] for each of `tools`; all of them present.
pub fn require_tools(tools: &[&str]) -> bool {
    tools.iter().all(|tool| require_tool(tool))
}

/// Read a WAV file's samples.
pub fn wav_samples(path: &Path) -> Vec<i16> {
    let mut reader = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    reader.samples::<i16>().collect::<Result<_, _>>().unwrap()
}

/// `call.dial` and return the new call's id.
pub async fn dial(client: &mut Client, to: &str) -> String {
    let result = client.call("call.dial", json!({ "to": to })).await.unwrap();
    result["call"].as_str().expect("call.dial returns a call id").to_string()
}

/// Poll `call.list` until the first call's media counter `field` reaches
/// `at_least`, and return it; panics after 10 s.
pub async fn wait_media_counter(client: &mut Client, field: &str, at_least: u64) -> u64 {
    let mut list = json!(null);
    for _ in 0..500 {
        list = client.call("call.list", json!({})).await.unwrap();
        let value = list["calls"][0]["media"][field].as_u64().unwrap_or(0);
        if value >= at_least {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{field} never reached {at_least}: {list}");
}

/// Poll `call.stats` until `call`'s media counter `field` reaches
/// `at_least`, and return it; panics after 10 s.
pub async fn wait_call_counter(client: &mut Client, call: &str, field: &str, at_least: u64) -> u64 {
    let mut stats = json!(null);
    for _ in 0..500 {
        stats = client.call("call.stats", json!({ "call": call })).await.unwrap();
        let value = stats["call"]["media"][field].as_u64().unwrap_or(0);
        if value >= at_least {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{call}: {field} never reached {at_least}: {stats}");
}

/// The first call's media counter `field` as it stands.
pub async fn media_counter(client: &mut Client, field: &str) -> u64 {
    let list = client.call("call.list", json!({})).await.unwrap();
    list["calls"][0]["media"][field].as_u64().unwrap_or(0)
}
