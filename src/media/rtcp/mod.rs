//! The RTCP half of one call's media stream (RFC 3550): it counts the RTP we
//! send and receive, writes our compound SR or RR + SDES CNAME on a randomized
//! schedule, and reads the peer's reports (in place, see `read`) for its view
//! of our stream (loss, jitter) and the round-trip time. Sans-IO: the
//! monotonic time and the NTP wallclock are arguments, and the datagrams are
//! the caller's buffers.
//!
//! One remote source is tracked at a time, as a two-party call has one; when
//! the peer switches SSRC (a transfer, a media server taking over) the newest
//! SSRC wins and the old source's losses stay in the cumulative count.

mod read;
mod reception;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rtc_rtcp::receiver_report::ReceiverReport;
use rtc_rtcp::reception_report::ReceptionReport;
use rtc_rtcp::sender_report::SenderReport;
use rtc_rtcp::source_description::{SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem};
use rtc_shared::marshal::Marshal;
use serde::Serialize;

use reception::Reception;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;
/// How many of our own recent SRs we remember, to match the LSR a peer
/// echoes even when its report crosses one of our later SRs on the wire.
const SENT_SR_MEMORY: usize = 4;
/// An SDES item's length is one octet.
const SDES_TEXT_MAX: usize = 255;

/// Why an incoming RTCP datagram was not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtcpError {
    /// Not a well-formed (compound) RTCP packet.
    #[error("malformed RTCP packet: {0}")]
    Malformed(&'static str),
}

/// Both views of one call's RTP: ours of the peer's stream and, from its
/// reports, the peer's of ours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RtcpStats {
    pub packets_sent: u64,
    /// Payload octets sent, headers excluded (the SR's octet count).
    pub octets_sent: u64,
    pub packets_received: u64,
    /// Expected minus received since the call began; negative when the peer
    /// duplicated more than the network lost (RFC 3550 §6.4.1).
    pub packets_lost: i64,
    /// Share of the peer's packets lost in our last reporting interval, 0..1.
    pub fraction_lost: f64,
    /// Our interarrival jitter estimate of the peer's stream.
    pub jitter_ms: f64,
    /// Report blocks about our stream received from the peer; until the
    /// first, the `remote_*` fields below are zeros, not measurements.
    pub remote_reports: u64,
    pub remote_fraction_lost: f64,
    pub remote_packets_lost: i64,
    pub remote_jitter_ms: f64,
    /// From the last report block that echoed one of our SRs.
    pub rtt_ms: Option<f64>,
    /// RTCP packets (compound) we sent and took in, and their bytes (SRTCP
    /// excluded): for the metrics, not the control protocol, which reports
    /// quality rather than traffic.
    #[serde(skip)]
    #[schemars(skip)]
    pub reports_sent: u64,
    #[serde(skip)]
    #[schemars(skip)]
    pub reports_received: u64,
    #[serde(skip)]
    #[schemars(skip)]
    pub report_bytes_sent: u64,
    #[serde(skip)]
    #[schemars(skip)]
    pub report_bytes_received: u64,
}

/// NTP 64-bit timestamp (RFC 5905: seconds since 1900 in the high 32 bits,
/// fraction in the low) for a Unix time; wraps into NTP era 1 after 2036.
pub fn ntp_from_unix(secs: u64, nanos: u32) -> u64 {
    let ntp_secs = u64::from(secs.wrapping_add(NTP_UNIX_OFFSET_SECS) as u32);
    let fraction = (u64::from(nanos) << 32) / 1_000_000_000;
    (ntp_secs << 32) | fraction
}

/// A duration in the "NTP short" units of LSR/DLSR: 1/65536 s.
fn ntp_short(duration: Duration) -> u32 {
    (duration.as_nanos() * 65_536 / 1_000_000_000) as u32
}

