use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rtc_rtcp::packet::Packet;

use super::*;
use crate::media::rtp::{self, RtpSender};

const CLOCK: u32 = 8000;
const FRAME: Duration = Duration::from_millis(20);
const UNIX_START: u64 = 1_700_000_000;

enum Datagram {
    Rtp(Vec<u8>),
    Rtcp(Vec<u8>),
}

/// One direction of the simulated network: datagrams wait until their due time.
#[derive(Default)]
struct Link {
    queue: VecDeque<(Instant, Datagram)>,
}

impl Link {
    fn send(&mut self, due: Instant, datagram: Datagram) {
        // Keep the queue ordered by due time so reordering never stalls delivery.
        let at = self.queue.iter().position(|(d, _)| *d > due).unwrap_or(self.queue.len());
        self.queue.insert(at, (due, datagram));
    }

    fn due(&mut self, now: Instant) -> Option<Datagram> {
        if self.queue.front().is_some_and(|(due, _)| *due <= now) {
            self.queue.pop_front().map(|(_, d)| d)
        } else {
            None
        }
    }
}

fn ntp_at(start: Instant, now: Instant, wallclock_offset: Duration) -> u64 {
    let since = now - start + wallclock_offset;
    ntp_from_unix(UNIX_START + since.as_secs(), since.subsec_nanos())
}

struct Scenario {
    first_sequence: u16,
    send_for: Duration,
    a_to_b: Duration,
    b_to_a: Duration,
}

/// A sends RTP (and SRs) to B, B only receives and answers with RRs; time
/// advances in 1 ms steps. `drop(index)` loses the index-th RTP packet and
/// `extra_delay(index)` adds queueing delay to it. Runs 15 s past the last
/// packet so B's final report reaches A.
fn simulate(
    scenario: Scenario,
    mut drop: impl FnMut(u64) -> bool,
    mut extra_delay: impl FnMut(u64) -> Duration,
) -> (RtcpSession, RtcpSession) {
    let start = Instant::now();
    let interval = Duration::from_secs(5);
    let mut a = RtcpSession::new(0xa, CLOCK, "alice@example.test", interval, 1, start);
    let mut b = RtcpSession::new(0xb, CLOCK, "bob@example.test", interval, 2, start);
    let mut sender = RtpSender::new(0xa, scenario.first_sequence, 1234, 0);
    let (mut ab, mut ba) = (Link::default(), Link::default());
    let mut packet = Vec::new();
    let mut report = Vec::new();
    let total = scenario.send_for + Duration::from_secs(15);
    let frames = scenario.send_for.as_millis() as u64 / FRAME.as_millis() as u64;
    let mut index = 0u64;
    for ms in 0..total.as_millis() as u64 {
        let now = start + Duration::from_millis(ms);
        if ms % FRAME.as_millis() as u64 == 0 && index < frames {
            let timestamp = 1234 + (index as u32) * 160;
            sender.write_packet(&[0xff; 160], 160, &mut packet);
            a.on_rtp_sent(timestamp, 160, now);
            if !drop(index) {
                ab.send(now + scenario.a_to_b + extra_delay(index), Datagram::Rtp(packet.clone()));
            }
            index += 1;
        }
        if a.poll_report(now, ntp_at(start, now, Duration::ZERO), &mut report) {
            ab.send(now + scenario.a_to_b, Datagram::Rtcp(report.clone()));
        }
        // B's wallclock is off by seconds: RTT must not depend on it.
        if b.poll_report(now, ntp_at(start, now, Duration::from_millis(3700)), &mut report) {
            ba.send(now + scenario.b_to_a, Datagram::Rtcp(report.clone()));
        }
        while let Some(datagram) = ab.due(now) {
            match datagram {
                Datagram::Rtp(bytes) => {
                    let view = rtp::parse(&bytes).unwrap();
                    b.on_rtp_received(view.sequence_number, view.timestamp, view.ssrc, now);
                }
                Datagram::Rtcp(bytes) => b.on_rtcp(&bytes, now).unwrap(),
            }
        }
        while let Some(datagram) = ba.due(now) {
            let Datagram::Rtcp(bytes) = datagram else { unreachable!("B sends no RTP") };
            a.on_rtcp(&bytes, now).unwrap();
        }
    }
    (a, b)
}

