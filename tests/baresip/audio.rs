//! The WAV files of a baresip instance: the tone it sends (read whole by
//! the `aufile` source) and the `sndfile` recordings
//! `dump-YYYY-MM-DD-HH-MM-SS-{enc,dec}.wav`: 16-bit PCM at the codec's audio
//! rate (8000 G.711, 16000 G.722, 48000 stereo opus), `enc` what it encoded
//! and sent, `dec` what it decoded.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::options::TONE_RATE;

pub(super) const WAV_HEADER_BYTES: u64 = 44;

/// A recording read back: first channel only, with its format.
#[derive(Clone, Debug)]
pub struct Recording {
    pub path: PathBuf,
    pub rate: u32,
    pub channels: u16,
    /// Samples of the first channel.
    pub samples: Vec<i16>,
}

impl Recording {
    pub fn read(path: &Path) -> Recording {
        let mut reader = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let spec = reader.spec();
        assert_eq!(spec.bits_per_sample, 16, "{}: not 16-bit PCM", path.display());
        let all: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>().unwrap();
        let samples = all.iter().step_by(spec.channels as usize).copied().collect();
        Recording { path: path.to_path_buf(), rate: spec.sample_rate, channels: spec.channels, samples }
    }

    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / self.rate as f64
    }

    /// The last `secs` seconds (all of it when shorter).
    pub fn tail(&self, secs: f64) -> &[i16] {
        let take = ((secs * self.rate as f64) as usize).min(self.samples.len());
        &self.samples[self.samples.len() - take..]
    }

    /// The dominant frequency (10 Hz steps) of half a second from the middle,
    /// away from the call's start and end; `None` for silence.
    pub fn dominant_frequency(&self) -> Option<f64> {
        let window = (self.rate as usize / 2).min(self.samples.len());
        let start = (self.samples.len() - window) / 2;
        softphoned::audio::analysis::dominant_frequency(&self.samples[start..start + window], self.rate)
    }
}

/// `secs` of a half-scale sine at `hz` (silence for `None`), mono at [`TONE_RATE`].
pub(super) fn write_tone(path: &Path, hz: Option<f64>, secs: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: TONE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    let step = hz.unwrap_or(0.0) * std::f64::consts::TAU / TONE_RATE as f64;
    for n in 0..secs * TONE_RATE {
        let sample = if hz.is_some() { (n as f64 * step).sin() * 0.5 * i16::MAX as f64 } else { 0.0 };
        writer.write_sample(sample as i16).unwrap();
    }
    writer.finalize().unwrap();
}

/// The newest `dump-*-{kind}.wav` (names carry the start time, so they sort by it).
pub(super) fn newest_recording(dir: &Path, kind: &str) -> Option<PathBuf> {
    let suffix = format!("-{kind}.wav");
    let entries = fs::read_dir(dir).ok()?.flatten().map(|e| e.path());
    let dumps = entries.filter(|p| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("dump-") && n.ends_with(&suffix))
    });
    dumps.max()
}

/// libsndfile writes the RIFF size only when it closes the file.
pub(super) fn header_is_final(path: &Path) -> bool {
    let Ok(mut file) = fs::File::open(path) else { return false };
    let mut header = [0u8; 8];
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    file.read_exact(&mut header).is_ok()
        && &header[..4] == b"RIFF"
        && u32::from_le_bytes(header[4..8].try_into().unwrap()) as u64 + 8 == len
}
