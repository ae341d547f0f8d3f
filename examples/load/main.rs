//! The load and comparison harness: N concurrent calls from a sipp UAC
//! (streaming a μ-law tone; with `--codec opus` a second softphoned, sending
//! an Opus tone) to softphoned as UAS, and the same to baresip 1.0.0 as UAS,
//! in interleaved rounds (softphoned, baresip, softphoned, ...), all on
//! 127.0.0.1. Per side it measures CPU per call, RSS idle and in calls,
//! failed calls, the RTP send pacing and bitrates of the side under test (a
//! loopback capture parsed here), and for softphoned the control socket's
//! round trip; it prints medians and ranges over the rounds and the ratios
//! softphoned/baresip, and writes target/load/summary.json.
//!
//! ```sh
//! cargo run --release --example load -- --calls 50 --seconds 10 --rounds 3
//! cargo run --release --example load -- --calls 10 --record
//! cargo run --example load -- --smoke          # 2 calls, 3 s, one round each
//! ```
//!
//! Needs sipp, sox, tcpdump (root or CAP_NET_RAW on lo), and for the baresip
//! side baresip-core and jackd2 (`bash tests/deps.sh sip-tester sox tcpdump
//! baresip-core jackd2`). baresip is paced by jackd's dummy driver (a
//! virtual sound card), never ALSA `null`, which spins.

mod caller;
mod measure;
mod pacing;
mod peers;
mod report;
mod round;
mod sipp;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

