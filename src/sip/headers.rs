//! The SIP headers the call logic cares about (session timers, auto-answer
//! hints, option tags): read from and written into rsipstack's header
//! lists by pure functions.

use std::time::Duration;

use rsipstack::sip::{Header, Headers};

use crate::call::session_timer::{Role, SessionExpires, SessionTimer};

/// Every value of the header `name` (long or compact form), in order.
pub fn values(headers: &Headers, name: &str, compact: Option<&str>) -> Vec<String> {
    headers
        .iter()
        .filter(|h| {
            let n = h.name();
            n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c))
        })
        .map(value_of)
        .collect()
}

fn value_of(header: &Header) -> String {
    let text = header.to_string();
    text.split_once(':').map(|(_, v)| v.trim().to_string()).unwrap_or_default()
}

pub fn session_expires(headers: &Headers) -> Option<SessionExpires> {
    values(headers, "Session-Expires", Some("x")).first().and_then(|v| SessionExpires::parse(v))
}

/// Whether a Supported or Require header lists `option` (e.g. `timer`).
pub fn supports(headers: &Headers, option: &str) -> bool {
    let lists = [values(headers, "Supported", Some("k")), values(headers, "Require", None)];
    lists.iter().flatten().flat_map(|v| v.split(',')).any(|o| o.trim().eq_ignore_ascii_case(option))
}

/// Session-Expires (and Require: timer) for a message we send as `role`.
pub fn timer_headers(timer: Option<SessionTimer>, role: Role) -> Vec<Header> {
    let Some(timer) = timer else { return Vec::new() };
    let mut headers = vec![Header::Other("Session-Expires".into(), timer.header_value(role))];
    if role == Role::Uas {
        headers.push(Header::Other("Require".into(), "timer".into()));
    } else {
        headers.push(Header::Other("Supported".into(), "timer".into()));
    }
    headers
}

/// The auto-answer hint of an inbound INVITE: `answer-after=N` on Call-Info
/// (RFC 7462 style, seconds), or an Alert-Info carrying `info=alert-autoanswer`
/// (with `delay=N` if any, as desk phones read it).
pub fn answer_after(headers: &Headers) -> Option<Duration> {
    let call_info = values(headers, "Call-Info", None);
    let alert_info = values(headers, "Alert-Info", None);
    for value in call_info.iter().chain(&alert_info) {
        if let Some(seconds) = param(value, "answer-after").and_then(|v| v.parse::<u64>().ok()) {
            return Some(Duration::from_secs(seconds));
        }
    }
    alert_info
        .iter()
        .find(|v| param(v, "info").is_some_and(|i| i.eq_ignore_ascii_case("alert-autoanswer")))
        .map(|v| Duration::from_secs(param(v, "delay").and_then(|d| d.parse().ok()).unwrap_or(0)))
}

/// A `;name=value` parameter of a header value, outside its `<uri>`.
fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = value.rsplit_once('>').map(|(_, p)| p).unwrap_or(value);
    params
        .split(';')
        .filter_map(|p| p.split_once('='))
        .find_map(|(n, v)| n.trim().eq_ignore_ascii_case(name).then(|| v.trim().trim_matches('"')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> Headers {
        let mut headers = Headers::default();
        for (name, value) in list {
            headers.push(Header::Other(name.to_string(), value.to_string()));
        }
        headers
    }

    #[test]
    fn answer_after_hints_in_their_usual_forms() {
        let h = headers(&[("Call-Info", "<sip:cc.example.com>;answer-after=9")]);
        assert_eq!(answer_after(&h), Some(Duration::from_secs(9)));
        let h = headers(&[("Alert-Info", "<http://127.0.0.1>;info=alert-autoanswer;delay=3")]);
        assert_eq!(answer_after(&h), Some(Duration::from_secs(3)));
        let h = headers(&[("Alert-Info", "<http://127.0.0.1>;info=alert-autoanswer")]);
        assert_eq!(answer_after(&h), Some(Duration::ZERO));
        let h = headers(&[("Call-Info", "<http://x/a;answer-after=5>;purpose=icon")]);
        assert_eq!(answer_after(&h), None, "a parameter inside the URI is not ours");
        assert_eq!(answer_after(&headers(&[])), None);
    }

    #[test]
    fn session_timer_headers_in_long_and_compact_form() {
        let h = headers(&[("k", "100rel, timer"), ("x", "600;refresher=uas")]);
        assert!(supports(&h, "timer"));
        assert_eq!(session_expires(&h).map(|s| (s.seconds, s.refresher_uac)), Some((600, Some(false))));
        assert!(!supports(&headers(&[("Supported", "replaces")]), "timer"));
    }
}
