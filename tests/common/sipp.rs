//! sipp, the scripted SIP peer: started with a scenario of tests/sipp on
//! 127.0.0.1, judged by its exit code, its message log kept for the asserts.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free UDP port on loopback (and the one after it, for RTCP), for sipp.
pub fn free_port_pair() -> u16 {
    loop {
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if port % 2 == 0 && port < 65000 && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// Write `tone1k.ulaw` (30 s of 1 kHz, raw u-law) into `dir`: what the
/// tone-playing scenarios stream (sipp reads it from its working folder).
pub fn write_tone_file(dir: &Path) {
    let made = Command::new("sox")
        .current_dir(dir)
        .args(["-n", "-r", "8000", "-c", "1", "-e", "u-law", "-t", "raw", "tone1k.ulaw", "synth", "30", "sine", "1000"])
        .status()
        .unwrap();
    assert!(made.success());
}

/// A sipp UAS answering with a 1 kHz tone (`uas_tone.xml`), in a fresh
/// folder that holds its tone file: (folder, sipp, SIP port, media port).
pub fn tone_peer() -> (tempfile::TempDir, Sipp, u16, u16) {
    let work = tempfile::tempdir().unwrap();
    write_tone_file(work.path());
    let (port, media) = (free_port_pair(), free_port_pair());
    let sipp = Sipp::start(work.path(), "uas_tone.xml", port, media, &[]);
    (work, sipp, port, media)
}

/// The first message in sipp's message `log` that begins with `start`
/// (e.g. `"INVITE sip:customer"`), up to the blank lines that end it.
pub fn logged_message<'a>(log: &'a str, start: &str) -> &'a str {
    let message = &log[log.find(start).unwrap_or_else(|| panic!("no {start:?} in sipp's log:\n{log}"))..];
    &message[..message.find("\n\n\n").unwrap_or(message.len())]
}

pub struct Sipp {
    child: Child,
    name: String,
    dir: PathBuf,
}

impl Sipp {
    /// Start sipp with `scenario` from tests/sipp, in `dir` (where the tone
    /// file lives), SIP on `port` and media on `media_port`.
    pub fn start(dir: &Path, scenario: &str, port: u16, media_port: u16, extra: &[&str]) -> Sipp {
        let mut sipp = Self::spawn(Command::new("sipp"), "127.0.0.1", dir, scenario, port, media_port, extra);
        sipp.wait_bound(port);
        sipp
    }

    /// [`start`](Self::start) inside `netns`, on its address `ip`; returns
    /// once its SIP port is bound there.
    pub fn start_in(
        netns: &super::netns::Netns,
        ip: &str,
        dir: &Path,
        scenario: &str,
        (port, media_port): (u16, u16),
        extra: &[&str],
    ) -> Sipp {
        let mut sipp = Self::spawn(netns.command("sipp"), ip, dir, scenario, port, media_port, extra);
        for _ in 0..750 {
            if netns.udp_bound(port) {
                return sipp;
            }
            if let Ok(Some(status)) = sipp.child.try_wait() {
                panic!("sipp exited ({status}) before binding {ip}:{port} in {}", netns.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sipp did not bind {ip}:{port} in {} in 15 s", netns.name);
    }

    fn spawn(
        mut command: Command,
        ip: &str,
        dir: &Path,
        scenario: &str,
        port: u16,
        media_port: u16,
        extra: &[&str],
    ) -> Sipp {
        let name = scenario.trim_end_matches(".xml").to_string();
        let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp").join(scenario);
        let child = command
            .current_dir(dir)
            .arg("-sf")
            .arg(&scenario)
            .args(["-i", ip, "-mi", ip, "-ci", ip])
            .args(["-p", &port.to_string(), "-mp", &media_port.to_string()])
            .args(["-m", "1", "-nostdin", "-timeout", "40", "-timeout_error", "-recv_timeout", "20000"])
            .args(["-trace_msg", "-message_file", &format!("{name}.msg")])
            .args(["-trace_err", "-error_file", &format!("{name}.err")])
            // Scenarios with a `[hdr]` slot get a harmless header unless the test sets one.
            .args(if extra.contains(&"-key") { &[][..] } else { &["-key", "hdr", "X-Softphoned-Test: plain"][..] })
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp starts");
        Sipp { child, name, dir: dir.into() }
    }

    /// A sipp UAC running `scenario` against `service`@`target` (`IP:PORT`),
    /// on ports of its own.
    pub fn call(dir: &Path, scenario: &str, target: &str, service: &str, extra: &[&str]) -> Sipp {
        let mut args = vec![target, "-s", service];
        args.extend_from_slice(extra);
        Sipp::start(dir, scenario, free_port_pair(), free_port_pair(), &args)
    }

    /// sipp has bound its SIP port once we no longer can (15 s: a loaded
    /// machine starts it slowly).
    fn wait_bound(&mut self, port: u16) {
        for _ in 0..750 {
            if UdpSocket::bind(("127.0.0.1", port)).is_err() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sipp exited ({status}) before binding 127.0.0.1:{port}: was the port taken meanwhile?");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sipp did not bind 127.0.0.1:{port} in 15 s");
    }

    /// Wait for sipp to finish; panics with its message log unless it exited 0.
    pub async fn expect_success(mut self) -> String {
        let status = tokio::task::spawn_blocking(move || {
            let status = self.child.wait().unwrap();
            (status, self)
        })
        .await
        .unwrap();
        let (status, sipp) = status;
        let log = std::fs::read_to_string(sipp.dir.join(format!("{}.msg", sipp.name))).unwrap_or_default();
        let errors = std::fs::read_to_string(sipp.dir.join(format!("{}.err", sipp.name))).unwrap_or_default();
        assert!(status.success(), "sipp {} failed ({status}):\n{errors}\n{log}", sipp.name);
        log
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
