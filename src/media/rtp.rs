//! RTP packetization (RFC 3550) over `rtc-rtp`'s header type: the sending
//! side's sequence/timestamp bookkeeping and the receiving side's parse and
//! counters. Buffers are the caller's and the parse reads the header in
//! place (`rtc-rtp`'s allocates for CSRCs and extensions), so the
//! per-packet path does not allocate.

use rtc_rtp::header::Header;
use rtc_shared::marshal::{Marshal, MarshalSize};

/// Why an incoming datagram was not taken as RTP.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtpError {
    /// Not a version-2 RTP packet, or its header does not fit the datagram.
    #[error("malformed RTP packet: {0}")]
    Malformed(&'static str),
}

/// The sending half of one RTP stream: a fixed SSRC, a sequence number that
/// advances by one per packet and a timestamp that advances by the samples sent.
#[derive(Debug, Clone)]
pub struct RtpSender {
    header: Header,
    first: bool,
    pub packets_sent: u64,
    pub octets_sent: u64,
}

impl RtpSender {
    /// Initial values are random per RFC 3550 §5.1; the caller draws them so
    /// this stays deterministic under test.
    pub fn new(ssrc: u32, first_sequence: u16, first_timestamp: u32, payload_type: u8) -> Self {
        let header = Header {
            version: 2,
            payload_type,
            sequence_number: first_sequence,
            timestamp: first_timestamp,
            ssrc,
            ..Default::default()
        };
        RtpSender { header, first: true, packets_sent: 0, octets_sent: 0 }
    }

    pub fn ssrc(&self) -> u32 {
        self.header.ssrc
    }

    /// The timestamp the next audio packet will carry.
    pub fn timestamp(&self) -> u32 {
        self.header.timestamp
    }

    /// Write the next packet carrying `payload` (worth `samples` of the
    /// clock) into `out`, replacing its contents.
    pub fn write_packet(&mut self, payload: &[u8], samples: u32, out: &mut Vec<u8>) {
        // The marker bit flags the start of a talk spurt: our first packet.
        self.header.marker = self.first;
        self.first = false;
        self.emit(payload, out);
        self.header.timestamp = self.header.timestamp.wrapping_add(samples);
    }

    /// Write an RFC 4733 event packet in place of this tick's audio: its own
    /// payload type and the event's fixed timestamp, the next sequence
    /// number; the audio clock still moves on by `samples`.
    pub fn write_event(
        &mut self,
        payload_type: u8,
        event_timestamp: u32,
        marker: bool,
        payload: &[u8],
        samples: u32,
        out: &mut Vec<u8>,
    ) {
        let (audio_type, audio_timestamp) = (self.header.payload_type, self.header.timestamp);
        self.header.payload_type = payload_type;
        self.header.timestamp = event_timestamp;
        self.header.marker = marker;
        self.emit(payload, out);
        self.header.payload_type = audio_type;
        self.header.timestamp = audio_timestamp.wrapping_add(samples);
    }

    fn emit(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let header_len = self.header.marshal_size();
        out.clear();
        out.resize(header_len, 0);
        let written = self.header.marshal_to(out).expect("buffer sized by marshal_size");
        out.truncate(written);
        out.extend_from_slice(payload);
        self.packets_sent += 1;
        self.octets_sent += payload.len() as u64;
        self.header.sequence_number = self.header.sequence_number.wrapping_add(1);
    }
}

/// A received RTP packet: its header fields and where the payload sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpView {
    pub payload_type: u8,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    pub payload_offset: usize,
    pub payload_len: usize,
}