fn scenario() -> Scenario {
    Scenario {
        first_sequence: 100,
        send_for: Duration::from_secs(30),
        a_to_b: Duration::from_millis(30),
        b_to_a: Duration::from_millis(50),
    }
}

#[test]
fn periodic_loss_is_counted_by_both_ends_and_rtt_is_the_round_trip() {
    // Every tenth packet lost; the sequence wraps mid-call.
    let (a, b) = simulate(Scenario { first_sequence: 65_000, ..scenario() }, |i| i % 10 == 3, |_| Duration::ZERO);
    let (a, b) = (a.stats(), b.stats());
    assert_eq!((a.packets_sent, a.octets_sent), (1500, 1500 * 160));
    assert_eq!(b.packets_received, 1350);
    assert_eq!(b.packets_lost, 150);
    assert!((b.fraction_lost - 0.1).abs() < 0.02, "{}", b.fraction_lost);
    assert_eq!(a.remote_packets_lost, 150);
    assert!(a.remote_reports >= 5, "{}", a.remote_reports);
    assert!((a.remote_fraction_lost - 0.1).abs() < 0.02, "{}", a.remote_fraction_lost);
    let rtt = a.rtt_ms.expect("B echoed an SR");
    assert!((rtt - 80.0).abs() <= 1.0, "rtt {rtt} ms");
    assert_eq!(b.rtt_ms, None, "B never sent an SR, so it cannot measure RTT");
    assert_eq!((b.jitter_ms, a.remote_jitter_ms), (0.0, 0.0), "perfectly paced stream");
}

#[test]
fn random_loss_matches_the_drops_exactly() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut dropped = 0;
    let (a, b) = simulate(
        scenario(),
        |i| {
            // The first and last packets arrive, so every drop lies between them.
            let lose = i > 0 && i < 1499 && rng.random_bool(0.05);
            dropped += u64::from(lose);
            lose
        },
        |_| Duration::ZERO,
    );
    assert!(dropped > 40, "{dropped}");
    assert_eq!(b.stats().packets_lost, dropped as i64);
    assert_eq!(a.stats().remote_packets_lost, dropped as i64);
}

#[test]
fn jitter_is_estimated_from_arrival_variation() {
    let mut rng = StdRng::seed_from_u64(11);
    let (a, b) = simulate(scenario(), |_| false, |_| Duration::from_millis(rng.random_range(0..=10)));
    // Delays uniform in 0..10 ms: the mean |difference| of two is 10/3 ms,
    // which the A.8 estimator converges to.
    let jitter = b.stats().jitter_ms;
    assert!((2.5..4.2).contains(&jitter), "jitter {jitter} ms");
    let remote = a.stats().remote_jitter_ms;
    assert!((2.5..4.2).contains(&remote), "remote jitter {remote} ms");
    assert_eq!(b.stats().packets_lost, 0);
}

fn parse_compound(bytes: &[u8]) -> Vec<Box<dyn Packet>> {
    rtc_rtcp::packet::unmarshal(&mut &bytes[..]).unwrap()
}

