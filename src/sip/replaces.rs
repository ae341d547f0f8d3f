//! Dialog replacement (RFC 3891) as text: the Refer-To of an attended
//! transfer, which names the colleague's URI with the consult dialog in a
//! `Replaces` URI header; the Replaces header of an INVITE, matched against
//! our dialogs; and the headers a SIP URI carries (`?name=value&...`),
//! which become headers of the request sent to it (RFC 3261 §19.1.5).
//!
//! The tags are the ones real PBXs compare: `to-tag` is the tag of the UA
//! that receives the INVITE with Replaces (the colleague, our remote side
//! of the consult), `from-tag` the other one (ours). Getting these two
//! swapped is the classic bug: the colleague then answers 481.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The headers a URI may carry into our INVITE; any other is dropped, so
/// a Refer-To cannot make us send arbitrary headers.
const URI_HEADERS: [&str; 2] = ["Replaces", "Referred-By"];

/// Escape everything but RFC 3261's unreserved marks in a URI header value.
const HEADER_VALUE: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'!').remove(b'~').remove(b'*').remove(b'\'');

/// One dialog as Replaces names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    /// The tag of the UA receiving the INVITE with Replaces.
    pub to_tag: String,
    pub from_tag: String,
    /// `early-only`: replace only a dialog that is not yet answered.
    pub early_only: bool,
}

impl Replaces {
    /// Our dialog (its Call-ID and our and the peer's tags) as the peer
    /// must receive it in a Replaces.
    pub fn for_peer_of(call_id: &str, local_tag: &str, remote_tag: &str) -> Replaces {
        Replaces { call_id: call_id.into(), to_tag: remote_tag.into(), from_tag: local_tag.into(), early_only: false }
    }

    /// Read a Replaces header value: `call-id;to-tag=a;from-tag=b[;early-only]`.
    pub fn parse(value: &str) -> Option<Replaces> {
        let mut parts = value.split(';').map(str::trim);
        let call_id = parts.next().filter(|c| !c.is_empty())?.to_string();
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        for part in parts {
            match part.split_once('=').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim())) {
                Some((key, tag)) if key == "to-tag" => to_tag = Some(tag.to_string()),
                Some((key, tag)) if key == "from-tag" => from_tag = Some(tag.to_string()),
                None if part.eq_ignore_ascii_case("early-only") => early_only = true,
                _ => {}
            }
        }
        Some(Replaces { call_id, to_tag: to_tag?, from_tag: from_tag?, early_only })
    }

    /// Does this name our dialog with these tags? We receive the INVITE,
    /// so the to-tag must be ours.
    pub fn matches(&self, call_id: &str, local_tag: &str, remote_tag: &str) -> bool {
        self.call_id == call_id && self.to_tag == local_tag && self.from_tag == remote_tag
    }

    /// The header value.
    pub fn value(&self) -> String {
        let early = if self.early_only { ";early-only" } else { "" };
        format!("{};to-tag={};from-tag={}{early}", self.call_id, self.to_tag, self.from_tag)
    }

    /// A Refer-To value: `<uri?Replaces=escaped>`.
    pub fn refer_to(&self, uri: &str) -> String {
        format!("<{}>", with_uri_header(uri, "Replaces", &self.value()))
    }
}

/// `uri` carrying one more header (`?name=escaped`, or `&name=escaped`
/// after the headers it has).
pub fn with_uri_header(uri: &str, name: &str, value: &str) -> String {
    let joiner = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{joiner}{name}={}", utf8_percent_encode(value, HEADER_VALUE))
}

/// The address in a Refer-To (or any name-addr) value: what is inside the
/// angle brackets, or the bare URI up to its first header parameter.
pub fn address_of(value: &str) -> Option<String> {
    let value = value.trim();
    let uri = match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.split(';').next().unwrap_or_default(),
    };
    let uri = uri.trim();
    (!uri.is_empty()).then(|| uri.to_string())
}

