//! One recording on disk: a stereo 16-bit WAV, left the agent, right the
//! remote party, written so that a crash loses at most the last second: the
//! header is made true every second of audio (hound's flush writes the
//! sizes), the file is fsynced when it closes, and a file a crash left
//! behind is repaired at the next start (its sizes set from what really is
//! on disk). Files are created new, never overwritten, mode 0640. An
//! encrypted WAV can't be patched once sealed: it is streamed with the
//! "unknown length" header and sealed again with the true one when it
//! ends (`super::sealed` says how); after a crash, decrypting sets it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use age::stream::StreamWriter;
use age::x25519::{Identity, Recipient};

use super::sealed;

/// Bytes per stereo 16-bit sample frame.
const BLOCK: u64 = 4;

/// A recording being written.
pub struct RecordingFile {
    writer: Wav,
    path: PathBuf,
    rate: u32,
    /// Stereo frames written, and since the header was last made true.
    frames: u64,
    unflushed: u64,
}

enum Wav {
    /// hound, which makes the header true at each flush.
    Plain(hound::WavWriter<BufWriter<File>>),
    /// Streamed to age: the header says "unknown length"; `bytes` is the
    /// frame's samples, reused. Also sealed to `own`, with which it is read
    /// back at the end and sealed again to `recipients` with the true header.
    Sealed { stream: StreamWriter<File>, bytes: Vec<u8>, own: Box<Identity>, recipients: Vec<Recipient> },
}

impl RecordingFile {
    /// Create `path` (never replacing a file) for audio at `rate` Hz,
    /// encrypted to `recipients` unless there are none.
    pub fn create(path: &Path, rate: u32, recipients: &[Recipient]) -> io::Result<RecordingFile> {
        let file = sealed::create_new(path)?;
        let writer = if recipients.is_empty() {
            let spec = hound::WavSpec {
                channels: 2,
                sample_rate: rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            Wav::Plain(hound::WavWriter::new(BufWriter::new(file), spec).map_err(io_error)?)
        } else {
            let own = Box::new(Identity::generate());
            let mut sealed_to = recipients.to_vec();
            sealed_to.push(own.to_public());
            let mut stream = sealed::seal(file, &sealed_to)?;
            stream.write_all(&header(rate, None))?;
            Wav::Sealed { stream, bytes: Vec::new(), own, recipients: recipients.to_vec() }
        };
        Ok(RecordingFile { writer, path: path.to_path_buf(), rate, frames: 0, unflushed: 0 })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Audio written so far, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.frames * 1000 / u64::from(self.rate)
    }

    /// Append the two sides, sample by sample (the shorter side is padded with silence).
    pub fn write(&mut self, agent: &[i16], remote: &[i16]) -> io::Result<()> {
        let len = agent.len().max(remote.len());
        let sample = |side: &[i16], i: usize| side.get(i).copied().unwrap_or(0);
        match &mut self.writer {
            Wav::Plain(writer) => {
                // hound's 16-bit writer: one buffered write for the frame, not a
                // checked write per sample (a thousand recorded calls spent a fifth
                // of a core on those).
                let mut frame = writer.get_i16_writer(2 * len as u32);
                for i in 0..len {
                    frame.write_sample(sample(agent, i));
                    frame.write_sample(sample(remote, i));
                }
                frame.flush().map_err(io_error)?;
            }
            // Whole chunks reach the file as they fill; nothing to flush.
            Wav::Sealed { stream, bytes, .. } => {
                bytes.clear();
                for i in 0..len {
                    bytes.extend(sample(agent, i).to_le_bytes());
                    bytes.extend(sample(remote, i).to_le_bytes());
                }
                stream.write_all(bytes)?;
            }
        }
        self.frames += len as u64;
        self.unflushed += len as u64;
        if self.unflushed >= u64::from(self.rate) {
            // Once a second: what is on disk is a valid WAV up to here.
            self.unflushed = 0;
            if let Wav::Plain(writer) = &mut self.writer {
                writer.flush().map_err(io_error)?;
            }
        }
        Ok(())
    }

    /// Close: the header made final (plain) or the stream's last chunk
    /// written (sealed), and the file on stable storage.
    pub fn finish(self) -> io::Result<PathBuf> {
        let path = self.path;
        match self.writer {
            Wav::Plain(writer) => {
                writer.finalize().map_err(io_error)?;
                File::open(&path)?.sync_all()?;
            }
            Wav::Sealed { stream, own, recipients, .. } => {
                stream.finish()?.sync_all()?;
                let data = self.frames * BLOCK;
                if let Err(e) = sealed::reseal(&path, &own, &recipients, &header(self.rate, Some(data))) {
                    // What is there decrypts all the same; only its sizes say "unknown".
                    tracing::warn!(path = %path.display(), error = %e, "cannot seal the recording with its true header");
                }
            }
        }
        Ok(path)
    }
}

/// A stereo 16-bit PCM header for `data` bytes of samples; with none, its
/// RIFF and data sizes say "unknown" (0xFFFFFFFF), as a stream that can't
/// seek back writes it. Past 4 GiB (37 hours at 8 kHz) they say so too.
fn header(rate: u32, data: Option<u64>) -> Vec<u8> {
    let size = |extra: u64| data.and_then(|d| u32::try_from(d + extra).ok()).unwrap_or(u32::MAX);
    let mut header = Vec::with_capacity(44);
    header.extend(b"RIFF");
    header.extend(size(36).to_le_bytes());
    header.extend(b"WAVEfmt ");
    header.extend(16u32.to_le_bytes());
    header.extend(1u16.to_le_bytes()); // PCM
    header.extend(2u16.to_le_bytes());
    header.extend(rate.to_le_bytes());
    header.extend((rate * BLOCK as u32).to_le_bytes());
    header.extend((BLOCK as u16).to_le_bytes());
    header.extend(16u16.to_le_bytes());
    header.extend(b"data");
    header.extend(size(0).to_le_bytes());
    header
}

/// Make the header of a WAV that a crash left behind tell the truth: its
/// RIFF and data sizes are set from the file's real length (whole sample
/// frames only). Returns whether anything changed.
pub fn repair(path: &Path) -> io::Result<bool> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let mut riff = [0u8; 12];
    file.read_exact(&mut riff)?;
    if &riff[..4] != b"RIFF" || &riff[8..] != b"WAVE" {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a WAV file"));
    }
    // Walk the chunks to the data chunk.
    let mut at = 12u64;
    loop {
        let mut header = [0u8; 8];
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(&mut header)?;
        let size = u64::from(u32::from_le_bytes(header[4..].try_into().expect("4 bytes")));
        if &header[..4] == b"data" {
            let data = (len - at - 8) / BLOCK * BLOCK;
            if data == size && u64::from(u32::from_le_bytes(riff[4..8].try_into().expect("4 bytes"))) == at + data {
                return Ok(false);
            }
            file.seek(SeekFrom::Start(at + 4))?;
            file.write_all(&(data as u32).to_le_bytes())?;
            file.seek(SeekFrom::Start(4))?;
            file.write_all(&((at + data) as u32).to_le_bytes())?;
            file.sync_all()?;
            return Ok(true);
        }
        at += 8 + size + size % 2;
        if at + 8 > len {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "no data chunk"));
        }
    }
}

