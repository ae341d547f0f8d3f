//! The RFC 4733 receiving side: a peer's telephone-event packets in, each
//! key out exactly once.

use super::event_to_digit;

/// How many recent events are remembered to drop their late duplicates.
/// One event lasts a handful of packets, so a packet older than eight events
/// is not a reordering a real network produces.
const REMEMBERED_EVENTS: usize = 8;

/// Reports each key a peer sends once, however many packets carry it.
///
/// An event is named by its RTP timestamp (fixed for all its packets) and
/// its code, so redundant end packets, retransmitted starts and late
/// duplicates of earlier keys are dropped, while a key pressed twice is two
/// events with two timestamps. The key is reported on the first packet seen
/// of an event, so a lost start packet costs nothing. The RTP marker bit is
/// deliberately not consulted: it is on the one packet most worth losing.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    recent: [Option<(u32, u8)>; REMEMBERED_EVENTS],
    next_slot: usize,
}

impl DtmfReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Take the payload of one telephone-event packet and the RTP timestamp
    /// of its header. Returns the key if this packet is the first seen of its
    /// event. Short payloads and non-DTMF events (flash, fax tones) are ignored.
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let &[event, _, _, _, ..] = payload else {
            return None;
        };
        let digit = event_to_digit(event)?;
        let key = Some((timestamp, event));
        if self.recent.contains(&key) {
            return None;
        }
        self.recent[self.next_slot] = key;
        self.next_slot = (self.next_slot + 1) % REMEMBERED_EVENTS;
        Some(digit)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::media::dtmf::{DtmfSender, EventPacket};

    /// Every packet the sender puts out for `digits`, in order.
    fn packets_for(digits: &str, clock_rate: u32, tick: u32) -> Vec<EventPacket> {
        let mut tx = DtmfSender::new(clock_rate, 100, 60).unwrap();
        tx.queue(digits).unwrap();
        let mut packets = Vec::new();
        let mut timestamp = 0xFFFF_F000u32;
        for _ in 0..10_000 {
            if !tx.is_busy() {
                break;
            }
            packets.extend(tx.next_packet(timestamp, tick));
            timestamp = timestamp.wrapping_add(tick);
        }
        assert!(!tx.is_busy());
        packets
    }

    fn receive<'a>(packets: impl IntoIterator<Item = &'a EventPacket>) -> String {
        let mut rx = DtmfReceiver::new();
        packets.into_iter().filter_map(|p| rx.on_packet(p.timestamp, &p.payload)).collect()
    }

    const DIGITS: &str = "1#11*0A9D55";

    #[test]
    fn every_packet_delivered_yields_the_digits_once_each() {
        for (rate, tick) in [(8000, 160), (48000, 960)] {
            let packets = packets_for(DIGITS, rate, tick);
            assert_eq!(receive(&packets), DIGITS);
        }
    }

    #[test]
    fn lost_starts_middles_and_end_copies_do_not_lose_or_repeat_digits() {
        let packets = packets_for(DIGITS, 8000, 160);
        // 7 packets per key: marker start, 3 updates, 3 end copies.
        let without_starts: Vec<_> = packets.iter().filter(|p| !p.marker).collect();
        assert_eq!(receive(without_starts), DIGITS);
        let without_middles: Vec<_> =
            packets.iter().enumerate().filter(|(i, _)| !(1..=3).contains(&(i % 7))).map(|(_, p)| p).collect();
        assert_eq!(receive(without_middles), DIGITS);
        let one_end_copy: Vec<_> =
            packets.iter().enumerate().filter(|(i, _)| i % 7 != 5 && i % 7 != 6).map(|(_, p)| p).collect();
        assert_eq!(receive(one_end_copy), DIGITS);
        let only_last_end: Vec<_> = packets.iter().enumerate().filter(|(i, _)| i % 7 == 6).map(|(_, p)| p).collect();
        assert_eq!(receive(only_last_end), DIGITS);
    }

    #[test]
    fn duplicated_and_locally_reordered_packets_yield_the_digits_once_each() {
        let packets = packets_for(DIGITS, 8000, 160);
        let mut rng = StdRng::seed_from_u64(4733);
        for _ in 0..200 {
            let mut arrivals: Vec<&EventPacket> = Vec::new();
            for p in &packets {
                arrivals.push(p);
                if rng.random_bool(0.3) {
                    arrivals.push(p);
                }
            }
            // Swap neighbours: late packets of one key may arrive after the
            // first of the next, but never all of them (a key spans 7 packets).
            for i in 1..arrivals.len() {
                if rng.random_bool(0.3) {
                    arrivals.swap(i - 1, i);
                }
            }
            // Stragglers of keys that ended several keys ago.
            arrivals.insert(30, &packets[2]);
            arrivals.insert(63, &packets[5 * 7]);
            assert_eq!(receive(arrivals), DIGITS);
        }
    }

    #[test]
    fn malformed_payloads_and_non_dtmf_events_are_ignored() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(rx.on_packet(0, &[]), None);
        assert_eq!(rx.on_packet(0, &[5]), None);
        assert_eq!(rx.on_packet(0, &[5, 0x0a, 0]), None);
        assert_eq!(rx.on_packet(0, &[16, 0x0a, 0, 160]), None, "hook flash");
        assert_eq!(rx.on_packet(0, &[36, 0x0a, 0, 160]), None, "fax CNG");
        assert_eq!(rx.on_packet(0, &[255, 0xff, 0xff, 0xff]), None);
        // None of that consumed the event: a real key at the same timestamp still counts.
        assert_eq!(rx.on_packet(0, &[5, 0x0a, 0, 160, 0xEE]), Some('5'));
    }

    #[test]
    fn a_different_key_reusing_a_timestamp_is_still_reported() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(rx.on_packet(100, &[3, 0x0a, 0, 160]), Some('3'));
        assert_eq!(rx.on_packet(100, &[4, 0x0a, 0, 160]), Some('4'));
        assert_eq!(rx.on_packet(100, &[3, 0x8a, 0x03, 0x20]), None);
    }
}
