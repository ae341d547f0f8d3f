//! One round: start the side under test, measure it idle, bring N calls up
//! from the caller (sipp; for Opus a second softphoned), measure a steady
//! window (CPU, RSS, pacing, bitrates, control round trips), let the calls
//! end, stop it, check its recordings.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::caller::{Caller, CallerOutcome};
use crate::measure::{cpu_percent, cpu_sample, quantile, rss_kb, udp_ports, wait_until};
use crate::pacing::{self, Capture, Pacing};
use crate::peers::{Baresip, Jackd, Softphoned};
use crate::sipp;
use crate::{Options, Side};

/// How long the side sits idle before its idle RSS is read.
const IDLE: Duration = Duration::from_secs(1);
/// Then how long its idle CPU is measured (1 s in the smoke mode).
const IDLE_CPU: Duration = Duration::from_secs(5);
/// After the last call is up, before the window opens.
const SETTLE: Duration = Duration::from_secs(1);
/// Round trips of daemon.status after the window, calls still up, one
/// every this, for this long: not during the window, whose CPU figure
/// would then include serving them (baresip is not probed).
const PROBE_EVERY: Duration = Duration::from_millis(50);
const PROBE_FOR: Duration = Duration::from_secs(2);

pub struct Setup<'a> {
    pub side: Side,
    pub index: u32,
    pub calls: u32,
    pub options: &'a Options,
    pub softphoned: &'a Path,
    pub work: &'a Path,
    pub jack: Option<&'a Jackd>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Rtt {
    pub samples: usize,
    pub errors: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Recordings {
    /// Whether each file was checked (softphoned's); baresip's are only counted.
    pub checked: bool,
    /// WAV files found.
    pub files: usize,
    /// Of them, with a header that matches the file and at least the call's length of audio.
    pub complete: usize,
    pub shortest_s: Option<f64>,
    pub longest_s: Option<f64>,
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RoundResult {
    pub side: String,
    pub round: u32,
    pub calls: u32,
    /// Calls up when the window opened (the side's own count).
    pub established: usize,
    pub window_s: f64,
    pub caller: CallerOutcome,
    /// Of one core, the whole process.
    pub cpu_percent: Option<f64>,
    pub cpu_per_call_percent: Option<f64>,
    /// jackd's share over the same window (it paces baresip; not counted in baresip's).
    pub jackd_cpu_percent: Option<f64>,
    /// sipp's, or the Opus caller's.
    pub caller_cpu_percent: Option<f64>,
    pub rss_idle_kb: Option<u64>,
    /// Of one core, the whole process with no call.
    pub cpu_idle_percent: Option<f64>,
    pub rss_calls_kb: Option<u64>,
    pub rss_per_call_kb: Option<f64>,
    pub pacing: Option<Pacing>,
    /// RTP payload per call from the caller to the side, kbit/s (what it decodes).
    pub received_kbps_per_call: Option<f64>,
    pub control_rtt: Option<Rtt>,
    pub recordings: Option<Recordings>,
    pub errors: Vec<String>,
}

impl RoundResult {
    pub fn one_line(&self) -> String {
        let f = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        format!(
            "{}/{} up, failed {:?}, cpu/call {}%, rss {:?}->{:?} kB, late {}%, p99 dev {} ms{}",
            self.established,
            self.calls,
            self.caller.failed,
            f(self.cpu_per_call_percent),
            self.rss_idle_kb,
            self.rss_calls_kb,
            f(self.pacing.as_ref().map(|p| p.late_percent)),
            f(self.pacing.as_ref().map(|p| p.deviation_p99_ms)),
            if self.errors.is_empty() { String::new() } else { format!(", errors: {}", self.errors.join("; ")) }
        )
    }
}

enum Sut {
    Softphoned(Softphoned),
    Baresip(Baresip),
}

impl Sut {
    fn pid(&self) -> u32 {
        match self {
            Sut::Softphoned(d) => d.pid(),
            Sut::Baresip(b) => b.pid(),
        }
    }

    fn sip_port(&self) -> u16 {
        match self {
            Sut::Softphoned(d) => d.sip_port,
            Sut::Baresip(b) => b.sip_port,
        }
    }

    fn established(&self) -> usize {
        match self {
            Sut::Softphoned(d) => d.connected_calls(),
            Sut::Baresip(b) => b.established().saturating_sub(b.closed()),
        }
    }
}

pub fn run(setup: &Setup) -> RoundResult {
    let mut result = RoundResult {
        side: setup.side.name().into(),
        round: setup.index + 1,
        calls: setup.calls,
        window_s: setup.options.seconds as f64,
        ..RoundResult::default()
    };
    if let Err(e) = measure_round(setup, &mut result) {
        result.errors.push(e);
    }
    result
}

fn measure_round(setup: &Setup, result: &mut RoundResult) -> Result<(), String> {
    let dir: PathBuf = setup.work.join(format!("round{}-{}", setup.index + 1, setup.side.name()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut sut = match setup.side {
        Side::Softphoned => Sut::Softphoned(Softphoned::start(
            setup.softphoned,
            &dir.join("softphoned"),
            setup.calls,
            setup.options,
            setup.jack,
        )?),
        Side::Baresip => {
            let jack = setup.jack.ok_or("no jackd for baresip")?;
            Sut::Baresip(Baresip::start(&dir.join("baresip"), setup.options, jack)?)
        }
    };
    let pid = sut.pid();
    std::thread::sleep(IDLE);
    result.rss_idle_kb = rss_kb(pid);
    let idle_window = if setup.options.smoke { Duration::from_secs(1) } else { IDLE_CPU };
    let idle_from = cpu_sample(pid);
    std::thread::sleep(idle_window);
    result.cpu_idle_percent = idle_from.zip(cpu_sample(pid)).map(|(from, to)| cpu_percent(from, to));

    // Calls last long enough for the ramp, the settling and the window, and end by themselves.
    let window = Duration::from_secs(setup.options.seconds);
    let ramp = Duration::from_secs((setup.calls / sipp::call_rate(setup.calls)) as u64 + 1);
    let up_budget = ramp + Duration::from_secs(if setup.options.smoke { 3 } else { 6 });
    let call_length = up_budget + SETTLE + window + PROBE_FOR + Duration::from_secs(1);
    let caller_started = Instant::now();
    let caller = Caller::start(&dir, setup.options, setup.softphoned, sut.sip_port(), setup.calls, call_length)?;
    let all_up = wait_until(up_budget, || sut.established() >= setup.calls as usize);
    std::thread::sleep(SETTLE);
    result.established = sut.established();
    if !all_up {
        result.errors.push(format!("only {} of {} calls up after {up_budget:?}", result.established, setup.calls));
    }

    let from: HashSet<u16> = udp_ports(pid).into_iter().filter(|p| *p != sut.sip_port()).collect();
    let to = udp_ports(caller.pid());
    // Both directions of every call, twice over, and a margin.
    let max_packets = 2 * setup.calls as u64 * 50 * (setup.options.seconds + 2) * 2 + 1000;
    let capture = Capture::start(&dir, "rtp", max_packets)?;
    let jack_pid = setup.jack.filter(|_| setup.side == Side::Baresip || setup.options.card).map(Jackd::pid);
    let start = (cpu_sample(pid), jack_pid.and_then(cpu_sample), cpu_sample(caller.pid()));
    let window_started = Instant::now();
    let mut rss_samples = vec![];
    while window_started.elapsed() < window {
        std::thread::sleep(Duration::from_millis(500).min(window.saturating_sub(window_started.elapsed())));
        rss_samples.extend(rss_kb(pid));
    }
    let end = (cpu_sample(pid), jack_pid.and_then(cpu_sample), cpu_sample(caller.pid()));
    let measured_s = window_started.elapsed().as_secs_f64();
    result.window_s = measured_s;
    let (pcap, dropped) = capture.stop();
    if let Sut::Softphoned(daemon) = &sut {
        let probe = daemon.probe_control(PROBE_EVERY);
        std::thread::sleep(PROBE_FOR);
        let (samples, errors) = probe.finish();
        let q = |p| quantile(&samples, p).unwrap_or(f64::NAN);
        result.control_rtt =
            Some(Rtt { samples: samples.len(), errors, p50_us: q(0.5), p99_us: q(0.99), max_us: q(1.0) });
    }
    if caller_started.elapsed() > call_length {
        result.errors.push("the window outlasted the first calls: figures mix in hang-ups".into());
    }

    let pair = |a: Option<_>, b: Option<_>| a.zip(b).map(|(a, b)| cpu_percent(a, b));
    result.cpu_percent = pair(start.0, end.0);
    result.cpu_per_call_percent = result.cpu_percent.map(|c| c / setup.calls as f64);
    result.jackd_cpu_percent = pair(start.1, end.1);
    result.caller_cpu_percent = pair(start.2, end.2);
    result.rss_calls_kb = rss_samples.iter().copied().max();
    result.rss_per_call_kb = result
        .rss_idle_kb
        .zip(result.rss_calls_kb)
        .map(|(idle, calls)| (calls as f64 - idle as f64) / setup.calls as f64);

    result.caller = caller.finish(call_length + Duration::from_secs(30));
    if result.caller.exit_code != Some(0) {
        result.errors.push(format!("the caller exited {:?}: {}", result.caller.exit_code, result.caller.errors));
    }
    match &mut sut {
        Sut::Softphoned(daemon) => {
            if !daemon.stop() {
                result.errors.push("softphoned did not stop on SIGTERM in 10 s".into());
            }
            if setup.options.record {
                let check = check_recordings(&daemon.recordings, call_length, setup.calls);
                if check.complete != setup.calls as usize {
                    result.errors.push(format!(
                        "{} complete recordings for {} calls: {:?}",
                        check.complete, setup.calls, check.problems
                    ));
                }
                result.recordings = Some(check);
            }
        }
        Sut::Baresip(bare) => {
            bare.stop();
            if setup.options.record {
                let files = wav_files(&bare.dir.join("recordings"));
                // sndfile names files by the second: calls answered in the same second share one.
                result.recordings = Some(Recordings { files: files.len(), ..Recordings::default() });
            }
        }
    }
    let packets = pacing::read_pcap(&pcap)?;
    result.received_kbps_per_call = Some(pacing::pacing(&packets, &to, &from, measured_s).payload_kbps_per_stream);
    let mut measured = pacing::pacing(&packets, &from, &to, measured_s);
    measured.capture_dropped = dropped;
    if measured.full_streams < result.established {
        result
            .errors
            .push(format!("{} calls up but {} full RTP streams captured", result.established, measured.full_streams));
    }
    result.pacing = Some(measured);
    if !setup.options.smoke {
        let _ = std::fs::remove_file(&pcap); // up to tens of MB a round
    }
    Ok(())
}

fn wav_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![];
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "wav") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// One WAV per call, each whole: its header's length agrees with the file,
/// and it holds (nearly) the call's length of audio.
fn check_recordings(dir: &Path, call_length: Duration, calls: u32) -> Recordings {
    let mut check = Recordings { checked: true, ..Recordings::default() };
    let files = wav_files(dir);
    check.files = files.len();
    if files.len() != calls as usize {
        check.problems.push(format!("{} WAV files for {calls} calls", files.len()));
    }
    let mut lengths = vec![];
    for file in &files {
        let name = file.file_name().unwrap_or_default().to_string_lossy().to_string();
        let reader = match hound::WavReader::open(file) {
            Ok(r) => r,
            Err(e) => {
                check.problems.push(format!("{name}: {e}"));
                continue;
            }
        };
        let spec = reader.spec();
        let frames = reader.duration() as u64;
        let data_bytes = frames * spec.channels as u64 * (spec.bits_per_sample as u64 / 8);
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let seconds = frames as f64 / spec.sample_rate as f64;
        lengths.push(seconds);
        let header = size.saturating_sub(data_bytes);
        let long_enough = seconds >= call_length.as_secs_f64() - 1.0;
        if size < data_bytes || header > 4096 {
            check.problems.push(format!("{name}: header says {data_bytes} bytes of audio, file is {size}"));
        } else if !long_enough {
            check.problems.push(format!("{name}: {seconds:.2} s, the call lasted {:.1} s", call_length.as_secs_f64()));
        } else {
            check.complete += 1;
        }
    }
    check.problems.truncate(10);
    check.shortest_s = lengths.iter().copied().reduce(f64::min);
    check.longest_s = lengths.iter().copied().reduce(f64::max);
    check
}
