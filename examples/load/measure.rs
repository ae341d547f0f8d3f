//! What /proc says about a process (CPU time, resident memory, its UDP
//! ports), order statistics, and stopping children within a bounded time.

use std::collections::HashSet;
use std::process::Child;
use std::time::{Duration, Instant};

/// The CPU time of each of a process's threads at a wall-clock instant, in
/// nanoseconds: the first field of `/proc/PID/task/TID/schedstat`. utime
/// and stime move in whole 10 ms ticks, 0.05 % of a core over a 20 s
/// window, as much as one call costs a side with a card, and an idle
/// process would read as nothing at all.
#[derive(Clone, Debug)]
pub struct CpuSample {
    pub at: Instant,
    threads: Vec<(u32, u64)>,
}

pub fn cpu_sample(pid: u32) -> Option<CpuSample> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let runtime = |task: std::fs::DirEntry| -> Option<(u32, u64)> {
        let tid = task.file_name().to_str()?.parse().ok()?;
        let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        Some((tid, schedstat.split_whitespace().next()?.parse().ok()?))
    };
    Some(CpuSample { at: Instant::now(), threads: tasks.flatten().filter_map(runtime).collect() })
}

/// Percent of one core used between two samples: what each thread alive
/// at the second ran since the first (all of it for a thread started
/// since). A thread that ended in between takes its time with it, so the
/// figure errs low by that, never below zero.
pub fn cpu_percent(from: CpuSample, to: CpuSample) -> f64 {
    let wall = to.at.duration_since(from.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    let before = |tid: u32| from.threads.iter().find(|(t, _)| *t == tid).map_or(0, |(_, ns)| *ns);
    let ran: u64 = to.threads.iter().map(|&(tid, ns)| ns.saturating_sub(before(tid))).sum();
    100.0 * ran as f64 / 1e9 / wall
}

/// Resident memory that is the process's own: VmRSS minus RssShmem, in kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Some(field("VmRSS:")?.saturating_sub(field("RssShmem:").unwrap_or(0)))
}

/// The local UDP ports of the sockets `pid` holds open (IPv4 and IPv6):
/// its file descriptors name socket inodes, /proc/net/udp maps them to ports.
pub fn udp_ports(pid: u32) -> HashSet<u16> {
    let mut inodes = HashSet::new();
    if let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in entries.flatten() {
            if let Ok(target) = std::fs::read_link(entry.path()) {
                let target = target.to_string_lossy();
                if let Some(inode) = target.strip_prefix("socket:[").and_then(|t| t.strip_suffix(']')) {
                    inodes.insert(inode.to_string());
                }
            }
        }
    }
    let mut ports = HashSet::new();
    for table in ["udp", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(inode)) = (fields.get(1), fields.get(9)) else { continue };
            if inodes.contains(*inode) {
                if let Some(port) = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()) {
                    ports.insert(port);
                }
            }
        }
    }
    ports
}

/// The `q`-quantile (0..=1) of `values` by nearest rank; `None` when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Median, smallest and largest of what the rounds measured.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
    Some(Spread { median, min: sorted[0], max: sorted[n - 1] })
}

/// Send `signal` to `pid` (no-op if it is gone).
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a child's pid; an exited child is at worst a zombie we still own.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// Ask `child` to stop with `sig`, wait up to `grace`, then SIGKILL; reap it.
/// Returns whether it exited by itself within `grace`.
pub fn stop_child(child: &mut Child, sig: i32, grace: Duration) -> bool {
    if let Ok(Some(_)) = child.try_wait() {
        return true;
    }
    signal(child.id(), sig);
    if wait_child(child, grace).is_some() {
        return true;
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// Wait up to `timeout` for `child` to exit; its exit code (-1 for a signal).
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status.code().unwrap_or(-1)),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

/// Poll `ready` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free loopback UDP port (even, the next one free too), for SIP or media bases.
pub fn free_udp_port() -> u16 {
    for _ in 0..200 {
        let Ok(socket) = std::net::UdpSocket::bind("127.0.0.1:0") else { continue };
        let Ok(port) = socket.local_addr().map(|a| a.port()) else { continue };
        if port % 2 == 0 && port < 60000 && std::net::UdpSocket::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    crate::fatal("no free loopback UDP port");
}

/// A free loopback TCP port.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| crate::fatal(&format!("no free loopback TCP port: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), Some(50.0));
        assert_eq!(quantile(&values, 0.99), Some(99.0));
        assert_eq!(quantile(&values, 1.0), Some(100.0));
        assert_eq!(quantile(&[], 0.5), None);
        let s = spread(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
    }

    #[test]
    fn this_process_is_measurable() {
        let pid = std::process::id();
        assert!(cpu_sample(pid).is_some());
        assert!(rss_kb(pid).unwrap() > 0);
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(udp_ports(pid).contains(&socket.local_addr().unwrap().port()));
    }
}