#[test]
fn a_sender_reports_with_an_sr_a_listener_with_an_rr_both_with_cname() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(0x1234, CLOCK, "agent@host", Duration::from_secs(5), 3, t0);
    let mut out = Vec::new();
    s.on_rtp_sent(1000, 160, t0);
    s.on_rtp_sent(1160, 160, t0 + FRAME);
    s.on_rtp_received(7, 500, 0x99, t0);
    let due = s.poll_timeout();
    assert!(s.poll_report(due, ntp_from_unix(UNIX_START, 0), &mut out));
    let packets = parse_compound(&out);
    let sr = packets[0].as_any().downcast_ref::<SenderReport>().expect("SR first");
    assert_eq!((sr.ssrc, sr.packet_count, sr.octet_count), (0x1234, 2, 320));
    let since_last = to_stream_clock(due - (t0 + FRAME), CLOCK);
    assert_eq!(sr.rtp_time, 1160 + since_last, "RTP time extrapolated to the SR's instant");
    assert_eq!(sr.reports.len(), 1);
    assert_eq!((sr.reports[0].ssrc, sr.reports[0].last_sequence_number), (0x99, 7));
    let sdes = packets[1].as_any().downcast_ref::<SourceDescription>().expect("SDES second");
    assert_eq!(&sdes.chunks[0].items[0].text[..], b"agent@host");

    // Nothing sent or received since: an RR without report blocks.
    let due = s.poll_timeout();
    assert!(s.poll_report(due, ntp_from_unix(UNIX_START + 5, 0), &mut out));
    let packets = parse_compound(&out);
    let rr = packets[0].as_any().downcast_ref::<ReceiverReport>().expect("RR when silent");
    assert!(rr.reports.is_empty());
}

#[test]
fn reports_follow_a_randomized_but_reproducible_schedule() {
    let t0 = Instant::now();
    let interval = Duration::from_secs(5);
    let schedule = |seed| {
        let mut s = RtcpSession::new(1, CLOCK, "x", interval, seed, t0);
        let mut out = Vec::new();
        let first = s.poll_timeout() - t0;
        assert!(first >= interval / 4 && first <= interval * 3 / 4, "first report after half an interval");
        assert!(!s.poll_report(s.poll_timeout() - Duration::from_millis(1), 0, &mut out));
        let mut gaps = vec![];
        for _ in 0..50 {
            let due = s.poll_timeout();
            assert!(s.poll_report(due, 0, &mut out));
            gaps.push(s.poll_timeout() - due);
        }
        gaps
    };
    let gaps = schedule(42);
    assert!(gaps.iter().all(|g| *g >= interval / 2 && *g <= interval * 3 / 2));
    assert!(gaps.windows(2).any(|w| w[0] != w[1]), "randomized");
    assert_eq!(gaps, schedule(42), "same seed, same schedule");
    assert_ne!(gaps, schedule(43));
}

#[test]
fn garbage_rtcp_is_an_error_not_a_panic() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(1, CLOCK, "x", Duration::from_secs(5), 0, t0);
    let truncated_sr = [0x80, 200, 0, 6, 0, 0, 0, 2, 1, 2, 3, 4];
    let version_one = [0x40, 201, 0, 1, 0, 0, 0, 2];
    for bad in [&[][..], b"hello", &truncated_sr, &version_one, &[0x81, 201, 0, 7, 0, 0, 0, 2]] {
        assert!(s.on_rtcp(bad, t0).is_err(), "{bad:?}");
    }
    let mut rng = StdRng::seed_from_u64(5);
    let mut buf = [0u8; 96];
    for _ in 0..20_000 {
        let len = rng.random_range(0..buf.len());
        rng.fill(&mut buf[..len]);
        buf[0] = 0x80 | (buf[0] & 0x3f); // mostly version 2, to get past the first check
        let _ = s.on_rtcp(&buf[..len], t0);
    }
    let stats = s.stats();
    assert_eq!((stats.packets_received, stats.packets_lost), (0, 0));
}

#[test]
fn a_peer_report_about_another_ssrc_is_ignored_and_unknown_packets_skipped() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(1, CLOCK, "x", Duration::from_secs(5), 0, t0);
    let about = |ssrc| ReceptionReport { ssrc, fraction_lost: 64, total_lost: 0xff_fffe, ..Default::default() };
    let mut datagram = Vec::new();
    append(
        &ReceiverReport { ssrc: 9, reports: vec![about(77)], profile_extensions: Default::default() },
        &mut datagram,
    );
    // An APP packet (PT 204) with 4 bytes of data, then a BYE.
    datagram.extend_from_slice(&[0x80, 204, 0, 2, 0, 0, 0, 9, b'n', b'a', b'm', b'e']);
    datagram.extend_from_slice(&[0x81, 203, 0, 1, 0, 0, 0, 9]);
    s.on_rtcp(&datagram, t0).unwrap();
    assert_eq!(s.stats().remote_reports, 0);

    datagram.clear();
    append(&ReceiverReport { ssrc: 9, reports: vec![about(1)], profile_extensions: Default::default() }, &mut datagram);
    s.on_rtcp(&datagram, t0).unwrap();
    let stats = s.stats();
    assert_eq!((stats.remote_reports, stats.remote_fraction_lost, stats.remote_packets_lost), (1, 0.25, -2));
    assert_eq!(stats.rtt_ms, None, "LSR 0: no RTT");
}

