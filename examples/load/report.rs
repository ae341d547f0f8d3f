//! The rounds summed up: per side and figure the median and range over the
//! rounds, the ratio softphoned/baresip of the medians; a table for people
//! and target/load/summary.json for programs (tests/load_smoke.rs reads it).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use crate::measure::{spread, Spread};
use crate::round::RoundResult;
use crate::{Options, Side};

#[derive(Serialize)]
pub struct Summary {
    pub calls: u32,
    pub seconds: u64,
    pub rounds: u32,
    pub codec: &'static str,
    pub record: bool,
    pub card: bool,
    /// How softphoned reached the card (`jack` or `alsa`), with `card`.
    pub card_via: &'static str,
    pub smoke: bool,
    pub elapsed_s: f64,
    pub sides: Vec<&'static str>,
    /// Figure -> its unit, each side's spread over the rounds, the ratio of medians.
    pub figures: BTreeMap<&'static str, Figure>,
    pub notes: Vec<String>,
    pub rounds_detail: Vec<RoundResult>,
}

#[derive(Serialize)]
pub struct Figure {
    pub unit: &'static str,
    /// Lower is better (the ratio then reads "softphoned costs x of baresip").
    pub lower_is_better: bool,
    pub softphoned: Option<Spread>,
    pub baresip: Option<Spread>,
    /// softphoned's median / baresip's median.
    pub ratio: Option<f64>,
}

type Extract = fn(&RoundResult) -> Option<f64>;

/// The figures, in table order: name, unit, lower is better, how to read it from a round.
const FIGURES: &[(&str, &str, bool, Extract)] = &[
    ("calls_up", "calls", false, |r| Some(r.established as f64)),
    ("failed_calls", "calls", true, |r| r.caller.failed.map(|f| f as f64)),
    ("cpu_per_call", "% core", true, |r| r.cpu_per_call_percent),
    ("cpu_process", "% core", true, |r| r.cpu_percent),
    ("cpu_jackd", "% core", true, |r| r.jackd_cpu_percent),
    ("cpu_caller", "% core", true, |r| r.caller_cpu_percent),
    ("cpu_idle", "% core", true, |r| r.cpu_idle_percent),
    ("rss_idle", "kB", true, |r| r.rss_idle_kb.map(|v| v as f64)),
    ("rss_in_calls", "kB", true, |r| r.rss_calls_kb.map(|v| v as f64)),
    ("rss_per_call", "kB", true, |r| r.rss_per_call_kb),
    ("rtp_streams_full", "streams", false, |r| r.pacing.as_ref().map(|p| p.full_streams as f64)),
    ("rtp_packets", "packets", false, |r| r.pacing.as_ref().map(|p| p.packets as f64)),
    ("rtp_sent_of_expected", "%", false, |r| r.pacing.as_ref().map(|p| p.sent_of_expected_percent)),
    ("rtp_kbps_sent", "kbit/s", true, |r| r.pacing.as_ref().map(|p| p.payload_kbps_per_stream)),
    ("rtp_kbps_received", "kbit/s", true, |r| r.received_kbps_per_call),
    ("pacing_dev_p50", "ms", true, |r| r.pacing.as_ref().map(|p| p.deviation_p50_ms)),
    ("pacing_dev_p99", "ms", true, |r| r.pacing.as_ref().map(|p| p.deviation_p99_ms)),
    ("pacing_dev_max", "ms", true, |r| r.pacing.as_ref().map(|p| p.deviation_max_ms)),
    ("late_over_5ms", "%", true, |r| r.pacing.as_ref().map(|p| p.late_percent)),
    ("capture_dropped", "packets", true, |r| r.pacing.as_ref().map(|p| p.capture_dropped as f64)),
    ("control_rtt_p50", "µs", true, |r| r.control_rtt.as_ref().map(|c| c.p50_us)),
    ("control_rtt_p99", "µs", true, |r| r.control_rtt.as_ref().map(|c| c.p99_us)),
    ("recordings_complete", "files", false, |r| r.recordings.as_ref().filter(|c| c.checked).map(|c| c.complete as f64)),
    ("recordings_files", "files", false, |r| r.recordings.as_ref().map(|c| c.files as f64)),
];

