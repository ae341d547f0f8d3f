//! Listening-and-talking quality estimate of a call by the E-model (ITU-T
//! G.107) in the simplified form common VoIP monitors use (Cole & Rosenbluth,
//! "Voice over IP performance monitoring", 2001): the default transmission
//! rating R0 − Is = 93.2, minus a delay impairment Id and an effective
//! equipment impairment Ie,eff for codec and packet loss; echo, noise and
//! the advantage factor A are left at their defaults. The result is on the
//! narrowband scale (R ≤ 100, MOS ≤ 4.5), also for wideband codecs.
//!
//! Pure arithmetic: the caller passes the measurements (RTCP stats, the
//! jitter buffer's delay) and the codec's constants.

/// R of a connection with no delay, loss or codec impairment (G.107 defaults).
const R_DEFAULT: f64 = 93.2;
/// One-way delay (ms) beyond which conversation suffers more steeply.
const DELAY_KNEE_MS: f64 = 177.3;

/// A codec's E-model constants for 20 ms packets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EModelCodec {
    /// Equipment impairment factor Ie: the codec's own distortion.
    pub ie: f64,
    /// Packet-loss robustness factor Bpl: higher when concealment hides loss better.
    pub bpl: f64,
    /// Packetization plus algorithmic (look-ahead) delay, in ms.
    pub frame_delay_ms: f64,
}

impl EModelCodec {
    /// G.711 (PCMU/PCMA) with packet-loss concealment: Ie 0, Bpl 25.1
    /// (ITU-T G.113 Appendix I, G.711 with the G.711 Appendix I PLC).
    pub const G711_WITH_PLC: EModelCodec = EModelCodec { ie: 0.0, bpl: 25.1, frame_delay_ms: 20.0 };
    /// G.711 when lost packets play as silence: Bpl 4.3 (G.113 Appendix I,
    /// random loss, no PLC). Use this while playout pads gaps with silence.
    pub const G711_WITHOUT_PLC: EModelCodec = EModelCodec { ie: 0.0, bpl: 4.3, frame_delay_ms: 20.0 };
    /// G.722 mapped onto the narrowband scale. G.113 rates G.722 only on the
    /// wideband scale (G.107.1), where it beats G.711; the narrowband scale
    /// cannot express that, so it gets G.711-with-PLC's values (Ie 0, Bpl
    /// 25.1) — an assumption, not an ITU figure. No look-ahead to speak of.
    pub const G722: EModelCodec = EModelCodec { ie: 0.0, bpl: 25.1, frame_delay_ms: 20.0 };
    /// Opus at voice bitrates, mapped onto the narrowband scale. ITU-T
    /// publishes no Ie/Bpl for Opus; we assume no audible codec impairment
    /// on this scale (Ie 0) and G.711-with-PLC robustness (Bpl 25.1), which
    /// undersells Opus's in-band FEC. Delay: 20 ms frame + 6.5 ms look-ahead
    /// (RFC 6716 §2, 26.5 ms algorithmic delay at 20 ms frames).
    pub const OPUS: EModelCodec = EModelCodec { ie: 0.0, bpl: 25.1, frame_delay_ms: 26.5 };
}

/// Delay impairment Id for a one-way mouth-to-ear delay (Cole & Rosenbluth's
/// fit of G.107's Idd with echo controlled).
fn delay_impairment(one_way_delay_ms: f64) -> f64 {
    let d = one_way_delay_ms.max(0.0);
    0.024 * d + 0.11 * (d - DELAY_KNEE_MS).max(0.0)
}

/// Effective equipment impairment Ie,eff (G.107 §7.3): `loss_percent` is
/// Ppl in 0..100, `burst_ratio` BurstR (1 for random loss, > 1 for bursty).
fn effective_equipment_impairment(codec: EModelCodec, loss_percent: f64, burst_ratio: f64) -> f64 {
    let ppl = loss_percent.clamp(0.0, 100.0);
    let burst_ratio = burst_ratio.max(f64::EPSILON);
    codec.ie + (95.0 - codec.ie) * ppl / (ppl / burst_ratio + codec.bpl)
}

/// The transmission rating R; it may fall below 0 for hopeless connections.
pub fn r_factor(codec: EModelCodec, loss_percent: f64, burst_ratio: f64, one_way_delay_ms: f64) -> f64 {
    R_DEFAULT - delay_impairment(one_way_delay_ms) - effective_equipment_impairment(codec, loss_percent, burst_ratio)
}

/// Mean opinion score for R (G.107 Annex B), clamped to 1..4.5.
pub fn mos_from_r(r: f64) -> f64 {
    if r <= 0.0 {
        return 1.0;
    }
    if r >= 100.0 {
        return 4.5;
    }
    // The cubic dips just under 1 for R below about 6.5.
    (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).clamp(1.0, 4.5)
}

