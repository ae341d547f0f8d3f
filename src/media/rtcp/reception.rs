//! What we know about the one source we receive from: RFC 3550 Appendix A.1
//! (extended sequence number, without the probation period), A.3 (expected,
//! lost and the per-interval fraction) and A.8 (interarrival jitter).

/// A jump this far ahead is taken as loss rather than a restarted source.
const MAX_DROPOUT: u16 = 3000;
/// A packet this far behind the highest seen is late or duplicated, not a jump.
const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u32 = 1 << 16;

#[derive(Debug, Clone)]
pub(super) struct Reception {
    pub ssrc: u32,
    max_seq: u16,
    /// Count of sequence wraps, shifted left by 16 as in A.1.
    cycles: u32,
    base_seq: u32,
    /// The sequence number after a large jump; a packet carrying it confirms
    /// the jump and restarts the count (A.1's `bad_seq`).
    bad_seq: u32,
    received: u32,
    /// Loss counted before a confirmed restart of the sequence, which A.1
    /// forgets but the call's statistics should not.
    lost_before_restart: i64,
    expected_prior: u32,
    received_prior: u32,
    /// Relative transit time of the previous packet, in timestamp units.
    transit: Option<u32>,
    jitter: f64,
}

impl Reception {
    /// Start tracking `ssrc` with its first packet, which counts as received.
    pub fn new(ssrc: u32, sequence: u16) -> Self {
        let mut reception = Reception {
            ssrc,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: SEQ_MOD + 1,
            received: 0,
            lost_before_restart: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter: 0.0,
        };
        reception.restart(sequence);
        reception
    }

    fn restart(&mut self, sequence: u16) {
        self.base_seq = u32::from(sequence);
        self.max_seq = sequence;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 1;
        self.expected_prior = 0;
        self.received_prior = 0;
        // A restarted source has a new timestamp base: its old transit means nothing.
        self.transit = None;
    }

    /// Account for a packet after the first. Returns false when the packet is
    /// a large jump not yet confirmed by its successor; such a packet is
    /// neither counted nor used for jitter.
    pub fn update_sequence(&mut self, sequence: u16) -> bool {
        let delta = sequence.wrapping_sub(self.max_seq);
        if delta < MAX_DROPOUT {
            if sequence < self.max_seq {
                self.cycles = self.cycles.wrapping_add(SEQ_MOD);
            }
            self.max_seq = sequence;
        } else if u32::from(delta) <= SEQ_MOD - u32::from(MAX_MISORDER) {
            if u32::from(sequence) == self.bad_seq {
                // Two packets in sequence after the jump: the sender restarted.
                self.lost_before_restart += self.cumulative_lost();
                self.restart(sequence);
                return true;
            }
            self.bad_seq = (u32::from(sequence) + 1) & (SEQ_MOD - 1);
            return false;
        }
        // Otherwise a duplicate or reordered packet: counted, max unchanged.
        self.received = self.received.wrapping_add(1);
        true
    }

    /// A.8: `arrival` is the arrival time expressed in the stream's clock.
    pub fn update_jitter(&mut self, arrival: u32, rtp_timestamp: u32) {
        let transit = arrival.wrapping_sub(rtp_timestamp);
        if let Some(previous) = self.transit {
            let d = f64::from((transit.wrapping_sub(previous) as i32).unsigned_abs());
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    fn expected(&self) -> u32 {
        self.extended_max().wrapping_sub(self.base_seq).wrapping_add(1)
    }

    /// Cumulative loss: negative when duplicates outnumber losses (RFC 3550 §6.4.1).
    pub fn cumulative_lost(&self) -> i64 {
        i64::from(self.expected()) - i64::from(self.received)
    }

    /// Loss over the whole life of this SSRC, across sequence restarts.
    pub fn lifetime_lost(&self) -> i64 {
        self.lost_before_restart + self.cumulative_lost()
    }

    pub fn received_since_report(&self) -> bool {
        self.received != self.received_prior
    }

    /// A.3: close the reporting interval and return its loss fraction in 1/256.
    pub fn close_interval(&mut self) -> u8 {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        }
    }

    /// The jitter estimate in timestamp units (a report block carries it truncated).
    pub fn jitter(&self) -> f64 {
        self.jitter
    }
}