#[test]
fn duplicates_make_loss_negative_and_it_survives_the_24_bit_field() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(1, CLOCK, "x", Duration::from_secs(5), 0, t0);
    for seq in [10u16, 11, 11, 12, 12, 13] {
        s.on_rtp_received(seq, u32::from(seq) * 160, 5, t0);
    }
    assert_eq!(s.stats().packets_lost, -2);
    let mut out = Vec::new();
    assert!(s.poll_report(s.poll_timeout(), 0, &mut out));
    let packets = parse_compound(&out);
    let rr = packets[0].as_any().downcast_ref::<ReceiverReport>().unwrap();
    assert_eq!(decode_cumulative_lost(rr.reports[0].total_lost), -2);
    assert_eq!(rr.reports[0].fraction_lost, 0);
    assert_eq!(encode_cumulative_lost(i64::MAX), 0x7f_ffff);
    assert_eq!(decode_cumulative_lost(encode_cumulative_lost(-0x80_0000)), -0x80_0000);
}

#[test]
fn sequence_wrap_extends_the_highest_sequence_number() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(1, CLOCK, "x", Duration::from_secs(5), 0, t0);
    for seq in (65_530u16..=65_535).chain(0..5).filter(|seq| *seq != 1) {
        s.on_rtp_received(seq, 0, 5, t0);
    }
    let mut out = Vec::new();
    assert!(s.poll_report(s.poll_timeout(), 0, &mut out));
    let packets = parse_compound(&out);
    let block = &packets[0].as_any().downcast_ref::<ReceiverReport>().unwrap().reports[0];
    assert_eq!(block.last_sequence_number, 65_536 + 4);
    assert_eq!(decode_cumulative_lost(block.total_lost), 1);
}

#[test]
fn a_restarted_or_replaced_source_does_not_count_as_mass_loss() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(1, CLOCK, "x", Duration::from_secs(5), 0, t0);
    for seq in [0u16, 1, 3] {
        s.on_rtp_received(seq, 0, 5, t0);
    }
    // Same SSRC jumps far ahead: the first packet is held back, the second confirms.
    s.on_rtp_received(40_000, 0, 5, t0);
    assert_eq!(s.stats().packets_received, 3);
    s.on_rtp_received(40_001, 0, 5, t0);
    s.on_rtp_received(40_002, 0, 5, t0);
    assert_eq!(s.stats().packets_received, 5);
    assert_eq!(s.stats().packets_lost, 1, "the loss before the restart is kept");
    // A new SSRC (say a media server took over) keeps the earlier loss.
    for seq in [900u16, 902] {
        s.on_rtp_received(seq, 0, 6, t0);
    }
    assert_eq!(s.stats().packets_lost, 1 + 1);
}

#[test]
fn ntp_conversion() {
    assert_eq!(ntp_from_unix(0, 0), NTP_UNIX_OFFSET_SECS << 32);
    assert_eq!(ntp_from_unix(1, 500_000_000), ((NTP_UNIX_OFFSET_SECS + 1) << 32) | 0x8000_0000);
    // 2036-02-07 06:28:16 UTC starts NTP era 1.
    assert_eq!(ntp_from_unix((1 << 32) - NTP_UNIX_OFFSET_SECS, 0), 0);
    assert_eq!(ntp_short(Duration::from_millis(1500)), 0x1_8000);
}
