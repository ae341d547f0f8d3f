//! A JACK server for the tests: `jackd -d dummy` (a virtual sound card
//! paced by the clock, 48 kHz, 20 ms periods) under a name of its own, so
//! tests running at once and a JACK server of the machine never meet (or,
//! under `faketime`, a card whose clock runs fast); and the jackd2 example
//! clients that look at its graph from outside.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// jackd's sample rate, as started here.
pub const JACK_RATE: u32 = 48000;

/// The tools these tests drive, all from Debian's jackd2.
pub const JACK_TOOLS: [&str; 5] = ["jackd", "jack_lsp", "jack_rec", "jack_connect", "jack_simple_client"];

/// Where Debian's `faketime` package puts the library it preloads.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A running `jackd`, killed when dropped.
pub struct Jackd {
    child: Child,
    pub name: String,
}

impl Jackd {
    pub fn start() -> Jackd {
        Jackd::start_with(Command::new("jackd"))
    }

    /// A card whose clock runs `speed` times real time: jackd with
    /// libfaketime (package `faketime`) preloaded, since the dummy driver
    /// times its periods by the clock it reads (its `-w` only changes the
    /// period's length). Preloaded rather than through the `faketime`
    /// command, which would stand between us and jackd's pid.
    pub fn start_off_clock(speed: f64) -> Jackd {
        let mut jackd = Command::new("jackd");
        jackd.env("LD_PRELOAD", LIBFAKETIME).env("FAKETIME", format!("+0 x{speed}"));
        Jackd::start_with(jackd)
    }

    fn start_with(mut jackd: Command) -> Jackd {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let name = format!("softphoned-test-{}-{}", std::process::id(), STARTED.fetch_add(1, Ordering::Relaxed));
        let child = jackd
            .args(["--no-realtime", "-n", &name, "-d", "dummy", "-r", &JACK_RATE.to_string(), "-p", "960"])
            .env("JACK_NO_AUDIO_RESERVATION", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn jackd");
        let jack = Jackd { child, name };
        let started = Instant::now();
        while !jack.lsp().contains("system:playback_1") {
            assert!(started.elapsed() < Duration::from_secs(15), "jackd {} did not come up", jack.name);
            std::thread::sleep(Duration::from_millis(100));
        }
        jack
    }

    /// Freeze the server (SIGSTOP), or let it run on (SIGCONT): a card that
    /// stalls, its callbacks no longer called.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: kill(2) on our own child's pid only sends it a signal.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert!(sent == 0 || std::thread::panicking(), "signal jackd");
    }

    /// The environment of a client of this server (a daemon, a tool).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        client_env(&self.name)
    }

    /// `jack_lsp -c`: every port, each followed by its connections indented.
    pub fn lsp(&self) -> String {
        let output = self.tool("jack_lsp").arg("-c").stderr(Stdio::null()).output().expect("run jack_lsp");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The ports `port` is connected to, as `jack_lsp -c` lists them.
    pub fn connections(&self, port: &str) -> Vec<String> {
        let lsp = self.lsp();
        let mut lines = lsp.lines().skip_while(|line| *line != port).skip(1);
        std::iter::from_fn(|| lines.next().and_then(|l| l.strip_prefix("   ")).map(String::from)).collect()
    }

    pub fn connect(&self, from: &str, to: &str) {
        let status = self.tool("jack_connect").args([from, to]).status().expect("run jack_connect");
        assert!(status.success(), "jack_connect {from} {to}");
    }

    /// `jack_simple_client`: a 240 Hz sine on `jack_simple_client:output1`
    /// (720 Hz on output2), connected to the hardware playback ports.
    pub fn sine_client(&self) -> Child {
        let child = self.tool("jack_simple_client").stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        let child = child.expect("spawn jack_simple_client");
        let started = Instant::now();
        while !self.lsp().contains("jack_simple_client:output1") {
            assert!(started.elapsed() < Duration::from_secs(10), "jack_simple_client did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// Record `port` for `seconds` into a 16-bit WAV at `path` (`jack_rec`).
    pub fn record(&self, port: &str, seconds: u32, path: &Path) {
        let output = self
            .tool("jack_rec")
            .args(["-f", path.to_str().unwrap(), "-d", &seconds.to_string(), "-b", "16", port])
            .output()
            .expect("run jack_rec");
        assert!(output.status.success(), "jack_rec {port}: {}", String::from_utf8_lossy(&output.stderr));
    }

    fn tool(&self, name: &str) -> Command {
        let mut command = Command::new(name);
        command.envs(self.env());
        command
    }
}

/// The environment of a JACK client of the server `name`, which is never started for it.
pub fn client_env(name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("JACK_DEFAULT_SERVER", name.to_string()),
        ("JACK_NO_START_SERVER", "1".into()),
        ("JACK_NO_AUDIO_RESERVATION", "1".into()),
    ]
}

impl Drop for Jackd {
    /// SIGTERM first: jackd then leaves the machine's JACK server registry,
    /// which a killed one never does, and the registry has room for only
    /// eight servers (it reclaims a dead one's place only for its name).
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid only sends it a signal; a
        // frozen one must run to handle SIGTERM.
        unsafe { (libc::kill(pid, libc::SIGCONT), libc::kill(pid, libc::SIGTERM)) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
