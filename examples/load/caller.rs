//! Who places a round's calls. PCMU: sipp, streaming a μ-law tone. Opus: a
//! second softphoned that dials the side under test through its control
//! socket, sends a 440 Hz tone in Opus and decodes what comes back, since
//! sipp's `rtp_stream` sends PCMU only and a side that receives no Opus is
//! not in an Opus call. Either caller is the same for both sides under
//! test, places the calls at the same bounded rate and ends them after the
//! same length.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::measure::wait_until;
use crate::peers::Softphoned;
use crate::sipp::{self, Sipp};
use crate::{Codec, Options};

/// How long the Opus caller waits for its calls to end after hanging them up.
const HANGUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the caller said about the round's calls.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CallerOutcome {
    /// 0 all calls succeeded, 1 some failed, None: killed at the deadline.
    pub exit_code: Option<i32>,
    pub successful: Option<u64>,
    pub failed: Option<u64>,
    /// Why it did not exit 0 (sipp's error log, or what the Opus caller saw).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub errors: String,
}

pub enum Caller {
    Sipp(Sipp),
    Softphoned(SoftphonedCaller),
}

impl Caller {
    /// Start placing `calls` calls to `agent@127.0.0.1:target_port`, each
    /// `call_length` long, in `options.codec`.
    pub fn start(
        dir: &Path,
        options: &Options,
        softphoned: &Path,
        target_port: u16,
        calls: u32,
        call_length: Duration,
    ) -> Result<Caller, String> {
        match options.codec {
            Codec::Pcmu => {
                sipp::prepare(dir)?;
                Ok(Caller::Sipp(Sipp::start(dir, target_port, calls, call_length)?))
            }
            Codec::Opus => SoftphonedCaller::start(dir, options, softphoned, target_port, calls, call_length)
                .map(Caller::Softphoned),
        }
    }

    pub fn pid(&self) -> u32 {
        match self {
            Caller::Sipp(sipp) => sipp.pid(),
            Caller::Softphoned(caller) => caller.daemon.pid(),
        }
    }

    /// Let the calls end (waiting up to `timeout` for sipp), and say how they went.
    pub fn finish(self, timeout: Duration) -> CallerOutcome {
        match self {
            Caller::Sipp(sipp) => sipp.finish(timeout),
            Caller::Softphoned(caller) => caller.finish(),
        }
    }
}

/// A softphoned with the tone source and the null sink, Opus only, that
/// dialled every call of the round.
pub struct SoftphonedCaller {
    daemon: Softphoned,
    calls: u32,
    /// Each call dialled, and when it is hung up: `call_length` after its dial, as sipp does.
    dialled: Vec<(String, Instant)>,
    errors: Vec<String>,
}

impl SoftphonedCaller {
    /// Start the daemon and dial the calls at sipp's rate (returns once all are dialled).
    fn start(
        dir: &Path,
        options: &Options,
        binary: &Path,
        target_port: u16,
        calls: u32,
        call_length: Duration,
    ) -> Result<SoftphonedCaller, String> {
        // Its own config: no recording, no card, whatever the side under test does.
        let own = Options { codec: Codec::Opus, record: false, card: false, ..options.clone() };
        let daemon = Softphoned::start(binary, &dir.join("caller"), calls, &own, None)?;
        let started = Instant::now();
        let every = Duration::from_secs(1) / sipp::call_rate(calls);
        let target = format!("sip:agent@127.0.0.1:{target_port}");
        let mut caller = SoftphonedCaller { daemon, calls, dialled: vec![], errors: vec![] };
        for index in 0..calls {
            let due = started + every * index;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            match caller.daemon.request("call.dial", json!({"to": target})) {
                Ok(answer) => {
                    let hang_up_at = Instant::now() + call_length;
                    caller.dialled.extend(answer["call"].as_str().map(|call| (call.to_string(), hang_up_at)));
                }
                Err(e) => caller.errors.push(format!("call.dial {}: {e}", index + 1)),
            }
        }
        Ok(caller)
    }

    /// Hang each call up at its end (counting the connected ones as the
    /// first ends), wait for them to be gone, stop the daemon.
    fn finish(mut self) -> CallerOutcome {
        let mut connected = None;
        for (call, hang_up_at) in &self.dialled {
            std::thread::sleep(hang_up_at.saturating_duration_since(Instant::now()));
            connected = connected.or_else(|| Some(self.daemon.connected_calls() as u64));
            if let Err(e) = self.daemon.request("call.hangup", json!({"call": call})) {
                self.errors.push(format!("call.hangup {call}: {e}"));
            }
        }
        let connected = connected.unwrap_or(0);
        let ended = wait_until(HANGUP_TIMEOUT, || {
            self.daemon.rpc("call.list").is_ok_and(|list| list["calls"].as_array().is_some_and(Vec::is_empty))
        });
        if !ended {
            self.errors.push(format!("calls still listed {HANGUP_TIMEOUT:?} after hanging up"));
        }
        if !self.daemon.stop() {
            self.errors.push("the caller did not stop on SIGTERM in 10 s".into());
        }
        let failed = self.calls as u64 - connected.min(self.calls as u64);
        if failed > 0 {
            self.errors.push(format!("{connected} of {} calls connected at the end", self.calls));
        }
        if !self.errors.is_empty() {
            let log = self.daemon.log();
            self.errors.extend(log.lines().rev().take(10).map(str::to_string));
        }
        CallerOutcome {
            exit_code: Some(if self.errors.is_empty() { 0 } else { 1 }),
            successful: Some(connected),
            failed: Some(failed),
            errors: self.errors.join("\n"),
        }
    }
}
