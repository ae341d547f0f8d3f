//! The load harness (examples/load) must not rot: run its smoke mode (2
//! calls from sipp, 3 s window, one round for softphoned and one for
//! baresip on jackd's dummy card) and judge the JSON summary it writes.
//! `cargo test` builds the example beside the test binaries (so does
//! tests/run.sh with `cargo build --examples`). Under `CI=true` a missing
//! tool fails the test; elsewhere it is skipped with a line saying so.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The harness bounds its own waits; this only catches it hanging.
const HARNESS_TIMEOUT: Duration = Duration::from_secs(90);

/// target/PROFILE/examples/load, beside target/PROFILE/deps/load_smoke-HASH.
fn harness_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).expect("target/PROFILE");
    profile.join("examples").join("load")
}

fn baresip_side_installed() -> bool {
    let modules = ["g711", "jack", "account", "menu", "ctrl_tcp"];
    let found = common::require_tools(&["baresip", "jackd"])
        && modules.iter().all(|m| std::path::Path::new(&format!("/usr/lib/baresip/modules/{m}.so")).is_file());
    if !found && std::env::var("CI").as_deref() == Ok("true") {
        panic!("baresip-core with jack.so and jackd2 are required under CI=true: run tests/run.sh");
    }
    found
}

fn figure<'a>(summary: &'a Value, name: &str, side: &str) -> &'a Value {
    &summary["figures"][name][side]["median"]
}

fn number(summary: &Value, name: &str, side: &str) -> f64 {
    figure(summary, name, side)
        .as_f64()
        .unwrap_or_else(|| panic!("{name} for {side} missing: {}", summary["figures"][name]))
}

#[test]
fn the_load_harness_smoke_run_measures_both_sides() {
    if !common::require_tools(&["sipp", "sox", "tcpdump"]) {
        return;
    }
    let with_baresip = baresip_side_installed();
    let binary = harness_binary();
    assert!(binary.is_file(), "{} missing: build it with `cargo build --examples`", binary.display());
    let out = tempfile::tempdir().unwrap();
    let mut command = Command::new(&binary);
    command
        .args(["--smoke", "--softphoned", env!("CARGO_BIN_EXE_softphoned")])
        .arg("--out")
        .arg(out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if with_baresip {
        command.arg("--require-baresip");
    } else {
        command.args(["--only", "softphoned"]);
    }
    let started = Instant::now();
    let child = command.spawn().expect("the load harness starts");
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        while started.elapsed() < HARNESS_TIMEOUT {
            std::thread::sleep(Duration::from_millis(200));
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return;
            }
        }
        let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
    });
    let output = child.wait_with_output().unwrap();
    let _ = watchdog.join();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the harness failed ({}) after {:?}:\n{stdout}\n{stderr}",
        output.status,
        started.elapsed()
    );
    let text = std::fs::read_to_string(out.path().join("summary.json")).expect("summary.json written");
    let summary: Value = serde_json::from_str(&text).unwrap();
    let context = format!("\n{stdout}\n{stderr}");

    let mut sides = vec!["softphoned"];
    if with_baresip {
        sides.push("baresip");
    }
    assert_eq!(summary["sides"], serde_json::json!(sides), "{context}");
    for side in &sides {
        assert_eq!(number(&summary, "calls_up", side), 2.0, "{side}: calls up{context}");
        assert_eq!(number(&summary, "failed_calls", side), 0.0, "{side}: failed calls{context}");
        assert_eq!(number(&summary, "rtp_streams_full", side), 2.0, "{side}: RTP streams{context}");
        // 2 calls x 3 s x 50 packets a second, give or take the window's edges.
        let packets = number(&summary, "rtp_packets", side);
        assert!((200.0..=400.0).contains(&packets), "{side}: {packets} RTP packets{context}");
        let cpu = number(&summary, "cpu_per_call", side);
        assert!(cpu > 0.0 && cpu < 100.0, "{side}: cpu per call {cpu}{context}");
        let idle_cpu = number(&summary, "cpu_idle", side);
        assert!((0.0..100.0).contains(&idle_cpu), "{side}: idle cpu {idle_cpu}{context}");
        let (idle, calls) = (number(&summary, "rss_idle", side), number(&summary, "rss_in_calls", side));
        assert!(idle > 500.0 && idle < 1_000_000.0, "{side}: idle RSS {idle} kB{context}");
        assert!(calls > 500.0 && calls < 1_000_000.0, "{side}: RSS in calls {calls} kB{context}");
        let p50 = number(&summary, "pacing_dev_p50", side);
        let late = number(&summary, "late_over_5ms", side);
        assert!((0.0..20.0).contains(&p50), "{side}: pacing deviation p50 {p50} ms{context}");
        assert!((0.0..=100.0).contains(&late), "{side}: late share {late}%{context}");
    }
    let rtt = number(&summary, "control_rtt_p50", "softphoned");
    assert!(rtt > 0.0 && rtt < 1_000_000.0, "control round trip {rtt} µs{context}");
    if with_baresip {
        assert!(summary["figures"]["cpu_per_call"]["ratio"].as_f64().is_some(), "no ratio{context}");
    }
    let rounds = summary["rounds_detail"].as_array().unwrap();
    assert_eq!(rounds.len(), sides.len(), "{context}");
    assert!(rounds.iter().all(|r| r["errors"].as_array().unwrap().is_empty()), "{context}");
}