pub fn summarize(options: &Options, rounds: &[RoundResult], notes: Vec<String>, elapsed: Duration) -> Summary {
    let mut sides = vec![];
    for side in [Side::Softphoned, Side::Baresip] {
        if rounds.iter().any(|r| r.side == side.name()) {
            sides.push(side.name());
        }
    }
    let mut figures = BTreeMap::new();
    for &(name, unit, lower_is_better, extract) in FIGURES {
        let of = |side: Side| {
            let values: Vec<f64> = rounds.iter().filter(|r| r.side == side.name()).filter_map(extract).collect();
            spread(&values)
        };
        let (softphoned, baresip) = (of(Side::Softphoned), of(Side::Baresip));
        if softphoned.is_none() && baresip.is_none() {
            continue;
        }
        let ratio = softphoned.zip(baresip).and_then(|(s, b)| (b.median != 0.0).then(|| s.median / b.median));
        figures.insert(name, Figure { unit, lower_is_better, softphoned, baresip, ratio });
    }
    Summary {
        calls: options.calls,
        seconds: options.seconds,
        rounds: options.rounds,
        codec: options.codec.name(),
        record: options.record,
        card: options.card,
        card_via: options.card_via.name(),
        smoke: options.smoke,
        elapsed_s: elapsed.as_secs_f64(),
        sides,
        figures,
        notes,
        rounds_detail: rounds.to_vec(),
    }
}

fn cell(spread: Option<Spread>) -> String {
    match spread {
        None => "-".into(),
        Some(s) if s.min == s.max => number(s.median),
        Some(s) => format!("{} [{}..{}]", number(s.median), number(s.min), number(s.max)),
    }
}

fn number(v: f64) -> String {
    let a = v.abs();
    if (v == v.trunc() && a < 1e7) || a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The summary as a table: medians [min..max] over the rounds, and the ratio.
pub fn table(summary: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} calls x {} s window, {} round(s) per side, {}{}{} — medians [min..max] over rounds",
        summary.calls,
        summary.seconds,
        summary.rounds,
        summary.codec,
        if summary.record { ", recording" } else { "" },
        if summary.card { format!(", softphoned on the jack card via {}", summary.card_via) } else { String::new() },
    );
    let rows: Vec<[String; 4]> = summary
        .figures
        .iter()
        .map(|(name, f)| {
            [
                format!("{name} ({})", f.unit),
                cell(f.softphoned),
                cell(f.baresip),
                f.ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let order: Vec<&str> = FIGURES.iter().map(|f| f.0).collect();
    let mut rows: Vec<(usize, [String; 4])> = rows
        .into_iter()
        .map(|r| (order.iter().position(|n| r[0].starts_with(&format!("{n} "))).unwrap_or(usize::MAX), r))
        .collect();
    rows.sort_by_key(|(i, _)| *i);
    let header = ["figure".to_string(), "softphoned".into(), "baresip".into(), "ratio s/b".into()];
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|(_, r)| r[c].chars().count()).chain([header[c].len()]).max().unwrap_or(0))
        .collect();
    let line = |r: &[String; 4]| {
        format!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}\n",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        )
    };
    out += &line(&header);
    for (_, row) in &rows {
        out += &line(row);
    }
    for note in &summary.notes {
        let _ = writeln!(out, "note: {note}");
    }
    for round in summary.rounds_detail.iter().filter(|r| !r.errors.is_empty()) {
        let _ = writeln!(out, "round {} {}: {}", round.round, round.side, round.errors.join("; "));
    }
    let _ = writeln!(out, "elapsed {:.0} s", summary.elapsed_s);
    out
}
