//! WAV files as audio backends: a looping source read into memory at start,
//! and a sink whose disk writes happen on a writer thread fed by a lock-free
//! ring, so the media tick never waits on the disk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{AudioError, AudioSink, AudioSource};
use crate::media::{FRAME_SAMPLES, PCM_RATE};

/// A WAV file played in a loop, converted once to 8 kHz mono.
pub struct WavSource {
    samples: Vec<i16>,
    position: usize,
}

impl WavSource {
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        let err = |message: String| AudioError::Wav { path: path.into(), message };
        let mut reader = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
        let spec = reader.spec();
        if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
            return Err(err(format!(
                "{}-bit {:?} samples; 16-bit PCM is needed",
                spec.bits_per_sample, spec.sample_format
            )));
        }
        let interleaved: Vec<i16> =
            reader.samples::<i16>().collect::<Result<_, _>>().map_err(|e| err(e.to_string()))?;
        let channels = spec.channels.max(1) as usize;
        // Mix down rather than pick a channel: a stereo file may be silent on one side.
        let mono: Vec<i16> = interleaved
            .chunks(channels)
            .map(|frame| (frame.iter().map(|s| *s as i32).sum::<i32>() / channels as i32) as i16)
            .collect();
        let samples = resample_linear(&mono, spec.sample_rate, PCM_RATE);
        if samples.is_empty() {
            return Err(err("no audio in file".into()));
        }
        Ok(WavSource { samples, position: 0 })
    }
}

impl AudioSource for WavSource {
    fn read_frame(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        for s in frame.iter_mut() {
            *s = self.samples[self.position];
            self.position = (self.position + 1) % self.samples.len();
        }
    }
}

/// Linear interpolation is enough for test and demo prompts; the media
/// engine brings a proper resampler for device audio.
fn resample_linear(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || input.len() < 2 {
        return input.to_vec();
    }
    let out_len = (input.len() as u64 * to as u64 / from as u64) as usize;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * from as f64 / to as f64;
            let idx = (pos as usize).min(input.len() - 2);
            let frac = pos - idx as f64;
            (input[idx] as f64 * (1.0 - frac) + input[idx + 1] as f64 * frac) as i16
        })
        .collect()
}

/// Two seconds of audio between the tick and the writer thread.
const SINK_RING_SAMPLES: usize = PCM_RATE as usize * 2;

/// Writes what the agent hears to an 8 kHz mono 16-bit WAV file.
pub struct WavSink {
    ring: rtrb::Producer<i16>,
    dropped: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
}

impl WavSink {
    pub fn create(path: &Path) -> Result<Self, AudioError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: PCM_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec)
            .map_err(|e| AudioError::Wav { path: path.into(), message: e.to_string() })?;
        let (ring, consumer) = rtrb::RingBuffer::new(SINK_RING_SAMPLES);
        let closing = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let thread_closing = closing.clone();
        let path: PathBuf = path.into();
        let writer = std::thread::Builder::new()
            .name("wav-sink".into())
            .spawn(move || drain_to_file(consumer, writer, thread_closing, path))
            .map_err(|e| AudioError::Wav { path: PathBuf::new(), message: e.to_string() })?;
        Ok(WavSink { ring, dropped, closing, writer: Some(writer) })
    }
}

fn drain_to_file(
    mut ring: rtrb::Consumer<i16>,
    mut writer: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    closing: Arc<AtomicBool>,
    path: PathBuf,
) {
    let mut since_flush = 0usize;
    loop {
        let done = closing.load(Ordering::Acquire);
        while let Ok(sample) = ring.pop() {
            if let Err(e) = writer.write_sample(sample) {
                tracing::error!(path = %path.display(), error = %e, "audio sink write failed; discarding the rest");
                return;
            }
            since_flush += 1;
        }
        // Keep the header valid about once a second, so a crash leaves a playable file.
        if since_flush >= PCM_RATE as usize {
            since_flush = 0;
            if let Err(e) = writer.flush() {
                tracing::warn!(path = %path.display(), error = %e, "audio sink flush failed");
            }
        }
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Err(e) = writer.finalize() {
        tracing::error!(path = %path.display(), error = %e, "audio sink finalize failed");
    }
}

impl AudioSink for WavSink {
    fn write_frame(&mut self, frame: &[i16; FRAME_SAMPLES]) {
        match self.ring.write_chunk_uninit(FRAME_SAMPLES) {
            Ok(chunk) => {
                chunk.fill_from_iter(frame.iter().copied());
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(frames = dropped, "audio sink fell behind and lost frames");
        }
        self.closing.store(true, Ordering::Release);
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_writes_every_frame_and_source_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.wav");
        let mut sink = WavSink::create(&path).unwrap();
        let mut frame = [0i16; FRAME_SAMPLES];
        for n in 0..50 {
            frame.fill(n * 100);
            sink.write_frame(&frame);
        }
        drop(sink);
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(
            (reader.spec().sample_rate, reader.spec().channels, reader.len()),
            (PCM_RATE, 1, 50 * FRAME_SAMPLES as u32)
        );
        let mut source = WavSource::open(&path).unwrap();
        source.read_frame(&mut frame);
        assert_eq!(frame, [0; FRAME_SAMPLES]);
        source.read_frame(&mut frame);
        assert_eq!(frame, [100; FRAME_SAMPLES]);
    }

    #[test]
    fn source_converts_rate_and_channels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 32000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for _ in 0..32000 {
            w.write_sample(1000i16).unwrap();
            w.write_sample(3000i16).unwrap();
        }
        w.finalize().unwrap();
        let source = WavSource::open(&path).unwrap();
        assert_eq!(source.samples.len(), PCM_RATE as usize);
        assert!(source.samples.iter().all(|s| *s == 2000));
    }
}
