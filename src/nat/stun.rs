//! One STUN Binding transaction (RFC 8489 §6.2.1), sans IO: the request's
//! bytes, when to send them (again), the mapped address in the answer, or
//! that no answer came in time. Time is an argument; the transaction id is
//! given by the caller (it draws it at random).
//!
//! Retransmission: the request goes out at 0, then RTO, 3 RTO, 7 RTO, ...
//! (the interval doubles), at most [`MAX_SENDS`] times, and the transaction
//! fails at its deadline: RFC 8489's 39.5 s for a discovery, or less where
//! the caller cannot wait that long (RFC 5626 §4.4.1 gives a keep-alive
//! 10 s).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc_stun::message::{Getter, Message, Setter, TransactionId, BINDING_REQUEST, CLASS_SUCCESS_RESPONSE};
use rtc_stun::xoraddr::XorMappedAddress;

/// RFC 8489 §6.2.1: Rc.
pub const MAX_SENDS: u32 = 7;
/// RFC 8489 §6.2.1: the initial RTO.
pub const INITIAL_RTO: Duration = Duration::from_millis(500);
/// RFC 8489 §6.2.1: after the last send, Rm × RTO (16 × 500 ms), so 39.5 s in all.
pub const DISCOVERY_DEADLINE: Duration = Duration::from_millis(39_500);

/// Whether bytes received on a shared socket are STUN rather than SIP or
/// RTP: RFC 8489 §5 (the top two bits zero, the magic cookie, a length
/// that is a multiple of 4 and matches).
pub fn is_stun(bytes: &[u8]) -> bool {
    bytes.len() >= 20
        && bytes[0] & 0xC0 == 0
        && bytes[4..8] == 0x2112_A442u32.to_be_bytes()
        && u16::from_be_bytes([bytes[2], bytes[3]]) as usize == bytes.len() - 20
        && bytes.len() % 4 == 0
}

/// What became of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server saw us at this address (XOR-MAPPED-ADDRESS).
    Mapped(SocketAddr),
    /// An error response, or a success without a mapped address.
    Refused(String),
    /// No answer by the deadline.
    TimedOut,
}

pub struct Binding {
    id: [u8; 12],
    request: Vec<u8>,
    sends: u32,
    next_send: Instant,
    rto: Duration,
    deadline: Instant,
    outcome: Option<Outcome>,
}

impl Binding {
    /// A transaction starting at `now` that gives up `budget` later.
    pub fn new(id: [u8; 12], now: Instant, budget: Duration) -> Binding {
        let mut message = Message::new();
        let setters: [Box<dyn Setter>; 2] = [Box::new(BINDING_REQUEST), Box::new(TransactionId(id))];
        message.build(&setters).expect("a Binding request with an id always encodes");
        Binding {
            id,
            request: message.raw,
            sends: 0,
            next_send: now,
            rto: INITIAL_RTO,
            deadline: now + budget,
            outcome: None,
        }
    }