/// MOS of a call from what RTCP and the jitter buffer know.
///
/// One-way delay = network (half the RTT; 0 while no RTT is known) +
/// buffering + `codec.frame_delay_ms`. Buffering is `jitter_buffer_ms`, the
/// jitter buffer's current playout delay, but at least twice the measured
/// jitter: a buffer shallower than that discards late packets, a loss this
/// estimate does not otherwise see. Loss is taken as random (BurstR 1):
/// RTCP receiver reports carry no burst information.
pub fn mos(codec: EModelCodec, loss_percent: f64, jitter_ms: f64, rtt_ms: Option<f64>, jitter_buffer_ms: f64) -> f64 {
    let network = rtt_ms.unwrap_or(0.0) / 2.0;
    let buffering = jitter_buffer_ms.max(2.0 * jitter_ms);
    mos_from_r(r_factor(codec, loss_percent, 1.0, network + buffering + codec.frame_delay_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const G711: EModelCodec = EModelCodec::G711_WITH_PLC;

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    #[test]
    fn textbook_values() {
        assert!(close(mos_from_r(93.2), 4.41, 0.005), "{}", mos_from_r(93.2));
        assert_eq!(r_factor(G711, 0.0, 1.0, 0.0), 93.2);
        assert!(close(mos_from_r(r_factor(G711, 0.0, 1.0, 0.0)), 4.4, 0.02));
        // 5 % random loss, G.711 with PLC: Ie,eff = 95·5/(5 + 25.1) ≈ 15.8.
        let r = r_factor(G711, 5.0, 1.0, 0.0);
        assert!((77.0..=80.0).contains(&r), "{r}");
        assert!(close(r, 93.2 - 95.0 * 5.0 / 30.1, 1e-9));
        // 300 ms one way: Id = 0.024·300 + 0.11·(300 − 177.3) ≈ 20.7.
        assert!(close(r_factor(G711, 0.0, 1.0, 300.0), 93.2 - 7.2 - 0.11 * 122.7, 1e-9));
        // Below the knee only the gentle slope applies.
        assert!(close(r_factor(G711, 0.0, 1.0, 100.0), 93.2 - 2.4, 1e-9));
        // R 80 is the usual "satisfied" boundary, about MOS 4.0.
        assert!(close(mos_from_r(80.0), 4.02, 0.01), "{}", mos_from_r(80.0));
    }

    #[test]
    fn mos_is_clamped_to_its_scale() {
        assert_eq!(mos_from_r(-20.0), 1.0);
        assert_eq!(mos_from_r(3.0), 1.0, "the cubic would give 0.99");
        assert_eq!(mos_from_r(120.0), 4.5);
        assert!(mos_from_r(99.9) <= 4.5);
    }

    #[test]
    fn quality_falls_with_loss_delay_and_burstiness() {
        let mut previous = f64::INFINITY;
        for step in 0..=40 {
            let r = r_factor(G711, f64::from(step) * 0.5, 1.0, 50.0);
            assert!(r < previous, "loss {}: {r} !< {previous}", f64::from(step) * 0.5);
            previous = r;
        }
        let mut previous = f64::INFINITY;
        for delay in (0..=600).step_by(10) {
            let r = r_factor(G711, 1.0, 1.0, f64::from(delay));
            assert!(r < previous, "delay {delay}");
            previous = r;
        }
        assert!(r_factor(G711, 5.0, 2.0, 0.0) < r_factor(G711, 5.0, 1.0, 0.0));
        assert!(r_factor(EModelCodec::G711_WITHOUT_PLC, 2.0, 1.0, 0.0) < r_factor(G711, 2.0, 1.0, 0.0));
        // The knee makes each extra ms cost more beyond 177.3 ms.
        let before = r_factor(G711, 0.0, 1.0, 150.0) - r_factor(G711, 0.0, 1.0, 170.0);
        let after = r_factor(G711, 0.0, 1.0, 200.0) - r_factor(G711, 0.0, 1.0, 220.0);
        assert!(after > before * 5.0);
    }

    #[test]
    fn call_mos_adds_up_the_one_way_delay() {
        // 100 ms RTT, 40 ms of buffering, 20 ms frame: 110 ms one way.
        let expected = mos_from_r(r_factor(G711, 1.0, 1.0, 110.0));
        assert_eq!(mos(G711, 1.0, 5.0, Some(100.0), 40.0), expected);
        // A buffer shallower than twice the jitter counts as twice the jitter.
        assert_eq!(mos(G711, 1.0, 30.0, Some(100.0), 40.0), mos_from_r(r_factor(G711, 1.0, 1.0, 130.0)));
        // No RTT yet: only local delays.
        assert_eq!(mos(G711, 0.0, 0.0, None, 0.0), mos_from_r(r_factor(G711, 0.0, 1.0, 20.0)));
        assert!(mos(EModelCodec::OPUS, 0.0, 0.0, None, 0.0) < mos(G711, 0.0, 0.0, None, 0.0));
    }
}
