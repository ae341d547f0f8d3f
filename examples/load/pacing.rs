//! RTP send pacing of the side under test: tcpdump on the loopback into a
//! pcap bounded in packets (and stopped after the window), read here
//! (classic pcap, Ethernet/IPv4/UDP/RTP), split into streams, and the gaps
//! between a stream's consecutive packets compared with the 20 ms ptime.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::measure::{quantile, stop_child};

const PTIME_MS: f64 = 20.0;
/// A packet whose gap to its predecessor exceeds ptime by more than this is late.
const LATE_MS: f64 = 5.0;
/// Headers of Ethernet + IPv4 + UDP + RTP fit in this snap length.
const SNAPLEN: &str = "96";
const MAX_PACKETS: u64 = 2_000_000;

pub struct Capture {
    child: Child,
    file: PathBuf,
    stderr: mpsc::Receiver<String>,
}

impl Capture {
    /// Start tcpdump on lo for UDP on 127.0.0.1, at most `max_packets`
    /// (capped at 2 M); waits up to 5 s for it to say it listens.
    pub fn start(dir: &Path, name: &str, max_packets: u64) -> Result<Capture, String> {
        let file = dir.join(format!("{name}.pcap"));
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-s", SNAPLEN, "-B", "16384", "--immediate-mode"])
            .args(["-c", &max_packets.min(MAX_PACKETS).to_string(), "-w"])
            .arg(&file)
            .arg("udp and src host 127.0.0.1 and dst host 127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("tcpdump: {e}"))?;
        let stderr = child.stderr.take().expect("piped");
        let (lines, stderr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut said = String::new();
        loop {
            match stderr_rx.recv_timeout(Duration::from_secs(5)) {
                Ok(line) if line.contains("listening on") => break,
                Ok(line) => said += &(line + "\n"),
                Err(_) => {
                    stop_child(&mut child, libc::SIGKILL, Duration::from_secs(1));
                    return Err(format!("tcpdump did not start capturing on lo (root needed?): {said}"));
                }
            }
        }
        Ok(Capture { child, file, stderr: stderr_rx })
    }

    /// Stop tcpdump (SIGINT flushes the file); the pcap's path and the
    /// packets the kernel dropped, as tcpdump counted them.
    pub fn stop(mut self) -> (PathBuf, u64) {
        stop_child(&mut self.child, libc::SIGINT, Duration::from_secs(5));
        let mut dropped = 0;
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(500)) {
            if line.contains("dropped by kernel") {
                dropped = line.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
            }
        }
        (self.file.clone(), dropped)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One UDP datagram on the capture that looks like RTP (not RTCP).
#[derive(Clone, Copy, Debug)]
pub struct Packet {
    pub time: f64,
    pub src_port: u16,
    pub dst_port: u16,
    pub sequence: u16,
    pub ssrc: u32,
    pub payload_type: u8,
    /// The RTP payload's length, from the UDP length (the capture keeps only the headers).
    pub payload_bytes: u16,
}

/// Read a classic pcap file (µs or ns timestamps, either byte order) with
/// Ethernet, Linux cooked (v1, v2), null or raw IP link layers.
pub fn read_pcap(path: &Path) -> Result<Vec<Packet>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 24 {
        return Err(format!("{}: no pcap header ({} bytes)", path.display(), bytes.len()));
    }
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let (little, nanos) = match magic {
        0xa1b2c3d4 => (true, false),
        0xa1b23c4d => (true, true),
        0xd4c3b2a1 => (false, false),
        0x4d3cb2a1 => (false, true),
        _ => return Err(format!("{}: not a pcap file (magic {magic:#x})", path.display())),
    };
    let u32_at = |at: usize| -> u32 {
        let b: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let link_header = match u32_at(20) {
        1 => 14,   // Ethernet (what tcpdump writes for lo)
        113 => 16, // Linux cooked v1
        276 => 20, // Linux cooked v2
        0 => 4,    // BSD loopback
        101 => 0,  // raw IP
        other => return Err(format!("{}: link type {other} not handled", path.display())),
    };
    let mut packets = vec![];
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let seconds = u32_at(at) as f64;
        let fraction = u32_at(at + 4) as f64 / if nanos { 1e9 } else { 1e6 };
        let captured = u32_at(at + 8) as usize;
        let start = at + 16;
        at = start + captured;
        if at > bytes.len() {
            break; // a record cut short by the stop
        }
        if let Some(packet) = rtp_in_frame(&bytes[start..at], link_header, seconds + fraction) {
            packets.push(packet);
        }
    }
    Ok(packets)
}

fn rtp_in_frame(frame: &[u8], link_header: usize, time: f64) -> Option<Packet> {
    let ip = frame.get(link_header..)?;
    if ip.first()? >> 4 != 4 || *ip.get(9)? != 17 {
        return None; // IPv4 UDP only: everything here is 127.0.0.1
    }
    let udp = ip.get(((ip[0] & 0x0f) as usize) * 4..)?;
    let rtp = udp.get(8..)?;
    if rtp.len() < 12 || rtp[0] >> 6 != 2 || (200..=207).contains(&rtp[1]) {
        return None; // not RTP version 2, or RTCP (SR/RR/SDES/BYE/APP...)
    }
    let udp_length = u16::from_be_bytes([udp[4], udp[5]]);
    let csrcs = 4 * (rtp[0] & 0x0f) as u16;
    // A header extension's length is in its own header, when the capture kept it.
    let extension = match (rtp[0] & 0x10 != 0, rtp.get(12 + csrcs as usize + 2..12 + csrcs as usize + 4)) {
        (true, Some(words)) => 4 + 4 * u16::from_be_bytes([words[0], words[1]]),
        _ => 0,
    };
    Some(Packet {
        time,
        src_port: u16::from_be_bytes([udp[0], udp[1]]),
        dst_port: u16::from_be_bytes([udp[2], udp[3]]),
        sequence: u16::from_be_bytes([rtp[2], rtp[3]]),
        ssrc: u32::from_be_bytes([rtp[8], rtp[9], rtp[10], rtp[11]]),
        payload_type: rtp[1] & 0x7f,
        payload_bytes: udp_length.saturating_sub(8 + 12 + csrcs + extension),
    })
}

/// The pacing of every stream sent from one of `from` to one of `to`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Pacing {
    /// Streams (source port, destination port, SSRC) seen.
    pub streams: usize,
    /// Streams carrying at least half the packets the window should hold.
    pub full_streams: usize,
    pub packets: usize,
    /// Packets sent, in percent of 50 a second per stream over the window.
    pub sent_of_expected_percent: f64,
    /// RTP payload types seen (0 PCMU, 96.. dynamic: Opus here).
    pub payload_types: Vec<u8>,
    /// RTP payload sent per stream, in kbit/s over the window (the codec's bitrate).
    pub payload_kbps_per_stream: f64,
    /// Gaps measured (consecutive sequence numbers within a stream).
    pub gaps: usize,
    /// |gap - 20 ms|, in milliseconds.
    pub deviation_p50_ms: f64,
    pub deviation_p99_ms: f64,
    pub deviation_max_ms: f64,
    /// Share of gaps longer than 25 ms, in percent.
    pub late_percent: f64,
    /// Packets the kernel dropped before tcpdump saw them (the figures then miss some).
    pub capture_dropped: u64,
}

pub fn pacing(packets: &[Packet], from: &HashSet<u16>, to: &HashSet<u16>, window_s: f64) -> Pacing {
    let mut streams: HashMap<(u16, u16, u32), Vec<&Packet>> = HashMap::new();
    for p in packets.iter().filter(|p| from.contains(&p.src_port) && to.contains(&p.dst_port)) {
        streams.entry((p.src_port, p.dst_port, p.ssrc)).or_default().push(p);
    }
    let expected = window_s * 1000.0 / PTIME_MS;
    let mut deviations = vec![];
    let mut late = 0usize;
    let mut full_streams = 0;
    let mut count = 0;
    let mut payload_bytes = 0u64;
    let mut payload_types = vec![];
    for stream in streams.values() {
        count += stream.len();
        payload_bytes += stream.iter().map(|p| p.payload_bytes as u64).sum::<u64>();
        for p in stream.iter() {
            if !payload_types.contains(&p.payload_type) {
                payload_types.push(p.payload_type);
            }
        }
        if stream.len() as f64 >= expected / 2.0 {
            full_streams += 1;
        }
        for pair in stream.windows(2) {
            // A lost or reordered packet would count as a long gap: skip it.
            if pair[1].sequence != pair[0].sequence.wrapping_add(1) {
                continue;
            }
            let gap = (pair[1].time - pair[0].time) * 1000.0;
            deviations.push((gap - PTIME_MS).abs());
            if gap > PTIME_MS + LATE_MS {
                late += 1;
            }
        }
    }
    let q = |p| quantile(&deviations, p).unwrap_or(f64::NAN);
    Pacing {
        streams: streams.len(),
        full_streams,
        packets: count,
        sent_of_expected_percent: if streams.is_empty() {
            0.0
        } else {
            100.0 * count as f64 / (expected * streams.len() as f64)
        },
        payload_types: {
            payload_types.sort_unstable();
            payload_types
        },
        payload_kbps_per_stream: if streams.is_empty() || window_s <= 0.0 {
            0.0
        } else {
            payload_bytes as f64 * 8.0 / 1000.0 / window_s / streams.len() as f64
        },
        gaps: deviations.len(),
        deviation_p50_ms: q(0.5),
        deviation_p99_ms: q(0.99),
        deviation_max_ms: q(1.0),
        late_percent: if deviations.is_empty() { f64::NAN } else { 100.0 * late as f64 / deviations.len() as f64 },
        capture_dropped: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(time: f64, sequence: u16) -> Packet {
        Packet { time, src_port: 4000, dst_port: 6000, sequence, ssrc: 7, payload_type: 0, payload_bytes: 160 }
    }

    #[test]
    fn gaps_are_judged_against_twenty_ms() {
        let packets = vec![packet(0.0, 1), packet(0.020, 2), packet(0.050, 3), packet(0.070, 4), packet(0.2, 9)];
        let from = HashSet::from([4000]);
        let to = HashSet::from([6000]);
        let p = pacing(&packets, &from, &to, 0.1);
        assert_eq!((p.streams, p.packets, p.gaps), (1, 5, 3));
        assert!((p.deviation_max_ms - 10.0).abs() < 1e-6);
        assert!((p.late_percent - 100.0 / 3.0).abs() < 1e-6);
        // 5 packets of 160 bytes in 0.1 s.
        assert!((p.payload_kbps_per_stream - 64.0).abs() < 1e-6);
        assert_eq!(pacing(&packets, &to, &from, 0.1).streams, 0);
    }
}