/// Hard caps: the harness never runs more than this, whatever it is asked.
const MAX_CALLS: u32 = 1200;
/// baresip refuses more than 255 calls at once by design (`call_max_calls`).
const MAX_BARESIP_CALLS: u32 = 250;
const MAX_SECONDS: u64 = 120;
const MAX_ROUNDS: u32 = 10;
/// The whole run stops (what is measured so far is reported) past this.
const RUN_DEADLINE: Duration = Duration::from_secs(45 * 60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    Pcmu,
    Opus,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "pcmu",
            Codec::Opus => "opus",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CardVia {
    Jack,
    Alsa,
}

impl CardVia {
    pub fn name(self) -> &'static str {
        match self {
            CardVia::Jack => "jack",
            CardVia::Alsa => "alsa",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Side {
    Softphoned,
    Baresip,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Softphoned => "softphoned",
            Side::Baresip => "baresip",
        }
    }
}

#[derive(Parser, Debug, Clone)]
#[command(about = "softphoned vs baresip under N concurrent calls (sipp; Opus: softphoned), on 127.0.0.1")]
pub struct Options {
    /// Concurrent calls per round (capped at 1200; baresip at 250).
    #[arg(long, default_value_t = 20)]
    pub calls: u32,
    /// Length of the measuring window once every call is up (capped at 120).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Rounds per side, interleaved (capped at 10).
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    #[arg(long, value_enum, default_value_t = Codec::Pcmu)]
    pub codec: Codec,
    /// Recording on for both sides; softphoned's WAVs are checked afterwards.
    #[arg(long)]
    pub record: bool,
    /// softphoned's `media.threads`: how many threads a tick of 32 calls or
    /// more is spread over (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub media_threads: usize,
    /// 2 calls, 3 s, one round per side (what tests/load_smoke.rs runs).
    #[arg(long)]
    pub smoke: bool,
    /// Only these sides (default: both).
    #[arg(long, value_enum)]
    pub only: Option<Side>,
    /// softphoned's microphone and speaker are the same jackd that paces
    /// baresip (a virtual sound card), instead of a tone and `null`.
    #[arg(long)]
    pub card: bool,
    /// How softphoned reaches that jackd with `--card`: its own JACK client
    /// (`audio.* = "jack"`), or an ALSA PCM through the ALSA jack plugin
    /// (libasound2-plugins), to compare the two.
    #[arg(long, value_enum, default_value_t = CardVia::Jack)]
    pub card_via: CardVia,
    /// The daemon binary (default: softphoned beside this example's folder,
    /// built first with the same profile when run through cargo).
    #[arg(long)]
    pub softphoned: Option<PathBuf>,
    /// Where summary.json goes (default: target/load).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Fail (exit 2) rather than skip the baresip side when it is not installed.
    #[arg(long)]
    pub require_baresip: bool,
}

impl Options {
    /// Apply `--smoke` and the hard caps; say what was capped.
    fn bounded(mut self) -> Options {
        if self.smoke {
            self.calls = 2;
            self.seconds = 3;
            self.rounds = 1;
        }
        let capped = |what: &str, asked: u64, cap: u64| {
            if asked > cap {
                eprintln!("load: --{what} {asked} capped at {cap}");
            }
        };
        capped("calls", self.calls as u64, MAX_CALLS as u64);
        capped("seconds", self.seconds, MAX_SECONDS);
        capped("rounds", self.rounds as u64, MAX_ROUNDS as u64);
        self.calls = self.calls.clamp(1, MAX_CALLS);
        self.seconds = self.seconds.clamp(1, MAX_SECONDS);
        self.rounds = self.rounds.clamp(1, MAX_ROUNDS);
        self
    }

    pub fn calls_for(&self, side: Side) -> u32 {
        match side {
            Side::Softphoned => self.calls,
            Side::Baresip => self.calls.min(MAX_BARESIP_CALLS),
        }
    }
}

fn main() {
    let options = Options::parse().bounded();
    let started = Instant::now();
    let out_dir = options.out.clone().unwrap_or_else(default_out_dir);
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        fatal(&format!("cannot create {}: {e}", out_dir.display()));
    }
    for tool in ["sipp", "sox", "tcpdump"] {
        if !peers::tool_installed(tool) {
            fatal(&format!("{tool} is not installed (bash tests/deps.sh sip-tester sox tcpdump)"));
        }
    }
    let softphoned = options.softphoned.clone().unwrap_or_else(peers::softphoned_binary);
    // Rounds run in their own folders: a relative path would name nothing there.
    let softphoned = std::path::absolute(&softphoned).unwrap_or(softphoned);
    if !softphoned.is_file() {
        fatal(&format!(
            "no daemon binary at {} (cargo build --bin softphoned, or --softphoned PATH)",
            softphoned.display()
        ));
    }
    let mut sides = vec![];
    if options.only != Some(Side::Baresip) {
        sides.push(Side::Softphoned);
    }
    let mut notes: Vec<String> = vec![];
    if options.only != Some(Side::Softphoned) {
        match peers::baresip_missing(options.codec) {
            None => sides.push(Side::Baresip),
            Some(missing) if options.require_baresip => fatal(&format!("baresip side: {missing}")),
            Some(missing) => {
                eprintln!("load: SKIPPED the baresip side: {missing}");
                notes.push(format!("baresip side skipped: {missing}"));
            }
        }
    }
    if options.card && options.only != Some(Side::Baresip) {
        if let Some(missing) = peers::card_missing(options.card_via) {
            fatal(&format!("--card: {missing}"));
        }
    }
    let work = tempfile::Builder::new().prefix("softphoned-load-").tempdir().unwrap_or_else(|e| fatal(&e.to_string()));
    let jack = if sides.contains(&Side::Baresip) || options.card {
        // softphoned's ALSA streams ask for 10 ms periods, and the jack
        // plugin offers only jackd's period and up; JACK clients take jackd's.
        let period = if options.card && options.card_via == CardVia::Alsa { 480 } else { 960 };
        Some(peers::Jackd::start(work.path(), period).unwrap_or_else(|e| fatal(&format!("jackd: {e}"))))
    } else {
        None
    };
    eprintln!(
        "load: {} calls, {} s window, {} round(s), {}{}{}, sides {:?}",
        options.calls,
        options.seconds,
        options.rounds,
        options.codec.name(),
        if options.record { ", recording" } else { "" },
        if options.card {
            format!(", softphoned on the jack card via {}", options.card_via.name())
        } else {
            String::new()
        },
        sides.iter().map(|s| s.name()).collect::<Vec<_>>()
    );
    let mut results: Vec<round::RoundResult> = vec![];
    'rounds: for index in 0..options.rounds {
        for &side in &sides {
            if started.elapsed() > RUN_DEADLINE {
                notes.push(format!("run deadline ({RUN_DEADLINE:?}) reached: stopped before round {}", index + 1));
                break 'rounds;
            }
            let setup = round::Setup {
                side,
                index,
                calls: options.calls_for(side),
                options: &options,
                softphoned: &softphoned,
                work: work.path(),
                jack: jack.as_ref(),
            };
            eprintln!("load: round {} {} ...", index + 1, side.name());
            let result = round::run(&setup);
            eprintln!("load: round {} {}: {}", index + 1, side.name(), result.one_line());
            results.push(result);
        }
    }
    if let Some(jack) = jack {
        jack.stop();
    }
    let summary = report::summarize(&options, &results, notes, started.elapsed());
    print!("{}", report::table(&summary));
    let path = out_dir.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).expect("summary serializes");
    if let Err(e) = std::fs::write(&path, text + "\n") {
        fatal(&format!("cannot write {}: {e}", path.display()));
    }
    println!("summary: {}", path.display());
    // Keep the folder of a failed run for its logs.
    if results.iter().any(|r| !r.errors.is_empty()) {
        let kept = work.keep();
        eprintln!("load: some rounds had errors; logs kept in {}", kept.display());
        std::process::exit(1);
    }
}

/// `target/load` of the target folder this example was built into.
fn default_out_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/PROFILE/examples/load -> target
    match exe.ancestors().nth(3) {
        Some(target) if target.ends_with("target") || target.join("CACHEDIR.TAG").exists() => target.join("load"),
        _ => PathBuf::from("target/load"),
    }
}

pub fn fatal(message: &str) -> ! {
    eprintln!("load: FATAL: {message}");
    std::process::exit(2);
}