fn io_error(error: hound::Error) -> io::Error {
    match error {
        hound::Error::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn read(path: &Path) -> (hound::WavSpec, Vec<i16>) {
        let mut reader = hound::WavReader::open(path).unwrap();
        (reader.spec(), reader.samples::<i16>().map(Result::unwrap).collect())
    }

    #[test]
    fn a_finished_recording_is_stereo_agent_left_remote_right_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.wav");
        let mut file = RecordingFile::create(&path, 8000, &[]).unwrap();
        file.write(&[1, 2, 3], &[-1, -2, -3]).unwrap();
        file.write(&[4], &[]).unwrap();
        assert_eq!(file.duration_ms(), 0);
        file.finish().unwrap();
        let (spec, samples) = read(&path);
        assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (2, 8000, 16));
        assert_eq!(samples, vec![1, -1, 2, -2, 3, -3, 4, 0]);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(RecordingFile::create(&path, 8000, &[]).err().map(|e| e.kind()), Some(io::ErrorKind::AlreadyExists));
    }

    #[test]
    fn a_crash_loses_at_most_the_last_second_and_repair_keeps_what_reached_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crashed.wav");
        let mut file = RecordingFile::create(&path, 8000, &[]).unwrap();
        let frame = [7i16; 160];
        for _ in 0..125 {
            file.write(&frame, &frame).unwrap();
        }
        // The process dies: nothing is finalized, buffered audio is lost.
        std::mem::forget(file);
        let (_, samples) = read(&path);
        assert!(samples.len() >= 2 * 16000, "at least the flushed 2 s read back: {}", samples.len() / 2);
        repair(&path).unwrap();
        let (_, repaired) = read(&path);
        assert!(repaired.len() >= samples.len());
        assert!(repaired.iter().all(|s| *s == 7));
        assert!(!repair(&path).unwrap(), "a true header is left alone");
    }

    #[test]
    fn an_encrypted_recording_holds_no_plain_wav_and_decrypts_to_the_same_samples() {
        let dir = tempfile::tempdir().unwrap();
        let identity = age::x25519::Identity::generate();
        let path = dir.path().join("call.wav.age");
        let mut file = RecordingFile::create(&path, 8000, &[identity.to_public()]).unwrap();
        for n in 0..100 {
            file.write(&[n; 160], &[-n; 160]).unwrap();
        }
        assert_eq!(file.duration_ms(), 2000);
        file.finish().unwrap();
        let stored = std::fs::read(&path).unwrap();
        assert!(stored.starts_with(b"age-encryption.org/v1\n"));
        assert!(!stored.windows(4).any(|w| w == b"RIFF" || w == b"WAVE"), "no plaintext header on disk");
        let stanzas = String::from_utf8_lossy(&stored[..200]).matches("-> X25519 ").count();
        assert_eq!(stanzas, 1, "sealed again to the recipient alone");
        assert!(!sealed::resealing_path(&path).exists());

        let decryptor = age::Decryptor::new(File::open(&path).unwrap()).unwrap();
        let mut plain = Vec::new();
        let identities = std::iter::once(&identity as &dyn age::Identity);
        decryptor.decrypt(identities).unwrap().read_to_end(&mut plain).unwrap();
        let out = dir.path().join("call.wav");
        std::fs::write(&out, plain).unwrap();
        assert!(!repair(&out).unwrap(), "the sizes were true already");
        let (spec, samples) = read(&out);
        assert_eq!((spec.channels, spec.sample_rate), (2, 8000));
        let expected: Vec<i16> = (0..100i16).flat_map(|n| [n, -n].repeat(160)).collect();
        assert_eq!(samples, expected, "a plain WAV, as any reader takes it");
    }
}
