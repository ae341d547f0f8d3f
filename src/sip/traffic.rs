//! What SIP went in and out, counted for the metrics: every request by
//! method and every response by its request's method and status class,
//! as rsipstack's message inspector sees them — all transports, after
//! [`validate`](super::validate) let them through on the way in, just
//! before the wire on the way out. Like the wire, it counts each
//! retransmission (rsipstack hands those to the inspector too), so a
//! lossy path shows as more messages per call. What the gate and the
//! validation refused never reaches rsipstack: the [`Gate`](super::gate::Gate)
//! counts that.
//!
//! The inspector slot is rsipstack's only one, so [`Traffic`] also carries
//! [`AlgorithmNames`]'s rewriting, which must see the same messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rsipstack::sip::{Header, SipMessage};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transport::SipAddr;

use super::algorithm_names::AlgorithmNames;

/// The methods counted by name; any other is counted as `other`, so a
/// peer inventing methods cannot grow the label set.
pub const METHODS: [&str; 15] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "INFO",
    "REFER",
    "NOTIFY",
    "SUBSCRIBE",
    "MESSAGE",
    "UPDATE",
    "PRACK",
    "PUBLISH",
    "other",
];

/// Status classes 1xx to 6xx.
const CLASSES: usize = 6;

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    In,
    Out,
}

impl Flow {
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::In => "in",
            Flow::Out => "out",
        }
    }
}

/// The counts, shared by the inspector (writing) and the scrape (reading).
#[derive(Debug)]
pub struct Tally {
    /// [flow][method]
    requests: [[AtomicU64; METHODS.len()]; 2],
    /// [flow][method][class]
    responses: [[[AtomicU64; CLASSES]; METHODS.len()]; 2],
}

/// The counts at one moment, without the zeros.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SipCounts {
    /// (flow, method, count)
    pub requests: Vec<(Flow, &'static str, u64)>,
    /// (flow, method, class: `1xx`..`6xx`, count)
    pub responses: Vec<(Flow, &'static str, &'static str, u64)>,
    /// What never reached rsipstack, by why (see [`Refusal`](super::gate::Refusal)).
    pub refused: Vec<(&'static str, u64)>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            requests: [const { [const { AtomicU64::new(0) }; METHODS.len()] }; 2],
            responses: [const { [const { [const { AtomicU64::new(0) }; CLASSES] }; METHODS.len()] }; 2],
        }
    }
}

impl Tally {
    /// Count one message.
    pub fn count(&self, flow: Flow, message: &SipMessage) {
        let flow_index = flow as usize;
        match message {
            SipMessage::Request(request) => {
                self.requests[flow_index][method_index(&request.method.to_string())].fetch_add(1, Ordering::Relaxed);
            }
            SipMessage::Response(response) => {
                let class = usize::from(u16::from(response.status_code.clone()) / 100);
                if !(1..=CLASSES).contains(&class) {
                    return;
                }
                let method = response.headers.iter().find_map(|h| match h {
                    Header::CSeq(cseq) => cseq.to_string().split_whitespace().last().map(method_index),
                    _ => None,
                });
                let method = method.unwrap_or(METHODS.len() - 1);
                self.responses[flow_index][method][class - 1].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The requests and responses so far (`refused` is left for the gate to fill).
    pub fn counts(&self) -> SipCounts {
        let mut counts = SipCounts::default();
        for flow in [Flow::In, Flow::Out] {
            for (m, method) in METHODS.iter().enumerate() {
                let requests = self.requests[flow as usize][m].load(Ordering::Relaxed);
                if requests > 0 {
                    counts.requests.push((flow, method, requests));
                }
                for (c, class) in ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"].into_iter().enumerate() {
                    let responses = self.responses[flow as usize][m][c].load(Ordering::Relaxed);
                    if responses > 0 {
                        counts.responses.push((flow, method, class, responses));
                    }
                }
            }
        }
        counts
    }
}

fn method_index(method: &str) -> usize {
    METHODS[..METHODS.len() - 1].iter().position(|m| m.eq_ignore_ascii_case(method)).unwrap_or(METHODS.len() - 1)
}

/// rsipstack's message inspector: counts, then fixes algorithm names.
pub struct Traffic {
    pub tally: Arc<Tally>,
}

impl MessageInspector for Traffic {
    fn before_send(&self, msg: SipMessage, dest: Option<&SipAddr>) -> SipMessage {
        let msg = AlgorithmNames.before_send(msg, dest);
        self.tally.count(Flow::Out, &msg);
        msg
    }

    fn after_received(&self, msg: SipMessage, from: Option<&SipAddr>) -> SipMessage {
        self.tally.count(Flow::In, &msg);
        AlgorithmNames.after_received(msg, from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SipMessage {
        SipMessage::try_from(text.replace('\n', "\r\n").as_str()).unwrap()
    }

    #[test]
    fn requests_by_method_and_responses_by_method_and_class() {
        let tally = Tally::default();
        let invite = "INVITE sip:a@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\nFrom: <sip:b@127.0.0.1>;tag=1\nTo: <sip:a@127.0.0.1>\nCall-ID: x\nCSeq: 1 INVITE\nMax-Forwards: 70\nContent-Length: 0\n\n";
        let busy = "SIP/2.0 486 Busy Here\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\nFrom: <sip:b@127.0.0.1>;tag=1\nTo: <sip:a@127.0.0.1>;tag=2\nCall-ID: x\nCSeq: 1 INVITE\nContent-Length: 0\n\n";
        tally.count(Flow::In, &parse(invite));
        tally.count(Flow::In, &parse(invite));
        tally.count(Flow::Out, &parse(busy));
        let counts = tally.counts();
        assert_eq!(counts.requests, vec![(Flow::In, "INVITE", 2)]);
        assert_eq!(counts.responses, vec![(Flow::Out, "INVITE", "4xx", 1)]);
        // rsipstack parses no method it does not know; should it one day, the label set stays closed.
        assert_eq!(METHODS[method_index("FROB")], "other");
        assert_eq!(METHODS[method_index("invite")], "INVITE");
    }
}