fn to_stream_clock(duration: Duration, clock_rate: u32) -> u32 {
    // Truncation to u32 is the wrap RTP timestamps have anyway.
    (duration.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u32
}

/// The report block's 24-bit signed cumulative loss.
fn encode_cumulative_lost(lost: i64) -> u32 {
    (lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0xff_ffff
}

fn decode_cumulative_lost(field: u32) -> i64 {
    i64::from(((field << 8) as i32) >> 8)
}

#[derive(Debug, Clone, Copy, Default)]
struct Sending {
    packets: u64,
    octets: u64,
    /// RTP timestamp and send time of the newest packet, to extrapolate the
    /// SR's RTP timestamp to the instant the SR is written.
    last: Option<(u32, Instant)>,
    since_report: bool,
}

/// The peer's newest SR, echoed back as LSR/DLSR in our report block.
#[derive(Debug, Clone, Copy)]
struct PeerSenderReport {
    ssrc: u32,
    ntp_middle: u32,
    arrived: Instant,
}

#[derive(Debug, Clone, Copy)]
struct SentSenderReport {
    ntp_middle: u32,
    sent: Instant,
}

/// RTCP state of one RTP session (one SSRC of ours, one peer).
pub struct RtcpSession {
    local_ssrc: u32,
    clock_rate: u32,
    interval: Duration,
    rng: SmallRng,
    /// Zero of the arrival clock used for jitter.
    epoch: Instant,
    next_report: Instant,
    /// Our SDES CNAME packet, written once: it never changes, and
    /// `rtc-rtcp` allocates whenever it writes one.
    sdes: Vec<u8>,
    /// The report block list of our next SR or RR, kept so a report does not allocate.
    blocks: Vec<ReceptionReport>,
    sending: Sending,
    source: Option<Reception>,
    lost_by_earlier_sources: i64,
    packets_received: u64,
    fraction_lost: f64,
    peer_sr: Option<PeerSenderReport>,
    sent_srs: [Option<SentSenderReport>; SENT_SR_MEMORY],
    next_sr_slot: usize,
    remote_reports: u64,
    remote_fraction_lost: f64,
    remote_packets_lost: i64,
    remote_jitter: u32,
    rtt: Option<Duration>,
    reports_sent: u64,
    reports_received: u64,
    report_bytes_sent: u64,
    report_bytes_received: u64,
}

impl RtcpSession {
    /// `interval` is the nominal report interval (RFC 3550 suggests 5 s);
    /// each actual one is drawn from 0.5–1.5× of it by a generator seeded
    /// with `jitter_seed`, so runs are reproducible. The first report is due
    /// after half an interval (§6.2). A CNAME longer than an SDES item can
    /// hold (255 octets) is cut at a character boundary.
    pub fn new(
        local_ssrc: u32,
        clock_rate: u32,
        cname: &str,
        interval: Duration,
        jitter_seed: u64,
        now: Instant,
    ) -> Self {
        let mut cut = cname.len().min(SDES_TEXT_MAX);
        while !cname.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut sdes = Vec::new();
        let description = SourceDescription {
            chunks: vec![SourceDescriptionChunk {
                source: local_ssrc,
                items: vec![SourceDescriptionItem {
                    sdes_type: SdesType::SdesCname,
                    text: cname[..cut].to_owned().into(),
                }],
            }],
        };
        append(&description, &mut sdes);
        let mut rng = SmallRng::seed_from_u64(jitter_seed);
        let first = interval.mul_f64(rng.random_range(0.5..1.5) / 2.0);
        RtcpSession {
            local_ssrc,
            clock_rate,
            interval,
            rng,
            epoch: now,
            next_report: now + first,
            sdes,
            blocks: Vec::with_capacity(1),
            sending: Sending::default(),
            source: None,
            lost_by_earlier_sources: 0,
            packets_received: 0,
            fraction_lost: 0.0,
            peer_sr: None,
            sent_srs: [None; SENT_SR_MEMORY],
            next_sr_slot: 0,
            remote_reports: 0,
            remote_fraction_lost: 0.0,
            remote_packets_lost: 0,
            remote_jitter: 0,
            rtt: None,
            reports_sent: 0,
            reports_received: 0,
            report_bytes_sent: 0,
            report_bytes_received: 0,
        }
    }

    /// Count one RTP packet we sent; `payload_len` excludes the RTP header.
    pub fn on_rtp_sent(&mut self, rtp_timestamp: u32, payload_len: usize, now: Instant) {
        self.sending.packets += 1;
        self.sending.octets += payload_len as u64;
        self.sending.last = Some((rtp_timestamp, now));
        self.sending.since_report = true;
    }

    /// Count one RTP packet from the peer (already accepted as ours to play).
    pub fn on_rtp_received(&mut self, sequence: u16, rtp_timestamp: u32, ssrc: u32, now: Instant) {
        let source = match &mut self.source {
            Some(source) if source.ssrc == ssrc => {
                if !source.update_sequence(sequence) {
                    return;
                }
                source
            }
            other => {
                if let Some(previous) = other.take() {
                    self.lost_by_earlier_sources += previous.lifetime_lost();
                }
                other.insert(Reception::new(ssrc, sequence))
            }
        };
        self.packets_received += 1;
        let arrival = to_stream_clock(now.saturating_duration_since(self.epoch), self.clock_rate);
        source.update_jitter(arrival, rtp_timestamp);
    }

    /// Take one RTCP datagram (compound or reduced-size). SRs and RRs are
    /// read; SDES, BYE, APP, feedback and unknown types are skipped.
    pub fn on_rtcp(&mut self, datagram: &[u8], now: Instant) -> Result<(), RtcpError> {
        for report in read::reports(datagram)? {
            if let Some((ssrc, ntp_time)) = report.sender {
                self.peer_sr = Some(PeerSenderReport { ssrc, ntp_middle: (ntp_time >> 16) as u32, arrived: now });
            }
            self.take_report_blocks(report.blocks(), now);
        }
        self.reports_received += 1;
        self.report_bytes_received += datagram.len() as u64;
        Ok(())
    }

    fn take_report_blocks(&mut self, blocks: impl Iterator<Item = read::Block>, now: Instant) {
        for block in blocks.filter(|b| b.ssrc == self.local_ssrc) {
            self.remote_reports += 1;
            self.remote_fraction_lost = f64::from(block.fraction_lost) / 256.0;
            self.remote_packets_lost = decode_cumulative_lost(block.total_lost);
            self.remote_jitter = block.jitter;
            // LSR 0 means the peer has not had an SR from us yet.
            if block.last_sender_report == 0 {
                continue;
            }
            let echoed = self.sent_srs.iter().flatten().find(|sr| sr.ntp_middle == block.last_sender_report);
            if let Some(sr) = echoed {
                let held_by_peer = Duration::from_nanos(u64::from(block.delay) * 1_000_000_000 / 65_536);
                self.rtt = Some(now.saturating_duration_since(sr.sent).saturating_sub(held_by_peer));
            }
        }
    }

    /// When the next report is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_report
    }

    /// If a report is due, write it into `out` (replacing its contents) and
    /// return true: an SR if we sent RTP since the last report, else an RR,
    /// each followed by our SDES CNAME. `ntp_now` is the wallclock as a
    /// 64-bit NTP timestamp (see [`ntp_from_unix`]).
    pub fn poll_report(&mut self, now: Instant, ntp_now: u64, out: &mut Vec<u8>) -> bool {
        if now < self.next_report {
            return false;
        }
        out.clear();
        let mut reports = std::mem::take(&mut self.blocks);
        reports.clear();
        reports.extend(self.close_report_block(now));
        if self.sending.since_report {
            let rtp_time = self.sending.last.map_or(0, |(timestamp, sent)| {
                timestamp.wrapping_add(to_stream_clock(now.saturating_duration_since(sent), self.clock_rate))
            });
            let sr = SenderReport {
                ssrc: self.local_ssrc,
                ntp_time: ntp_now,
                rtp_time,
                // The SR's counters are 32-bit and wrap (RFC 3550 §6.4.1).
                packet_count: self.sending.packets as u32,
                octet_count: self.sending.octets as u32,
                reports,
                profile_extensions: Default::default(),
            };
            append(&sr, out);
            self.blocks = sr.reports;
            self.sent_srs[self.next_sr_slot] = Some(SentSenderReport { ntp_middle: (ntp_now >> 16) as u32, sent: now });
            self.next_sr_slot = (self.next_sr_slot + 1) % SENT_SR_MEMORY;
        } else {
            let rr = ReceiverReport { ssrc: self.local_ssrc, reports, profile_extensions: Default::default() };
            append(&rr, out);
            self.blocks = rr.reports;
        }
        out.extend_from_slice(&self.sdes);
        self.sending.since_report = false;
        self.reports_sent += 1;
        self.report_bytes_sent += out.len() as u64;
        self.next_report = now + self.interval.mul_f64(self.rng.random_range(0.5..1.5));
        true
    }

    /// The report block about the peer's stream, if it sent since our last
    /// report (§6.4); closing it starts a new loss interval.
    fn close_report_block(&mut self, now: Instant) -> Option<ReceptionReport> {
        let source = self.source.as_mut().filter(|s| s.received_since_report())?;
        let fraction = source.close_interval();
        self.fraction_lost = f64::from(fraction) / 256.0;
        let (last_sender_report, delay) = match self.peer_sr {
            Some(sr) if sr.ssrc == source.ssrc => (sr.ntp_middle, ntp_short(now.saturating_duration_since(sr.arrived))),
            _ => (0, 0),
        };
        Some(ReceptionReport {
            ssrc: source.ssrc,
            fraction_lost: fraction,
            total_lost: encode_cumulative_lost(source.cumulative_lost()),
            last_sequence_number: source.extended_max(),
            jitter: source.jitter() as u32,
            last_sender_report,
            delay,
        })
    }

    pub fn stats(&self) -> RtcpStats {
        let ms_per_unit = 1000.0 / f64::from(self.clock_rate);
        RtcpStats {
            packets_sent: self.sending.packets,
            octets_sent: self.sending.octets,
            packets_received: self.packets_received,
            packets_lost: self.lost_by_earlier_sources + self.source.as_ref().map_or(0, Reception::lifetime_lost),
            fraction_lost: self.fraction_lost,
            jitter_ms: self.source.as_ref().map_or(0.0, |s| s.jitter() * ms_per_unit),
            remote_reports: self.remote_reports,
            remote_fraction_lost: self.remote_fraction_lost,
            remote_packets_lost: self.remote_packets_lost,
            // The peer measures in the same clock: one codec each way.
            remote_jitter_ms: f64::from(self.remote_jitter) * ms_per_unit,
            rtt_ms: self.rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
            reports_sent: self.reports_sent,
            reports_received: self.reports_received,
            report_bytes_sent: self.report_bytes_sent,
            report_bytes_received: self.report_bytes_received,
        }
    }
}

/// Append one packet of a compound RTCP packet to `out`.
fn append(packet: &impl Marshal, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + packet.marshal_size(), 0);
    // Cannot fail: sized by marshal_size, one report block, loss clamped to
    // 24 bits, CNAME cut to an SDES item's length.
    let written = packet.marshal_to(&mut out[start..]).expect("RTCP packet within its field limits");
    out.truncate(start + written);
}
