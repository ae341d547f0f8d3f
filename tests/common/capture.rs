//! tcpdump on the loopback and tshark's RTP decoder: what really went over
//! the wire to a peer's media port.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// One RTP packet as the capture saw it.
#[derive(Debug, Clone)]
pub struct RtpSeen {
    /// Arrival, seconds since the epoch.
    pub time: f64,
    pub sequence: u32,
    pub timestamp: u64,
    pub payload_type: u32,
    pub payload: Vec<u8>,
}

pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Capture what is sent to 127.0.0.1:`port`.
    pub fn start(dir: &Path, port: u16) -> Capture {
        Self::start_filtered(dir, &format!("dst port {port}"))
    }

    /// Capture what is sent to any of `ports` on 127.0.0.1: for a peer whose
    /// media port is known only later; [`Self::stop`] then names the one to decode.
    pub fn start_port_range(dir: &Path, ports: RangeInclusive<u16>) -> Capture {
        Self::start_filtered(dir, &format!("dst portrange {}-{}", ports.start(), ports.end()))
    }

    fn start_filtered(dir: &Path, ports: &str) -> Capture {
        Self::spawn(Command::new("tcpdump"), "lo", dir, &format!("udp and dst host 127.0.0.1 and {ports}"))
    }

    /// Capture, inside `netns` on `interface`, the UDP `filter` lets
    /// through (e.g. what reaches a host's media ports in a test network).
    pub fn start_in(netns: &super::netns::Netns, interface: &str, dir: &Path, filter: &str) -> Capture {
        Self::spawn(netns.command("tcpdump"), interface, dir, &format!("udp and {filter}"))
    }

    fn spawn(mut tcpdump: Command, interface: &str, dir: &Path, filter: &str) -> Capture {
        let file = dir.join("rtp.pcap");
        let child = tcpdump
            .args(["-i", interface, "-n", "-U", "--immediate-mode", "-w"])
            .arg(&file)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump starts");
        let mut capture = Capture { child, file };
        capture.wait_listening();
        capture
    }

    /// tcpdump says "listening on lo" once it captures.
    fn wait_listening(&mut self) {
        use std::io::Read;
        let mut stderr = self.child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&seen).contains("listening on") {
            match stderr.read(&mut byte) {
                Ok(1) => seen.push(byte[0]),
                _ => panic!("tcpdump cannot capture on lo (root needed): {}", String::from_utf8_lossy(&seen)),
            }
        }
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    }

    /// Stop and decode every RTP packet sent to `port`.
    pub fn stop(mut self, port: u16) -> Vec<RtpSeen> {
        Command::new("kill").arg("-INT").arg(self.child.id().to_string()).status().unwrap();
        self.child.wait().unwrap();
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&self.file)
            .args(["-d", &format!("udp.port=={port},rtp"), "-Y", "rtp", "-T", "fields"])
            .args(["-e", "frame.time_epoch", "-e", "rtp.seq", "-e", "rtp.timestamp", "-e", "rtp.p_type"])
            .args(["-e", "rtp.payload"])
            .output()
            .expect("tshark runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                Some(RtpSeen {
                    time: f.first()?.parse().ok()?,
                    sequence: f.get(1)?.parse().ok()?,
                    timestamp: f.get(2)?.parse().ok()?,
                    payload_type: f.get(3)?.parse().ok()?,
                    payload: hex(f.get(4).copied().unwrap_or_default()),
                })
            })
            .collect()
    }
}

/// The μ-law audio of the captured packets (PCMU, payload type 0), from
/// `from_end` seconds before the last packet, `secs` long, in sequence
/// order: what the peer at that port was sent, as it would hear it. Panics
/// when the window holds much less audio than asked for, so a check on it
/// cannot pass on silence that was never sent.
pub fn ulaw_window(packets: &[RtpSeen], from_end: f64, secs: f64) -> Vec<i16> {
    let last = packets.iter().map(|p| p.time).fold(f64::MIN, f64::max);
    let mut window: Vec<&RtpSeen> = packets
        .iter()
        .filter(|p| p.payload_type == 0 && p.time >= last - from_end && p.time < last - from_end + secs)
        .collect();
    window.sort_by_key(|p| p.sequence);
    let audio: Vec<i16> =
        window.iter().flat_map(|p| p.payload.iter().map(|code| softphoned::media::g711::ulaw_decode(*code))).collect();
    assert!(audio.len() as f64 >= 0.8 * secs * 8000.0, "only {} samples sent in that window", audio.len());
    audio
}

/// tshark prints payloads as `aa:bb:cc` (or plain hex, by version).
fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.chars().filter(char::is_ascii_hexdigit).collect();
    (0..digits.len() / 2).filter_map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).ok()).collect()
}

/// A test that fails before [`Capture::stop`] leaves no tcpdump behind.
impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The longest time between two captured packets that followed each other
/// on the wire, in milliseconds: the audio's worst gap.
pub fn largest_gap_ms(packets: &[RtpSeen]) -> f64 {
    let mut times: Vec<f64> = packets.iter().map(|p| p.time).collect();
    times.sort_by(f64::total_cmp);
    times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max) * 1000.0
}
