//! The PCMU load: one sipp UAC placing N calls at a bounded rate, all up at
//! once (`-l N`), each streaming a μ-law tone (`rtp_stream`, looped) and
//! hanging up after a fixed length; judged by its exit code and its
//! statistics file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::caller::CallerOutcome;
use crate::measure::{free_udp_port, stop_child, wait_child, wait_until};

const SCENARIO: &str = include_str!("uac_load.xml");
const TONE_FILE: &str = "tone1k.ulaw";

pub struct Sipp {
    child: Child,
    dir: PathBuf,
}

/// Calls placed per second: the ramp is short but not a single burst.
pub fn call_rate(calls: u32) -> u32 {
    (calls / 2).clamp(5, 50)
}

/// Write the scenario and the tone file (30 s of 1 kHz, raw μ-law, made by sox) into `dir`.
pub fn prepare(dir: &Path) -> Result<(), String> {
    std::fs::write(dir.join("uac_load.xml"), SCENARIO).map_err(|e| e.to_string())?;
    if dir.join(TONE_FILE).is_file() {
        return Ok(());
    }
    let made = Command::new("sox")
        .current_dir(dir)
        .args(["-n", "-r", "8000", "-c", "1", "-e", "u-law", "-t", "raw", TONE_FILE, "synth", "30", "sine", "1000"])
        .status()
        .map_err(|e| format!("sox: {e}"))?;
    if made.success() {
        Ok(())
    } else {
        Err(format!("sox could not write {TONE_FILE}"))
    }
}

impl Sipp {
    /// Start `calls` calls to `agent@127.0.0.1:target_port`, each `call_length` long.
    pub fn start(dir: &Path, target_port: u16, calls: u32, call_length: Duration) -> Result<Sipp, String> {
        let rate = call_rate(calls);
        // Every call ends on its own; past this sipp gives up (and we kill it later still).
        let global_timeout = call_length.as_secs() + (calls / rate) as u64 + 30;
        let port = free_udp_port();
        let media = free_udp_port();
        let log = std::fs::File::create(dir.join("sipp.out")).map_err(|e| e.to_string())?;
        let child = Command::new("sipp")
            .current_dir(dir)
            .args(["-sf", "uac_load.xml", &format!("127.0.0.1:{target_port}"), "-s", "agent"])
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", &port.to_string(), "-mp", &media.to_string()])
            .args(["-m", &calls.to_string(), "-l", &calls.to_string(), "-r", &rate.to_string(), "-rp", "1000"])
            .args(["-d", &call_length.as_millis().to_string()])
            .args(["-nostdin", "-timeout", &format!("{global_timeout}s"), "-timeout_error", "-recv_timeout", "20000"])
            .args(["-trace_stat", "-stf", "stats.csv", "-fd", "1"])
            .args(["-trace_err", "-error_file", "errors.log"])
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn sipp: {e}"))?;
        let mut sipp = Sipp { child, dir: dir.into() };
        // It binds its SIP port once it runs.
        let bound = wait_until(Duration::from_secs(10), || {
            std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() || sipp.child.try_wait().ok().flatten().is_some()
        });
        if !bound || sipp.child.try_wait().ok().flatten().is_some() {
            let out = std::fs::read_to_string(dir.join("sipp.out")).unwrap_or_default();
            stop_child(&mut sipp.child, libc::SIGKILL, Duration::from_secs(1));
            return Err(format!("sipp did not start: {out}"));
        }
        Ok(sipp)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait up to `timeout` for sipp to finish (killing it past that), then read its statistics.
    pub fn finish(mut self, timeout: Duration) -> CallerOutcome {
        let exit_code = wait_child(&mut self.child, timeout);
        if exit_code.is_none() {
            stop_child(&mut self.child, libc::SIGKILL, Duration::from_secs(1));
        }
        let (successful, failed) = read_stats(&self.dir.join("stats.csv"));
        let errors = if exit_code == Some(0) { String::new() } else { self.errors() };
        CallerOutcome { exit_code, successful, failed, errors }
    }

    /// sipp's error log, for a round that failed.
    fn errors(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("errors.log")).unwrap_or_default();
        text.lines().take(20).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cumulative successful and failed calls of the last line of sipp's `-trace_stat` file.
fn read_stats(path: &Path) -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string(path) else { return (None, None) };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else { return (None, None) };
    let Some(last) = lines.next_back() else { return (None, None) };
    let names: Vec<&str> = header.split(';').collect();
    let values: Vec<&str> = last.split(';').collect();
    let field = |name: &str| -> Option<u64> {
        let at = names.iter().position(|n| n.trim() == name)?;
        values.get(at)?.trim().parse().ok()
    };
    (field("SuccessfulCall(C)"), field("FailedCall(C)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_of_the_stats_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.csv");
        std::fs::write(
            &path,
            "StartTime;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);\nx;0;0;0;0;\ny;1;9;0;1;\n",
        )
        .unwrap();
        assert_eq!(read_stats(&path), (Some(9), Some(1)));
        assert_eq!(read_stats(&dir.path().join("none")), (None, None));
    }
}
