//! DTMF, in the two ways a call carries it: RFC 4733 telephone-event RTP
//! packets (the [`DtmfSender`] paced by the 20 ms media tick, the
//! [`DtmfReceiver`] that turns a peer's packets into digits) and SIP INFO
//! bodies ([`parse_info`], [`info_body`]). All of it is pure: no sockets, no
//! clock, and no allocation on the per-packet path.

mod info;
mod receiver;
mod sender;

#[cfg(test)]
mod capture_tests;

pub use info::{info_body, parse_info, InfoDigit, DTMF_CONTENT_TYPE, DTMF_RELAY_CONTENT_TYPE};
pub use receiver::DtmfReceiver;
pub use sender::{
    DtmfSender, EventPacket, DEFAULT_GAP_MS, DEFAULT_TONE_MS, GAP_MS_RANGE, QUEUE_CAPACITY, TONE_MS_RANGE,
};

/// Misuse of the DTMF API; what a peer sends is never an error, only ignored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DtmfError {
    /// A character that is not one of the sixteen DTMF keys.
    #[error("{0:?} is not a DTMF digit (expected 0-9, *, # or A-D)")]
    InvalidDigit(char),
    /// The digits do not fit the send queue; none of them was queued.
    #[error("DTMF queue full: {queued} digits waiting, {requested} more asked for, room for {capacity}")]
    QueueFull { queued: usize, requested: usize, capacity: usize },
    /// The tone length is outside [`TONE_MS_RANGE`], or too long for the
    /// 16-bit duration field at this clock rate.
    #[error("DTMF tone of {tone_ms} ms not allowed at {clock_rate} Hz: must be {min_ms}..={max_ms} ms")]
    ToneLength { tone_ms: u32, clock_rate: u32, min_ms: u32, max_ms: u32 },
    /// The pause between digits is outside [`GAP_MS_RANGE`].
    #[error("DTMF gap of {0} ms not allowed: must be within {GAP_MS_RANGE:?} ms")]
    GapLength(u32),
    /// A telephone-event clock rate we do not pace: whole kHz from 8 to 48 kHz.
    #[error("telephone-event clock rate {0} Hz not supported (whole kHz from 8000 to 48000)")]
    ClockRate(u32),
}

/// How a key reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DtmfVia {
    /// An RFC 4733 telephone-event in the RTP stream.
    Rtp,
    /// A SIP INFO (application/dtmf-relay or application/dtmf).
    Info,
}

/// The RFC 4733 §3.2 event code of a DTMF key; A-D in either case.
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// Keys as the agent typed them, checked and in canonical form (A-D upper
/// case), at most one queue's worth: what `call.dtmf` accepts.
pub fn normalize_digits(digits: &str) -> Result<String, DtmfError> {
    let count = digits.chars().count();
    if count == 0 || count > QUEUE_CAPACITY {
        return Err(DtmfError::QueueFull { queued: 0, requested: count, capacity: QUEUE_CAPACITY });
    }
    digits
        .chars()
        .map(|digit| digit_to_event(digit).and_then(event_to_digit).ok_or(DtmfError::InvalidDigit(digit)))
        .collect()
}

/// The DTMF key of an RFC 4733 event code (A-D upper case); `None` for the
/// non-DTMF events above 15 (flash, modem and fax tones).
pub fn event_to_digit(event: u8) -> Option<char> {
    const KEYS: &[u8; 16] = b"0123456789*#ABCD";
    KEYS.get(usize::from(event)).map(|&key| char::from(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_maps_to_its_event_and_back() {
        for (event, digit) in "0123456789*#ABCD".chars().enumerate() {
            assert_eq!(digit_to_event(digit), Some(event as u8));
            assert_eq!(event_to_digit(event as u8), Some(digit));
        }
        assert_eq!(digit_to_event('c'), Some(14));
        assert_eq!(normalize_digits("12ab#*").unwrap(), "12AB#*");
        assert_eq!(normalize_digits("1x"), Err(DtmfError::InvalidDigit('x')));
        assert!(normalize_digits("").is_err() && normalize_digits(&"1".repeat(33)).is_err());
        for not_a_key in ['E', 'e', ' ', 'x', '+', ',', 'é', '٣'] {
            assert_eq!(digit_to_event(not_a_key), None, "{not_a_key:?}");
        }
        assert_eq!(event_to_digit(16), None, "hook flash is not a key");
        assert_eq!(event_to_digit(255), None);
    }
}
