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
    let sender =
        (packet_type == SENDER_REPORT).then(|| (word(body, 0), (u64::from(word(body, 4)) << 32) | u64::from(word(body, 8))));
    Ok(Some(Report { sender, blocks }))
}

fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}
