//! A SIP datagram as it arrives on the SIP port: (validation, to come) →
//! rsipstack's parser → the header accessors its transaction layer and our
//! adapter use on every message → serialisation back to bytes.
//!
//! The validation layer of issue 15 goes in [`validate`]: once it exists,
//! call it there, so this target fuzzes the whole path a datagram takes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rsipstack::sip::headers::untyped::ToTypedHeader;
use rsipstack::sip::prelude::*;
use rsipstack::sip::SipMessage;
use softphoned::call::session_timer::SessionExpires;

/// The validation layer in front of rsipstack. For now everything passes.
fn validate(_datagram: &[u8]) -> bool {
    true
}

fuzz_target!(|datagram: &[u8]| {
    if !validate(datagram) {
        return;
    }
    let Ok(message) = SipMessage::try_from(datagram) else { return };
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
