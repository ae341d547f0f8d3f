//! The receiver against real telephone-event traffic: the RFC 2833 captures
//! sipp ships (package sip-tester), one key per file.

use std::path::Path;

use super::DtmfReceiver;
use crate::media::rtp;

const CAPTURE_DIR: &str = "/usr/share/sip-tester";
const TELEPHONE_EVENT_PT: u8 = 101;

/// The UDP payloads of a classic pcap file of Ethernet/IPv4 frames.
fn udp_payloads(capture: &[u8]) -> Vec<&[u8]> {
    const GLOBAL_HEADER: usize = 24;
    const RECORD_HEADER: usize = 16;
    const LINKTYPE_ETHERNET: u32 = 1;
    let magic = u32::from_le_bytes(capture[..4].try_into().unwrap());
    let read_u32: fn([u8; 4]) -> u32 = match magic {
        0xa1b2_c3d4 => u32::from_le_bytes,
        0xd4c3_b2a1 => u32::from_be_bytes,
        other => panic!("not a classic pcap file (magic {other:#x})"),
    };
    let field = |at: usize| read_u32(capture[at..at + 4].try_into().unwrap());
    assert_eq!(field(20), LINKTYPE_ETHERNET, "link type");
    let mut payloads = Vec::new();
    let mut at = GLOBAL_HEADER;
    while at + RECORD_HEADER <= capture.len() {
        let captured_len = field(at + 8) as usize;
        let frame = &capture[at + RECORD_HEADER..at + RECORD_HEADER + captured_len];
        at += RECORD_HEADER + captured_len;
        let (ethertype, ip) = (u16::from_be_bytes([frame[12], frame[13]]), &frame[14..]);
        if ethertype != 0x0800 || ip[9] != 17 {
            continue;
        }
        let udp = &ip[usize::from(ip[0] & 0x0f) * 4..];
        let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        payloads.push(&udp[8..udp_len]);
    }
    payloads
}

/// The keys a receiver reports for every telephone-event packet in `file`.
fn keys_in_capture(file: &str) -> String {
    let path = Path::new(CAPTURE_DIR).join(file);
    let capture = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; these captures come with sipp: apt-get install sip-tester", path.display())
    });
    let mut receiver = DtmfReceiver::new();
    let mut keys = String::new();
    let mut event_packets = 0;
    for datagram in udp_payloads(&capture) {
        let view = rtp::parse(datagram).expect("capture holds RTP only");
        if view.payload_type == TELEPHONE_EVENT_PT {
            event_packets += 1;
            let payload = &datagram[view.payload_offset..view.payload_offset + view.payload_len];
            keys.extend(receiver.on_packet(view.timestamp, payload));
        }
    }
    assert!(event_packets > 3, "{file}: only {event_packets} telephone-event packets");
    keys
}

#[test]
fn each_sipp_capture_yields_its_one_key() {
    let captures = (0..=9).map(|n| (format!("dtmf_2833_{n}.pcap"), char::from(b'0' + n)));
    let captures = captures.chain([("dtmf_2833_star.pcap".into(), '*'), ("dtmf_2833_pound.pcap".into(), '#')]);
    for (file, key) in captures {
        assert_eq!(keys_in_capture(&file), key.to_string(), "{file}");
    }
}
