//! systemd's notify protocol as the daemon speaks it: a fake
//! `NOTIFY_SOCKET` (a datagram socket of the test's own) hears `READY=1`,
//! `WATCHDOG=1` at half of `WATCHDOG_USEC`, `STATUS=` when the account
//! registers and when a call comes and goes, and no ping while the run loop
//! is blocked (`debug.stall`, a test hook). And the unit file passes
//! `systemd-analyze verify`.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::sipp::{free_port_pair, tone_peer, Sipp};
use common::{dial, require_tool, require_tools, Daemon, Setup};
use serde_json::json;
use softphoned::control::client::is_call_state;

/// What the fake systemd heard, with when.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<(Instant, String)>>>);

impl Heard {
    /// Listen on `socket` on a thread of its own, for as long as the test runs.
    fn listen(socket: UnixDatagram) -> Heard {
        let heard = Heard::default();
        let log = heard.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let at = Instant::now();
                let mut log = log.0.lock().unwrap();
                log.extend(text.lines().map(|line| (at, line.to_string())));
            }
        });
        heard
    }

    /// When each line equal to or starting with `prefix` came.
    fn times(&self, prefix: &str) -> Vec<Instant> {
        self.0.lock().unwrap().iter().filter(|(_, l)| l.starts_with(prefix)).map(|(at, _)| *at).collect()
    }

    fn statuses(&self) -> Vec<String> {
        let log = self.0.lock().unwrap();
        log.iter().filter_map(|(_, l)| l.strip_prefix("STATUS=")).map(str::to_string).collect()
    }

    async fn wait_for(&self, line: &str) {
        for _ in 0..500 {
            if self.0.lock().unwrap().iter().any(|(_, l)| l == line) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("never heard {line:?}; heard {:?}", self.0.lock().unwrap());
    }
}

fn pings_between(heard: &Heard, from: Instant, to: Instant) -> usize {
    heard.times("WATCHDOG=1").into_iter().filter(|at| (from..to).contains(at)).count()
}

#[tokio::test]
async fn the_run_loop_pings_the_watchdog_and_reports_calls() {
    if !require_tools(&["sipp", "sox"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let heard = Heard::listen(UnixDatagram::bind(&path).unwrap());
    let env = [
        ("NOTIFY_SOCKET", path.to_str().unwrap()),
        // 200 ms: pings every 100 ms.
        ("WATCHDOG_USEC", "200000"),
        ("SOFTPHONED_TEST_HOOKS", "1"),
    ];
    // One account, whose registrar (sipp) answers its REGISTER once.
    let work = tempfile::tempdir().unwrap();
    let registrar_port = free_port_pair();
    let registrar = Sipp::start(work.path(), "uas_registrar.xml", registrar_port, free_port_pair(), &[]);
    let account = format!(
        "[[accounts]]\nid = \"main\"\naor = \"sip:agent@127.0.0.1\"\n\
         registrar = \"sip:127.0.0.1:{registrar_port}\"\nexpires_s = 300\nkeepalive_s = 0\n"
    );
    let setup = Setup { extra: &account, env: &env, watchdog_pid: true, ..Setup::default() };
    let agent = Daemon::spawn_with("agent", setup).await;
    let mut ui = agent.client().await;
    heard.wait_for("READY=1").await;
    heard.wait_for("STATUS=0 calls; 1/1 accounts registered").await;
    registrar.expect_success().await;

    // The cadence, counted over 2 s (20 expected), with room for a loaded machine.
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pings = pings_between(&heard, start, Instant::now());
    assert!((12..=30).contains(&pings), "{pings} pings in 2 s at a 100 ms cadence");

    // A blocked loop does not ping: none while it sleeps (with a period's
    // slack either side for a ping already on its way), then pings again.
    let asked = Instant::now();
    ui.call("debug.stall", json!({"ms": 1000})).await.unwrap();
    let answered = Instant::now();
    assert!(answered - asked >= Duration::from_millis(1000));
    let silent = pings_between(&heard, asked + Duration::from_millis(150), answered - Duration::from_millis(50));
    assert_eq!(silent, 0, "the watchdog was pinged while the run loop was blocked");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = pings_between(&heard, answered, Instant::now());
    assert!(after >= 5, "only {after} pings in the second after the stall");

    // STATUS= follows the calls, once per change.
    let (_work, peer, port, _media) = tone_peer();
    let call = dial(&mut ui, &format!("sip:tone@127.0.0.1:{port}")).await;
    heard.wait_for("STATUS=1 call; 1/1 accounts registered").await;
    ui.wait_event(Duration::from_secs(10), |e| is_call_state(e, &call, "connected")).await.unwrap();
    ui.call("call.hangup", json!({ "call": call })).await.unwrap();
    heard.wait_for("STATUS=0 calls; 1/1 accounts registered").await;
    peer.expect_success().await;
    let statuses = heard.statuses();
    assert_eq!(
        statuses,
        [
            "0 calls; 0/1 accounts registered",
            "0 calls; 1/1 accounts registered",
            "1 call; 1/1 accounts registered",
            "0 calls; 1/1 accounts registered"
        ],
        "STATUS= is sent when it changes, not every turn"
    );
}

#[test]
fn without_the_test_hook_the_loop_cannot_be_stalled() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let agent = Daemon::spawn("agent", "").await;
        let mut ui = agent.client().await;
        let refused = ui.call("debug.stall", json!({"ms": 10})).await.unwrap_err();
        assert!(refused.to_string().contains("SOFTPHONED_TEST_HOOKS"), "{refused}");
    });
}

/// The unit as shipped, with ExecStart pointing at the binary under test
/// (verify checks that the program exists): no error and no warning.
#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if !require_tool("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/softphoned.service")).unwrap();
    assert!(unit.contains("\nWatchdogSec="), "the unit sets no watchdog");
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).expect("the unit has an ExecStart");
    let program = exec["ExecStart=".len()..].split_whitespace().next().unwrap();
    let unit = unit.replace(program, env!("CARGO_BIN_EXE_softphoned"));
    std::fs::write(dir.path().join("softphoned.service"), unit).unwrap();
    // A user manager needs a runtime directory; the test's own will do.
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    let verify = Command::new("systemd-analyze")
        .current_dir(dir.path())
        .env("XDG_RUNTIME_DIR", &runtime)
        // Its man page is there once the package is (tests/package.rs checks it).
        .args(["verify", "--user", "--man=no", "./softphoned.service"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
}
