//! RFC 4028 session timers as pure code: reading and writing
//! Session-Expires, deciding who refreshes, and when a refresh (or the
//! end of a silent session) is due. Part of the call core because the
//! timer is the call's dialog state; the SIP adapter only carries the
//! header values in and out.

use std::time::Duration;

/// Which side of the dialog sends the refreshes, from our point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Us,
    Peer,
}

/// A session timer both sides agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    pub interval: Duration,
    pub refresher: Refresher,
}

impl SessionTimer {
    /// When we refresh: half-way through the interval (RFC 4028 §10).
    pub fn refresh_after(&self) -> Duration {
        self.interval / 2
    }

    /// When a session the peer should refresh is given up: the interval
    /// minus the smaller of 32 s and a third of it (RFC 4028 §10).
    pub fn expire_after(&self) -> Duration {
        self.interval - (self.interval / 3).min(Duration::from_secs(32))
    }

    /// The Session-Expires value for a message we send as `role`.
    pub fn header_value(&self, role: Role) -> String {
        let side = match (self.refresher, role) {
            (Refresher::Us, Role::Uac) | (Refresher::Peer, Role::Uas) => "uac",
            _ => "uas",
        };
        format!("{};refresher={side}", self.interval.as_secs())
    }
}

/// Our role in the transaction a Session-Expires header travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Uac,
    Uas,
}

/// A parsed Session-Expires: `delta-seconds[;refresher=uac|uas]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    pub seconds: u32,
    /// `Some(true)` for `uac`, `Some(false)` for `uas`.
    pub refresher_uac: Option<bool>,
}

impl SessionExpires {
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';').map(str::trim);
        let seconds = parts.next()?.parse().ok()?;
        let mut refresher_uac = None;
        for param in parts {
            if let Some((name, v)) = param.split_once('=') {
                if name.trim().eq_ignore_ascii_case("refresher") {
                    refresher_uac = match v.trim().to_ascii_lowercase().as_str() {
                        "uac" => Some(true),
                        "uas" => Some(false),
                        _ => None,
                    };
                }
            }
        }
        Some(SessionExpires { seconds, refresher_uac })
    }
}

/// The timer of a call we placed, from the 2xx's Session-Expires.
/// A 2xx without one means the peer runs no timer: neither do we.
pub fn from_answer(answer: Option<SessionExpires>) -> Option<SessionTimer> {
    let answer = answer.filter(|a| a.seconds > 0)?;
    let refresher = if answer.refresher_uac.unwrap_or(true) { Refresher::Us } else { Refresher::Peer };
    Some(SessionTimer { interval: Duration::from_secs(answer.seconds.into()), refresher })
}

/// The timer of a call we answer. The caller's Session-Expires wins when
/// present (a UAS may lower it, never raise it); a caller that only says
/// `Supported: timer` gets ours. We refresh ourselves unless the caller
/// chose to, so the session never depends on a peer that forgets.
pub fn for_answer(offer: Option<SessionExpires>, caller_supports_timer: bool, ours: u32) -> Option<SessionTimer> {
    let (seconds, refresher) = match offer {
        Some(offer) if offer.seconds > 0 => {
            let refresher = if offer.refresher_uac == Some(true) { Refresher::Peer } else { Refresher::Us };
            (offer.seconds, refresher)
        }
        _ if caller_supports_timer && ours > 0 => (ours, Refresher::Us),
        _ => return None,
    };
    Some(SessionTimer { interval: Duration::from_secs(seconds.into()), refresher })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn se(text: &str) -> Option<SessionExpires> {
        SessionExpires::parse(text)
    }

    #[test]
    fn parses_the_header_forms() {
        assert_eq!(se("1800"), Some(SessionExpires { seconds: 1800, refresher_uac: None }));
        assert_eq!(se("90;refresher=uac"), Some(SessionExpires { seconds: 90, refresher_uac: Some(true) }));
        assert_eq!(se("600 ; Refresher = UAS"), Some(SessionExpires { seconds: 600, refresher_uac: Some(false) }));
        assert_eq!(se("soon"), None);
    }

    #[test]
    fn caller_side_follows_the_answer() {
        assert_eq!(from_answer(None), None);
        let t = from_answer(se("120;refresher=uac")).unwrap();
        assert_eq!((t.refresher, t.refresh_after()), (Refresher::Us, Duration::from_secs(60)));
        assert_eq!(t.header_value(Role::Uac), "120;refresher=uac");
        let t = from_answer(se("120;refresher=uas")).unwrap();
        assert_eq!((t.refresher, t.expire_after()), (Refresher::Peer, Duration::from_secs(88)));
    }

    #[test]
    fn answering_side_takes_the_callers_choice_or_refreshes_itself() {
        let t = for_answer(se("1800;refresher=uac"), true, 1800).unwrap();
        assert_eq!(t.refresher, Refresher::Peer);
        assert_eq!(t.header_value(Role::Uas), "1800;refresher=uac");
        let t = for_answer(se("120"), true, 1800).unwrap();
        assert_eq!((t.interval.as_secs(), t.refresher), (120, Refresher::Us), "the caller's interval, our refreshes");
        assert_eq!(t.header_value(Role::Uas), "120;refresher=uas");
        assert_eq!(for_answer(None, true, 1800).unwrap().interval.as_secs(), 1800);
        assert_eq!(for_answer(None, false, 1800), None, "no timer for a caller that knows none");
        assert_eq!(for_answer(None, true, 0), None, "off by config");
        // A short interval expires a third early, a long one 32 s early.
        let short = SessionTimer { interval: Duration::from_secs(90), refresher: Refresher::Peer };
        assert_eq!(short.expire_after(), Duration::from_secs(60));
        assert_eq!(for_answer(None, true, 1800).unwrap().expire_after(), Duration::from_secs(1768));
    }
}
