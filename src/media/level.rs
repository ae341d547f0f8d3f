//! The agent's own volume: a gain on the microphone (what customers hear)
//! and on the speaker (what the agent hears), and the levels a workspace's
//! meter shows. Pure arithmetic on 20 ms frames.

use serde::Serialize;

use super::codec::Frame;

/// Gains are 0.0 (silent) to 2.0 (+6 dB); 1.0 leaves the audio as it is.
pub const MAX_GAIN: f32 = 2.0;

/// Frames per level report: 240 ms, a meter's usual pace.
const FRAMES_PER_REPORT: u32 = 12;

/// The quietest level reported, in dBFS: digital silence reads this.
pub const FLOOR_DBFS: f32 = -96.0;

/// Scale `frame` by `gain`, clipping at full scale.
pub fn apply_gain(frame: &mut Frame, gain: f32) {
    if gain == 1.0 {
        return;
    }
    for sample in frame.iter_mut() {
        *sample = (f32::from(*sample) * gain).clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
    }
}

/// `audio.level`: the RMS of the last report's frames, in dBFS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Levels {
    /// The microphone after its gain: what the customer hears of the agent.
    pub input_dbfs: f32,
    /// The speaker after its gain: what the agent hears.
    pub output_dbfs: f32,
}

/// Sums of squares over a report's frames.
#[derive(Debug, Default)]
pub struct LevelMeter {
    input: f64,
    output: f64,
    frames: u32,
}

impl LevelMeter {
    /// Count one frame of each side; every 240 ms, the levels to report.
    pub fn add(&mut self, input: &Frame, output: &Frame) -> Option<Levels> {
        let energy = |frame: &Frame| frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>();
        self.input += energy(input);
        self.output += energy(output);
        self.frames += 1;
        if self.frames < FRAMES_PER_REPORT {
            return None;
        }
        let samples = f64::from(self.frames) * input.len() as f64;
        let dbfs = |sum: f64| {
            let rms = (sum / samples).sqrt() / f64::from(i16::MAX);
            if rms > 0.0 {
                (20.0 * rms.log10()).max(f64::from(FLOOR_DBFS)) as f32
            } else {
                FLOOR_DBFS
            }
        };
        let levels = Levels { input_dbfs: dbfs(self.input), output_dbfs: dbfs(self.output) };
        *self = LevelMeter::default();
        Some(levels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::FRAME_SAMPLES;

    fn square(amplitude: i16) -> Frame {
        std::array::from_fn(|i| if i % 2 == 0 { amplitude } else { -amplitude })
    }

    #[test]
    fn gain_scales_and_clips() {
        let mut frame = square(10_000);
        apply_gain(&mut frame, 0.5);
        assert!(frame.iter().all(|s| s.abs() == 5_000));
        let mut loud = square(20_000);
        apply_gain(&mut loud, MAX_GAIN);
        assert!(loud.iter().all(|&s| s == i16::MAX || s == i16::MIN));
        let mut muted = square(20_000);
        apply_gain(&mut muted, 0.0);
        assert!(muted.iter().all(|&s| s == 0));
    }

    #[test]
    fn the_meter_reports_every_240_ms_in_dbfs() {
        let mut meter = LevelMeter::default();
        let (half, silence) = (square(i16::MAX / 2), [0; FRAME_SAMPLES]);
        let reports: Vec<Levels> = (0..36).filter_map(|_| meter.add(&half, &silence)).collect();
        assert_eq!(reports.len(), 3);
        assert!((reports[0].input_dbfs + 6.02).abs() < 0.1, "half scale is -6 dBFS: {reports:?}");
        assert_eq!(reports[0].output_dbfs, FLOOR_DBFS);
    }
}