    /// The request to send now, if one is due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<&[u8]> {
        if self.outcome.is_some() || self.sends >= MAX_SENDS || now < self.next_send || now >= self.deadline {
            return None;
        }
        self.sends += 1;
        self.next_send = now + self.rto;
        self.rto *= 2;
        Some(&self.request)
    }

    /// When to call [`poll`](Self::poll) / [`poll_transmit`](Self::poll_transmit) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            return None;
        }
        Some(if self.sends < MAX_SENDS { self.next_send.min(self.deadline) } else { self.deadline })
    }

    /// The outcome, once there is one (past the deadline: timed out).
    pub fn poll(&mut self, now: Instant) -> Option<&Outcome> {
        if self.outcome.is_none() && now >= self.deadline {
            self.outcome = Some(Outcome::TimedOut);
        }
        self.outcome.as_ref()
    }

    /// Feed a STUN message received from the server. False when it is not
    /// an answer to this transaction (another id, or not STUN at all).
    pub fn handle_response(&mut self, bytes: &[u8]) -> bool {
        let mut message = Message::new();
        if message.unmarshal_binary(bytes).is_err() || message.transaction_id.0 != self.id {
            return false;
        }
        if message.typ.method != BINDING_REQUEST.method || self.outcome.is_some() {
            return message.typ.method == BINDING_REQUEST.method;
        }
        self.outcome = Some(if message.typ.class == CLASS_SUCCESS_RESPONSE {
            let mut mapped = XorMappedAddress::default();
            match mapped.get_from(&message) {
                Ok(()) => Outcome::Mapped(SocketAddr::new(mapped.ip, mapped.port)),
                Err(e) => Outcome::Refused(format!("answer without XOR-MAPPED-ADDRESS: {e}")),
            }
        } else {
            Outcome::Refused("the server answered with an error".into())
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc_stun::message::BINDING_SUCCESS;

    fn answer(id: [u8; 12], mapped: SocketAddr) -> Vec<u8> {
        let mut message = Message::new();
        let xor = XorMappedAddress { ip: mapped.ip(), port: mapped.port() };
        let setters: [Box<dyn Setter>; 3] = [Box::new(BINDING_SUCCESS), Box::new(TransactionId(id)), Box::new(xor)];
        message.build(&setters).unwrap();
        message.raw
    }

    #[test]
    fn the_request_is_a_binding_request_with_our_id() {
        let t0 = Instant::now();
        let mut binding = Binding::new([7; 12], t0, DISCOVERY_DEADLINE);
        let request = binding.poll_transmit(t0).unwrap().to_vec();
        assert!(is_stun(&request));
        assert_eq!(&request[0..2], &[0x00, 0x01], "Binding request");
        assert_eq!(&request[8..20], &[7; 12]);
        assert!(binding.poll_transmit(t0).is_none(), "not twice at once");
    }

    #[test]
    fn retransmits_at_rfc_8489_intervals_and_times_out_at_the_deadline() {
        let t0 = Instant::now();
        let mut binding = Binding::new([1; 12], t0, DISCOVERY_DEADLINE);
        let mut sent_at = Vec::new();
        let mut now = t0;
        while binding.poll(now).is_none() {
            if binding.poll_transmit(now).is_some() {
                sent_at.push((now - t0).as_millis());
            }
            now = binding.poll_timeout().unwrap();
        }
        // RFC 8489 §6.2.1's example: 0, 500, 1500, 3500, 7500, 15500, 31500; fail at 39500.
        assert_eq!(sent_at, [0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!((now - t0).as_millis(), 39_500);
        assert_eq!(binding.poll(now), Some(&Outcome::TimedOut));
    }

    #[test]
    fn a_keep_alive_gives_up_at_its_own_deadline() {
        let t0 = Instant::now();
        let mut binding = Binding::new([1; 12], t0, Duration::from_secs(10));
        let mut sends = 0;
        let mut now = t0;
        while binding.poll(now).is_none() {
            sends += binding.poll_transmit(now).is_some() as u32;
            now = binding.poll_timeout().unwrap();
        }
        assert_eq!((sends, (now - t0).as_secs()), (5, 10));
    }

    #[test]
    fn the_answer_gives_the_mapped_address_and_others_are_ignored() {
        let t0 = Instant::now();
        let mut binding = Binding::new([3; 12], t0, DISCOVERY_DEADLINE);
        binding.poll_transmit(t0);
        let mapped: SocketAddr = "203.0.113.7:40123".parse().unwrap();
        assert!(!binding.handle_response(&answer([4; 12], mapped)), "another transaction");
        assert!(!binding.handle_response(b"SIP/2.0 200 OK\r\n\r\n"));
        assert_eq!(binding.poll(t0), None);
        assert!(binding.handle_response(&answer([3; 12], mapped)));
        assert_eq!(binding.poll(t0), Some(&Outcome::Mapped(mapped)));
        assert_eq!(binding.poll_timeout(), None);
        let v6: SocketAddr = "[2001:db8::7]:5060".parse().unwrap();
        let mut binding = Binding::new([5; 12], t0, DISCOVERY_DEADLINE);
        assert!(binding.handle_response(&answer([5; 12], v6)));
        assert_eq!(binding.poll(t0), Some(&Outcome::Mapped(v6)));
    }

    #[test]
    fn stun_is_told_from_sip_and_rtp() {
        let request = Binding::new([9; 12], Instant::now(), DISCOVERY_DEADLINE).request.clone();
        assert!(is_stun(&request));
        assert!(!is_stun(b"OPTIONS sip:a@192.0.2.1 SIP/2.0\r\n\r\n"));
        let mut rtp = request.clone();
        rtp[0] = 0x80;
        assert!(!is_stun(&rtp));
        assert!(!is_stun(&request[..19]));
    }
}