/// Parse a datagram as RTP (header, CSRCs, extension and padding accounted
/// for), in place: this runs for every packet a peer sends us.
pub fn parse(datagram: &[u8]) -> Result<RtpView, RtpError> {
    let &[first, second, s0, s1, t0, t1, t2, t3, i0, i1, i2, i3, ..] = datagram else {
        return Err(RtpError::Malformed("shorter than an RTP header"));
    };
    if first >> 6 != 2 {
        return Err(RtpError::Malformed("not RTP version 2"));
    }
    let mut payload_offset = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        // RFC 3550 §5.3.1: a profile word and a length in 32-bit words.
        let Some(&[_, _, l0, l1]) = datagram.get(payload_offset..payload_offset + 4) else {
            return Err(RtpError::Malformed("header extension cut short"));
        };
        payload_offset += 4 + 4 * usize::from(u16::from_be_bytes([l0, l1]));
    }
    let Some(rest) = datagram.len().checked_sub(payload_offset) else {
        return Err(RtpError::Malformed("header longer than the datagram"));
    };
    let padding = if first & 0x20 != 0 { usize::from(datagram[datagram.len() - 1]) } else { 0 };
    let payload_len = rest.checked_sub(padding).ok_or(RtpError::Malformed("padding longer than the payload"))?;
    Ok(RtpView {
        payload_type: second & 0x7f,
        sequence_number: u16::from_be_bytes([s0, s1]),
        timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
        ssrc: u32::from_be_bytes([i0, i1, i2, i3]),
        marker: second & 0x80 != 0,
        payload_offset,
        payload_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_and_timestamp_advance_per_packet_and_wrap() {
        let mut tx = RtpSender::new(0xdead_beef, 65534, u32::MAX - 159, 0);
        let mut out = Vec::with_capacity(200);
        let payload = [0x55u8; 160];
        let mut seen = vec![];
        for _ in 0..3 {
            tx.write_packet(&payload, 160, &mut out);
            assert_eq!(out.len(), 12 + 160);
            let v = parse(&out).unwrap();
            assert_eq!(&out[v.payload_offset..v.payload_offset + v.payload_len], &payload[..]);
            seen.push((v.sequence_number, v.timestamp, v.marker, v.ssrc, v.payload_type));
        }
        assert_eq!(
            seen,
            vec![
                (65534, u32::MAX - 159, true, 0xdead_beef, 0),
                (65535, 0, false, 0xdead_beef, 0),
                (0, 160, false, 0xdead_beef, 0)
            ]
        );
        assert_eq!((tx.packets_sent, tx.octets_sent), (3, 480));
    }

    #[test]
    fn wire_format_matches_rfc3550_layout() {
        let mut tx = RtpSender::new(0x01020304, 0x1122, 0x33445566, 8);
        let mut out = Vec::new();
        tx.write_packet(&[9, 9], 2, &mut out);
        assert_eq!(out, [0x80, 0x88, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 1, 2, 3, 4, 9, 9]);
    }

    #[test]
    fn an_event_packet_takes_the_next_sequence_number_and_keeps_the_audio_clock() {
        let mut tx = RtpSender::new(7, 10, 1000, 0);
        let mut out = Vec::new();
        tx.write_packet(&[0; 160], 160, &mut out);
        tx.write_event(101, 1160, true, &[1, 10, 0, 160], 160, &mut out);
        let event = parse(&out).unwrap();
        assert_eq!((event.payload_type, event.sequence_number, event.timestamp, event.marker), (101, 11, 1160, true));
        tx.write_packet(&[0; 160], 160, &mut out);
        let audio = parse(&out).unwrap();
        assert_eq!((audio.payload_type, audio.sequence_number, audio.timestamp, audio.marker), (0, 12, 1320, false));
    }

    #[test]
    fn rejects_garbage_and_honours_padding_and_csrcs() {
        assert!(parse(b"hello").is_err());
        assert!(parse(&[0x40; 20]).is_err(), "version 1");
        // V=2, P=1, CC=1: one CSRC, 2 payload bytes then 2 bytes of padding.
        let pkt = [0xA1, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 9, 0xAB, 0xCD, 0, 2];
        let v = parse(&pkt).unwrap();
        assert_eq!((v.payload_offset, v.payload_len), (16, 2));
        let bad_padding = [0xA0, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0xFF];
        assert!(parse(&bad_padding).is_err());
    }

    #[test]
    fn skips_a_header_extension_and_refuses_one_that_does_not_fit() {
        // X=1, one CSRC, then an RFC 8285 one-byte extension of one word (audio level).
        let mut pkt = vec![0x91, 0x80, 0, 5, 0, 0, 0, 160, 0, 0, 0, 7, 0, 0, 0, 9, 0xBE, 0xDE, 0, 1, 0x10, 0x85, 0, 0];
        pkt.extend([0xFF; 160]);
        let v = parse(&pkt).unwrap();
        assert_eq!((v.payload_type, v.marker, v.sequence_number, v.timestamp, v.ssrc), (0, true, 5, 160, 7));
        assert_eq!((v.payload_offset, v.payload_len), (24, 160));
        assert!(parse(&pkt[..18]).is_err(), "extension header cut");
        assert!(parse(&pkt[..22]).is_err(), "extension longer than the datagram");
    }
}
