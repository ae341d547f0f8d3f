//! Reading a peer's compound RTCP packet in place (RFC 3550 §6.4): the
//! sender info of its SRs and the report blocks of its SRs and RRs, which is
//! all the session uses. `rtc-rtcp`'s reader builds a boxed object per
//! packet and vectors of blocks and SDES items; this one allocates nothing,
//! as the receive path must not. The whole datagram is checked before any
//! of it is handed out, so a malformed one changes nothing.

use super::RtcpError;

const SENDER_REPORT: u8 = 200;
const RECEIVER_REPORT: u8 = 201;
const HEADER_LEN: usize = 4;
/// Reporter SSRC, then (SR only) NTP time, RTP time, packet and octet counts.
const RR_PREFIX: usize = 4;
const SR_PREFIX: usize = 24;
const BLOCK_LEN: usize = 24;

/// One report block: the peer's view of one source it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Block {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// The 24-bit signed cumulative loss, as on the wire.
    pub total_lost: u32,
    pub jitter: u32,
    pub last_sender_report: u32,
    pub delay: u32,
}

/// An SR or RR of the datagram.
pub(super) struct Report<'a> {
    /// An SR's sender SSRC and NTP timestamp; `None` for an RR.
    pub sender: Option<(u32, u64)>,
    blocks: &'a [u8],
}

impl Report<'_> {
    pub fn blocks(&self) -> impl Iterator<Item = Block> + '_ {
        self.blocks.chunks_exact(BLOCK_LEN).map(|b| Block {
            ssrc: word(b, 0),
            fraction_lost: b[4],
            total_lost: word(b, 4) & 0xff_ffff,
            jitter: word(b, 12),
            last_sender_report: word(b, 16),
            delay: word(b, 20),
        })
    }
}

/// The SRs and RRs of a compound packet, in order, once all of it has been
/// found well-formed. Other packet types (SDES, BYE, APP, feedback,
/// unknown ones) are skipped; only their framing is checked.
pub(super) fn reports(datagram: &[u8]) -> Result<impl Iterator<Item = Report<'_>>, RtcpError> {
    if datagram.is_empty() {
        return Err(RtcpError::Malformed("empty datagram"));
    }
    let mut rest = datagram;
    while !rest.is_empty() {
        next(&mut rest)?;
    }
    let mut rest = datagram;
    Ok(std::iter::from_fn(move || {
        while !rest.is_empty() {
            if let Ok(Some(report)) = next(&mut rest) {
                return Some(report);
            }
        }
        None
    }))
}

/// Take the first packet off `rest`: the report it is, if it is an SR or RR.
fn next<'a>(rest: &mut &'a [u8]) -> Result<Option<Report<'a>>, RtcpError> {
    let &[first, packet_type, l0, l1, ..] = *rest else {
        return Err(RtcpError::Malformed("header cut short"));
    };
    if first >> 6 != 2 {
        return Err(RtcpError::Malformed("not version 2"));
    }
    let len = HEADER_LEN + 4 * usize::from(u16::from_be_bytes([l0, l1]));
    if len > rest.len() {
        return Err(RtcpError::Malformed("length beyond the datagram"));
    }
    let (packet, after) = rest.split_at(len);
    *rest = after;
    let padding = if first & 0x20 != 0 { usize::from(packet[len - 1]) } else { 0 };
    let body_len = (len - HEADER_LEN).checked_sub(padding).ok_or(RtcpError::Malformed("padding beyond the packet"))?;
    let body = &packet[HEADER_LEN..HEADER_LEN + body_len];
    let prefix = match packet_type {
        SENDER_REPORT => SR_PREFIX,
        RECEIVER_REPORT => RR_PREFIX,
        _ => return Ok(None),
    };
    let blocks_len = BLOCK_LEN * usize::from(first & 0x1f);
    // Anything after the blocks is a profile-specific extension: ignored.
    let blocks = body.get(prefix..prefix + blocks_len).ok_or(RtcpError::Malformed("report blocks cut short"))?;
    let sender = (packet_type == SENDER_REPORT)
        .then(|| (word(body, 0), (u64::from(word(body, 4)) << 32) | u64::from(word(body, 8))));
    Ok(Some(Report { sender, blocks }))
}

fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RR from SSRC 9 with one block about SSRC 1, padded to `pad` extra octets.
    fn receiver_report(pad: u8) -> Vec<u8> {
        let words = 7 + u16::from(pad) / 4;
        let mut packet = vec![0x81 | if pad > 0 { 0x20 } else { 0 }, 201];
        packet.extend(words.to_be_bytes());
        packet.extend([0, 0, 0, 9, 0, 0, 0, 1, 64, 0xff, 0xff, 0xfe, 0, 0, 0, 50, 0, 0, 0, 80, 0, 0, 0, 7, 0, 0, 0, 3]);
        if pad > 0 {
            packet.extend(vec![0; usize::from(pad) - 1]);
            packet.push(pad);
        }
        packet
    }

    #[test]
    fn reads_blocks_through_padding_and_skips_a_profile_extension() {
        for pad in [0, 4, 8] {
            let packet = receiver_report(pad);
            let reports: Vec<_> = reports(&packet).unwrap().collect();
            assert_eq!(reports.len(), 1);
            let blocks: Vec<_> = reports[0].blocks().collect();
            let expected = Block {
                ssrc: 1,
                fraction_lost: 64,
                total_lost: 0xff_fffe,
                jitter: 80,
                last_sender_report: 7,
                delay: 3,
            };
            assert_eq!((reports[0].sender, blocks), (None, vec![expected]), "padding {pad}");
        }
        // An SR with no blocks and 8 octets of profile extension, then an RR.
        let mut compound = vec![0x80, 200, 0, 8, 0, 0, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8];
        compound.extend([0; 20]);
        compound.extend(receiver_report(0));
        let reports: Vec<_> = reports(&compound).unwrap().collect();
        assert_eq!(reports[0].sender, Some((5, 0x0102_0304_0506_0708)));
        assert_eq!((reports[0].blocks().count(), reports[1].blocks().count()), (0, 1));
    }

    #[test]
    fn one_malformed_packet_refuses_the_whole_datagram() {
        let mut packet = receiver_report(4);
        *packet.last_mut().unwrap() = 200;
        assert_eq!(reports(&packet).err(), Some(RtcpError::Malformed("padding beyond the packet")));
        let mut compound = receiver_report(0);
        compound.extend([0x81, 201, 0, 1, 0, 0, 0, 9]);
        assert_eq!(reports(&compound).err(), Some(RtcpError::Malformed("report blocks cut short")));
    }
}