/// Split a URI into the URI proper and the headers it carries (decoded),
/// keeping only those we allow into a request.
pub fn split_uri_headers(uri: &str) -> (&str, Vec<(&'static str, String)>) {
    let Some((base, query)) = uri.split_once('?') else { return (uri, Vec::new()) };
    let headers = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(name, value)| {
            let name = URI_HEADERS.into_iter().find(|allowed| allowed.eq_ignore_ascii_case(name))?;
            Some((name, percent_decode_str(value).decode_utf8_lossy().into_owned()))
        })
        .collect();
    (base, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refer_to_names_the_colleague_with_its_tag_as_to_tag_and_escapes_the_dialog() {
        // Our consult call: we are the UAC, so our tag is the From tag.
        let replaces = Replaces::for_peer_of("a84b4c76e66710@pc33.example.com", "ours-1928", "colleague-314");
        assert_eq!(
            replaces.refer_to("sip:colleague@127.0.0.1:5070"),
            "<sip:colleague@127.0.0.1:5070?Replaces=a84b4c76e66710%40pc33.example.com%3Bto-tag%3Dcolleague-314%3Bfrom-tag%3Dours-1928>"
        );
        assert_eq!(
            replaces.refer_to("sip:c@h;transport=tcp?X=1"),
            "<sip:c@h;transport=tcp?X=1&Replaces=a84b4c76e66710%40pc33.example.com%3Bto-tag%3Dcolleague-314%3Bfrom-tag%3Dours-1928>"
        );
    }

    #[test]
    fn the_refer_to_survives_the_trip_into_the_transferees_invite() {
        let sent = Replaces::for_peer_of("abc@host", "ours", "theirs");
        let refer_to = sent.refer_to("sip:colleague@127.0.0.1:5070");
        let target = address_of(&format!("{refer_to};method=INVITE")).unwrap();
        let (uri, headers) = split_uri_headers(&target);
        assert_eq!(uri, "sip:colleague@127.0.0.1:5070");
        assert_eq!(headers, vec![("Replaces", "abc@host;to-tag=theirs;from-tag=ours".to_string())]);
        // The colleague, receiving it, finds its own dialog: its tag is its local one.
        let read = Replaces::parse(&headers[0].1).unwrap();
        assert!(read.matches("abc@host", "theirs", "ours"));
        assert!(!read.matches("abc@host", "ours", "theirs"), "swapped tags must not match");
    }

    #[test]
    fn replaces_headers_are_read_whatever_the_order_and_bad_ones_are_refused() {
        let read = Replaces::parse("x@y; from-tag=f ;TO-TAG=t;early-only").unwrap();
        assert_eq!((read.to_tag.as_str(), read.from_tag.as_str(), read.early_only), ("t", "f", true));
        assert_eq!(read.value(), "x@y;to-tag=t;from-tag=f;early-only");
        assert_eq!(Replaces::parse("x@y;to-tag=t"), None);
        assert_eq!(Replaces::parse(";to-tag=t;from-tag=f"), None);
    }

    #[test]
    fn only_allowed_uri_headers_reach_a_request() {
        let (uri, headers) =
            split_uri_headers("sip:a@b?Subject=x&Replaces=1%3Bto-tag%3D2%3Bfrom-tag%3D3&referred-by=%3Csip%3Am%40n%3E");
        assert_eq!(uri, "sip:a@b");
        assert_eq!(
            headers,
            vec![("Replaces", "1;to-tag=2;from-tag=3".to_string()), ("Referred-By", "<sip:m@n>".to_string())]
        );
        assert_eq!(split_uri_headers("sip:a@b"), ("sip:a@b", vec![]));
        assert_eq!(address_of("sip:a@b;x=y"), Some("sip:a@b".into()));
        assert_eq!(address_of("\"Bob\" <sip:bob@h>;p=1"), Some("sip:bob@h".into()));
        assert_eq!(address_of("  "), None);
    }
}
