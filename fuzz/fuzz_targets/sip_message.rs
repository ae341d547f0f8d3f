//! A SIP datagram as it arrives on the SIP port: the gate (rate, scanner
//! User-Agent), our validation front (`softphoned::sip::validate`: the
//! verdict, the rewrite into the form rsipstack reads, the From/To kept for
//! the answers and put back into them) → rsipstack's parser → the header
//! accessors its transaction layer and our adapter use on every message
//! (ours: `sip::headers`, `sip::replaces`, `sip::refer`) → serialisation
//! back to bytes. Stream framing is fuzzed on the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rsipstack::sip::headers::untyped::ToTypedHeader;
use rsipstack::sip::prelude::*;
use rsipstack::sip::SipMessage;
use softphoned::call::session_timer::SessionExpires;
use softphoned::sip::gate::{Gate, Limits};
use softphoned::sip::replaces::{self, Replaces};
use softphoned::sip::validate::{self, Carrier, Verdict};
use softphoned::sip::{headers, refer};

/// What the front hands rsipstack, as it does on the UDP port: only what
/// passes, trimmed to its Content-Length and normalized; and what it does
/// to our answers (made-up tags out, the request's From/To back in).
fn front(datagram: &[u8]) -> Option<Vec<u8>> {
    let source = "192.0.2.7:5060".parse().expect("an address");
    let _ = Gate::new(Limits::default(), Vec::new()).on_message(source, None, datagram, std::time::Instant::now());
    let _ = validate::frame_stream(datagram, 64 * 1024);
    let _ = validate::strip_made_up_tags(datagram);
    if let Some((_, _, from, to)) = validate::from_to_of(datagram) {
        let _ = validate::restore_from_to(datagram, &from, &to);
    }
    let _ = validate::response_key(datagram);
    match validate::check(datagram, source, Carrier::Datagram, &validate::POLICY) {
        Verdict::Pass { len } => {
            let passed = &datagram[..len];
            Some(validate::normalize(passed).unwrap_or_else(|| passed.to_vec()))
        }
        Verdict::Reply { .. } | Verdict::Drop(_) => None,
    }
}

fuzz_target!(|datagram: &[u8]| {
    let Some(datagram) = front(datagram) else { return };
    let Ok(message) = SipMessage::try_from(datagram.as_slice()) else { return };
    let _ = message.start_line();
    // What a transaction and a dialog read from every message.
    let _ = message.transaction_id();
    let _ = message.top_via_header().map(|via| via.typed().map(|v| (v.received(), v.branch().cloned())));
    let _ = message.has_multiple_vias();
    let _ = message.call_id_header().map(|h| h.value().to_string());
    let _ = message.cseq_header().map(|h| h.typed());
    let _ = message.from_header().map(|h| (h.tag(), h.uri()));
    let _ = message.to_header().map(|h| (h.tag(), h.uri()));
    let _ = message.typed_contact_headers();
    let _ = message.typed_record_route_headers();
    let _ = message.typed_route_headers();
    let _ = message.rseq_value();
    let _ = message.rack_value();
    let _ = message.history_info_entries();
    let _ = message.diversion_entries();
    // What our adapter reads of an INVITE or a re-INVITE.
    if let Some(value) = message.header_value("Session-Expires") {
        let _ = SessionExpires::parse(&value);
    }
    let _ = message.header_contains_token("Supported", "timer");
    match &message {
        SipMessage::Request(request) => {
            // What our adapter reads of an incoming INVITE, re-INVITE, REFER or NOTIFY.
            let _ = headers::session_expires(&request.headers);
            let _ = headers::supports(&request.headers, "replaces");
            let _ = headers::answer_after(&request.headers);
            for value in headers::values(&request.headers, "Replaces", None) {
                let _ = Replaces::parse(&value).map(|r| r.refer_to("sip:a@192.0.2.1"));
            }
            for value in headers::values(&request.headers, "Refer-To", Some("r")) {
                if let Some(address) = replaces::address_of(&value) {
                    let _ = replaces::split_uri_headers(&address);
                }
            }
            let _ = refer::sipfrag_status(&request.body);
            let _ = request.destination();
            let _ = SipMessage::try_from(request.to_bytes());
        }
        SipMessage::Response(response) => {
            let _ = response.reason_phrase();
            let _ = response.via_received();
            let _ = SipMessage::try_from(response.to_bytes());
        }
    }
});
