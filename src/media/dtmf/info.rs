//! DTMF in SIP INFO bodies, the out-of-band way PBXs without telephone-event
//! use: `application/dtmf-relay` (`Signal=5` / `Duration=160` lines, the
//! Cisco format) and `application/dtmf` (the bare key).

use super::{digit_to_event, event_to_digit, DtmfError};

pub const DTMF_RELAY_CONTENT_TYPE: &str = "application/dtmf-relay";
pub const DTMF_CONTENT_TYPE: &str = "application/dtmf";

/// A key received in an INFO body, with its length when the body gave one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoDigit {
    pub digit: char,
    pub duration_ms: Option<u32>,
}

/// Read a key from an INFO request's Content-Type and body. `None` for other
/// content types and for bodies that do not name exactly one DTMF key
/// (including `Signal=!`, the hook flash some PBXs send).
pub fn parse_info(content_type: &str, body: &str) -> Option<InfoDigit> {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case(DTMF_RELAY_CONTENT_TYPE) {
        parse_dtmf_relay(body)
    } else if media_type.eq_ignore_ascii_case(DTMF_CONTENT_TYPE) {
        Some(InfoDigit { digit: parse_key(body.trim())?, duration_ms: None })
    } else {
        None
    }
}

/// The `application/dtmf-relay` body for a key, in the Cisco format every
/// PBX reads. Lower-case a-d are sent upper case.
pub fn info_body(digit: char, duration_ms: u32) -> Result<(&'static str, String), DtmfError> {
    let digit = digit_to_event(digit).and_then(event_to_digit).ok_or(DtmfError::InvalidDigit(digit))?;
    Ok((DTMF_RELAY_CONTENT_TYPE, format!("Signal={digit}\r\nDuration={duration_ms}\r\n")))
}

/// `key=value` lines, CRLF or LF, any case and spacing; the first `Signal`
/// and `Duration` count. A Duration that is not a number is treated as absent:
/// the key itself is what matters.
fn parse_dtmf_relay(body: &str) -> Option<InfoDigit> {
    let mut digit = None;
    let mut duration_ms = None;
    for line in body.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key.eq_ignore_ascii_case("signal") && digit.is_none() {
            digit = Some(parse_signal(value)?);
        } else if key.eq_ignore_ascii_case("duration") && duration_ms.is_none() {
            duration_ms = value.parse().ok();
        }
    }
    Some(InfoDigit { digit: digit?, duration_ms })
}

/// A `Signal` value: one key, or the RFC 4733 event number 10-15 that some
/// PBXs send for * # A-D.
fn parse_signal(value: &str) -> Option<char> {
    match value.parse::<u8>() {
        Ok(event @ 10..=15) => event_to_digit(event),
        _ => parse_key(value),
    }
}

/// Exactly one key character, normalised to upper case.
fn parse_key(value: &str) -> Option<char> {
    let mut chars = value.chars();
    let digit = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    event_to_digit(digit_to_event(digit)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(body: &str) -> Option<InfoDigit> {
        parse_info("application/dtmf-relay", body)
    }

    fn key(digit: char, duration_ms: Option<u32>) -> Option<InfoDigit> {
        Some(InfoDigit { digit, duration_ms })
    }

    #[test]
    fn real_world_dtmf_relay_bodies() {
        // Cisco IOS / CUCM.
        assert_eq!(relay("Signal=5\r\nDuration=160\r\n"), key('5', Some(160)));
        // Asterisk chan_sip / chan_pjsip.
        assert_eq!(relay("Signal=#\r\nDuration=250\r\n"), key('#', Some(250)));
        assert_eq!(relay("Signal=*\r\nDuration=100\r\n"), key('*', Some(100)));
        // Cisco ATAs and some SBCs put spaces after the '='.
        assert_eq!(relay("Signal= 1\r\nDuration= 160\r\n"), key('1', Some(160)));
        // LF-only, other key case, extra spacing, no trailing newline.
        assert_eq!(relay("signal = 9\nDURATION =  80"), key('9', Some(80)));
        // Numbered * and # (and A-D) as some PBXs send them.
        assert_eq!(relay("Signal=10\r\nDuration=160\r\n"), key('*', Some(160)));
        assert_eq!(relay("Signal=11\r\nDuration=160\r\n"), key('#', Some(160)));
        assert_eq!(relay("Signal=12\r\n"), key('A', None));
        assert_eq!(relay("Signal=d\r\n"), key('D', None));
        // Duration missing or unreadable: the key still counts.
        assert_eq!(relay("Signal=0\r\n"), key('0', None));
        assert_eq!(relay("Signal=0\r\nDuration=long\r\n"), key('0', None));
        // Content type with parameters and other case.
        assert_eq!(parse_info("Application/DTMF-Relay; charset=utf-8", "Signal=3\r\n"), key('3', None));
    }

    #[test]
    fn malformed_dtmf_relay_bodies_are_none() {
        for body in [
            "",
            "\r\n",
            "Duration=160\r\n",
            "Signal=\r\nDuration=160\r\n",
            "Signal=!\r\nDuration=160\r\n",
            "Signal=16\r\n",
            "Signal=55\r\n",
            "Signal=x\r\n",
            "Signal=1 2\r\n",
            "Signal 5\r\n",
            "Sig=5\r\n",
            "Signal=٣\r\n",
        ] {
            assert_eq!(relay(body), None, "{body:?}");
        }
    }

    #[test]
    fn application_dtmf_is_the_bare_key() {
        assert_eq!(parse_info("application/dtmf", "7"), key('7', None));
        assert_eq!(parse_info("application/dtmf", " #\r\n"), key('#', None));
        assert_eq!(parse_info("application/dtmf", "b"), key('B', None));
        assert_eq!(parse_info("application/dtmf", ""), None);
        assert_eq!(parse_info("application/dtmf", "12"), None);
        assert_eq!(parse_info("application/dtmf", "Signal=5"), None);
    }

    #[test]
    fn other_content_types_are_none() {
        assert_eq!(parse_info("application/sdp", "Signal=5\r\n"), None);
        assert_eq!(parse_info("text/plain", "5"), None);
        assert_eq!(parse_info("", "5"), None);
    }

    #[test]
    fn info_body_is_cisco_format_and_parses_back() {
        let (content_type, body) = info_body('5', 160).unwrap();
        assert_eq!((content_type, body.as_str()), ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"));
        for digit in "0123456789*#ABCDabcd".chars() {
            let (content_type, body) = info_body(digit, 250).unwrap();
            let parsed = parse_info(content_type, &body).unwrap();
            assert_eq!(parsed, InfoDigit { digit: digit.to_ascii_uppercase(), duration_ms: Some(250) });
        }
        assert_eq!(info_body('x', 100), Err(DtmfError::InvalidDigit('x')));
    }
}
