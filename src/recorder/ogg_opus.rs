//! Ogg/Opus recordings (RFC 7845) for space: the same two channels (left
//! the agent, right the remote party) as the WAV, about a tenth of its size.
//! Ogg pages are self-delimiting, so a crash loses only the page being
//! filled: a page is closed and written out every second of audio, and the
//! file is fsynced when it closes. Encrypted, the pages go through age,
//! which writes whole 64 KiB chunks (`super::sealed`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use age::x25519::Recipient;
use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use super::sealed::Output;

/// Opus frames of 20 ms; granule positions count 48 kHz samples (RFC 7845 §4).
const FRAMES_PER_PAGE: u64 = 50;
const GRANULE_PER_FRAME: u64 = 960;
/// Enough for a 20 ms stereo voice frame at any bit rate we ask for.
const MAX_PACKET: usize = 1500;
/// Speech in stereo, well below the WAV's 256-512 kbit/s.
const BITRATE: i32 = 32_000;

pub struct OggOpusFile {
    packets: PacketWriter<'static, Output>,
    encoder: opus::Encoder,
    path: PathBuf,
    rate: u32,
    serial: u32,
    /// Interleaved samples waiting for a whole 20 ms frame.
    pending: Vec<i16>,
    frames: u64,
    samples: u64,
}

impl OggOpusFile {
    /// Create `path` (never replacing a file) for audio at `rate` Hz (8000
    /// or 16000), encrypted to `recipients` unless there are none.
    pub fn create(path: &Path, rate: u32, recipients: &[Recipient]) -> io::Result<OggOpusFile> {
        let output = Output::create(path, recipients)?;
        let mut encoder =
            opus::Encoder::new(rate, opus::Channels::Stereo, opus::Application::Voip).map_err(io::Error::other)?;
        encoder.set_bitrate(opus::Bitrate::Bits(BITRATE)).map_err(io::Error::other)?;
        let pre_skip = encoder.get_lookahead().map_err(io::Error::other)? as u64 * 48_000 / u64::from(rate);
        let mut packets = PacketWriter::new(output);
        let serial = rand::random();
        let mut head = b"OpusHead".to_vec();
        head.extend([1, 2]);
        head.extend((pre_skip as u16).to_le_bytes());
        head.extend(rate.to_le_bytes());
        head.extend([0, 0, 0]);
        packets.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;
        let vendor = b"softphoned";
        let mut tags = b"OpusTags".to_vec();
        tags.extend((vendor.len() as u32).to_le_bytes());
        tags.extend(vendor);
        tags.extend(0u32.to_le_bytes());
        packets.write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)?;
        packets.inner_mut().flush()?;
        Ok(OggOpusFile {
            packets,
            encoder,
            path: path.to_path_buf(),
            rate,
            serial,
            pending: Vec::new(),
            frames: 0,
            samples: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn duration_ms(&self) -> u64 {
        self.samples * 1000 / u64::from(self.rate)
    }

    /// Append the two sides, sample by sample (the shorter padded with silence).
    pub fn write(&mut self, agent: &[i16], remote: &[i16]) -> io::Result<()> {
        let len = agent.len().max(remote.len());
        for i in 0..len {
            self.pending.push(agent.get(i).copied().unwrap_or(0));
            self.pending.push(remote.get(i).copied().unwrap_or(0));
        }
        self.samples += len as u64;
        let frame = 2 * self.rate as usize / 50;
        while self.pending.len() >= frame {
            let pcm: Vec<i16> = self.pending.drain(..frame).collect();
            self.encode(&pcm, false)?;
        }
        Ok(())
    }

    fn encode(&mut self, pcm: &[i16], last: bool) -> io::Result<()> {
        let mut packet = vec![0u8; MAX_PACKET];
        let len = self.encoder.encode(pcm, &mut packet).map_err(io::Error::other)?;
        packet.truncate(len);
        self.frames += 1;
        let end = if last {
            PacketWriteEndInfo::EndStream
        } else if self.frames % FRAMES_PER_PAGE == 0 {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        self.packets.write_packet(packet, self.serial, end, self.frames * GRANULE_PER_FRAME)?;
        if end != PacketWriteEndInfo::NormalPacket {
            // Once a second: the page is on disk.
            self.packets.inner_mut().flush()?;
        }
        Ok(())
    }

    /// Close: the last frame (padded) ends the stream, the file on stable storage.
    pub fn finish(mut self) -> io::Result<PathBuf> {
        let frame = 2 * self.rate as usize / 50;
        let mut last = std::mem::take(&mut self.pending);
        last.resize(frame, 0);
        self.encode(&last, true)?;
        self.packets.into_inner().finish()?;
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::analysis::dominant_frequency;
    use crate::audio::{AudioSource, ToneSource};

    #[test]
    fn an_ogg_opus_recording_decodes_to_the_agent_left_and_the_remote_right() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.opus");
        let mut file = OggOpusFile::create(&path, 16_000, &[]).unwrap();
        let (mut ours, mut theirs) = (ToneSource::new(440.0), ToneSource::new(1000.0));
        let (mut a, mut b) = ([0i16; 320], [0i16; 320]);
        for _ in 0..100 {
            ours.read_frame(&mut a);
            theirs.read_frame(&mut b);
            file.write(&a, &b).unwrap();
        }
        assert_eq!(file.duration_ms(), 2000);
        file.finish().unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() < 2 * 16_000 * 4 / 5, "much smaller than the WAV");

        let mut reader = ogg::PacketReader::new(std::fs::File::open(&path).unwrap());
        let head = reader.read_packet().unwrap().unwrap();
        assert!(head.data.starts_with(b"OpusHead") && head.data[9] == 2, "stereo");
        reader.read_packet().unwrap().unwrap();
        let mut decoder = opus::Decoder::new(16_000, opus::Channels::Stereo).unwrap();
        let (mut left, mut right) = (Vec::new(), Vec::new());
        while let Some(packet) = reader.read_packet().unwrap() {
            let mut pcm = [0i16; 640];
            let n = decoder.decode(&packet.data, &mut pcm, false).unwrap();
            for pair in pcm[..2 * n].chunks(2) {
                left.push(pair[0]);
                right.push(pair[1]);
            }
        }
        assert_eq!(dominant_frequency(&left[16_000..24_000], 16_000), Some(440.0));
        assert_eq!(dominant_frequency(&right[16_000..24_000], 16_000), Some(1000.0));
    }
}
