//! A sine generator standing in for a microphone, for demos and tests.

use super::AudioSource;
use crate::media::{FRAME_SAMPLES, PCM_RATE};

/// Half of full scale: loud enough to measure, far from clipping in G.711.
const AMPLITUDE: f64 = 16384.0;

pub struct ToneSource {
    phase: f64,
    step: f64,
}

impl ToneSource {
    pub fn new(hz: f64) -> Self {
        ToneSource { phase: 0.0, step: std::f64::consts::TAU * hz / PCM_RATE as f64 }
    }
}

impl AudioSource for ToneSource {
    fn read_frame(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        for s in frame.iter_mut() {
            *s = (self.phase.sin() * AMPLITUDE) as i16;
            // Keep the phase small so precision holds over a long call.
            self.phase = (self.phase + self.step) % std::f64::consts::TAU;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_continues_across_frames() {
        let mut tone = ToneSource::new(2000.0);
        let mut a = [0i16; FRAME_SAMPLES];
        let mut b = [0i16; FRAME_SAMPLES];
        tone.read_frame(&mut a);
        tone.read_frame(&mut b);
        // 2 kHz at 16 kHz repeats every 8 samples, so frame 2 equals frame 1.
        assert_eq!(a, b);
        assert_eq!(a[2], 16384);
        assert_eq!(a[0], 0);
    }
}
